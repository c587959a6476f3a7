/* dtype.c — names and sizes of the element types (see dtype.h). */
#include "base/dtype.h"

#include <string.h>

static const struct {
    const char *name;
    size_t size;
} dtypes[G4_DT_COUNT] = {
    [G4_DT_BF16] = {"BF16", 2}, [G4_DT_F16] = {"F16", 2}, [G4_DT_F32] = {"F32", 4},
    [G4_DT_I32] = {"I32", 4},   [G4_DT_I64] = {"I64", 8},
};

size_t g4_dtype_size(g4_dtype dt) { return (unsigned)dt < G4_DT_COUNT ? dtypes[dt].size : 0; }
const char *g4_dtype_name(g4_dtype dt) { return (unsigned)dt < G4_DT_COUNT ? dtypes[dt].name : "?"; }

int g4_dtype_parse(const char *name, g4_dtype *out) {
    for (int i = 0; i < G4_DT_COUNT; i++)
        if (strcmp(name, dtypes[i].name) == 0) {
            *out = (g4_dtype)i;
            return 0;
        }
    return -1;
}
