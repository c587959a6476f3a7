/* cpu_backend.h — the CPU reference backend's public header: how to create it and in which mode.
 *
 * Two modes, one op table:
 *   fp32 (the default, g4_backend_cpu_create): every activation, the KV cache and every op's
 *     arithmetic in f32; weights converted from their stored dtype row by row. This is the
 *     oracle checked against Hugging Face transformers (tests/golden); nothing in it changes
 *     with the options below left at zero.
 *   bf16 (g4_cpu_opts.round_bf16 = 1): the same f32 buffers (act_dtype and kv_dtype stay F32,
 *     so any harness that uploads f32 keeps working), but every value is rounded to bf16
 *     (round-to-nearest-even) exactly where the CUDA backend (cuda/) stores a bf16: each op
 *     rounds its activation inputs on read, its outputs on write, and the intermediates the
 *     kernels round (g4_round_bf); weights that are not bf16 in the checkpoint are converted to
 *     bf16 at load, as the CUDA backend does. All arithmetic in between stays f32, so this mode
 *     differs from the CUDA backend only by f32 summation order (and the few points listed as
 *     not modelled in cpu_ops.c). It is the reference for GPU tests of whole-model logits.
 *
 * Rounding points in bf16 mode ("in" = activation inputs rounded on read; full table with the
 * CUDA twins and what is not modelled atop cpu_ops.c):
 *   embed                out
 *   rmsnorm / add / scale / geglu / matmul   in, out (f32 math / f32 accumulate between)
 *   add_rmsnorm          in; the normed branch; the sum
 *   qk_norm_rope_cache   in; normed head before RoPE; q, cache K, V, U as written
 *   attention            in (q); out. K formed from U, scores, softmax, P·V stay f32
 *   moe_route            in; ids and weights f32
 *   moe_experts          in; gate and up outputs; GeGLU product; Σ w·down (down outputs f32)
 *   lm_head              in; logits f32
 *   load_weight          F32 / F16 weights → bf16
 * Not here: the op table's contract (backend/backend.h). */
#ifndef G4_BACKEND_CPU_BACKEND_H
#define G4_BACKEND_CPU_BACKEND_H

#include "backend/backend.h"
#include "base/comm.h"

typedef struct g4_cpu_opts {
    int round_bf16; /* 0: fp32 reference (default); 1: round to bf16 where the CUDA backend stores bf16 */
    int sum_order;  /* 0: default f32 summation order. 1..3: every dot product (matmul, attention
                     * scores, router, experts, LM head) summed in another order — 1 serially from
                     * the last element (and attention's P·V over keys in reverse), 2 serially from
                     * the first, 3 in 32 strided lanes reduced by halving (a warp's shape). A test
                     * knob: it measures how much a result depends on f32 summation order alone,
                     * which is how a correct GPU differs from this backend. */
} g4_cpu_opts;

/* All fields zero: the fp32 reference. */
void g4_cpu_opts_default(g4_cpu_opts *o);

/* Creates the CPU backend in the mode o describes (NULL = defaults, same as
 * g4_backend_cpu_create). NULL with err set on failure; release with g4_backend_destroy. */
g4_backend *g4_backend_cpu_create_opts(const g4_cpu_opts *o, g4_error *err);

/* Switches an existing CPU backend to the mode o describes — for backends created by name inside
 * something else (a tensor-parallel group's ranks, g4_tp_open). Weights loaded before keep what
 * load_weight made of them (an F32 / F16 weight loaded in fp32 mode is not rounded later), so call
 * it before loading, or with bf16 checkpoints only. 0, or -1 with err set when b is not a CPU
 * backend or o is invalid. Not thread-safe against ops running on b. */
int g4_backend_cpu_set_opts(g4_backend *b, const g4_cpu_opts *o, g4_error *err);

/* The CPU backend's communicator for a group of `size` ranks that are threads of this process
 * (cpu_comm.c; f32 buffers only). NULL with err set on failure. The registry's "cpu" kind. */
g4_comm *g4_cpu_comm_create(int size, g4_error *err);

/* The sample op's CPU implementation on host memory, for callers that hold logits on the host
 * (the engine with an executor that returns logits; tests). Same contract as ops->sample
 * (backend.h); the scratch holds [V]-sized buffers and is reused across calls (one thread at a
 * time). create: NULL when out of memory. */
typedef struct g4_cpu_sample_scratch g4_cpu_sample_scratch;
g4_cpu_sample_scratch *g4_cpu_sample_scratch_create(void);
void g4_cpu_sample_scratch_free(g4_cpu_sample_scratch *s);
int g4_cpu_sample_host(g4_cpu_sample_scratch *s, const g4_sample_args *a, g4_error *err);

#endif
