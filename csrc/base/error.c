/* error.c — g4_error helpers (see error.h). */
#include "base/error.h"

#include <stdio.h>
#include <string.h>

int g4_vfail(g4_error *err, const char *fmt, va_list ap) {
    if (err) vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    return -1;
}

int g4_fail(g4_error *err, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    g4_vfail(err, fmt, ap);
    va_end(ap);
    return -1;
}

int g4_fail_prefix(g4_error *err, const char *fmt, ...) {
    if (!err) return -1;
    char prefix[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(prefix, sizeof prefix - 2, fmt, ap);
    va_end(ap);
    if (n < 0) return -1;
    size_t plen = strlen(prefix), cap = sizeof err->msg - 1;
    memcpy(prefix + plen, ": ", 3);
    plen += 2;
    size_t old = strnlen(err->msg, cap);
    if (plen + old > cap) old = cap - plen; /* keep the prefix, cut the tail */
    memmove(err->msg + plen, err->msg, old);
    memcpy(err->msg, prefix, plen);
    err->msg[plen + old] = 0;
    return -1;
}
