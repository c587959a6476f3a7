/* dummy_weights.cu — seeded random bf16 weights filled on the GPU (see dummy_weights.h).
 * The generator is a counter-based splitmix64 hash, identical on host and device.
 * Twin: cpu_load_dummy_weight (csrc/backend/cpu/cpu_ops.c), same generator (base/dummy.h).
 * Test: tests/gpu/test_gpu_dummy.c. */
#include <string.h>

#include "ctx.cuh"

extern "C" {
#include "base/dummy.h"
}

extern "C" {
#include "cuda_backend.h"
#include "dummy_weights.h"
}

extern "C" float g4_dummy_value(uint64_t seed, uint64_t i, float mean, float amp) {
    return mean + amp * g4_dummy_u(seed, i);
}

/* w[i] = bf16(mean + amp · u(seed, i))      n elements, grid-stride */
static __global__ void g4_dummy_fill_kernel(__nv_bfloat16 *w, size_t n, uint64_t seed, float mean, float amp) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        w[i] = __float2bfloat16(mean + amp * g4_dummy_u(seed, i));
}

extern "C" int g4_cuda_dummy_weight(g4_backend *be, g4_weight *w, uint64_t seed, float mean, float amp, g4_error *err) {
    if (!be || !be->ops || !be->ops->name || strcmp(be->ops->name, "cuda") != 0)
        return g4_fail(err, "dummy weight %s: backend is not the CUDA backend", w->name ? w->name : "?");
    return g4_cuda_dummy_fill((g4_cuda_ctx *)be->ctx, w, seed, mean, amp, err);
}

/* Allocates and fills w->data on c's device (the body of both entry points). */
int g4_cuda_dummy_fill(g4_cuda_ctx *c, g4_weight *w, uint64_t seed, float mean, float amp, g4_error *err) {
    if (w->ndim < 1 || w->ndim > G4_MAX_DIMS)
        return g4_fail(err, "dummy weight %s: ndim %d", w->name ? w->name : "?", w->ndim);
    size_t n = 1;
    for (int d = 0; d < w->ndim; d++) {
        if (w->shape[d] <= 0)
            return g4_fail(err, "dummy weight %s: dim %d is %lld", w->name ? w->name : "?", d, (long long)w->shape[d]);
        n *= (size_t)w->shape[d];
    }
    G4_CHECK(cudaSetDevice(c->device));
    void *p = NULL;
    G4_CHECK(cudaMalloc(&p, n * sizeof(__nv_bfloat16)));
    size_t blocks = (n + 255) / 256;
    G4_LAUNCH((unsigned)(blocks < 65536 ? blocks : 65536), 256, 0, g4_launch_stream(c), g4_dummy_fill_kernel)
    ((__nv_bfloat16 *)p, n, seed, mean, amp);
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) {
        cudaFree(p);
        return g4_fail(err, "dummy weight %s: fill kernel: %s", w->name ? w->name : "?", cudaGetErrorString(e));
    }
    w->data = p;
    w->data_dtype = G4_DT_BF16;
    return 0;
}
