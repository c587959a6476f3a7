/* norm.cu — RMSNorm (plain, fused with the residual add, and fused with the add, the layer scalar
 * and the next norm) and the two elementwise residual ops (add, layer-scalar scale). fp32
 * inside, bf16 in and out.
 * Not here: the per-head Q/K norms (rope_cache.cu), the MoE router's norm (moe_route.cu).
 * Twin: cpu_rmsnorm / cpu_add_rmsnorm / cpu_add_rmsnorm_norm / cpu_add / cpu_scale (cpu_ops.c).
 * Test: tests/gpu/test_gpu_ops.c. Bench: the whole step, bench/kernels/bench_model.c. */
#include "ctx.cuh"

#define G4_NORM_THREADS 256

/* 1 / sqrt(mean(xr[0..n)²) + eps) of one row, summed by the whole block (every kernel below uses
 * this one thread/stride pattern and block sum, so their results are bit-identical). */
static __device__ float g4_row_inv_rms(const __nv_bfloat16 *xr, int n, float eps, float *red) {
    float ss = 0.0f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        float v = g4_ld(xr, i);
        ss += v * v;
    }
    return rsqrtf(g4_block_sum(ss, red) / (float)n + eps);
}

/* yr = bf16(RMSNorm_w(xr)) for one row (w NULL: weightless); yr may equal xr. */
static __device__ void g4_rmsnorm_row(__nv_bfloat16 *yr, const __nv_bfloat16 *xr, const __nv_bfloat16 *w, int n,
                                      float eps, float *red) {
    float inv = g4_row_inv_rms(xr, n, eps, red);
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        float v = g4_ld(xr, i) * inv;
        g4_st(yr, i, w ? v * g4_ld(w, i) : v);
    }
}

/* y[r,:] = bf16( x[r,:] / sqrt(mean(x[r,:]²) + eps) ⊙ w )      x,y [rows,n] bf16, w [n] bf16 or NULL
 * grid: one block per row; 256 threads stride over n. y may equal x: each thread reads
 * x[i] before writing y[i] for the same i, and the sum is complete before any write. */
static __global__ void g4_rmsnorm_kernel(__nv_bfloat16 *y, const __nv_bfloat16 *x, const __nv_bfloat16 *w, int n,
                                         float eps) {
    G4_SHARED(float, red, [32]);
    const __nv_bfloat16 *xr = x + (size_t)blockIdx.x * n;
    __nv_bfloat16 *yr = y + (size_t)blockIdx.x * n;
    g4_rmsnorm_row(yr, xr, w, n, eps, red);
}

/* h[r,:] = bf16( h[r,:] + bf16(RMSNorm_w(x[r,:])) )     h,x [rows,n] bf16, w [n] bf16
 * (the branch output is rounded to bf16 before the add, as the bf16 reference does)
 * grid: one block per row; 256 threads stride over n. */
static __global__ void g4_add_rmsnorm_kernel(__nv_bfloat16 *h, const __nv_bfloat16 *x, const __nv_bfloat16 *w, int n,
                                             float eps) {
    G4_SHARED(float, red, [32]);
    const __nv_bfloat16 *xr = x + (size_t)blockIdx.x * n;
    __nv_bfloat16 *hr = h + (size_t)blockIdx.x * n;
    float inv = g4_row_inv_rms(xr, n, eps, red);
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        float v = g4_ld(xr, i) * inv;
        if (w) v *= g4_ld(w, i);
        g4_st(hr, i, g4_ld(hr, i) + g4_round_bf(v));
    }
}

/* The end of a residual branch and the next norm, one block per row r:
 *   h[r,:] = bf16( bf16( h[r,:] + bf16(RMSNorm_w(x[r,:])) ) × λ )   (λ NULL: no scale, one rounding)
 *   y[r,:] = bf16( RMSNorm_{w_next}(h[r,:]) )                        (y NULL: skipped)
 * The same arithmetic as g4_add_rmsnorm_kernel, g4_scale_kernel and g4_rmsnorm_kernel in turn —
 * same thread/stride pattern and block sum, so bit-identical to them — in one launch: each
 * thread re-reads only the h elements it wrote. x, h, y [rows, n] bf16, w, w_next [n] bf16.
 * Roofline, one 31B decode row (n = 5376): reads x, h, writes h, y = 43 KB, ~0.01 µs at
 * 3.35 TB/s: launch-bound. Replaces add_rmsnorm + scale + rmsnorm at the end of every layer
 * (the next layer's input norm, or the final norm) and add_rmsnorm + rmsnorm after attention:
 * −3 launches a layer, −180 a 31B token, −90 a 26B-A4B one (~2-3 µs each on eager steps). */
static __global__ void g4_add_rmsnorm_norm_kernel(__nv_bfloat16 *h, const __nv_bfloat16 *x, const __nv_bfloat16 *w,
                                                  const __nv_bfloat16 *lambda, __nv_bfloat16 *y,
                                                  const __nv_bfloat16 *w_next, int n, float eps) {
    G4_SHARED(float, red, [32]);
    const __nv_bfloat16 *xr = x + (size_t)blockIdx.x * n;
    __nv_bfloat16 *hr = h + (size_t)blockIdx.x * n;
    float inv = g4_row_inv_rms(xr, n, eps, red);
    float l = lambda ? g4_ld(lambda, 0) : 1.0f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        float v = g4_ld(xr, i) * inv;
        if (w) v *= g4_ld(w, i);
        g4_st(hr, i, g4_ld(hr, i) + g4_round_bf(v));
        if (lambda) g4_st(hr, i, g4_ld(hr, i) * l);
    }
    if (!y) return; /* uniform over the block */
    __nv_bfloat16 *yr = y + (size_t)blockIdx.x * n;
    g4_rmsnorm_row(yr, hr, w_next, n, eps, red);
}

/* y[i] = bf16(a[i] + b[i])      n elements; grid-stride loop, y may alias a or b */
static __global__ void g4_add_kernel(__nv_bfloat16 *y, const __nv_bfloat16 *a, const __nv_bfloat16 *b, size_t n) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        g4_st(y, i, g4_ld(a, i) + g4_ld(b, i));
}

/* h[i] = bf16(h[i] × λ)         λ = lambda[0] read on the device (no host sync) */
static __global__ void g4_scale_kernel(__nv_bfloat16 *h, const __nv_bfloat16 *lambda, size_t n) {
    float l = g4_ld(lambda, 0);
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        g4_st(h, i, g4_ld(h, i) * l);
}

/* Grid for the grid-stride elementwise kernels: enough blocks to fill the GPU, capped. */
static unsigned g4_elementwise_grid(size_t n) {
    size_t blocks = (n + 255) / 256;
    return (unsigned)(blocks < 65536 ? (blocks ? blocks : 1) : 65536);
}

int g4_cuda_rmsnorm(void *ctx, void *y, const void *x, const g4_weight *w, int rows, int n, float eps, g4_error *err) {
    g4_cuda_ctx *c = (g4_cuda_ctx *)ctx;
    if (w) G4_TRY(g4_cuda_check_weight(w, "rmsnorm", n, err));
    if (rows <= 0 || n <= 0) return 0;
    G4_LAUNCH(rows, G4_NORM_THREADS, 0, g4_launch_stream(c), g4_rmsnorm_kernel)
    ((__nv_bfloat16 *)y, (const __nv_bfloat16 *)x, w ? (const __nv_bfloat16 *)w->data : NULL, n, eps);
    G4_CHECK_LAUNCH();
    return 0;
}

int g4_cuda_add_rmsnorm(void *ctx, void *h, const void *x, const g4_weight *w, int rows, int n, float eps,
                        g4_error *err) {
    g4_cuda_ctx *c = (g4_cuda_ctx *)ctx;
    if (w) G4_TRY(g4_cuda_check_weight(w, "add_rmsnorm", n, err));
    if (rows <= 0 || n <= 0) return 0;
    G4_LAUNCH(rows, G4_NORM_THREADS, 0, g4_launch_stream(c), g4_add_rmsnorm_kernel)
    ((__nv_bfloat16 *)h, (const __nv_bfloat16 *)x, w ? (const __nv_bfloat16 *)w->data : NULL, n, eps);
    G4_CHECK_LAUNCH();
    return 0;
}

int g4_cuda_add_rmsnorm_norm(void *ctx, void *h, const void *x, const g4_weight *w, const g4_weight *lambda, void *y,
                             const g4_weight *w_next, int rows, int n, float eps, g4_error *err) {
    g4_cuda_ctx *c = (g4_cuda_ctx *)ctx;
    if (w) G4_TRY(g4_cuda_check_weight(w, "add_rmsnorm_norm", n, err));
    if (lambda) G4_TRY(g4_cuda_check_weight(lambda, "layer_scalar", 1, err));
    if (y && w_next) G4_TRY(g4_cuda_check_weight(w_next, "add_rmsnorm_norm next", n, err));
    if (rows <= 0 || n <= 0) return 0;
    G4_LAUNCH(rows, G4_NORM_THREADS, 0, g4_launch_stream(c), g4_add_rmsnorm_norm_kernel)
    ((__nv_bfloat16 *)h, (const __nv_bfloat16 *)x, w ? (const __nv_bfloat16 *)w->data : NULL,
     lambda ? (const __nv_bfloat16 *)lambda->data : NULL, (__nv_bfloat16 *)y,
     y && w_next ? (const __nv_bfloat16 *)w_next->data : NULL, n, eps);
    G4_CHECK_LAUNCH();
    return 0;
}

int g4_cuda_add(void *ctx, void *y, const void *a, const void *b, size_t n, g4_error *err) {
    g4_cuda_ctx *c = (g4_cuda_ctx *)ctx;
    if (n == 0) return 0;
    G4_LAUNCH(g4_elementwise_grid(n), 256, 0, g4_launch_stream(c), g4_add_kernel)
    ((__nv_bfloat16 *)y, (const __nv_bfloat16 *)a, (const __nv_bfloat16 *)b, n);
    G4_CHECK_LAUNCH();
    return 0;
}

int g4_cuda_scale(void *ctx, void *h, const g4_weight *lambda, size_t n, g4_error *err) {
    g4_cuda_ctx *c = (g4_cuda_ctx *)ctx;
    G4_TRY(g4_cuda_check_weight(lambda, "layer_scalar", 1, err));
    if (n == 0) return 0;
    G4_LAUNCH(g4_elementwise_grid(n), 256, 0, g4_launch_stream(c), g4_scale_kernel)
    ((__nv_bfloat16 *)h, (const __nv_bfloat16 *)lambda->data, n);
    G4_CHECK_LAUNCH();
    return 0;
}
