/* golden_io.h — shared by the media tests: reading tests/media/golden/ files and the weighted byte
 * sum make_vision_golden.py writes (sum_i byte_i · (i + 1) · 0x9e3779b97f4a7c15 mod 2^64). */
#ifndef G4_TESTS_MEDIA_GOLDEN_IO_H
#define G4_TESTS_MEDIA_GOLDEN_IO_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/file.h"

#define GOLDEN_DIR "tests/media/golden/"

static inline uint64_t weighted_sum64(const uint8_t *p, size_t n) {
    uint64_t s = 0;
    for (size_t i = 0; i < n; i++) s += (uint64_t)p[i] * ((uint64_t)(i + 1) * 0x9e3779b97f4a7c15ull);
    return s;
}

/* The whole file GOLDEN_DIR name; NULL (and a message) when missing. */
static inline uint8_t *golden_read(const char *name, size_t *n) {
    char path[512];
    snprintf(path, sizeof path, GOLDEN_DIR "%s", name);
    char *buf = NULL;
    g4_error err = {{0}};
    if (g4_read_file(path, (size_t)64 << 20, &buf, n, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return NULL;
    }
    return (uint8_t *)buf;
}

#endif
