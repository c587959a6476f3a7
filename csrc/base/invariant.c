/* invariant.c — the one place a broken invariant stops the process (see invariant.h). */
#include "base/invariant.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

void g4_invariant_failed(const char *file, int line, const char *cond, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s:%d: invariant `%s` broken: ", file, line, cond);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    fflush(stderr);
    abort();
}
