/* secret.c - constant-time secret comparison, Bearer parsing, kernel randomness (secret.h). */
#include "base/secret.h"

#include <errno.h>
#include <stdint.h>
#include <strings.h>
#include <sys/random.h>

bool g4_secret_equal(const char *a, size_t na, const char *b, size_t nb) {
    /* Walk the longer length; a differing length is folded in like a differing byte. */
    size_t n = na > nb ? na : nb;
    unsigned diff = (unsigned)(na ^ nb) | (unsigned)((uint64_t)(na ^ nb) >> 32);
    for (size_t i = 0; i < n; i++) {
        unsigned char x = i < na ? (unsigned char)a[i] : 0, y = i < nb ? (unsigned char)b[i] : 0;
        diff |= (unsigned)(x ^ y);
    }
    return diff == 0;
}

bool g4_bearer_matches(const char *authorization, const char *key) {
    if (!authorization || !key) return false;
    if (strncasecmp(authorization, "Bearer ", 7)) return false;
    const char *t = authorization + 7;
    while (*t == ' ') t++;
    size_t nt = 0, nk = 0;
    while (t[nt]) nt++;
    while (nt > 0 && (t[nt - 1] == ' ' || t[nt - 1] == '\t')) nt--;
    while (key[nk]) nk++;
    return nk > 0 && g4_secret_equal(t, nt, key, nk);
}

int g4_random_bytes(void *out, size_t n) {
    unsigned char *p = out;
    while (n > 0) {
        ssize_t got = getrandom(p, n, 0);
        if (got < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += got;
        n -= (size_t)got;
    }
    return 0;
}
