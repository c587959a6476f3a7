/* shard.c — tensor-parallel weight slicing (see shard.h). */
#include "model/shard.h"

#include <stdlib.h>
#include <string.h>

int g4_shard_check(const g4_config *c, int t, g4_error *err) {
    if (t < 1) return g4_fail(err, "tensor parallel size %d: must be ≥ 1", t);
    if (c->n_heads % t)
        return g4_fail(err, "tensor parallel %d: num_attention_heads %d does not divide", t, c->n_heads);
    int kvs[2] = {c->n_kv_heads, c->n_global_kv_heads};
    const char *names[2] = {"num_key_value_heads", "num_global_key_value_heads"};
    for (int i = 0; i < 2; i++)
        if (kvs[i] % t && t % kvs[i])
            return g4_fail(err, "tensor parallel %d: %s %d neither divides nor is divided by it", t, names[i], kvs[i]);
    if (c->intermediate % t)
        return g4_fail(err, "tensor parallel %d: intermediate_size %d does not divide", t, c->intermediate);
    if (c->moe && c->moe_intermediate % t)
        return g4_fail(err, "tensor parallel %d: moe_intermediate_size %d does not divide", t, c->moe_intermediate);
    if (c->vocab % t) return g4_fail(err, "tensor parallel %d: vocab_size %d does not divide", t, c->vocab);
    return 0;
}

static void *own(g4_shard *s, size_t bytes) {
    if (s->n_owned == s->cap_owned) {
        int cap = s->cap_owned ? 2 * s->cap_owned : 64;
        void **p = realloc(s->owned, (size_t)cap * sizeof *p);
        if (!p) return NULL;
        s->owned = p, s->cap_owned = cap;
    }
    void *b = malloc(bytes ? bytes : 1);
    if (b) s->owned[s->n_owned++] = b;
    return b;
}

/* Keeps rows [r0, r0+n) of the last-but-one axis for every index of the leading axes:
 * [.., R, C] → [.., n, C]. Contiguous (no copy) when there is no leading axis. */
static int slice_rows(g4_shard *s, g4_weight *w, int64_t r0, int64_t n, g4_error *err) {
    if (!g4_weight_present(w)) return 0;
    int ax = w->ndim - 2;
    size_t es = g4_dtype_size(w->dtype);
    int64_t R = w->shape[ax], C = w->shape[ax + 1], lead = 1;
    for (int i = 0; i < ax; i++) lead *= w->shape[i];
    if (lead == 1) {
        w->host = (const char *)w->host + (size_t)(r0 * C) * es;
    } else {
        char *dst = own(s, (size_t)(lead * n * C) * es);
        if (!dst) return g4_fail(err, "shard: out of memory slicing %s", w->name);
        for (int64_t l = 0; l < lead; l++)
            memcpy(dst + (size_t)(l * n * C) * es, (const char *)w->host + (size_t)((l * R + r0) * C) * es,
                   (size_t)(n * C) * es);
        w->host = dst;
    }
    w->shape[ax] = n;
    return 0;
}

/* Keeps columns [c0, c0+n) of the last axis: [.., C] → [.., n] (always a copy). */
static int slice_cols(g4_shard *s, g4_weight *w, int64_t c0, int64_t n, g4_error *err) {
    size_t es = g4_dtype_size(w->dtype);
    int64_t C = w->shape[w->ndim - 1], rows = 1;
    for (int i = 0; i < w->ndim - 1; i++) rows *= w->shape[i];
    char *dst = own(s, (size_t)(rows * n) * es);
    if (!dst) return g4_fail(err, "shard: out of memory slicing %s", w->name);
    for (int64_t r = 0; r < rows; r++)
        memcpy(dst + (size_t)(r * n) * es, (const char *)w->host + (size_t)(r * C + c0) * es, (size_t)n * es);
    w->host = dst;
    w->shape[w->ndim - 1] = n;
    return 0;
}

/* Experts' gate_up [E, 2I, H]: this rank's gate rows then its up rows → [E, 2·I/t, H]. */
static int slice_gate_up(g4_shard *s, g4_weight *w, int64_t I, int64_t i0, int64_t n, g4_error *err) {
    size_t es = g4_dtype_size(w->dtype);
    int64_t E = w->shape[0], H = w->shape[2];
    char *dst = own(s, (size_t)(E * 2 * n * H) * es);
    if (!dst) return g4_fail(err, "shard: out of memory slicing %s", w->name);
    for (int64_t e = 0; e < E; e++)
        for (int half = 0; half < 2; half++)
            memcpy(dst + (size_t)((e * 2 * n + half * n) * H) * es,
                   (const char *)w->host + (size_t)((e * 2 * I + half * I + i0) * H) * es, (size_t)(n * H) * es);
    w->host = dst;
    w->shape[1] = 2 * n;
    return 0;
}

int g4_shard_apply(g4_shard *s, g4_config *c, g4_weights *w, int rank, int t, g4_error *err) {
    memset(s, 0, sizeof *s);
    s->rank = rank, s->size = t;
    if (g4_shard_check(c, t, err)) return -1;
    if (rank < 0 || rank >= t) return g4_fail(err, "shard: rank %d of %d", rank, t);
    s->vocab_local = c->vocab / t;
    s->vocab_offset = rank * s->vocab_local;
    s->lm_head = w->embed;
    if (slice_rows(s, &s->lm_head, s->vocab_offset, s->vocab_local, err)) return -1;
    if (t == 1) return 0;
    int lq = c->n_heads / t, I = c->intermediate / t;
    for (int l = 0; l < c->n_layers; l++) {
        g4_layer_weights *lw = &w->layers[l];
        int d = g4_layer_head_dim(c, l), nkv = g4_layer_kv_heads(c, l);
        int lkv = nkv >= t ? nkv / t : 1, kv0 = nkv >= t ? rank * lkv : rank * nkv / t;
        if (slice_rows(s, &lw->q_proj, (int64_t)rank * lq * d, (int64_t)lq * d, err) ||
            slice_rows(s, &lw->k_proj, (int64_t)kv0 * d, (int64_t)lkv * d, err) ||
            slice_rows(s, &lw->v_proj, (int64_t)kv0 * d, (int64_t)lkv * d, err) ||
            slice_cols(s, &lw->o_proj, (int64_t)rank * lq * d, (int64_t)lq * d, err) ||
            slice_rows(s, &lw->gate_proj, (int64_t)rank * I, I, err) ||
            slice_rows(s, &lw->up_proj, (int64_t)rank * I, I, err) ||
            slice_cols(s, &lw->down_proj, (int64_t)rank * I, I, err))
            return g4_fail_prefix(err, "layer %d", l);
        if (c->moe) {
            int Im = c->moe_intermediate / t;
            if (slice_gate_up(s, &lw->experts_gate_up, c->moe_intermediate, (int64_t)rank * Im, Im, err) ||
                slice_cols(s, &lw->experts_down, (int64_t)rank * Im, Im, err))
                return g4_fail_prefix(err, "layer %d", l);
        }
    }
    c->n_heads = lq;
    c->n_kv_heads = c->n_kv_heads >= t ? c->n_kv_heads / t : 1;
    c->n_global_kv_heads = c->n_global_kv_heads >= t ? c->n_global_kv_heads / t : 1;
    c->intermediate = I;
    if (c->moe) c->moe_intermediate /= t;
    return 0;
}

void g4_shard_free(g4_shard *s) {
    for (int i = 0; i < s->n_owned; i++) free(s->owned[i]);
    free(s->owned);
    memset(s, 0, sizeof *s);
}
