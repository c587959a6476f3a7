/* roofline.c — byte and FLOP accounting of Gemma 4 decode and prefill steps from a g4_config
 * (see roofline.h for the model of a step). Counts follow the checkpoint tensor tables of
 * docs/model-spec.md §3.2–3.3; the unit test checks them against that spec's totals. */
#include "roofline.h"

#include <math.h>
#include <string.h>

void g4_roofline_params(const g4_config *c, g4_param_count *p) {
    memset(p, 0, sizeof *p);
    double H = c->hidden, nq = c->n_heads;
    p->embedding = (double)c->vocab * H;
    p->matrices = p->embedding;
    double small = H; /* final norm */
    if (c->moe)
        p->expert_each = 2.0 * c->moe_intermediate * H + H * c->moe_intermediate; /* gate_up [2I,H] + down [H,I] */
    for (int l = 0; l < c->n_layers; l++) {
        double hd = g4_layer_head_dim(c, l), kv = g4_layer_kv_heads(c, l);
        double attn = nq * hd * H /* q */ + kv * hd * H /* k */ + (g4_layer_k_eq_v(c, l) ? 0 : kv * hd * H) /* v */ +
                      H * nq * hd /* o */;
        double mlp = 3.0 * c->intermediate * H; /* gate, up, down */
        p->matrices += attn + mlp;
        small += 2 * hd + 1; /* q_norm, k_norm, layer_scalar */
        if (c->moe) {
            p->matrices += (double)c->n_experts * H + (double)c->n_experts * p->expert_each; /* router.proj, experts */
            small += 7 * H + H + c->n_experts; /* 7 norms, router.scale, per_expert_scale */
        } else {
            small += 4 * H; /* input, post_attention, pre_feedforward, post_feedforward */
        }
    }
    p->experts_all = c->moe ? p->expert_each * c->n_experts * c->n_layers : 0;
    p->total = p->matrices + small;
}

double g4_roofline_kv_bytes_token(const g4_config *c, int l, int elem_bytes, bool shared_global) {
    double per = (double)g4_layer_kv_heads(c, l) * g4_layer_head_dim(c, l) * elem_bytes;
    return per * (g4_layer_k_eq_v(c, l) && shared_global ? 1 : 2);
}

double g4_roofline_decode_bytes(const g4_config *c, int batch, long ctx, int elem_bytes, bool shared_global,
                                double *weights_out, double *kv_out) {
    g4_param_count p;
    g4_roofline_params(c, &p);
    double w = p.total;
    if (c->moe) {
        /* experts touched by at least one of `batch` tokens, uniform routing */
        double k = c->top_k, E = c->n_experts;
        double distinct = E * (1.0 - pow(1.0 - k / E, batch));
        w = p.total - p.experts_all + distinct * p.expert_each * c->n_layers;
    }
    w *= elem_bytes;
    double kv = 0;
    for (int l = 0; l < c->n_layers; l++) {
        long keys = g4_layer_is_global(c, l) || ctx < c->sliding_window ? ctx : c->sliding_window;
        kv += (double)keys * g4_roofline_kv_bytes_token(c, l, elem_bytes, shared_global);
    }
    kv *= batch;
    if (weights_out) *weights_out = w;
    if (kv_out) *kv_out = kv;
    return w + kv;
}

/* Σ over query positions i = 0..n−1 of the keys it attends: min(i + 1, window) (window ≤ 0: i + 1). */
static double keys_attended(long n, long window) {
    if (window <= 0 || n <= window) return (double)n * (double)(n + 1) / 2;
    return (double)window * (double)(window + 1) / 2 + (double)(n - window) * (double)window;
}

double g4_roofline_prefill_flops(const g4_config *c, long n, double *linear_out, double *attn_out) {
    g4_param_count p;
    g4_roofline_params(c, &p);
    double active = p.matrices - p.embedding; /* the embedding is a lookup */
    if (c->moe) active += -p.experts_all + (double)c->top_k * p.expert_each * c->n_layers;
    double linear = 2.0 * active * (double)n + (n > 0 ? 2.0 * p.embedding : 0); /* + LM head, last token */
    double attn = 0;
    for (int l = 0; l < c->n_layers; l++) {
        long win = g4_layer_is_global(c, l) ? 0 : c->sliding_window;
        attn += 4.0 * c->n_heads * g4_layer_head_dim(c, l) * keys_attended(n, win);
    }
    if (linear_out) *linear_out = linear;
    if (attn_out) *attn_out = attn;
    return linear + attn;
}
