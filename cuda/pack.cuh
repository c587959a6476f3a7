/* pack.cuh — the 16-bit packing of the tensor-core kernels (attention_flash.cu, vision.cu): a
 * 32-bit word holds two bf16 or two fp16 values, the lower address / lower column in bits 0..15,
 * which is the order mma.sync fragments and ldmatrix rows use. Not here: the PTX instructions
 * themselves (ptx.cuh). */
#ifndef G4_CUDA_PACK_CUH
#define G4_CUDA_PACK_CUH

#include <stdint.h>

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

/* bf16x2 word: lo in bits 0..15 (the lower address / lower column), hi in 16..31. */
__device__ __forceinline__ uint32_t g4_pack_bf2(float lo, float hi) {
    return (uint32_t)__bfloat16_as_ushort(__float2bfloat16_rn(lo)) |
           ((uint32_t)__bfloat16_as_ushort(__float2bfloat16_rn(hi)) << 16);
}
__device__ __forceinline__ float g4_bf_lo(uint32_t w) { return __uint_as_float(w << 16); }
__device__ __forceinline__ float g4_bf_hi(uint32_t w) { return __uint_as_float(w & 0xffff0000u); }

/* fp16x2 word (same order), values clamped to ±65504 so nothing becomes inf. */
__device__ __forceinline__ uint32_t g4_pack_h2(float lo, float hi) {
    lo = fminf(fmaxf(lo, -65504.0f), 65504.0f);
    hi = fminf(fmaxf(hi, -65504.0f), 65504.0f);
    return (uint32_t)__half_as_ushort(__float2half_rn(lo)) | ((uint32_t)__half_as_ushort(__float2half_rn(hi)) << 16);
}
/* 8 bf16 → 8 fp16 (16 bytes). */
__device__ __forceinline__ uint4 g4_bf8_to_h8(uint4 v) {
    return make_uint4(g4_pack_h2(g4_bf_lo(v.x), g4_bf_hi(v.x)), g4_pack_h2(g4_bf_lo(v.y), g4_bf_hi(v.y)),
                      g4_pack_h2(g4_bf_lo(v.z), g4_bf_hi(v.z)), g4_pack_h2(g4_bf_lo(v.w), g4_bf_hi(v.w)));
}

#endif
