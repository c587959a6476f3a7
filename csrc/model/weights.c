/* weights.c — maps checkpoint tensors onto the Gemma 4 text-decoder slots (see weights.h).
 *
 * Expected tensors, per layer ℓ under prefix P (`model.language_model.` or `model.`), with
 * d / n_kv the layer's head dim and KV heads (sliding or global), H hidden, I dense width:
 *   P.layers.ℓ.input_layernorm.weight [H]          self_attn.q_proj.weight [n_q·d, H]
 *   self_attn.k_proj.weight [n_kv·d, H]             self_attn.v_proj.weight [n_kv·d, H] (absent if k_eq_v global)
 *   self_attn.o_proj.weight [H, n_q·d]              self_attn.{q,k}_norm.weight [d]
 *   post_attention_layernorm / pre_feedforward_layernorm / post_feedforward_layernorm .weight [H]
 *   mlp.{gate,up}_proj.weight [I, H]                mlp.down_proj.weight [H, I]
 *   layer_scalar [1]
 *   MoE only: post_feedforward_layernorm_1 / pre_feedforward_layernorm_2 /
 *   post_feedforward_layernorm_2 .weight [H], router.proj.weight [E, H], router.scale [H],
 *   router.per_expert_scale [E], experts.gate_up_proj [E, 2·I_moe, H], experts.down_proj [E, H, I_moe]
 * plus P.embed_tokens.weight [V, H] and P.norm.weight [H]. Anything else is an error except
 * vision/audio tensors (skipped, counted) and a tied lm_head.weight of embed's shape (ignored).
 * Nothing is copied: slots point into the safetensors mapping. */
#include "model/weights.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct mapper {
    const g4_safetensors *st;
    const char *prefix;
    unsigned char *used; /* per tensor of st, by table index */
    int64_t n_text;
    g4_error *err;
} mapper;

static void fmt_shape(char *buf, size_t cap, int ndim, const int64_t *shape) {
    size_t n = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (n < cap) snprintf(buf + n, cap - n, "]");
}

static int index_of(const mapper *m, const g4_st_tensor *t) { return (int)(t - g4_st_at(m->st, 0)); }

int g4_weight_take(g4_weight *w, const g4_safetensors *st, const char *name, int ndim, const int64_t *shape,
                   g4_error *err) {
    char want[96], got[96];
    fmt_shape(want, sizeof want, ndim, shape);
    const g4_st_tensor *t = g4_st_find(st, name);
    if (!t) return g4_fail(err, "tensor %s: missing, expected shape %s", name, want);
    bool ok = t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++) ok = t->shape[i] == shape[i];
    if (!ok) {
        fmt_shape(got, sizeof got, t->ndim, t->shape);
        return g4_fail(err, "tensor %s: shape %s, expected %s", name, got, want);
    }
    if (t->dtype != G4_DT_BF16 && t->dtype != G4_DT_F16 && t->dtype != G4_DT_F32)
        return g4_fail(err, "tensor %s: dtype %s, expected BF16, F16 or F32", name, g4_dtype_name(t->dtype));
    memset(w, 0, sizeof *w);
    w->name = t->name;
    w->dtype = t->dtype;
    w->ndim = t->ndim;
    memcpy(w->shape, t->shape, sizeof w->shape);
    w->host = t->data;
    w->data_dtype = t->dtype;
    return 0;
}

/* Maps P + suffix into w, requiring exactly shape[0..ndim). */
static int take(mapper *m, g4_weight *w, const char *suffix, int ndim, int64_t d0, int64_t d1, int64_t d2) {
    char name[256];
    const int64_t shape[3] = {d0, d1, d2};
    snprintf(name, sizeof name, "%s%s", m->prefix, suffix);
    if (g4_weight_take(w, m->st, name, ndim, shape, m->err)) return -1;
    const g4_st_tensor *t = g4_st_find(m->st, name);
    m->used[index_of(m, t)] = 1;
    m->n_text += g4_st_numel(t);
    return 0;
}

static int map_layer(mapper *m, g4_layer_weights *lw, const g4_config *c, int l) {
    const int64_t H = c->hidden, d = g4_layer_head_dim(c, l), nkv = g4_layer_kv_heads(c, l), nq = c->n_heads;
    const int64_t I = c->intermediate, E = c->n_experts, Im = c->moe_intermediate;
    char s[128];
#define T(slot, suffix, ...) (snprintf(s, sizeof s, "layers.%d.%s", l, suffix), take(m, &lw->slot, s, __VA_ARGS__))

    memset(lw, 0, sizeof *lw);
    if (T(input_norm, "input_layernorm.weight", 1, H, 0, 0) || T(q_proj, "self_attn.q_proj.weight", 2, nq * d, H, 0) ||
        T(k_proj, "self_attn.k_proj.weight", 2, nkv * d, H, 0))
        return -1;
    if (!g4_layer_k_eq_v(c, l)) {
        if (T(v_proj, "self_attn.v_proj.weight", 2, nkv * d, H, 0)) return -1;
    } else {
        snprintf(s, sizeof s, "%slayers.%d.self_attn.v_proj.weight", m->prefix, l);
        if (g4_st_find(m->st, s))
            return g4_fail(m->err,
                           "tensor %s: unexpected tensor: global layer %d has attention_k_eq_v "
                           "(V comes from k_proj), expected no v_proj",
                           s, l);
    }
    if (T(o_proj, "self_attn.o_proj.weight", 2, H, nq * d, 0) || T(q_norm, "self_attn.q_norm.weight", 1, d, 0, 0) ||
        T(k_norm, "self_attn.k_norm.weight", 1, d, 0, 0) ||
        T(post_attn_norm, "post_attention_layernorm.weight", 1, H, 0, 0) ||
        T(pre_ffn_norm, "pre_feedforward_layernorm.weight", 1, H, 0, 0) ||
        T(gate_proj, "mlp.gate_proj.weight", 2, I, H, 0) || T(up_proj, "mlp.up_proj.weight", 2, I, H, 0) ||
        T(down_proj, "mlp.down_proj.weight", 2, H, I, 0) ||
        T(post_ffn_norm, "post_feedforward_layernorm.weight", 1, H, 0, 0) ||
        T(layer_scalar, "layer_scalar", 1, 1, 0, 0))
        return -1;
    if (c->moe && (T(post_ffn_norm_1, "post_feedforward_layernorm_1.weight", 1, H, 0, 0) ||
                   T(pre_ffn_norm_2, "pre_feedforward_layernorm_2.weight", 1, H, 0, 0) ||
                   T(post_ffn_norm_2, "post_feedforward_layernorm_2.weight", 1, H, 0, 0) ||
                   T(router_proj, "router.proj.weight", 2, E, H, 0) || T(router_scale, "router.scale", 1, H, 0, 0) ||
                   T(router_expert_scale, "router.per_expert_scale", 1, E, 0, 0) ||
                   T(experts_gate_up, "experts.gate_up_proj", 3, E, 2 * Im, H) ||
                   T(experts_down, "experts.down_proj", 3, E, H, Im)))
        return -1;
#undef T
    return 0;
}

static bool starts_with(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

/* Tensors of the other towers, skipped on purpose. */
static bool is_skipped(const char *name) {
    return starts_with(name, "model.vision_tower.") || starts_with(name, "model.embed_vision.") ||
           starts_with(name, "model.audio_tower.") || starts_with(name, "model.embed_audio.");
}

int g4_weights_map(g4_weights *w, const g4_config *cfg, const g4_safetensors *st, g4_error *err) {
    memset(w, 0, sizeof *w);
    int n = g4_st_count(st);
    mapper m = {.st = st, .err = err, .used = calloc((size_t)n + 1, 1)};
    if (!m.used) return g4_fail(err, "weights: out of memory");
    /* multimodal checkpoints (and text-only configs whose tensors sit there anyway) use the
     * language_model prefix; text-only conversions use plain `model.` */
    m.prefix = (cfg->multimodal || g4_st_find(st, "model.language_model.embed_tokens.weight")) ? "model.language_model."
                                                                                               : "model.";
    int rc = take(&m, &w->embed, "embed_tokens.weight", 2, cfg->vocab, cfg->hidden, 0) ||
             take(&m, &w->final_norm, "norm.weight", 1, cfg->hidden, 0, 0);
    for (int l = 0; l < cfg->n_layers && !rc; l++) rc = map_layer(&m, &w->layers[l], cfg, l);

    for (int i = 0; i < n && !rc; i++) {
        const g4_st_tensor *t = g4_st_at(st, i);
        w->n_all_params += g4_st_numel(t);
        if (m.used[i]) continue;
        if (is_skipped(t->name)) {
            w->n_skipped++;
        } else if (strcmp(t->name, "lm_head.weight") == 0) { /* tied: must match embed, ignored */
            if (t->ndim != 2 || t->shape[0] != cfg->vocab || t->shape[1] != cfg->hidden) {
                char got[96];
                fmt_shape(got, sizeof got, t->ndim, t->shape);
                rc = g4_fail(err, "tensor lm_head.weight: shape %s, expected [%d, %d] (tied to embed_tokens)", got,
                             cfg->vocab, cfg->hidden);
            }
        } else {
            rc = g4_fail(err, "tensor %s: unexpected tensor (not part of this Gemma 4 text decoder under prefix %s)",
                         t->name, m.prefix);
        }
    }
    free(m.used);
    if (rc) {
        memset(w, 0, sizeof *w);
        return -1;
    }
    w->n_layers = cfg->n_layers;
    w->n_text_params = m.n_text;
    return 0;
}

/* Every slot of g4_layer_weights, in declaration order. */
static const size_t layer_slots[] = {
    offsetof(g4_layer_weights, input_norm),      offsetof(g4_layer_weights, q_proj),
    offsetof(g4_layer_weights, k_proj),          offsetof(g4_layer_weights, v_proj),
    offsetof(g4_layer_weights, o_proj),          offsetof(g4_layer_weights, q_norm),
    offsetof(g4_layer_weights, k_norm),          offsetof(g4_layer_weights, post_attn_norm),
    offsetof(g4_layer_weights, pre_ffn_norm),    offsetof(g4_layer_weights, gate_proj),
    offsetof(g4_layer_weights, up_proj),         offsetof(g4_layer_weights, down_proj),
    offsetof(g4_layer_weights, post_ffn_norm),   offsetof(g4_layer_weights, layer_scalar),
    offsetof(g4_layer_weights, post_ffn_norm_1), offsetof(g4_layer_weights, pre_ffn_norm_2),
    offsetof(g4_layer_weights, post_ffn_norm_2), offsetof(g4_layer_weights, router_proj),
    offsetof(g4_layer_weights, router_scale),    offsetof(g4_layer_weights, router_expert_scale),
    offsetof(g4_layer_weights, experts_gate_up), offsetof(g4_layer_weights, experts_down),
};
_Static_assert(sizeof layer_slots / sizeof layer_slots[0] == sizeof(g4_layer_weights) / sizeof(g4_weight),
               "layer_slots must list every g4_layer_weights slot");

int g4_weights_for_each(g4_weights *w, g4_weight_fn fn, void *user) {
    if (g4_weight_present(&w->embed) && fn(&w->embed, user)) return -1;
    if (g4_weight_present(&w->final_norm) && fn(&w->final_norm, user)) return -1;
    for (int l = 0; l < w->n_layers; l++)
        for (size_t i = 0; i < sizeof layer_slots / sizeof layer_slots[0]; i++) {
            g4_weight *slot = (g4_weight *)((char *)&w->layers[l] + layer_slots[i]);
            if (g4_weight_present(slot) && fn(slot, user)) return -1;
        }
    return 0;
}
