/* vision_weights.c — maps the vision tower's checkpoint tensors onto their slots (see
 * vision_weights.h). Expected, with D = vision hidden, d = head dim, I = MLP width, P = position
 * table rows, H = text hidden (spec §3.5):
 *   model.vision_tower.patch_embedder.input_proj.weight [D, 768]
 *   model.vision_tower.patch_embedder.position_embedding_table [2, P, D]
 *   model.vision_tower.encoder.layers.ℓ.{input_layernorm, post_attention_layernorm,
 *     pre_feedforward_layernorm, post_feedforward_layernorm}.weight [D]
 *   ….self_attn.{q,k,v}_proj.linear.weight [heads·d, D], o_proj.linear.weight [D, heads·d]
 *   ….self_attn.{q,k}_norm.weight [d]
 *   ….mlp.{gate,up}_proj.linear.weight [I, D], mlp.down_proj.linear.weight [D, I]
 *   model.vision_tower.std_bias, std_scale [D] (standardize only)
 *   model.embed_vision.embedding_projection.weight [H, D]
 * Any other tensor under model.vision_tower. or model.embed_vision. is an error. */
#include "model/vision_weights.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/weights.h"

#define VT "model.vision_tower."
#define PATCH_DIM 768 /* 3 × 16 × 16: the patch size is fixed at 16 (config.c) */

typedef struct vmapper {
    const g4_safetensors *st;
    unsigned char *used; /* per tensor of st */
    g4_error *err;
} vmapper;

static int take(vmapper *m, g4_weight *w, const char *name, int ndim, int64_t d0, int64_t d1, int64_t d2) {
    const int64_t shape[3] = {d0, d1, d2};
    if (g4_weight_take(w, m->st, name, ndim, shape, m->err)) return -1;
    m->used[g4_st_find(m->st, name) - g4_st_at(m->st, 0)] = 1;
    return 0;
}

static int map_layer(vmapper *m, g4_vision_layer_weights *lw, const g4_vision_config *vc, int l) {
    const int64_t D = vc->hidden, d = vc->head_dim, nq = vc->n_heads, nkv = vc->n_kv_heads, I = vc->intermediate;
    char s[192];
#define T(slot, suffix, ...) \
    (snprintf(s, sizeof s, VT "encoder.layers.%d.%s", l, suffix), take(m, &lw->slot, s, __VA_ARGS__))
    return T(input_norm, "input_layernorm.weight", 1, D, 0, 0) ||
                   T(post_attn_norm, "post_attention_layernorm.weight", 1, D, 0, 0) ||
                   T(pre_ffn_norm, "pre_feedforward_layernorm.weight", 1, D, 0, 0) ||
                   T(post_ffn_norm, "post_feedforward_layernorm.weight", 1, D, 0, 0) ||
                   T(q_proj, "self_attn.q_proj.linear.weight", 2, nq * d, D, 0) ||
                   T(k_proj, "self_attn.k_proj.linear.weight", 2, nkv * d, D, 0) ||
                   T(v_proj, "self_attn.v_proj.linear.weight", 2, nkv * d, D, 0) ||
                   T(o_proj, "self_attn.o_proj.linear.weight", 2, D, nq * d, 0) ||
                   T(q_norm, "self_attn.q_norm.weight", 1, d, 0, 0) ||
                   T(k_norm, "self_attn.k_norm.weight", 1, d, 0, 0) ||
                   T(gate_proj, "mlp.gate_proj.linear.weight", 2, I, D, 0) ||
                   T(up_proj, "mlp.up_proj.linear.weight", 2, I, D, 0) ||
                   T(down_proj, "mlp.down_proj.linear.weight", 2, D, I, 0)
               ? -1
               : 0;
#undef T
}

static int is_vision_name(const char *name) {
    return strncmp(name, VT, strlen(VT)) == 0 || strncmp(name, "model.embed_vision.", 19) == 0;
}

int g4_vision_weights_in(const g4_safetensors *st) {
    for (int i = 0; i < g4_st_count(st); i++)
        if (strncmp(g4_st_at(st, i)->name, VT, strlen(VT)) == 0) return 1;
    return 0;
}

int g4_vision_weights_map(g4_vision_weights *w, const g4_vision_config *vc, int H, const g4_safetensors *st,
                          g4_error *err) {
    memset(w, 0, sizeof *w);
    int n = g4_st_count(st);
    vmapper m = {.st = st, .err = err, .used = calloc((size_t)n + 1, 1)};
    w->layers = calloc((size_t)vc->n_layers, sizeof *w->layers);
    if (!m.used || !w->layers) {
        free(m.used);
        free(w->layers);
        w->layers = NULL;
        return g4_fail(err, "vision weights: out of memory");
    }
    w->n_layers = vc->n_layers;
    const int64_t D = vc->hidden;
    g4_weight table;
    int rc = take(&m, &w->input_proj, VT "patch_embedder.input_proj.weight", 2, D, PATCH_DIM, 0) ||
             take(&m, &table, VT "patch_embedder.position_embedding_table", 3, 2, vc->pos_size, D) ||
             take(&m, &w->projection, "model.embed_vision.embedding_projection.weight", 2, H, D, 0);
    if (!rc && vc->standardize)
        rc = take(&m, &w->std_bias, VT "std_bias", 1, D, 0, 0) || take(&m, &w->std_scale, VT "std_scale", 1, D, 0, 0);
    for (int l = 0; l < vc->n_layers && !rc; l++) rc = map_layer(&m, &w->layers[l], vc, l);
    if (!rc) { /* the table's two halves as [P, D] weights */
        size_t half = (size_t)vc->pos_size * (size_t)D * g4_dtype_size(table.dtype);
        w->pos_x = w->pos_y = table;
        w->pos_x.ndim = w->pos_y.ndim = 2;
        w->pos_x.shape[0] = w->pos_y.shape[0] = vc->pos_size;
        w->pos_x.shape[1] = w->pos_y.shape[1] = D;
        w->pos_x.shape[2] = w->pos_y.shape[2] = 0;
        w->pos_y.host = (const char *)table.host + half;
    }
    for (int i = 0; i < n && !rc; i++) {
        const g4_st_tensor *t = g4_st_at(st, i);
        if (!m.used[i] && is_vision_name(t->name))
            rc = g4_fail(err, "tensor %s: unexpected tensor (not part of this vision tower%s)", t->name,
                         vc->standardize ? "" : "; vision_config.standardize is false");
    }
    free(m.used);
    if (rc) g4_vision_weights_free(w);
    return rc ? -1 : 0;
}

void g4_vision_weights_free(g4_vision_weights *w) {
    free(w->layers);
    memset(w, 0, sizeof *w);
}

int g4_vision_weights_for_each(g4_vision_weights *w, int (*fn)(g4_weight *w, void *user), void *user) {
    g4_weight *top[] = {&w->input_proj, &w->pos_x, &w->pos_y, &w->std_bias, &w->std_scale, &w->projection};
    for (size_t i = 0; i < sizeof top / sizeof top[0]; i++)
        if (g4_weight_present(top[i]) && fn(top[i], user)) return -1;
    for (int l = 0; l < w->n_layers; l++) {
        g4_vision_layer_weights *lw = &w->layers[l];
        g4_weight *slots[] = {&lw->input_norm, &lw->post_attn_norm, &lw->pre_ffn_norm, &lw->post_ffn_norm, &lw->q_proj,
                              &lw->k_proj,     &lw->v_proj,         &lw->o_proj,       &lw->q_norm,        &lw->k_norm,
                              &lw->gate_proj,  &lw->up_proj,        &lw->down_proj};
        for (size_t i = 0; i < sizeof slots / sizeof slots[0]; i++)
            if (g4_weight_present(slots[i]) && fn(slots[i], user)) return -1;
    }
    return 0;
}
