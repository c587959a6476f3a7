/* ptx.cuh — the PTX instructions the kernels use, one function each: tensor-core mma.sync
 * m16n8k16 (f16 or bf16 in, f32 accumulate), ldmatrix (x1/x2/x4, optionally transposed) and
 * cp.async with commit / wait groups. On the GPU each is one inline-PTX statement; on the
 * emulated CUDA target (G4_CUDA_EMU) each calls the emulator's implementation of the PTX
 * ISA's fragment layouts (cuda/emu/sched.cc), checked by tests/gpu/test_gpu_ptx.cu against a
 * layout table transcribed from the ISA. Not here: anything that is not a single instruction. */
#ifndef G4_CUDA_PTX_CUH
#define G4_CUDA_PTX_CUH

#include <stdint.h>

/* d[16×8] = a[16×16] · b[16×8] + c, one warp; fragments per lane (g = lane/4, t = lane%4):
 *   a[0] = A[g][2t..2t+1]  a[1] = A[g+8][2t..2t+1]  a[2] = A[g][2t+8..2t+9]  a[3] = A[g+8][2t+8..2t+9]
 *   b[0] = B[2t..2t+1][g]  b[1] = B[2t+8..2t+9][g]
 *   c, d: [0],[1] = C[g][2t..2t+1]  [2],[3] = C[g+8][2t..2t+1]      (16-bit pairs: low half first) */
__device__ __forceinline__ void g4_mma_f16(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
#ifdef G4_CUDA_EMU
    const uint32_t b[2] = {b0, b1};
    g4emu::mma_m16n8k16(c, a, b, c, 0);
#else
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#endif
}

__device__ __forceinline__ void g4_mma_bf16(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
#ifdef G4_CUDA_EMU
    const uint32_t b[2] = {b0, b1};
    g4emu::mma_m16n8k16(c, a, b, c, 1);
#else
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#endif
}

/* ldmatrix .m8n8 .b16 from shared memory: lane 8i + r gives the (16-byte aligned) address of
 * row r of matrix i; lane l receives r[i] = M_i[l/4][2(l%4) .. 2(l%4)+1] (_t: transposed,
 * M_i[2(l%4) .. 2(l%4)+1][l/4]). */
__device__ __forceinline__ void g4_ldsm_x1(uint32_t r[1], const void *p) {
#ifdef G4_CUDA_EMU
    g4emu::ldmatrix(r, 1, 0, p);
#else
    uint32_t a = (uint32_t)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x1.shared.b16 {%0}, [%1];\n" : "=r"(r[0]) : "r"(a) : "memory");
#endif
}
__device__ __forceinline__ void g4_ldsm_x2(uint32_t r[2], const void *p) {
#ifdef G4_CUDA_EMU
    g4emu::ldmatrix(r, 2, 0, p);
#else
    uint32_t a = (uint32_t)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0,%1}, [%2];\n"
                 : "=r"(r[0]), "=r"(r[1])
                 : "r"(a)
                 : "memory");
#endif
}
__device__ __forceinline__ void g4_ldsm_x4(uint32_t r[4], const void *p) {
#ifdef G4_CUDA_EMU
    g4emu::ldmatrix(r, 4, 0, p);
#else
    uint32_t a = (uint32_t)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(a)
                 : "memory");
#endif
}
__device__ __forceinline__ void g4_ldsm_x4_t(uint32_t r[4], const void *p) {
#ifdef G4_CUDA_EMU
    g4emu::ldmatrix(r, 4, 1, p);
#else
    uint32_t a = (uint32_t)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(a)
                 : "memory");
#endif
}

/* cp.async.cg.shared.global: 16 bytes global → shared, bypassing registers; src_bytes < 16
 * copies that many and zero-fills the rest (0: pure zero-fill, for rows past the end). The
 * data is there only after g4_cp_async_wait<N>() retires its group (and, for other threads, a
 * barrier after that). */
__device__ __forceinline__ void g4_cp_async16(void *dst_shared, const void *src, int src_bytes = 16) {
#ifdef G4_CUDA_EMU
    g4emu::cp_async(dst_shared, src, 16, src_bytes);
#else
    uint32_t a = (uint32_t)__cvta_generic_to_shared(dst_shared);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(a), "l"(src), "r"(src_bytes) : "memory");
#endif
}
/* Closes the group of cp.async issued since the last commit. */
__device__ __forceinline__ void g4_cp_async_commit() {
#ifdef G4_CUDA_EMU
    g4emu::cp_async_commit();
#else
    asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
}
/* Waits until at most N committed groups of this thread are still in flight. */
template <int N> __device__ __forceinline__ void g4_cp_async_wait() {
#ifdef G4_CUDA_EMU
    g4emu::cp_async_wait(N);
#else
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
#endif
}

#endif
