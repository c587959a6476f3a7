/* embed.cu — token embedding lookup (the first op of the forward pass).
 * Not here: the LM head that reuses E (lm_head.cu).
 * Twin: cpu_embed (csrc/backend/cpu/cpu_ops.c). Test: tests/gpu/test_gpu_ops.c. Bench: the whole step,
 * bench/kernels/bench_model.c. */
#include "ctx.cuh"

/* x[t,:] = bf16(E[ids[t],:] × scale)      E [V,H] bf16, x [T,H] bf16, scale = bf16(√H)
 * x[t,:] = bf16(mm[mm_row[t],:])           where mm_row (NULL in text-only steps) is ≥ 0: an image
 *                                          soft token, mm [n, H] f32, not scaled
 * grid: one block per token t; 256 threads stride over H. An id outside [0,V) writes zeros
 * (the model validates ids on the host; the kernel must not read out of bounds). */
static __global__ void g4_embed_kernel(__nv_bfloat16 *x, const int32_t *ids, const __nv_bfloat16 *E, int V, int H,
                                       float scale, const int32_t *mm_row, const float *mm) {
    int t = blockIdx.x;
    int id = ids[t];
    __nv_bfloat16 *row = x + (size_t)t * H;
    if (mm_row && mm_row[t] >= 0) {
        const float *src = mm + (size_t)mm_row[t] * H;
        for (int i = threadIdx.x; i < H; i += blockDim.x) g4_st(row, i, src[i]);
        return;
    }
    if (id < 0 || id >= V) {
        for (int i = threadIdx.x; i < H; i += blockDim.x) g4_st(row, i, 0.0f);
        return;
    }
    const __nv_bfloat16 *src = E + (size_t)id * H;
    for (int i = threadIdx.x; i < H; i += blockDim.x) g4_st(row, i, g4_ld(src, i) * scale);
}

int g4_cuda_embed(void *ctx, void *x, const g4_step_dev *s, const g4_weight *E, float scale, g4_error *err) {
    g4_cuda_ctx *c = (g4_cuda_ctx *)ctx;
    G4_TRY(g4_cuda_check_weight(E, "embed", -1, err));
    if (E->ndim != 2) return g4_fail(err, "embed: weight %s must be [V,H]", E->name ? E->name : "?");
    if (s->n_tokens <= 0) return 0;
    int V = (int)E->shape[0], H = (int)E->shape[1];
    G4_LAUNCH(s->n_tokens, 256, 0, g4_launch_stream(c), g4_embed_kernel)
    ((__nv_bfloat16 *)x, s->token_ids, (const __nv_bfloat16 *)E->data, V, H, scale, s->embed_row, s->embed_rows);
    G4_CHECK_LAUNCH();
    return 0;
}
