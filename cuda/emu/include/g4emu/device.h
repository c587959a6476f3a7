/* g4emu/device.h — the device side of the emulated CUDA target (C++ only; included by the
 * emulated cuda_runtime.h).
 *
 * A kernel launch runs its blocks one after another on the launching host thread; the threads
 * of a block are fibers scheduled cooperatively: a thread runs until it reaches a barrier
 * (__syncthreads) or a warp collective (shuffles, votes, mma.sync, ldmatrix), which is
 * performed with warp-lockstep semantics once every lane named in its mask has arrived. The
 * order of warps between two barriers is a seeded random permutation, so code that relies on
 * one order fails. threadIdx & co. read the current fiber's coordinates.
 * Shared memory: kernels declare it with G4_SHARED / G4_SHARED_DYN (cuda/common.cuh); a bare
 * __shared__ does not compile here. Not here: the scheduler and runtime (the .cc files of cuda/emu). */
#ifndef G4EMU_DEVICE_H
#define G4EMU_DEVICE_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include <functional>
#include <tuple>
#include <type_traits>
#include <utility>

namespace g4emu {

struct thread_ctx {
    uint3 idx;     /* threadIdx */
    int linear;    /* x + y·bx + z·bx·by */
    int lane, warp;
};
struct block_ctx {
    uint3 idx;     /* blockIdx */
    dim3 dim, grid;
};
extern thread_local thread_ctx *t_cur;
extern thread_local block_ctx *b_cur;

/* --- launches ----------------------------------------------------------------------------- */
cudaError_t launch(const char *name, const void *fn, dim3 grid, dim3 block, size_t smem, cudaStream_t s,
                   std::function<void()> body);

template <class... P> struct launcher {
    void (*fn)(P...);
    const char *name;
    dim3 grid, block;
    size_t smem;
    cudaStream_t stream;
    template <class... A> void operator()(A &&...a) const {
        static_assert(sizeof...(A) == sizeof...(P), "kernel argument count");
        auto f = fn;
        std::tuple<typename std::decay<P>::type...> args(static_cast<P>(std::forward<A>(a))...);
        launch(name, (const void *)f, grid, block, smem, stream, [f, args]() { std::apply(f, args); });
    }
};
template <class... P>
launcher<P...> make_launcher(void (*fn)(P...), const char *name, dim3 grid, dim3 block, size_t smem, cudaStream_t s) {
    return launcher<P...>{fn, name, grid, block, smem, s};
}

/* --- barriers, warp collectives, shared memory -------------------------------------------- */
void syncthreads();
void syncwarp(unsigned mask);
enum { SHFL_IDX = 0, SHFL_UP, SHFL_DOWN, SHFL_XOR };
uint64_t shfl(unsigned mask, uint64_t v, int kind, int arg, int width);
unsigned vote_ballot(unsigned mask, int pred);
unsigned activemask();
void *shared_static(const void *key, size_t bytes, size_t align);
void *shared_dynamic();
size_t cvta_shared(const void *p);

/* Tensor-core and asynchronous-copy instructions (the PTX of cuda/ptx.cuh). */
void mma_m16n8k16(float d[4], const uint32_t a[4], const uint32_t b[2], const float c[4], int bf16);
void ldmatrix(uint32_t *r, int n_mat, int trans, const void *row_addr);
void cp_async(void *dst_shared, const void *src_global, int bytes, int src_bytes);
void cp_async_commit();
void cp_async_wait(int n_pending);

/* Atomics (out of line: not instrumented by the race check, as on the GPU they are not races). */
float atomic_add_f32(float *p, float v);
int atomic_add_i32(int *p, int v);
unsigned atomic_add_u32(unsigned *p, unsigned v);
unsigned long long atomic_add_u64(unsigned long long *p, unsigned long long v);
int atomic_max_i32(int *p, int v);
int atomic_min_i32(int *p, int v);
unsigned atomic_max_u32(unsigned *p, unsigned v);
int atomic_cas_i32(int *p, int cmp, int v);
unsigned atomic_cas_u32(unsigned *p, unsigned cmp, unsigned v);
int atomic_exch_i32(int *p, int v);
unsigned atomic_or_u32(unsigned *p, unsigned v);
float atomic_max_f32(float *p, float v);

template <class T> static inline uint64_t to_bits(T v) {
    static_assert(sizeof(T) <= 8, "shuffle of more than 8 bytes");
    uint64_t b = 0;
    memcpy(&b, &v, sizeof v);
    return b;
}
template <class T> static inline T from_bits(uint64_t b) {
    T v;
    memcpy(&v, &b, sizeof v);
    return v;
}

} /* namespace g4emu */

#define threadIdx (g4emu::t_cur->idx)
#define blockIdx (g4emu::b_cur->idx)
#define blockDim (g4emu::b_cur->dim)
#define gridDim (g4emu::b_cur->grid)
static constexpr int warpSize = 32;

#define __global__
#define __device__
#define __host__
#define __noinline__ __attribute__((noinline))
#define __forceinline__ inline __attribute__((always_inline))
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
#define __constant__ static
#define __shared__ G4EMU_declare_shared_memory_with_G4_SHARED_or_G4_SHARED_DYN

static inline void __syncthreads() { g4emu::syncthreads(); }
static inline void __syncwarp(unsigned mask = 0xffffffffu) { g4emu::syncwarp(mask); }
static inline void __threadfence() {}
static inline void __threadfence_block() {}
static inline unsigned __activemask() { return g4emu::activemask(); }

template <class T> static inline T __shfl_sync(unsigned m, T v, int src, int w = 32) {
    return g4emu::from_bits<T>(g4emu::shfl(m, g4emu::to_bits(v), g4emu::SHFL_IDX, src, w));
}
template <class T> static inline T __shfl_up_sync(unsigned m, T v, unsigned d, int w = 32) {
    return g4emu::from_bits<T>(g4emu::shfl(m, g4emu::to_bits(v), g4emu::SHFL_UP, (int)d, w));
}
template <class T> static inline T __shfl_down_sync(unsigned m, T v, unsigned d, int w = 32) {
    return g4emu::from_bits<T>(g4emu::shfl(m, g4emu::to_bits(v), g4emu::SHFL_DOWN, (int)d, w));
}
template <class T> static inline T __shfl_xor_sync(unsigned m, T v, int lm, int w = 32) {
    return g4emu::from_bits<T>(g4emu::shfl(m, g4emu::to_bits(v), g4emu::SHFL_XOR, lm, w));
}
static inline unsigned __ballot_sync(unsigned m, int p) { return g4emu::vote_ballot(m, p); }
static inline int __any_sync(unsigned m, int p) { return (g4emu::vote_ballot(m, p) & m) != 0; }
static inline int __all_sync(unsigned m, int p) { return (g4emu::vote_ballot(m, p) & m) == m; }
static inline size_t __cvta_generic_to_shared(const void *p) { return g4emu::cvta_shared(p); }

static inline float atomicAdd(float *p, float v) { return g4emu::atomic_add_f32(p, v); }
static inline int atomicAdd(int *p, int v) { return g4emu::atomic_add_i32(p, v); }
static inline unsigned atomicAdd(unsigned *p, unsigned v) { return g4emu::atomic_add_u32(p, v); }
static inline unsigned long long atomicAdd(unsigned long long *p, unsigned long long v) {
    return g4emu::atomic_add_u64(p, v);
}
static inline int atomicSub(int *p, int v) { return g4emu::atomic_add_i32(p, -v); }
static inline int atomicMax(int *p, int v) { return g4emu::atomic_max_i32(p, v); }
static inline unsigned atomicMax(unsigned *p, unsigned v) { return g4emu::atomic_max_u32(p, v); }
static inline int atomicMin(int *p, int v) { return g4emu::atomic_min_i32(p, v); }
static inline int atomicCAS(int *p, int c, int v) { return g4emu::atomic_cas_i32(p, c, v); }
static inline unsigned atomicCAS(unsigned *p, unsigned c, unsigned v) { return g4emu::atomic_cas_u32(p, c, v); }
static inline int atomicExch(int *p, int v) { return g4emu::atomic_exch_i32(p, v); }
static inline unsigned atomicOr(unsigned *p, unsigned v) { return g4emu::atomic_or_u32(p, v); }

template <class T> static inline T __ldg(const T *p) { return *p; }
static inline float __uint_as_float(unsigned u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static inline unsigned __float_as_uint(float f) {
    unsigned u;
    memcpy(&u, &f, 4);
    return u;
}
static inline float __int_as_float(int u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static inline int __float_as_int(float f) {
    int u;
    memcpy(&u, &f, 4);
    return u;
}
static inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
static inline float g4emu_expf(float x) { return expf(x); }
static inline float g4emu_logf(float x) { return logf(x); }
#define __expf g4emu_expf /* glibc declares its own __expf */
#define __logf g4emu_logf
static inline float __fdividef(float a, float b) { return a / b; }
static inline float __frcp_rn(float x) { return 1.0f / x; }
static inline float __saturatef(float x) { return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x); }
/* CUDA's integer and float min / max overloads */
static inline int min(int a, int b) { return a < b ? a : b; }
static inline int max(int a, int b) { return a > b ? a : b; }
static inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
static inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
static inline long long min(long long a, long long b) { return a < b ? a : b; }
static inline long long max(long long a, long long b) { return a > b ? a : b; }
static inline unsigned long long min(unsigned long long a, unsigned long long b) { return a < b ? a : b; }
static inline unsigned long long max(unsigned long long a, unsigned long long b) { return a > b ? a : b; }
static inline float min(float a, float b) { return fminf(a, b); }
static inline float max(float a, float b) { return fmaxf(a, b); }
static inline int __popc(unsigned v) { return __builtin_popcount(v); }
static inline int __ffs(int v) { return __builtin_ffs(v); }
static inline int __clz(int v) { return v ? __builtin_clz((unsigned)v) : 32; }

#include "cuda_bf16.h"

#endif
