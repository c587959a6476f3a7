/* activation.cu — GeGLU over the rows of a fused gate|up GEMM output: the dense MLP's
 * activation and the MoE experts' (moe_experts.cu calls g4_cuda_geglu on its packed rows).
 * Twin: cpu_geglu (csrc/backend/cpu/cpu_ops.c). Test: tests/gpu/test_gpu_ops.c. Bench: the whole
 * step, bench/kernels/bench_model.c. */
#include "ctx.cuh"

/* y[r,i] = bf16( gelu_tanh(gu[r,i]) · gu[r,n+i] )     gu [rows, 2n] bf16 (gate columns first),
 * y [rows, n] bf16; fp32 inside; grid-stride over rows·n elements.
 * Roofline (31B decode row, n = 21504 per rank): reads 2n, writes n bf16 = 129 KB, ~0.05 µs at
 * 3.35 TB/s — launch-bound; fusing gate and up into one GEMM removed a launch, not bytes. */
static __global__ void g4_geglu_kernel(__nv_bfloat16 *y, const __nv_bfloat16 *gu, size_t rows, int n) {
    size_t total = rows * (size_t)n;
    for (size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x; e < total; e += (size_t)gridDim.x * blockDim.x) {
        size_t r = e / (size_t)n, i = e % (size_t)n;
        const __nv_bfloat16 *row = gu + r * 2 * (size_t)n;
        g4_st(y, e, g4_gelu_tanh(g4_ld(row, i)) * g4_ld(row, n + i));
    }
}

int g4_cuda_geglu(void *ctx, void *y, const void *gu, int rows, int n, g4_error *err) {
    g4_cuda_ctx *c = (g4_cuda_ctx *)ctx;
    if (rows < 0 || n < 0) return g4_fail(err, "geglu: bad shape rows=%d n=%d", rows, n);
    size_t total = (size_t)rows * (size_t)n;
    if (total == 0) return 0;
    size_t blocks = (total + 255) / 256;
    unsigned grid = (unsigned)(blocks < 65536 ? blocks : 65536);
    G4_LAUNCH(grid, 256, 0, g4_launch_stream(c), g4_geglu_kernel)
    ((__nv_bfloat16 *)y, (const __nv_bfloat16 *)gu, (size_t)rows, n);
    G4_CHECK_LAUNCH();
    return 0;
}
