/* cpu_backend.c — creates the CPU reference backend in fp32 or bf16 mode (cpu_backend.h);
 * the op table is in cpu_ops.c. */
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_internal.h"
#include "backend/registry.h"

extern const g4_backend_ops g4_cpu_ops;

static void cpu_destroy(g4_backend *b) {
    if (!b) return;
    if (b->ctx) g4_cpu_sample_scratch_free(((g4_cpu_ctx *)b->ctx)->sample_scratch);
    free(b->ctx);
    free(b);
}

void g4_cpu_opts_default(g4_cpu_opts *o) { memset(o, 0, sizeof *o); }

g4_backend *g4_backend_cpu_create_opts(const g4_cpu_opts *o, g4_error *err) {
    g4_backend *b = calloc(1, sizeof *b);
    g4_cpu_ctx *c = calloc(1, sizeof *c);
    if (!b || !c) {
        free(b);
        free(c);
        g4_fail(err, "cpu backend: out of memory");
        return NULL;
    }
    if (o) {
        if (o->sum_order < 0 || o->sum_order > 3) {
            free(b);
            free(c);
            g4_fail(err, "cpu backend: sum_order %d (expected 0..3)", o->sum_order);
            return NULL;
        }
        c->round_bf16 = !!o->round_bf16;
        c->sum_order = o->sum_order;
    }
    b->ops = &g4_cpu_ops;
    b->ctx = c;
    b->destroy = cpu_destroy;
    return b;
}

g4_backend *g4_backend_cpu_create(g4_error *err) { return g4_backend_cpu_create_opts(NULL, err); }

int g4_backend_cpu_set_opts(g4_backend *b, const g4_cpu_opts *o, g4_error *err) {
    if (!b || b->ops != &g4_cpu_ops || !b->ctx)
        return g4_fail(err, "cpu backend: set_opts on a backend that is not the CPU one");
    if (o && (o->sum_order < 0 || o->sum_order > 3))
        return g4_fail(err, "cpu backend: sum_order %d (expected 0..3)", o->sum_order);
    g4_cpu_ctx *c = b->ctx;
    c->round_bf16 = o ? !!o->round_bf16 : 0;
    c->sum_order = o ? o->sum_order : 0;
    return 0;
}

/* The registry's "cpu" kind: options carry nothing the CPU backend reads (device, kernel paths). */
static g4_backend *cpu_create_kind(const g4_backend_options *o, g4_error *err) {
    (void)o;
    return g4_backend_cpu_create(err);
}

const g4_backend_kind g4_backend_kind_cpu = {
    .name = "cpu",
    .create = cpu_create_kind,
    .comm_create = g4_cpu_comm_create,
    .comm_join = NULL,
};
