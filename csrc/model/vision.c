/* vision.c — the Gemma 4 vision tower written once over the backend op table (vision.h).
 *
 * For one image of N = ph × pw patches (row-major; patch t is at column t % pw, row t / pw),
 * D vision hidden, d head dim:
 *   x = patches · W_inᵀ + T_col[col] + T_row[row]                      [N, D]
 *   per layer (no layer scalar, no mask, scale 1):
 *     a = RMSNorm_in(x);  q, k, v = a · W_{q,k,v}ᵀ
 *     q = RoPE₂(RMSNorm_{q_norm}(q)), k = RoPE₂(RMSNorm_{k_norm}(k)), v = RMSNorm_∅(v)   per head
 *     x += RMSNorm_post_attn(Attention(q, k, v) · W_oᵀ)
 *     x += RMSNorm_post_ffn(down(gelu_tanh(gate·a') ⊙ up·a')),  a' = RMSNorm_pre_ffn(x)
 *   p = (√D · mean₃ₓ₃(x) − std_bias) ⊙ std_scale                       [N/9, D]  (vision_pool)
 *   soft = RMSNorm_∅(p) · W_projᵀ                                       [N/9, H]  (embed_vision)
 * transformers pads every image to the budget's patch count and masks the padding out of the
 * attention; without the padding the result is the same (masked keys weigh exactly 0).
 * Activation buffers grow to the largest image seen. Tensor parallelism: the tower is small
 * (0.57 B parameters in the real models), so every rank holds all of it and can encode alone. */
#include "model/fuse.h"
#include "model/vision.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "base/bf16.h"
#include "model/vision_weights.h"

#define PATCH_DIM 768

struct g4_vision {
    g4_vision_config vc;
    int text_hidden;                  /* H */
    g4_backend *be;                   /* the model's, not owned */
    g4_vision_weights w;
    g4_fused_weight *gate_up;         /* [n_layers] each layer's gate|up as one GEMM (fuse.h) */
    int cap;                          /* patches the buffers hold */
    void *x, *a, *q, *k, *v, *att, *o, *g, *u, *e;
    int32_t *pos;                     /* [2N] (col, row) pairs | [N] cols | [N] rows */
    void *host;                       /* staging for conversions to / from act_dtype */
    size_t host_bytes;
};

int g4_vision_in(const g4_config *cfg, const g4_safetensors *st) {
    return cfg->vision.present && g4_vision_weights_in(st);
}

int g4_vision_open(g4_vision **out, const g4_config *cfg, int text_hidden, const g4_safetensors *st, g4_backend *be,
                   g4_error *err) {
    *out = NULL;
    if (!g4_vision_in(cfg, st)) return 0;
    g4_vision *v = calloc(1, sizeof *v);
    if (!v) return g4_fail(err, "vision: out of memory");
    v->vc = cfg->vision;
    v->text_hidden = text_hidden;
    v->be = be;
    if (g4_vision_weights_map(&v->w, &v->vc, text_hidden, st, err)) {
        free(v);
        return -1;
    }
    if (!(v->gate_up = calloc((size_t)v->w.n_layers, sizeof *v->gate_up))) {
        g4_vision_free(v);
        return g4_fail(err, "vision: out of memory");
    }
    for (int l = 0; l < v->w.n_layers; l++) {
        g4_weight *gu[2] = {&v->w.layers[l].gate_proj, &v->w.layers[l].up_proj};
        if (g4_fuse_parts(&v->gate_up[l], gu, 2, l, "vision mlp.gate_up_proj", err)) {
            g4_vision_free(v);
            return -1;
        }
    }
    *out = v;
    return 0;
}

int g4_vision_for_each_weight(g4_vision *v, int (*fn)(g4_weight *w, void *user), void *user) {
    return g4_vision_weights_for_each(&v->w, fn, user);
}

int g4_vision_for_each_fused(g4_vision *v, int (*fn)(g4_fused_weight *f, void *user), void *user) {
    for (int l = 0; v->gate_up && l < v->w.n_layers; l++)
        if (fn(&v->gate_up[l], user)) return -1;
    return 0;
}

static void free_buffers(g4_vision *v) {
    void *all[] = {v->x, v->a, v->q, v->k, v->v, v->att, v->o, v->g, v->u, v->e, v->pos};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) v->be->ops->free(v->be->ctx, all[i]);
    v->x = v->a = v->q = v->k = v->v = v->att = v->o = v->g = v->u = v->e = NULL;
    v->pos = NULL;
    v->cap = 0;
}

void g4_vision_free(g4_vision *v) {
    if (!v) return;
    free_buffers(v);
    free(v->host);
    for (int l = 0; v->gate_up && l < v->w.n_layers; l++) g4_fuse_free(&v->gate_up[l]);
    free(v->gate_up);
    g4_vision_weights_free(&v->w);
    free(v);
}

g4_vision *g4_model_vision(g4_model *m) { return m ? m->vision : NULL; }

/* Buffers for n patches (grown, never shrunk). */
static int reserve(g4_vision *v, int n, g4_error *err) {
    if (n <= v->cap) return 0;
    free_buffers(v);
    const g4_backend_ops *ops = v->be->ops;
    size_t es = g4_dtype_size(ops->act_dtype), N = (size_t)n, D = (size_t)v->vc.hidden;
    size_t qw = (size_t)v->vc.n_heads * v->vc.head_dim, kw = (size_t)v->vc.n_kv_heads * v->vc.head_dim;
    size_t I = (size_t)v->vc.intermediate, H = (size_t)v->text_hidden;
    size_t wide = D > PATCH_DIM ? D : PATCH_DIM; /* a: patches, then normed rows */
    void **bufs[] = {&v->x, &v->a, &v->q, &v->k, &v->v, &v->att, &v->o, &v->g, &v->u, &v->e};
    size_t bytes[] = {N * D, N * wide, N * qw, N * kw, N * kw, N * qw, N * (D > H ? D : H), 2 * N * I, N * I, N * D};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (!(*bufs[i] = ops->alloc(v->be->ctx, bytes[i] * es))) {
            free_buffers(v);
            return g4_fail(err, "vision: cannot allocate activation buffers for %d patches", n);
        }
    if (!(v->pos = ops->alloc(v->be->ctx, 4 * N * sizeof(int32_t)))) {
        free_buffers(v);
        return g4_fail(err, "vision: cannot allocate positions for %d patches", n);
    }
    size_t hb = 4 * N * sizeof(int32_t);
    if (N * wide * sizeof(float) > hb) hb = N * wide * sizeof(float);
    if (N * H * sizeof(float) > hb) hb = N * H * sizeof(float);
    if (hb > v->host_bytes) {
        void *h = realloc(v->host, hb);
        if (!h) {
            free_buffers(v);
            return g4_fail(err, "vision: out of memory");
        }
        v->host = h;
        v->host_bytes = hb;
    }
    v->cap = n;
    return 0;
}

/* dev (act_dtype) ← host f32 [n] */
static int upload_f32(g4_vision *v, void *dev, const float *src, size_t n, g4_error *err) {
    const g4_backend_ops *ops = v->be->ops;
    if (ops->act_dtype == G4_DT_F32) return ops->upload(v->be->ctx, dev, src, n * sizeof(float), err);
    if (ops->act_dtype != G4_DT_BF16)
        return g4_fail(err, "vision: activation dtype %s unsupported", g4_dtype_name(ops->act_dtype));
    uint16_t *h = v->host;
    for (size_t i = 0; i < n; i++) h[i] = g4_f32_to_bf16(src[i]);
    return ops->upload(v->be->ctx, dev, h, n * sizeof(uint16_t), err);
}

/* host f32 [n] ← dev (act_dtype) */
static int download_f32(g4_vision *v, float *dst, const void *dev, size_t n, g4_error *err) {
    const g4_backend_ops *ops = v->be->ops;
    if (ops->act_dtype == G4_DT_F32) return ops->download(v->be->ctx, dst, dev, n * sizeof(float), err);
    if (ops->act_dtype != G4_DT_BF16)
        return g4_fail(err, "vision: activation dtype %s unsupported", g4_dtype_name(ops->act_dtype));
    uint16_t *h = v->host;
    if (ops->download(v->be->ctx, h, dev, n * sizeof(uint16_t), err)) return -1;
    for (size_t i = 0; i < n; i++) dst[i] = g4_bf16_to_f32(h[i]);
    return 0;
}

/* Names the failing op: "vision layer 3 encoder_attention: ...". */
static int op(int rc, int layer, const char *name, g4_error *err) {
    if (rc == 0) return 0;
    if (layer >= 0) return g4_fail_prefix(err, "vision layer %d %s", layer, name);
    return g4_fail_prefix(err, "vision %s", name);
}
#define OP(l, name, call)                            \
    do {                                             \
        if (op((call), (l), (name), err)) return -1; \
    } while (0)

static int encoder_layer(g4_vision *v, int l, int N, g4_error *err) {
    const g4_backend_ops *ops = v->be->ops;
    void *cx = v->be->ctx;
    const g4_vision_config *c = &v->vc;
    const g4_vision_layer_weights *lw = &v->w.layers[l];
    int D = c->hidden, d = c->head_dim, nq = c->n_heads, nkv = c->n_kv_heads;
    float theta = (float)c->rope_theta;
    OP(l, "input_norm", ops->rmsnorm(cx, v->a, v->x, &lw->input_norm, N, D, c->eps, err));
    OP(l, "q_proj", ops->matmul(cx, v->q, v->a, &lw->q_proj, N, err));
    OP(l, "k_proj", ops->matmul(cx, v->k, v->a, &lw->k_proj, N, err));
    OP(l, "v_proj", ops->matmul(cx, v->v, v->a, &lw->v_proj, N, err));
    OP(l, "q_norm", ops->rmsnorm(cx, v->q, v->q, &lw->q_norm, N * nq, d, c->eps, err));
    OP(l, "k_norm", ops->rmsnorm(cx, v->k, v->k, &lw->k_norm, N * nkv, d, c->eps, err));
    OP(l, "v_norm", ops->rmsnorm(cx, v->v, v->v, NULL, N * nkv, d, c->eps, err));
    OP(l, "rope_2d q", ops->rope_2d(cx, v->q, v->pos, N, nq, d, theta, err));
    OP(l, "rope_2d k", ops->rope_2d(cx, v->k, v->pos, N, nkv, d, theta, err));
    OP(l, "encoder_attention", ops->encoder_attention(cx, v->att, v->q, v->k, v->v, N, nq, nkv, d, 1.0f, err));
    OP(l, "o_proj", ops->matmul(cx, v->o, v->att, &lw->o_proj, N, err));
    OP(l, "post_attn_norm", ops->add_rmsnorm(cx, v->x, v->o, &lw->post_attn_norm, N, D, c->eps, err));
    OP(l, "pre_ffn_norm", ops->rmsnorm(cx, v->a, v->x, &lw->pre_ffn_norm, N, D, c->eps, err));
    OP(l, "gate_up_proj", ops->matmul(cx, v->g, v->a, &v->gate_up[l].w, N, err)); /* g [N, 2I] = gate | up */
    OP(l, "geglu", ops->geglu(cx, v->u, v->g, N, c->intermediate, err));
    OP(l, "down_proj", ops->matmul(cx, v->o, v->u, &lw->down_proj, N, err));
    OP(l, "post_ffn_norm", ops->add_rmsnorm(cx, v->x, v->o, &lw->post_ffn_norm, N, D, c->eps, err));
    return 0;
}

int g4_vision_encode(g4_vision *v, const float *patches, int ph, int pw, float *out, g4_error *err) {
    if (!v) return g4_fail(err, "vision: the model has no vision tower");
    const g4_vision_config *c = &v->vc;
    if (ph < 3 || pw < 3 || ph % 3 || pw % 3)
        return g4_fail(err, "vision: patch grid %d × %d: both sides must be positive multiples of 3", ph, pw);
    if (ph > c->pos_size || pw > c->pos_size)
        return g4_fail(err, "vision: patch grid %d × %d exceeds the position table (%d)", ph, pw, c->pos_size);
    if ((long)ph * pw > 1L << 24) return g4_fail(err, "vision: patch grid %d × %d is too large", ph, pw);
    const g4_backend_ops *ops = v->be->ops;
    if (!g4_backend_supports(v->be, G4_OP_ROPE_2D, G4_DT_F32) ||
        !g4_backend_supports(v->be, G4_OP_ENCODER_ATTENTION, G4_DT_F32) ||
        !g4_backend_supports(v->be, G4_OP_VISION_POOL, G4_DT_F32))
        return g4_fail(err, "vision: backend %s lacks the vision tower's ops", ops->name);
    int N = ph * pw, D = c->hidden, n_soft = N / 9;
    void *cx = v->be->ctx;
    if (reserve(v, N, err)) return -1;

    /* positions: (col, row) pairs for RoPE, then the columns and the rows for the table lookups */
    int32_t *p = v->host;
    for (int t = 0; t < N; t++) {
        p[2 * t] = p[2 * N + t] = t % pw;
        p[2 * t + 1] = p[3 * N + t] = t / pw;
    }
    if (ops->upload(cx, v->pos, p, 4 * (size_t)N * sizeof(int32_t), err)) return g4_fail_prefix(err, "vision");
    g4_step_dev cols = {.n_tokens = N, .token_ids = v->pos + 2 * N},
                rows = {.n_tokens = N, .token_ids = v->pos + 3 * N};

    if (upload_f32(v, v->a, patches, (size_t)N * PATCH_DIM, err)) return g4_fail_prefix(err, "vision patches");
    OP(-1, "input_proj", ops->matmul(cx, v->x, v->a, &v->w.input_proj, N, err));
    OP(-1, "position table (columns)", ops->embed(cx, v->e, &cols, &v->w.pos_x, 1.0f, err));
    OP(-1, "position table (rows)", ops->embed(cx, v->o, &rows, &v->w.pos_y, 1.0f, err));
    OP(-1, "position sum", ops->add(cx, v->e, v->e, v->o, (size_t)N * D, err));
    OP(-1, "position add", ops->add(cx, v->x, v->x, v->e, (size_t)N * D, err));
    for (int l = 0; l < c->n_layers; l++)
        if (encoder_layer(v, l, N, err)) return -1;
    OP(-1, "pool",
       ops->vision_pool(cx, v->e, v->x, ph, pw, D, 3, sqrtf((float)D), c->standardize ? &v->w.std_bias : NULL,
                        c->standardize ? &v->w.std_scale : NULL, err));
    OP(-1, "embed_vision norm", ops->rmsnorm(cx, v->e, v->e, NULL, n_soft, D, c->eps, err));
    OP(-1, "embed_vision projection", ops->matmul(cx, v->o, v->e, &v->w.projection, n_soft, err));
    if (download_f32(v, out, v->o, (size_t)n_soft * v->text_hidden, err)) return g4_fail_prefix(err, "vision");
    return 0;
}
