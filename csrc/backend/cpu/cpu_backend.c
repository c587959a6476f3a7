/* cpu_backend.c — creates the CPU reference backend (the op table is in cpu_ops.c). */
#include <stdlib.h>

#include "backend/backend.h"

extern const g4_backend_ops g4_cpu_ops;

static void cpu_destroy(g4_backend *b) { free(b); }

g4_backend *g4_backend_cpu_create(g4_error *err) {
    g4_backend *b = calloc(1, sizeof *b);
    if (!b) {
        g4_fail(err, "cpu backend: out of memory");
        return NULL;
    }
    b->ops = &g4_cpu_ops;
    b->ctx = NULL;
    b->destroy = cpu_destroy;
    return b;
}
