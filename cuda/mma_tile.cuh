/* mma_tile.cuh — warp-tile steps the tensor-core attention kernels share (attention_flash.cu,
 * vision.cu), for one warp's 16 query rows: a key tile's online-softmax step, the P·V product,
 * and the sum over a fragment row's quad. Layouts are mma.sync m16n8k16's (ptx.cuh). Not here:
 * loading the tiles, QKᵀ and its masks (each kernel's own). */
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

/* One key tile's online-softmax step for this warp's two fragment rows r (C-fragment entries
 * e with r = e / 2), base-2 logits s [16, BN]:
 *   mx[r]: this lane's row maximum over the tile → the quad's; m' = max(m, mx), μ = m' (0 while
 *   the row has seen only −inf, so 2^(−inf − 0) = 0), corr = 2^(m − μ);
 *   l ← l·corr + Σ_tile P, o[0 .. NO) ← o·corr, s ← P = 2^(s − μ); m ← m'. */
template <int BN, int NO>
__device__ __forceinline__ void g4_online_softmax(float (*s)[4], float (*o)[4], float m_r[2], float l_r[2],
                                                  float mx[2]) {
    float mu[2], corr[2];
#pragma unroll
    for (int r = 0; r < 2; r++) { /* the 4 lanes of a quad hold one row */
        mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
        mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
        float m_new = fmaxf(m_r[r], mx[r]);
        mu[r] = m_new == -INFINITY ? 0.0f : m_new;
        corr[r] = exp2f(m_r[r] - mu[r]);
        m_r[r] = m_new;
        l_r[r] *= corr[r];
    }
#pragma unroll
    for (int nb = 0; nb < NO; nb++) {
        o[nb][0] *= corr[0];
        o[nb][1] *= corr[0];
        o[nb][2] *= corr[1];
        o[nb][3] *= corr[1];
    }
#pragma unroll
    for (int nb = 0; nb < BN / 8; nb++) {
#pragma unroll
        for (int e = 0; e < 4; e++) {
            s[nb][e] = exp2f(s[nb][e] - mu[e >> 1]);
            l_r[e >> 1] += s[nb][e];
        }
    }
}

/* The sum of x over the 4 lanes of a C-fragment row (lanes 4r .. 4r + 3). */
__device__ __forceinline__ float g4_quad_sum(float x) {
    x += __shfl_xor_sync(0xffffffffu, x, 1);
    return x + __shfl_xor_sync(0xffffffffu, x, 2);
}

#endif
