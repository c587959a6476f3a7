/* backend.h — the op table the Gemma 4 forward pass is written against.
 *
 * gemma4.c calls only these ops; the CPU backend (backend/cpu/) implements each one plainly
 * in fp32 and is the oracle, the CUDA backend (cuda/) implements the same contract with fused
 * kernels. What an op computes is stated above its slot, with shapes; a backend may choose
 * its activation and KV-cache element type (`act_dtype`, `kv_dtype`) but not the math.
 *
 * Conventions
 *   T       tokens in the step (packed rows), H hidden, V vocab, d head dim, I MLP width
 *   "dev"   memory returned by alloc(): host memory for the CPU backend, GPU memory for CUDA
 *   x[T,H]  row-major; activations are act_dtype elements, logits are always f32
 *   Every op returns 0, or -1 with err set; ops run in order on one stream.
 *
 * Not here: scheduling, block allocation (engine/), weight file parsing (model/). */
#ifndef G4_BACKEND_BACKEND_H
#define G4_BACKEND_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "backend/kv_layout.h"
#include "base/error.h"
#include "model/config.h"
#include "model/weights.h"

#define G4_BACKEND_API_VERSION 1

/* The packed batch of one step, as it lives in dev memory (gemma4.c uploads it). */
typedef struct g4_step_dev {
    int n_tokens;                   /* T */
    const int32_t *token_ids;       /* [T] */
    const int32_t *pos;             /* [T] absolute position inside its sequence */
    const int32_t *seq;             /* [T] sequence slot, index into the block tables */
    int n_seqs;
    int max_blocks;                 /* columns of each block table */
    const int32_t *blocks_sliding;  /* [n_seqs, max_blocks]: logical block pos/B → physical, -1 = none */
    const int32_t *blocks_global;   /* [n_seqs, max_blocks] */
    int n_rows;                     /* rows that want logits */
    const int32_t *rows;            /* [n_rows] token indices in [0, T) */
    int max_pos;                    /* largest pos in the step (host-known bound for kernels) */
} g4_step_dev;

/* Attention geometry of one layer. */
typedef struct g4_attn_geom {
    int layer;          /* index in the model */
    int n_heads;        /* query heads */
    int n_kv_heads;
    int head_dim;       /* d */
    int window;         /* sliding window W (keys pos-W+1..pos), 0 for global layers */
    g4_rope rope;
    int k_eq_v;         /* global layer: cache holds u = RMSNorm_∅(raw K); K = RoPE(u ⊙ k_norm), V = u */
    float eps;
} g4_attn_geom;

typedef struct g4_backend_ops {
    int api_version;                /* G4_BACKEND_API_VERSION */
    const char *name;               /* "cpu", "cuda" */
    g4_dtype act_dtype;             /* activation element type */
    g4_dtype kv_dtype;              /* KV-cache element type */

    /* --- memory ------------------------------------------------------------------------- */
    void *(*alloc)(void *ctx, size_t bytes);                  /* NULL on failure */
    void  (*free)(void *ctx, void *p);                        /* NULL ok */
    int   (*upload)(void *ctx, void *dst_dev, const void *src_host, size_t bytes, g4_error *err);
    int   (*download)(void *ctx, void *dst_host, const void *src_dev, size_t bytes, g4_error *err);
    int   (*sync)(void *ctx, g4_error *err);                  /* wait for all queued ops */

    /* Makes a mapped weight usable by the ops: sets w->data / w->data_dtype. Any dtype in. */
    int   (*load_weight)(void *ctx, g4_weight *w, g4_error *err);
    void  (*unload_weight)(void *ctx, g4_weight *w);

    /* --- ops ---------------------------------------------------------------------------- */

    /* x[t,:] = E[ids[t],:] × scale           E [V,H]; scale already rounded to bf16 (√H) */
    int (*embed)(void *ctx, void *x, const g4_step_dev *s, const g4_weight *E, float scale, g4_error *err);

    /* y[r,:] = x[r,:] / sqrt(mean(x[r,:]²) + eps) ⊙ w      rows × n; w NULL = no weight; y may be x */
    int (*rmsnorm)(void *ctx, void *y, const void *x, const g4_weight *w, int rows, int n, float eps, g4_error *err);

    /* h[r,:] += RMSNorm_w(x[r,:])             rows × n (residual add of a post-norm branch) */
    int (*add_rmsnorm)(void *ctx, void *h, const void *x, const g4_weight *w, int rows, int n, float eps, g4_error *err);

    /* y[i] = a[i] + b[i]                       n elements; y may alias a or b */
    int (*add)(void *ctx, void *y, const void *a, const void *b, size_t n, g4_error *err);

    /* h[i] *= λ                                n elements; λ = the [1] layer_scalar weight */
    int (*scale)(void *ctx, void *h, const g4_weight *lambda, size_t n, g4_error *err);

    /* y[M,N] = x[M,K] · Wᵀ                     W [N,K] */
    int (*matmul)(void *ctx, void *y, const void *x, const g4_weight *W, int M, g4_error *err);

    /* y[i] = gelu_tanh(g[i]) · u[i]            n elements */
    int (*geglu)(void *ctx, void *y, const void *g, const void *u, size_t n, g4_error *err);

    /* Per token t at position p = s->pos[t]:
     *   q[t,h,:]  = RoPE(RMSNorm_{q_norm}(q[t,h,:]), p)       in place, [T, n_heads, d]
     *   sliding:  cache K ← RoPE(RMSNorm_{k_norm}(k[t,g,:]), p), cache V ← RMSNorm_∅(v[t,g,:])
     *   k_eq_v:   cache U ← RMSNorm_∅(k[t,g,:])                (v unused, may be NULL)
     * written at the slot of (seq, p) through the layer type's block table. */
    int (*qk_norm_rope_cache)(void *ctx, void *q, const void *k, const void *v, const g4_weight *q_norm,
                              const g4_weight *k_norm, const g4_attn_geom *g, const g4_kv_layer *kv,
                              const g4_step_dev *s, g4_error *err);

    /* out[t,h,:] = Σ_j softmax_j(q[t,h]·K_j) V_j, scale 1.0, over keys j of the same sequence with
     * pos_j ≤ p (and p − pos_j < window on sliding layers), all read from the cache (the step's own
     * keys were written by qk_norm_rope_cache first). KV head of query head h = h / (n_heads/n_kv).
     * k_eq_v layers form K_j = RoPE(U_j ⊙ k_norm, pos_j), V_j = U_j from the one cached tensor. */
    int (*attention)(void *ctx, void *out, const void *q, const g4_weight *k_norm, const g4_attn_geom *g,
                     const g4_kv_layer *kv, const g4_step_dev *s, g4_error *err);

    /* MoE router, per token t (h1 = un-normed residual after attention, [T,H]):
     *   u = RMSNorm_∅(h1[t]) ⊙ scale × H^-½;  p = softmax(u · projᵀ) over E experts (fp32)
     *   top-k by p (ties → lower id), w_e = p_e / Σ_top p × per_expert_scale[e]
     * ids[T,k] int32 dev, weights[T,k] f32 dev, ordered by descending p. */
    int (*moe_route)(void *ctx, int32_t *ids, float *weights, const void *h1, const g4_weight *proj,
                     const g4_weight *scale, const g4_weight *expert_scale, int T, int top_k, float eps,
                     g4_error *err);

    /* y[t] = Σ_{j<k} weights[t,j] · down_e (gelu_tanh(G_e·x[t]) ⊙ (U_e·x[t]))   e = ids[t,j]
     * gate_up [E, 2I, H] (gate rows 0..I-1), down [E, H, I]; x, y [T,H]. */
    int (*moe_experts)(void *ctx, void *y, const void *x, const int32_t *ids, const float *weights,
                       const g4_weight *gate_up, const g4_weight *down, int T, int top_k, g4_error *err);

    /* logits[r,:] = softcap(x[rows[r],:] · Eᵀ)    f32 [n_rows, V]; softcap(z) = c·tanh(z/c), c=0 off */
    int (*lm_head)(void *ctx, float *logits, const void *x, const g4_step_dev *s, const g4_weight *E,
                   float softcap, g4_error *err);

    /* --- dummy weights (base/dummy.h) ----------------------------------------------------- */

    /* Like load_weight, but w->data is filled with bf16(mean + amp·g4_dummy_u(seed, i)) made on
     * the backend; the checkpoint's bytes are never read. Released by unload_weight. */
    int (*load_dummy_weight)(void *ctx, g4_weight *w, uint64_t seed, float mean, float amp, g4_error *err);
} g4_backend_ops;

typedef struct g4_backend {
    const g4_backend_ops *ops;
    void *ctx;                       /* backend-private state */
    void (*destroy)(struct g4_backend *b);
} g4_backend;

g4_backend *g4_backend_cpu_create(g4_error *err);

/* Creates a backend by name ("cpu", "cuda"). "cuda" fails with a clear message in builds
 * without the CUDA backend or on machines without a GPU. */
g4_backend *g4_backend_create(const char *name, g4_error *err);
/* Same, on a given device (ignored by "cpu"). */
g4_backend *g4_backend_create_on(const char *name, int device, g4_error *err);
void g4_backend_destroy(g4_backend *b);

#endif
