/* fuse.c — concatenated projection weights (see fuse.h). */
#include "model/fuse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t part_bytes(const g4_weight *w) { return (size_t)g4_weight_numel(w) * g4_dtype_size(w->dtype); }

int g4_fuse_parts(g4_fused_weight *f, g4_weight *const *in, int n, int l, const char *what, g4_error *err) {
    memset(f, 0, sizeof *f);
    for (int i = 0; i < n; i++) {
        if (!g4_weight_present(in[i])) continue;
        const g4_weight *p = in[i], *first = &f->parts[0];
        if (p->ndim != 2 || (f->n_parts && (p->dtype != first->dtype || p->shape[1] != first->shape[1])))
            return g4_fail(err, "layer %d: cannot fuse %s: %s is %s [%lld, %lld], %s is %s [.., %lld]", l, what,
                           p->name ? p->name : "?", g4_dtype_name(p->dtype), (long long)p->shape[0],
                           (long long)(p->ndim > 1 ? p->shape[1] : 0), first->name ? first->name : "?",
                           g4_dtype_name(first->dtype), (long long)first->shape[1]);
        f->offset[f->n_parts] = f->n_parts ? f->offset[f->n_parts - 1] + f->parts[f->n_parts - 1].shape[0] : 0;
        f->parts[f->n_parts++] = *p;
    }
    if (f->n_parts < 2) return g4_fail(err, "layer %d: %s has %d parts, expected ≥ 2", l, what, f->n_parts);
    for (int i = 0; i < n; i++) in[i]->host = NULL; /* absent from now on: f holds them */
    const g4_weight *last = &f->parts[f->n_parts - 1];
    snprintf(f->name, sizeof f->name, "layers.%d.%s (fused)", l, what);
    f->w = f->parts[0];
    f->w.name = f->name;
    f->w.shape[0] = f->offset[f->n_parts - 1] + last->shape[0];
    f->w.data = NULL;
    return 0;
}

int g4_fuse_take(g4_fused_layer *f, g4_layer_weights *lw, int l, g4_error *err) {
    g4_weight *qkv[3] = {&lw->q_proj, &lw->k_proj, &lw->v_proj}, *gu[2] = {&lw->gate_proj, &lw->up_proj};
    return g4_fuse_parts(&f->qkv, qkv, 3, l, "self_attn.qkv_proj", err) ||
                   g4_fuse_parts(&f->gate_up, gu, 2, l, "mlp.gate_up_proj", err)
               ? -1
               : 0;
}

int g4_fuse_fill(g4_fused_weight *f, g4_error *err) {
    size_t total = 0;
    for (int i = 0; i < f->n_parts; i++) total += part_bytes(&f->parts[i]);
    free(f->bytes);
    f->bytes = malloc(total ? total : 1);
    if (!f->bytes) return g4_fail(err, "%s: cannot allocate %zu bytes to concatenate", f->name, total);
    size_t at = 0;
    for (int i = 0; i < f->n_parts; i++) {
        memcpy((char *)f->bytes + at, f->parts[i].host, part_bytes(&f->parts[i]));
        at += part_bytes(&f->parts[i]);
    }
    f->w.host = f->bytes;
    return 0;
}

void g4_fuse_drop_bytes(g4_fused_weight *f) {
    if (!f->bytes || f->w.data == f->bytes) return;
    free(f->bytes);
    f->bytes = NULL;
    f->w.host = f->parts[0].host;
}

void g4_fuse_free(g4_fused_weight *f) {
    free(f->bytes);
    f->bytes = NULL;
}
