/* activation.cu — GeGLU, the dense MLP's activation (elementwise).
 * Not here: the MoE experts' GeGLU over the packed gate_up rows (moe_experts.cu).
 * Twin: cpu_geglu (csrc/backend/cpu/cpu_ops.c). Test: tests/gpu/test_gpu_ops.c. Bench: the whole
 * step, bench/kernels/bench_model.c. */
#include "ctx.cuh"

/* y[i] = bf16( gelu_tanh(g[i]) · u[i] )      n elements bf16; fp32 inside; grid-stride loop */
static __global__ void g4_geglu_kernel(__nv_bfloat16 *y, const __nv_bfloat16 *g, const __nv_bfloat16 *u, size_t n) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        g4_st(y, i, g4_gelu_tanh(g4_ld(g, i)) * g4_ld(u, i));
}

int g4_cuda_geglu(void *ctx, void *y, const void *g, const void *u, size_t n, g4_error *err) {
    g4_cuda_ctx *c = (g4_cuda_ctx *)ctx;
    if (n == 0) return 0;
    size_t blocks = (n + 255) / 256;
    unsigned grid = (unsigned)(blocks < 65536 ? blocks : 65536);
    G4_LAUNCH(grid, 256, 0, g4_launch_stream(c), g4_geglu_kernel)
    ((__nv_bfloat16 *)y, (const __nv_bfloat16 *)g, (const __nv_bfloat16 *)u, n);
    G4_CHECK_LAUNCH();
    return 0;
}
