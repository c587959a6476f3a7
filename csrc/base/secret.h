/* secret.h - checks of shared secrets (API keys) that take the same time whatever the guess.
 *
 * g4_secret_equal compares in time that depends only on the lengths, so a client cannot learn a
 * key byte by byte from response times; g4_bearer_matches reads an HTTP / gRPC `authorization`
 * value ("Bearer <key>", scheme case-insensitive, RFC 6750 §2.1). Not here: where keys come
 * from (server/main.c) or which routes want one (the front-ends). */
#ifndef G4_BASE_SECRET_H
#define G4_BASE_SECRET_H

#include <stdbool.h>
#include <stddef.h>

/* True when a[0..na) equals b[0..nb); every byte of both is read whatever they hold. */
bool g4_secret_equal(const char *a, size_t na, const char *b, size_t nb);

/* True when `authorization` (NULL = header absent) is "Bearer <key>". */
bool g4_bearer_matches(const char *authorization, const char *key);

/* Fills out[0..n) from the kernel's random source (getrandom). 0, or -1 when it fails. */
int g4_random_bytes(void *out, size_t n);

#endif
