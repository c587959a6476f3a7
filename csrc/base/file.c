/* file.c — g4_read_file (see file.h). */
#include "base/file.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int g4_read_file(const char *path, size_t max_bytes, char **out, size_t *len, g4_error *err) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return g4_fail(err, "cannot open %s: %s", path, strerror(errno));
    long n = -1;
    if (fseek(f, 0, SEEK_END) == 0) n = ftell(f);
    if (n < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return g4_fail(err, "cannot size %s: %s", path, strerror(errno));
    }
    if ((size_t)n > max_bytes) {
        fclose(f);
        return g4_fail(err, "%s is %ld bytes, more than the %zu allowed", path, n, max_bytes);
    }
    char *buf = malloc((size_t)n + 1);
    if (!buf) {
        fclose(f);
        return g4_fail(err, "out of memory reading %s (%ld bytes)", path, n);
    }
    size_t got = fread(buf, 1, (size_t)n, f);
    fclose(f);
    if (got != (size_t)n) {
        free(buf);
        return g4_fail(err, "short read on %s (%zu of %ld bytes)", path, got, n);
    }
    buf[n] = 0;
    *out = buf;
    if (len) *len = (size_t)n;
    return 0;
}
