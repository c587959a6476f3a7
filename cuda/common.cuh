/* common.cuh — shared helpers of the CUDA backend: error-check macros, bf16 loads/stores,
 * block reductions, gelu_tanh.
 *
 * Errors are values: G4_CHECK fills the caller's `g4_error *err` with the failing statement,
 * the library's message, file:line and the device, and `return -1`s from the enclosing
 * function. Nothing here prints or exits. Not here: the backend context (ctx.cuh). */
#ifndef G4_CUDA_COMMON_CUH
#define G4_CUDA_COMMON_CUH

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <cublasLt.h>
#include <math.h>
#include <stdint.h>

extern "C" {
#include "base/error.h"
}

/* The one check for CUDA runtime, cuBLAS(Lt) and NCCL calls:
 *   G4_CHECK(cudaMalloc(&p, n));   G4_CHECK(cublasLtMatmul(...));   G4_CHECK(ncclAllReduce(...));
 * On failure it fills the caller's `g4_error *err` with file:line, the failing statement, the
 * library's message and status name, and the device current on this thread, then returns -1
 * from the enclosing function. The status type picks the library (g4_status_ok / _msg / _name
 * overloads below; the NCCL ones live in comm_nccl.cu, the only file that includes nccl.h). */
static inline bool g4_status_ok(cudaError_t e) { return e == cudaSuccess; }
static inline const char *g4_status_msg(cudaError_t e) { return cudaGetErrorString(e); }
static inline const char *g4_status_name(cudaError_t e) { return cudaGetErrorName(e); }
static inline bool g4_status_ok(cublasStatus_t s) { return s == CUBLAS_STATUS_SUCCESS; }
static inline const char *g4_status_msg(cublasStatus_t s) { return cublasLtGetStatusString(s); }
static inline const char *g4_status_name(cublasStatus_t s) {
    return s == CUBLAS_STATUS_SUCCESS ? "cuBLAS ok" : "cuBLAS error";
}

static inline int g4_check_fail(g4_error *err, const char *file, int line, const char *call, const char *msg,
                                const char *name) {
    int dev = -1;
    if (cudaGetDevice(&dev) != cudaSuccess) dev = -1;
    return g4_fail(err, "%s:%d: %s: %s (%s) on device %d", file, line, call, msg, name, dev);
}

#define G4_CHECK(call)                                                                                   \
    do {                                                                                                 \
        auto s_ = (call);                                                                                \
        if (!g4_status_ok(s_))                                                                           \
            return g4_check_fail(err, __FILE__, __LINE__, #call, g4_status_msg(s_), g4_status_name(s_)); \
    } while (0)

/* Every launcher ends with this: catches bad launch configurations at once. */
#define G4_CHECK_LAUNCH() G4_CHECK(cudaGetLastError())

/* Kernel launch, the same source on the GPU and on the emulated target (cuda/emu/):
 *   G4_LAUNCH(grid, block, dynamic_smem_bytes, stream, kernel)(args...);
 * The kernel comes last so a template instance's commas need no parentheses. The backend's
 * launch sites pass g4_launch_stream(c) as the stream (ctx.cuh): it counts the launch. */
#ifdef G4_CUDA_EMU
#define G4_LAUNCH(grid, block, smem, stream, ...) \
    g4emu::make_launcher(&__VA_ARGS__, #__VA_ARGS__, (grid), (block), (smem), (stream))
#else
#define G4_LAUNCH(grid, block, smem, stream, ...) __VA_ARGS__<<<(grid), (block), (smem), (stream)>>>
#endif

/* Shared memory, declared so the emulated target can give each block its own:
 *   G4_SHARED(float, red, [32]);      static:  __shared__ float red[32];
 *   G4_SHARED(int, n_pass, );         static scalar
 *   G4_SHARED_DYN(float, sm);         dynamic: extern __shared__ __align__(16) float sm[];
 * (a bare __shared__ does not compile on the emulated target). */
#ifdef G4_CUDA_EMU
#define G4_SHARED(type, name, dims)         \
    static const char name##_g4emu_key = 0; \
    type(&name) dims =                      \
        *reinterpret_cast<type(*) dims>(g4emu::shared_static(&name##_g4emu_key, sizeof(type dims), alignof(type)))
#define G4_SHARED_DYN(type, name) type *name = reinterpret_cast<type *>(g4emu::shared_dynamic())
#else
#define G4_SHARED(type, name, dims) __shared__ type name dims
#define G4_SHARED_DYN(type, name) extern __shared__ __align__(16) type name[]
#endif

/* Propagates -1 from an internal call that already filled err. */
#define G4_TRY(call)                \
    do {                            \
        if ((call) != 0) return -1; \
    } while (0)

static inline unsigned g4_ceil_div(size_t a, size_t b) { return (unsigned)((a + b - 1) / b); }

__device__ __forceinline__ float g4_ld(const __nv_bfloat16 *p, size_t i) { return __bfloat162float(p[i]); }
__device__ __forceinline__ void g4_st(__nv_bfloat16 *p, size_t i, float v) { p[i] = __float2bfloat16(v); }
/* Rounds through bf16 (where the reference rounds an intermediate to the activation type). */
__device__ __forceinline__ float g4_round_bf(float v) { return __bfloat162float(__float2bfloat16(v)); }

__device__ __forceinline__ float g4_warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* Sum over the whole block (blockDim.x a multiple of 32, ≤ 1024). Every thread gets the
 * result. `red` is 32 floats of shared memory; the call contains two __syncthreads(). */
__device__ __forceinline__ float g4_block_sum(float v, float *red) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;
    v = g4_warp_sum(v);
    if (lane == 0) red[warp] = v;
    __syncthreads();
    float t = 0.0f;
    for (int w = 0; w < n_warps; w++) t += red[w]; /* fixed order: deterministic */
    __syncthreads();                               /* red may be reused right after */
    return t;
}

/* gelu_tanh(z) = 0.5·z·(1 + tanh(√(2/π)·(z + 0.044715·z³))) */
__device__ __forceinline__ float g4_gelu_tanh(float z) {
    const float k = 0.7978845608028654f; /* √(2/π) */
    return 0.5f * z * (1.0f + tanhf(k * (z + 0.044715f * z * z * z)));
}

#endif
