/* cpu_internal.h — shared helpers of the CPU reference backend (not a public header; that is
 * cpu_backend.h).
 *
 * The CPU backend keeps activations and the KV cache in f32 and reads weights straight from
 * the mmapped checkpoint in their stored dtype, converting one row at a time. In bf16 mode
 * (g4_cpu_ctx.round_bf16) the buffers stay f32 but hold bf16-rounded values (cpu_ops.c table). */
#ifndef G4_BACKEND_CPU_INTERNAL_H
#define G4_BACKEND_CPU_INTERNAL_H

#include <stdint.h>

#include "backend/backend.h"
#include "base/bf16.h"

/* The backend's ctx (g4_backend.ctx). A NULL ctx means the defaults (fp32, order 0). */
typedef struct g4_cpu_ctx {
    int round_bf16; /* see g4_cpu_opts (cpu_backend.h) */
    int sum_order;
    struct g4_cpu_sample_scratch *sample_scratch; /* the sample op's [V] buffers (lazily made) */
    uint64_t uploads;                             /* upload + upload_async calls (upload_count) */
} g4_cpu_ctx;

static inline int g4_cpu_is_bf16(const void *ctx) { return ctx && ((const g4_cpu_ctx *)ctx)->round_bf16; }
static inline int g4_cpu_order(const void *ctx) { return ctx ? ((const g4_cpu_ctx *)ctx)->sum_order : 0; }

/* x[0..n) ← bf16(x[i]) in place. */
static inline void g4_cpu_round_bf16(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = g4_round_bf16(x[i]);
}

/* A malloc'd copy of x[0..n) rounded to bf16 (the bf16 mode's "round the input on read"), or
 * NULL when out of memory. The caller frees. */
float *g4_cpu_rounded_copy(const void *x, size_t n);

/* OpenMP regions open only above this many multiply-adds: tiny ops (the test models) run
 * faster on one thread than with the fork/join, and far faster on an oversubscribed machine. */
#define G4_CPU_PAR_MIN_WORK (1L << 18)

/* dst[0..n) = f32 of elements [first, first+n) of w (any dtype). */
void g4_cpu_weight_f32(const g4_weight *w, int64_t first, int64_t n, float *dst);

/* Σ a[i]·b[i], f32 inputs, accumulated in double-free unrolled f32 lanes. */
float g4_cpu_dot(const float *a, const float *b, int n);
/* The same sum in summation order `order` (g4_cpu_opts.sum_order: 0 = g4_cpu_dot). */
float g4_cpu_dot_ord(const float *a, const float *b, int n, int order);

/* y = RMSNorm(x) ⊙ w (w may be NULL) over n elements; y may alias x. */
void g4_cpu_rmsnorm_row(float *y, const float *x, const float *w, int n, float eps);

/* Rotate-half RoPE in place on one head vector of length d at position pos. */
void g4_cpu_rope(float *x, int d, const g4_rope *rope, int pos);

float g4_cpu_gelu_tanh(float z);

int g4_cpu_qk_norm_rope_cache(void *ctx, void *q_out, const void *q, const void *k, const void *v, int64_t ld,
                              const g4_weight *q_norm, const g4_weight *k_norm, const g4_attn_geom *g,
                              const g4_kv_layer *kv, const g4_step_dev *s, g4_error *err);
int g4_cpu_attention(void *ctx, void *out, const void *q, const g4_weight *k_norm, const g4_attn_geom *g,
                     const g4_kv_layer *kv, const g4_step_dev *s, g4_error *err);
int g4_cpu_rope_2d(void *ctx, void *x, const int32_t *pos, int T, int n_heads, int head_dim, float theta,
                   g4_error *err);
int g4_cpu_encoder_attention(void *ctx, void *out, const void *q, const void *k, const void *v, int T, int n_heads,
                             int n_kv_heads, int head_dim, float scale, g4_error *err);
int g4_cpu_vision_pool(void *ctx, void *y, const void *x, int ph, int pw, int n, int k, float mult,
                       const g4_weight *bias, const g4_weight *scale, g4_error *err);
int g4_cpu_sample(void *ctx, const g4_sample_args *a, g4_error *err);
int g4_cpu_moe_route(void *ctx, int32_t *ids, float *weights, const void *h1, const g4_weight *proj,
                     const g4_weight *scale, const g4_weight *expert_scale, int T, int top_k, float eps, g4_error *err);
int g4_cpu_moe_experts(void *ctx, void *y, const void *x, const int32_t *ids, const float *weights,
                       const g4_weight *gate_up, const g4_weight *down, int T, int top_k, g4_error *err);

/* Physical block of (seq, pos) in a pool's block table, or -1 with err set. */
int g4_cpu_block_of(const int32_t *table, const g4_step_dev *s, const g4_kv_layer *kv, int seq, int pos, g4_error *err);

#endif
