/* check.h — a tiny assertion harness for the C unit tests.
 *
 * CHECK(cond, fmt, ...) records a failure with file:line and a message and goes on;
 * check_summary() prints "N passed, N failed" and returns the process exit code.
 * Tests that need a GPU and find none call check_skip() → exit code 77 (ctest SKIP). */
#ifndef G4_TESTS_CHECK_H
#define G4_TESTS_CHECK_H

#include <stdio.h>
#include <stdlib.h>

static int check_passed_, check_failed_;

#define CHECK(cond, ...)                                                    \
    do {                                                                    \
        if (cond) {                                                         \
            check_passed_++;                                                \
        } else {                                                            \
            check_failed_++;                                                \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                   \
            fputc('\n', stderr);                                            \
        }                                                                   \
    } while (0)

/* Stops the test at once (for failures after which nothing else can be checked). */
#define REQUIRE(cond, ...)              \
    do {                                \
        int before_ = check_failed_;    \
        CHECK(cond, __VA_ARGS__);       \
        if (check_failed_ != before_) { \
            return check_summary();     \
        }                               \
    } while (0)

/* REQUIRE for functions returning void. */
#define REQUIRE_VOID(cond, ...)         \
    do {                                \
        int before_ = check_failed_;    \
        CHECK(cond, __VA_ARGS__);       \
        if (check_failed_ != before_) { \
            return;                     \
        }                               \
    } while (0)

static inline int check_summary(void) {
    printf("%d passed, %d failed\n", check_passed_, check_failed_);
    return check_failed_ ? 1 : 0;
}

#define CHECK_SKIP_CODE 77
static inline int check_skip(const char *why) {
    printf("SKIPPED: %s\n", why);
    return CHECK_SKIP_CODE;
}

#endif
