/* error.h — errors as values: a caller-owned message buffer filled by the failing call.
 *
 * Convention used across g4serve: a function that can fail returns 0 on success and -1 on
 * failure, and takes a `g4_error *err` it fills with a one-line message naming what is wrong
 * (the field, the tensor, the expected shape). `err` may be NULL when the caller does not care.
 * This is not a logging facility: nothing is printed here. */
#ifndef G4_BASE_ERROR_H
#define G4_BASE_ERROR_H

#include <stdarg.h>

typedef struct g4_error {
    char msg[1024]; /* NUL-terminated, empty when no error was set */
} g4_error;

/* Formats the message into err (if non-NULL) and returns -1, so failing paths read
 * `return g4_fail(err, "tensor %s: expected ...", name);`. */
int g4_fail(g4_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int g4_vfail(g4_error *err, const char *fmt, va_list ap);

/* Prepends "prefix: " to an already-set message (adds context while unwinding). Returns -1. */
int g4_fail_prefix(g4_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
