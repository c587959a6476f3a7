/* lm_head.cu — logits for the rows that want them: gather rows, one cuBLASLt GEMM against the
 * tied embedding (f32 out), soft-cap in place. Not here: sampling / argmax (engine side).
 * Twin: cpu_lm_head (csrc/backend/cpu/cpu_ops.c). Test: tests/gpu/test_gpu_lm_head.c. Bench: the
 * whole step, bench/kernels/bench_model.c. */
#include "ctx.cuh"

/* xs[r,:] = x[rows[r],:]      x [T,H], xs [n_rows,H] bf16; grid n_rows blocks; a row index
 * outside [0,T) gathers zeros */
static __global__ void g4_gather_rows_kernel(__nv_bfloat16 *xs, const __nv_bfloat16 *x, const int32_t *rows, int T,
                                             int H) {
    int r = blockIdx.x, t = rows[r];
    __nv_bfloat16 *dst = xs + (size_t)r * H;
    for (int i = threadIdx.x; i < H; i += blockDim.x)
        dst[i] = (t >= 0 && t < T) ? x[(size_t)t * H + i] : __float2bfloat16(0.0f);
}

/* z = c · tanh(z / c)      n f32 elements in place; grid-stride */
static __global__ void g4_softcap_kernel(float *z, size_t n, float cap) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        z[i] = cap * tanhf(z[i] / cap);
}

/* logits[r,:] = softcap(x[rows[r],:] · Eᵀ)     E [V,H] bf16, logits f32 [n_rows, V] */
int g4_cuda_lm_head(void *ctx, float *logits, const void *x, const g4_step_dev *s, const g4_weight *E, float softcap,
                    g4_error *err) {
    g4_cuda_ctx *c = (g4_cuda_ctx *)ctx;
    G4_TRY(g4_cuda_check_weight(E, "lm_head", -1, err));
    if (E->ndim != 2) return g4_fail(err, "lm_head: weight %s must be [V,H]", E->name ? E->name : "?");
    if (s->n_rows <= 0) return 0;
    int V = (int)E->shape[0], H = (int)E->shape[1];
    void *xs;
    G4_TRY(g4_cuda_scratch(c, G4_SCR_ROWS, (size_t)s->n_rows * H * sizeof(__nv_bfloat16), &xs, err));
    G4_LAUNCH(s->n_rows, 256, 0, g4_launch_stream(c), g4_gather_rows_kernel)
    ((__nv_bfloat16 *)xs, (const __nv_bfloat16 *)x, s->rows, s->n_tokens, H);
    G4_CHECK_LAUNCH();
    if (g4_cuda_gemm(c, logits, CUDA_R_32F, xs, E->data, s->n_rows, V, H, err)) return g4_fail_prefix(err, "lm_head");
    if (softcap > 0.0f) {
        size_t n = (size_t)s->n_rows * V, blocks = (n + 255) / 256;
        G4_LAUNCH((unsigned)(blocks < 65536 ? blocks : 65536), 256, 0, g4_launch_stream(c), g4_softcap_kernel)
        (logits, n, softcap);
        G4_CHECK_LAUNCH();
    }
    return 0;
}
