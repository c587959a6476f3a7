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
#include "backend/options.h"
#include "base/dtype.h"
#include "base/error.h"
#include "base/invariant.h"
#include "base/rng.h"
#include "base/rope.h"
#include "base/weight.h"

#define G4_BACKEND_API_VERSION 3 /* 2: the supports query; 3: staging memory, upload_async, upload_count */

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
    /* Image soft tokens (prefill steps with images only; all three NULL in every other step). */
    const int32_t *embed_row;       /* [T] or NULL: ≥ 0 = token t's input is row embed_row[t] of
                                       embed_rows (copied, not scaled by √H); −1 = E[ids[t]] × scale */
    const float *embed_rows;        /* [n, H] f32 */
    const int32_t *key_end;         /* [T] or NULL: on sliding layers token t sees keys up to
                                       key_end[t] ≥ pos[t] (the last soft token of its image's run,
                                       which is in this step: the run attends to itself both ways);
                                       NULL = pos[t] for every token (causal) */
} g4_step_dev;

/* The last key position token t (at position p) sees on a layer with this window (0 = global):
 * p, except inside an image's soft-token run on sliding layers (s->key_end). The first is
 * max(0, p − window + 1) (0 on global layers) either way. Host and device (kernels pass key_end). */
G4_HD static inline int g4_attn_key_hi(const int32_t *key_end, int t, int p, int window) {
    return window > 0 && key_end ? key_end[t] : p;
}

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

/* --- sampling (the `sample` op) ------------------------------------------------------------
 *
 * Per row r of logits (f32 [n_rows, ld], first V columns used), in this order (as vLLM; the same
 * as the engine's former host sampler, engine/sampling.h):
 *   0. mask (row flag G4_SAMPLE_MASKED): tokens whose bit is 0 get z = −inf
 *   1. penalties, once per distinct token t of prompt ∪ output (g4_sample_penalty):
 *      repetition: z > 0 → z / rp, else z · rp;  then z −= presence + frequency · count_out(t)
 *   2. temperature ≤ 0: token = argmax z (lowest id on ties); the filters below do not apply
 *   3. z ← fl(z · (1/T));  p_i = expf(z_i − max z)                         (unnormalised, ≤ 1)
 *   4. min-p keeps p ≥ min_p; top-k keeps the k first in (p desc, id asc) order; top-p keeps the
 *      shortest prefix of that order whose running sum (double) reaches top_p · Σ kept p
 *   5. u = g4_sample_draw_u(seed, step); token = the first kept id (id order) whose cumulative
 *      kept mass (double, id order) exceeds u · (kept mass)
 *   logprobs (n_logprobs ≥ 0): log_softmax of z after steps 1 and 3 (T = 1 when greedy), over
 *   the whole row: the token's value and the top n (≤ 20; ties → lower id).
 * The draw depends only on the row, (seed, step): batch composition does not change a token.
 * A row whose mask allows nothing gets token −1.
 *
 * Memory layout: one dev block holds everything the op reads besides logits and mask, so a step
 * uploads it with one copy and a captured graph can replay with new contents at a fixed address:
 *     g4_sample_params header | g4_sample_row_params rows[n_rows] | g4_sample_penalty pen[n_pen]
 * (g4_sample_params_bytes; every part 8-byte aligned). The op reads n_rows from the dev header,
 * so the host-side launch arguments depend only on the capacity (max_rows). */

#define G4_SAMPLE_MAX_TOP 20          /* = G4_MAX_TOP_LOGPROBS of the engine */
#define G4_SAMPLE_MASKED 1            /* g4_sample_row_params.flags: apply the row of the mask */

typedef struct g4_sample_row_params {
    float temperature;                /* ≤ 0: greedy */
    float top_p;                      /* ≥ 1 or ≤ 0: off */
    float min_p;                      /* ≤ 0: off */
    float repetition_penalty;         /* 1 (or ≤ 0): off */
    float presence_penalty;           /* 0: off */
    float frequency_penalty;          /* 0: off */
    int32_t top_k;                    /* ≤ 0: off */
    int32_t n_logprobs;               /* −1: none; 0: the sampled token's; n ≤ 20: plus the top n */
    uint64_t seed;                    /* the request's seed */
    uint64_t step;                    /* the request's output index (keys the draw) */
    int32_t pen_first;                /* this row's penalty entries: pen[pen_first, +n_pen) */
    int32_t n_pen;
    int32_t lp_slot;                  /* index into the logprob outputs when n_logprobs ≥ 0 */
    int32_t flags;                    /* G4_SAMPLE_MASKED */
} g4_sample_row_params;                      /* 64 bytes */

/* One distinct token of the row's prompt ∪ output; count = its occurrences in the output
 * (0 for prompt-only tokens; the host caps it at 65535). Only rows with penalties need them. */
typedef struct g4_sample_penalty {
    int32_t token;
    int32_t count;
} g4_sample_penalty;

typedef struct g4_sample_params {
    int32_t n_rows;                   /* rows to sample (≤ the op's max_rows) */
    int32_t n_pen;                    /* penalty entries after the rows */
    int32_t vocab;                    /* V (columns sampled) */
    int32_t mask_words;               /* words per mask row: (V + 31) / 32 */
} g4_sample_params;                   /* followed by rows[n_rows], pen[n_pen] */

/* What the op writes for a row that asked for logprobs (at its lp_slot). */
typedef struct g4_sample_logprobs {
    float logprob;                    /* of the sampled token */
    int32_t n_top;
    int32_t top_ids[G4_SAMPLE_MAX_TOP];
    float top_logprobs[G4_SAMPLE_MAX_TOP];
} g4_sample_logprobs;

static inline size_t g4_sample_params_bytes(int n_rows, int n_pen) {
    return sizeof(g4_sample_params) + (size_t)n_rows * sizeof(g4_sample_row_params) +
           (size_t)n_pen * sizeof(g4_sample_penalty);
}
static inline g4_sample_row_params *g4_sample_rows(g4_sample_params *p) { return (g4_sample_row_params *)(p + 1); }
static inline const g4_sample_row_params *g4_sample_rows_c(const g4_sample_params *p) {
    return (const g4_sample_row_params *)(p + 1);
}
static inline g4_sample_penalty *g4_sample_pens(g4_sample_params *p) {
    return (g4_sample_penalty *)(g4_sample_rows(p) + p->n_rows);
}
static inline const g4_sample_penalty *g4_sample_pens_c(const g4_sample_params *p) {
    return (const g4_sample_penalty *)(g4_sample_rows_c(p) + p->n_rows);
}

/* u ∈ [0, 1) for output index i of a request with this seed (53 random bits; counter-based). */
G4_HD static inline double g4_sample_draw_u(uint64_t seed, uint64_t i) {
    uint64_t x = g4_mix64(g4_mix64(seed + 0x9e3779b97f4a7c15ULL) ^ (i * 0xd1b54a32d192ed03ULL + 0x8cb92ba72f3d8dd7ULL));
    return (double)(x >> 11) * (1.0 / 9007199254740992.0);
}

/* The sample op's arguments (host struct; every pointer is dev memory). */
typedef struct g4_sample_args {
    float *logits;                    /* [max_rows, ld] f32; used as scratch (mask and penalties are
                                         applied in place): its contents are undefined afterwards */
    int64_t ld;                       /* row stride in floats (≥ V) */
    int vocab;                        /* V; must equal params->vocab */
    int max_rows;                     /* capacity: rows ≥ params->n_rows are left untouched */
    const g4_sample_params *params;   /* the dev block described above */
    const uint32_t *mask;             /* [max_rows, (V+31)/32], bit i%32 of word i/32 set = token i
                                         allowed; NULL when no row has G4_SAMPLE_MASKED */
    int32_t *tokens;                  /* out [max_rows] */
    g4_sample_logprobs *logprobs;     /* out [slots]; NULL when no row asks */
} g4_sample_args;

/* What the `supports` query asks about: one op slot each (or a group of optional slots). */
typedef enum g4_op {
    G4_OP_LOAD_WEIGHT = 0,    /* load_weight of a weight stored as dt */
    G4_OP_LOAD_DUMMY_WEIGHT,  /* load_dummy_weight (optional slot) */
    G4_OP_EMBED,
    G4_OP_RMSNORM,
    G4_OP_ADD_RMSNORM,
    G4_OP_ADD_RMSNORM_NORM,
    G4_OP_ADD,
    G4_OP_SCALE,
    G4_OP_MATMUL,
    G4_OP_GEGLU,
    G4_OP_QK_NORM_ROPE_CACHE,
    G4_OP_ATTENTION,
    G4_OP_MOE_ROUTE,
    G4_OP_MOE_EXPERTS,
    G4_OP_LM_HEAD,
    G4_OP_SAMPLE,
    G4_OP_GRAPH,              /* graph_begin / _end / _launch / _free (optional slots) */
    G4_OP_ROPE_2D,            /* the vision tower's ops (optional slots; model/vision.c) */
    G4_OP_ENCODER_ATTENTION,
    G4_OP_VISION_POOL,
    G4_OP_LAUNCH_COUNT,       /* launch_count (optional slot) */
    G4_OP_COUNT
} g4_op;

typedef struct g4_backend_ops {
    int api_version;                /* G4_BACKEND_API_VERSION */
    const char *name;               /* "cpu", "cuda" */
    g4_dtype act_dtype;             /* activation element type */
    g4_dtype kv_dtype;              /* KV-cache element type */

    /* 1 when this backend runs `op`, 0 when it does not (an optional slot it leaves NULL, a
     * dtype it cannot take). dt matters for G4_OP_LOAD_WEIGHT only (the weight's stored dtype);
     * other ops take act_dtype / kv_dtype buffers. Ask before calling an optional slot. */
    int (*supports)(void *ctx, g4_op op, g4_dtype dt);

    /* --- memory ------------------------------------------------------------------------- */
    void *(*alloc)(void *ctx, size_t bytes);                  /* NULL on failure */
    void (*free)(void *ctx, void *p);                        /* NULL ok */
    int (*upload)(void *ctx, void *dst_dev, const void *src_host, size_t bytes, g4_error *err);
    int (*download)(void *ctx, void *dst_host, const void *src_dev, size_t bytes, g4_error *err);
    int (*sync)(void *ctx, g4_error *err);                  /* wait for all queued ops */

    /* Required, like the slots above (the model's step calls them unconditionally): host
     * staging memory the device copies from asynchronously: pinned (page-locked) on CUDA,
     * plain host memory on the CPU. NULL on failure. Freed with staging_free (NULL ok). */
    void *(*staging_alloc)(void *ctx, size_t bytes);
    void (*staging_free)(void *ctx, void *p);
    /* Queues a copy of bytes from staging memory (staging_alloc) into dev memory and returns
     * without waiting for it. src must stay unchanged until the queue has passed the copy: until
     * a later sync or download returns (both wait for every queued op). The CPU backend copies
     * at the call. upload, by contrast, returns when src may be reused (on CUDA: a host sync). */
    int (*upload_async)(void *ctx, void *dst_dev, const void *src_staging, size_t bytes, g4_error *err);
    /* Host-to-device copies queued so far by this instance (upload and upload_async; weight
     * loading not counted). Monotonic, never reset: tests and benchmarks take differences. */
    uint64_t (*upload_count)(void *ctx);

    /* Makes a mapped weight usable by the ops: sets w->data / w->data_dtype. Any dtype in. */
    int (*load_weight)(void *ctx, g4_weight *w, g4_error *err);
    void (*unload_weight)(void *ctx, g4_weight *w);

    /* --- ops ---------------------------------------------------------------------------- */

    /* x[t,:] = E[ids[t],:] × scale           E [V,H]; scale already rounded to bf16 (√H)
     * x[t,:] = s->embed_rows[s->embed_row[t],:] where embed_row[t] ≥ 0 (image soft tokens, unscaled) */
    int (*embed)(void *ctx, void *x, const g4_step_dev *s, const g4_weight *E, float scale, g4_error *err);

    /* y[r,:] = x[r,:] / sqrt(mean(x[r,:]²) + eps) ⊙ w      rows × n; w NULL = no weight; y may be x */
    int (*rmsnorm)(void *ctx, void *y, const void *x, const g4_weight *w, int rows, int n, float eps, g4_error *err);

    /* h[r,:] += RMSNorm_w(x[r,:])             rows × n (residual add of a post-norm branch) */
    int (*add_rmsnorm)(void *ctx, void *h, const void *x, const g4_weight *w, int rows, int n, float eps,
                       g4_error *err);

    /* The end of a residual branch and the next norm in one pass, per row r (rows × n):
     *   h[r,:] = (h[r,:] + RMSNorm_w(x[r,:])) × λ     λ = the [1] layer_scalar weight, NULL = 1
     *   y[r,:] = RMSNorm_{w_next}(h[r,:])             y NULL: not computed; w_next NULL: no weight
     * The values of add_rmsnorm, scale and rmsnorm in turn (bf16 rounding points included); y
     * must not overlap h or x. */
    int (*add_rmsnorm_norm)(void *ctx, void *h, const void *x, const g4_weight *w, const g4_weight *lambda, void *y,
                            const g4_weight *w_next, int rows, int n, float eps, g4_error *err);

    /* y[i] = a[i] + b[i]                       n elements; y may alias a or b */
    int (*add)(void *ctx, void *y, const void *a, const void *b, size_t n, g4_error *err);

    /* h[i] *= λ                                n elements; λ = the [1] layer_scalar weight */
    int (*scale)(void *ctx, void *h, const g4_weight *lambda, size_t n, g4_error *err);

    /* y[M,N] = x[M,K] · Wᵀ                     W [N,K] */
    int (*matmul)(void *ctx, void *y, const void *x, const g4_weight *W, int M, g4_error *err);

    /* y[r,i] = gelu_tanh(gu[r,i]) · gu[r,n+i]   gu [rows, 2n] (the fused gate|up GEMM's output),
     * y [rows, n]; y must not overlap gu */
    int (*geglu)(void *ctx, void *y, const void *gu, int rows, int n, g4_error *err);

    /* Per token t at position p = s->pos[t]:
     *   q_out[t,h,:] = RoPE(RMSNorm_{q_norm}(q[t,h,:]), p)    q_out packed [T, n_heads, d]
     *   sliding:  cache K ← RoPE(RMSNorm_{k_norm}(k[t,g,:]), p), cache V ← RMSNorm_∅(v[t,g,:])
     *   k_eq_v:   cache U ← RMSNorm_∅(k[t,g,:])                (v unused, may be NULL)
     * written at the slot of (seq, p) through the layer type's block table. Token t's q, k, v
     * rows start ld elements apart (ld = the fused QKV GEMM's width, the three pointers its
     * column offsets); ld = 0: each packed ([T, heads, d]), and q_out may then be q (in place). */
    int (*qk_norm_rope_cache)(void *ctx, void *q_out, const void *q, const void *k, const void *v, int64_t ld,
                              const g4_weight *q_norm, const g4_weight *k_norm, const g4_attn_geom *g,
                              const g4_kv_layer *kv, const g4_step_dev *s, g4_error *err);

    /* out[t,h,:] = Σ_j softmax_j(q[t,h]·K_j) V_j, scale 1.0, over keys j of the same sequence with
     * pos_j ≤ p (and p − pos_j < window on sliding layers; there pos_j ≤ key_end[t] instead of ≤ p
     * when the step has s->key_end: g4_attn_key_hi), all read from the cache (the step's own
     * keys were written by qk_norm_rope_cache first). KV head of query head h = h / (n_heads/n_kv).
     * k_eq_v layers form K_j = RoPE(U_j ⊙ k_norm, pos_j), V_j = U_j from the one cached tensor. */
    int (*attention)(void *ctx, void *out, const void *q, const g4_weight *k_norm, const g4_attn_geom *g,
                     const g4_kv_layer *kv, const g4_step_dev *s, g4_error *err);

    /* MoE router, per token t (h1 = un-normed residual after attention, [T,H]):
     *   u = RMSNorm_∅(h1[t]) ⊙ scale × H^-½;  p = softmax(u · projᵀ) over E experts (fp32)
     *   top-k by p (ties → lower id), w_e = p_e / Σ_top p × per_expert_scale[e]
     * ids[T,k] int32 dev, weights[T,k] f32 dev, ordered by descending p. */
    int (*moe_route)(void *ctx, int32_t *ids, float *weights, const void *h1, const g4_weight *proj,
                     const g4_weight *scale, const g4_weight *expert_scale, int T, int top_k, float eps, g4_error *err);

    /* y[t] = Σ_{j<k} weights[t,j] · down_e (gelu_tanh(G_e·x[t]) ⊙ (U_e·x[t]))   e = ids[t,j]
     * gate_up [E, 2I, H] (gate rows 0..I-1), down [E, H, I]; x, y [T,H]. */
    int (*moe_experts)(void *ctx, void *y, const void *x, const int32_t *ids, const float *weights,
                       const g4_weight *gate_up, const g4_weight *down, int T, int top_k, g4_error *err);

    /* logits[r,:] = softcap(x[rows[r],:] · Eᵀ)    f32 [n_rows, V]; softcap(z) = c·tanh(z/c), c=0 off */
    int (*lm_head)(void *ctx, float *logits, const void *x, const g4_step_dev *s, const g4_weight *E, float softcap,
                   g4_error *err);

    /* --- dummy weights (base/dummy.h; optional: supports(G4_OP_LOAD_DUMMY_WEIGHT)) --------- */

    /* Like load_weight, but w->data is filled with bf16(mean + amp·g4_dummy_u(seed, i)) made on
     * the backend; the checkpoint's bytes are never read. Released by unload_weight. */
    int (*load_dummy_weight)(void *ctx, g4_weight *w, uint64_t seed, float mean, float amp, g4_error *err);

    /* --- sampling (appended; see "sampling" above) ----------------------------------------- */

    /* tokens[r] (and logprobs[lp_slot] for rows that ask) from logits[r,:] by the sampling rules,
     * for r < params->n_rows. Queued like every op: the caller downloads tokens (4 bytes a row)
     * and only the logprob slots it asked for. The CPU one reproduces the engine's former host
     * sampler (tests/backend/test_cpu_sample.c); the CUDA one is cuda/sample.cu. */
    int (*sample)(void *ctx, const g4_sample_args *a, g4_error *err);

    /* --- graphs (optional: supports(G4_OP_GRAPH); NULL where the backend has none, as the CPU) - */

    /* From graph_begin to graph_end the ops queued are recorded instead of run; nothing in
     * between may synchronise with the host or allocate (an op that would makes graph_end fail).
     * graph_end: *graph = the recorded work as a replayable graph; on failure NULL, err set, and
     * the recorded work did NOT run (run it again without recording). */
    int (*graph_begin)(void *ctx, g4_error *err);
    int (*graph_end)(void *ctx, void **graph, g4_error *err);
    /* Queues the recorded work again: the same kernels with the same arguments, so the same
     * buffers and shapes, with whatever they hold now. Returns 0, −1 on error, or 1 when the
     * graph is stale (the backend has since moved a buffer it recorded: free it, record again). */
    int (*graph_launch)(void *ctx, void *graph, g4_error *err);
    void (*graph_free)(void *ctx, void *graph);

    /* --- the vision tower (optional: supports(G4_OP_ROPE_2D / _ENCODER_ATTENTION / _VISION_POOL);
     *     model/vision.c runs the tower only on a backend that has all three) ------------------ */

    /* 2-D ("axial") RoPE in place, per token t and head h of x [T, n_heads, d] (d a multiple of 4):
     * (px, py) = (pos[2t], pos[2t+1]), the patch's column and row. Channels [0, d/2) rotate by px,
     * [d/2, d) by py; inside each half of m = d/2 channels, rotate-half pairs (i, i + m/2) with
     *   θ_i = p · theta^(−2i/m),  i < m/2:  (a, b) ← (a cosθ − b sinθ, b cosθ + a sinθ). */
    int (*rope_2d)(void *ctx, void *x, const int32_t *pos, int T, int n_heads, int head_dim, float theta,
                   g4_error *err);

    /* Bidirectional attention over one encoder input (an image's patches), no mask, no cache:
     *   out[t,h,:] = Σ_{j<T} softmax_j(scale · q[t,h,:]·k[j,g,:]) v[j,g,:],   g = h / (n_heads / n_kv_heads)
     * q, out [T, n_heads, d]; k, v [T, n_kv_heads, d]. */
    int (*encoder_attention)(void *ctx, void *out, const void *q, const void *k, const void *v, int T, int n_heads,
                             int n_kv_heads, int head_dim, float scale, g4_error *err);

    /* The vision pooler and standardisation. x [ph·pw, n] is a row-major patch grid (ph, pw
     * multiples of k); y [(ph/k)·(pw/k), n], row-major over the pooled grid:
     *   y[(r/k)·(pw/k) + c/k, :] = (mult · (1/k²) Σ_{k×k block} x[r·pw + c, :] − bias) ⊙ scale
     * bias, scale: [n] weights, or NULL for 0 and 1 (a tower without standardisation). */
    int (*vision_pool)(void *ctx, void *y, const void *x, int ph, int pw, int n, int k, float mult,
                       const g4_weight *bias, const g4_weight *scale, g4_error *err);

    /* --- launch count (optional: supports(G4_OP_LAUNCH_COUNT)) ------------------------------ */

    /* Device work items queued so far by this backend instance: kernel launches and library
     * calls (one cuBLAS GEMM counts one), recordings included, graph replays not (a replay is one
     * launch of the whole graph). The benchmark's launches per decode token is its difference
     * over eager steps. Monotonic, never reset. */
    uint64_t (*launch_count)(void *ctx);
} g4_backend_ops;

typedef struct g4_backend {
    const g4_backend_ops *ops;
    void *ctx;                       /* backend-private state */
    void (*destroy)(struct g4_backend *b);
} g4_backend;

g4_backend *g4_backend_cpu_create(g4_error *err);

/* Creates a backend by name ("cpu", "cuda"; the kinds of backend/registry.h) with options o
 * (NULL = defaults). "cuda" fails with a clear message in builds without the CUDA backend or on
 * machines without the device o->device. */
g4_backend *g4_backend_create(const char *name, const g4_backend_options *o, g4_error *err);

/* The supports query of b (see g4_backend_ops.supports). */
static inline int g4_backend_supports(const g4_backend *b, g4_op op, g4_dtype dt) {
    G4_INVARIANT(b->ops->supports, "backend %s: op table without its supports slot", b->ops->name);
    return b->ops->supports(b->ctx, op, dt);
}

static inline void g4_backend_destroy(g4_backend *b) {
    if (b && b->destroy) b->destroy(b);
}

#endif
