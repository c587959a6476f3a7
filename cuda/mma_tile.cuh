/* mma_tile.cuh — warp-tile steps the tensor-core attention kernels share (attention_flash.cu,
 * vision.cu): the P·V product of one warp's 16 query rows, and the sum over a fragment row's quad.
 * Layouts are mma.sync m16n8k16's (ptx.cuh). Not here: loading the tiles, the softmax. */
#ifndef G4_CUDA_MMA_TILE_CUH
#define G4_CUDA_MMA_TILE_CUH

#include "pack.cuh"
#include "ptx.cuh"

/* o[nb] += fp16(P) · V̂ for nb < NB (NB even: output columns 8·nb .. 8·nb + 7):
 *   P [16, BN] fp32, this warp's rows as C-fragments, s[2·kk], s[2·kk + 1] covering keys
 *   16·kk .. 16·kk + 15, repacked as A-fragments (fp16, clamped);
 *   V̂ [BN, 8·NB] fp16 in shared memory, row stride P halves, at vb (this lane's ldmatrix row
 *   address for key 0, column 0: ldmatrix.trans gives the B-fragments). */
template <int BN, int NB>
__device__ __forceinline__ void g4_mma_pv(float (*o)[4], const float (*s)[4], const __half *vb, int P) {
    static_assert(BN % 16 == 0 && NB % 2 == 0, "whole mma k-steps and pairs of n-blocks");
#pragma unroll
    for (int kk = 0; kk < BN / 16; kk++) {
        uint32_t a[4] = {g4_pack_h2(s[2 * kk][0], s[2 * kk][1]), g4_pack_h2(s[2 * kk][2], s[2 * kk][3]),
                         g4_pack_h2(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                         g4_pack_h2(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
        for (int nb = 0; nb < NB; nb += 2) {
            uint32_t b[4];
            g4_ldsm_x4_t(b, vb + (size_t)kk * 16 * P + nb * 8);
            g4_mma_f16(o[nb], a, b[0], b[1]);
            g4_mma_f16(o[nb + 1], a, b[2], b[3]);
        }
    }
}

/* The sum of x over the 4 lanes of a C-fragment row (lanes 4r .. 4r + 3). */
__device__ __forceinline__ float g4_quad_sum(float x) {
    x += __shfl_xor_sync(0xffffffffu, x, 1);
    return x + __shfl_xor_sync(0xffffffffu, x, 2);
}

#endif
