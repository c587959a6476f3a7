/* fuzz_util.c - helpers shared by the fuzz targets (fuzz_target.h). */
#include <stdlib.h>
#include <string.h>

#include "fuzz_target.h"

char *g4_fuzz_cstr(const uint8_t *data, size_t size) {
    char *s = malloc(size + 1);
    if (!s) return NULL;
    if (size) memcpy(s, data, size);
    s[size] = '\0';
    return s;
}
