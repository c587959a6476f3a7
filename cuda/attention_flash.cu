/* attention_flash.cu — tiled flash-attention for prefill over the paged KV cache, on tensor
 * cores (mma.sync m16n8k16, fp16 operands → fp32 accumulate; sm_80+ PTX, built for sm_89 and
 * sm_90a).
 *
 * Operand type: q, K, V arrive as bf16 and are converted to fp16 when staged in shared memory.
 * That is exact for |x| in [2^-14, 65504] (bf16's 8-bit mantissa fits fp16's 11; smaller values
 * keep an absolute error < 2^-25; larger ones are clamped — normed activations never get there),
 * and it makes the two roundings this kernel adds 8× smaller than bf16 would: K formed on the fly
 * from U (k_eq_v layers; 2^-12 instead of 2^-9 relative per element, which at d = 512 and peaked
 * softmaxes is the difference between ~0.1 % and ~1 % of max|out|) and P before P·V.
 *
 * One block = one tile of TT consecutive packed tokens × the G query heads of one KV head
 * (GQA group packed into M: BM = TT·G query rows), so each K/V tile is read from the cache
 * once per group. Keys are walked in tiles of BN through the block table; online softmax in
 * fp32 with exp2 and a −inf guard; scale 1.0. Global k_eq_v layers form the K tile on the fly
 * from the one cached tensor U (K = RoPE(U ⊙ k_norm), V = U).
 *
 * Is: correct for any packed step (tokens of several sequences in one tile are handled by one
 * pass per sequence present); fast when a tile's tokens are one prefill chunk.
 * Is not: the decode path (attention.cu keeps the simple split-KV kernel, the oracle and the
 * fallback; it decides when to call this), a wgmma/TMA (FA3-style) kernel, pipelined loads.
 *
 * Roofline (per (query token, key) pair: QKᵀ 2·d + PV 2·d FLOPs per query head → 4·heads·d;
 * bytes: Q and O once, K/V once per KV head and tile of queries):
 *   sliding d256, 32 heads: 32768 FLOP/pair; 4K prefill Σ min(p+1,1024) = 3.67 M pairs
 *     → 0.120 TFLOP, bytes ≥ Q 64 MiB + KV 64 MiB + O 64 MiB = 0.2 GB → 0.24 ms at 500 TFLOP/s
 *     vs 0.07 ms at 3 TB/s: compute-bound (AI ≈ 600 FLOP/B > H100 ridge ≈ 295).
 *   global d512, 32 heads: 65536 FLOP/pair; 16K prefill 134 M pairs → 8.8 TFLOP; the cache is
 *     re-read per query tile (through L2): 16K/8 tiles × 8K keys × 1 KiB × 4 heads ≈ 69 GB of
 *     L2→SM traffic at BM = 64, compute at 500 TFLOP/s = 17.6 ms: compute-bound if L2 keeps up.
 *   H100: 989 TFLOP/s peak dense bf16 (780 measured for matmul). mma.sync kernels of this shape
 *   (FA2-like, no wgmma, synchronous loads) reach roughly 250–350 TFLOP/s on H100; that is the
 *   expectation here (unmeasured). The issue's 550 / 450 TFLOP/s goals need wgmma + TMA.
 *
 * Block layout: 2·RG warps; warp w owns query rows [16·(w/2), +16) and head-dim half w%2.
 * S = Q Kᵀ: each warp of a pair sums over its half of d, the pair adds the two partials
 * through shared memory (a + b == b + a, so both hold identical S and identical softmax state);
 * O = P V: each warp accumulates its half of the output dims (d/2 fp32 per row).
 *
 * Shared memory (bytes; rows padded by 8 halves against ldmatrix bank conflicts, P = d + 8):
 *   Q BM·P·2 + K BN·P·2 + V BN·P·2 + S-exchange 2RG·16·BN·4 + k_norm d·4 + inv_freq d/2·4
 *   + metadata (6·BM + BN)·4
 *   big   (sm_90, 227 KiB opt-in): d256 RG 4 BN 64: 33792+33792+33792+32768+1024+512+1792 = 137472
 *                                  d512 RG 4 BN 32: 66560+33280+33280+16384+2048+1024+1664 = 154240
 *   small (sm_89, 99 KiB opt-in):  d256 RG 4 BN 32: 33792+16896+16896+16384+1024+512+1664 =  87168
 *                                  d512 RG 2 BN 16: 33280+16640+16640+ 4096+2048+1024+ 832 =  74560
 * (static_asserts below.)
 * Twin: g4_cpu_attention (csrc/backend/cpu/cpu_attention.c); oracle on the GPU: attention.cu.
 * Test: tests/gpu/test_gpu_attention_fast.c. Bench: bench/kernels/bench_kernels.c "prefill_attention". */
#include <limits.h>

#include <cuda_fp16.h>

#include "ctx.cuh"
#include "kv.cuh"
#include "pack.cuh"
#include "mma_tile.cuh"
#include "ptx.cuh"

#define G4_FA_LOG2E 1.4426950408889634f
#define G4_FA_SMEM_SM90 232448 /* 227 KiB: sm_90 opt-in limit per block */
#define G4_FA_SMEM_SM89 101376 /*  99 KiB: sm_89 opt-in limit per block */

template <int D, int RG, int BN> struct g4_fa_cfg {
    static constexpr int NW = 2 * RG, THREADS = 64 * RG, BM = 16 * RG, DH = D / 2, P = D + 8;
    static constexpr size_t Q_BYTES = (size_t)BM * P * 2, KV_BYTES = (size_t)BN * P * 2,
                            SX_BYTES = (size_t)NW * 16 * BN * 4, KN_BYTES = (size_t)D * 4,
                            IF_BYTES = (size_t)(D / 2) * 4, META_BYTES = (size_t)(6 * BM + BN) * 4;
    static constexpr size_t SMEM = Q_BYTES + 2 * KV_BYTES + SX_BYTES + KN_BYTES + IF_BYTES + META_BYTES;
    static_assert(D % 32 == 0 && BN % 16 == 0 && DH % 16 == 0, "tile shapes");
    static_assert(sizeof(__half) == 2, "16-bit operands");
    static_assert(Q_BYTES % 16 == 0 && KV_BYTES % 16 == 0 && SX_BYTES % 16 == 0, "16-byte aligned sections");
};

static_assert(g4_fa_cfg<256, 4, 64>::SMEM == 137472 && g4_fa_cfg<256, 4, 64>::SMEM <= G4_FA_SMEM_SM90, "d256 big");
static_assert(g4_fa_cfg<512, 4, 32>::SMEM == 154240 && g4_fa_cfg<512, 4, 32>::SMEM <= G4_FA_SMEM_SM90, "d512 big");
static_assert(g4_fa_cfg<256, 4, 32>::SMEM == 87168 && g4_fa_cfg<256, 4, 32>::SMEM <= G4_FA_SMEM_SM89, "d256 small");
static_assert(g4_fa_cfg<512, 2, 16>::SMEM == 74560 && g4_fa_cfg<512, 2, 16>::SMEM <= G4_FA_SMEM_SM89, "d512 small");

/* --- the kernel ---------------------------------------------------------------------------- */

/* Tile: KV head g = blockIdx.y, tokens [t0, t0 + TT), TT = BM / G, row r ↔ (t0 + r/G, head g·G + r%G).
 * For row r (token t, pos p, seq sq, lo = window ? max(0, p−window+1) : 0) and keys j ∈ [lo, hi]
 * of sequence sq, hi = p or, on sliding layers inside an image soft-token run, the run's end
 * (key_end, g4_attn_key_hi):
 *   s_j = q[t,h,:] · K_j     (scale 1.0)  K_j = cache K (sliding) | RoPE(U_j ⊙ k_norm, j) (single)
 *   out[t,h,:] = Σ_j exp2(s_j·log2e − m) V_j / Σ_j exp2(s_j·log2e − m)    V_j = cache V | U_j
 * Tokens with no valid sequence or no keys get 0 (as the simple kernel).
 * q, out [T, n_heads, D] bf16; grid (ceil(T/TT), n_kv); 64·RG threads; dynamic shared SMEM. */
template <int D, int RG, int BN>
static __global__ void __launch_bounds__(64 * RG, 1)
    g4_attention_flash_kernel(__nv_bfloat16 *out, const __nv_bfloat16 *q, const __nv_bfloat16 *cache,
                              const __nv_bfloat16 *k_norm, g4_kv_dev kv, const int32_t *pos, const int32_t *seq,
                              const int32_t *key_end, const int32_t *table, int n_tokens, int n_seqs, int max_blocks,
                              int n_heads, int window, float log2_theta, int rotated_pairs) {
    typedef g4_fa_cfg<D, RG, BN> C;
    constexpr int BM = C::BM, P = C::P, DH = C::DH, THREADS = C::THREADS, HALF = D / 2;
    G4_SHARED_DYN(unsigned char, g4_fa_smem);
    __half *Qs = (__half *)g4_fa_smem;                 /* [BM][P] fp16 */
    __half *Ks = Qs + (size_t)BM * P;                  /* [BN][P] fp16 */
    __half *Vs = Ks + (size_t)BN * P;                  /* [BN][P] fp16 */
    float *Sx = (float *)(Vs + (size_t)BN * P);        /* [NW][BN/8][32 lanes][4] S partials */
    float *kn = Sx + C::NW * 16 * BN;                  /* [D]   k_norm (single) */
    float *invf = kn + D;                              /* [D/2] RoPE inverse frequencies (single) */
    int *t_hi = (int *)(invf + HALF), *t_seq = t_hi + BM, *t_lo = t_seq + BM; /* per token: keys [lo, hi] */
    int *ps_seq = t_lo + BM, *ps_lo = ps_seq + BM, *ps_hi = ps_lo + BM;          /* per pass */
    int *k_ok = ps_hi + BM;                                                       /* [BN] */
    G4_SHARED(int, n_pass, );

    const int G = n_heads / kv.n_kv_heads, TT = BM / G, g = blockIdx.y;
    const int t0 = (int)(gridDim.x - 1 - blockIdx.x) * TT; /* last tiles (most keys) start first */
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, rg = warp >> 1, hf = warp & 1;

    /* 1. token metadata, k_norm / inv_freq, the Q tile */
    for (int i = tid; i < TT; i += THREADS) {
        int t = t0 + i, p = -1, hi = -1, sq = -1;
        if (t < n_tokens) {
            p = pos[t];
            hi = g4_attn_key_hi(key_end, t, p, window);
            sq = seq[t];
            if (sq < 0 || sq >= n_seqs) sq = -1;
        }
        t_hi[i] = hi;
        t_seq[i] = sq;
        t_lo[i] = window > 0 ? max(0, p - window + 1) : 0;
    }
    if (kv.single) {
        for (int i = tid; i < D; i += THREADS) kn[i] = g4_ld(k_norm, i);
        for (int i = tid; i < HALF; i += THREADS) invf[i] = g4_rope_inv_freq(i, D, log2_theta, rotated_pairs);
    }
    for (int idx = tid; idx < BM * (D / 8); idx += THREADS) {
        int r = idx / (D / 8), c = idx % (D / 8), t = t0 + r / G;
        uint4 v = make_uint4(0u, 0u, 0u, 0u);
        if (t < n_tokens) v = *(const uint4 *)(q + ((size_t)t * n_heads + (size_t)g * G + r % G) * D + c * 8);
        *(uint4 *)(Qs + (size_t)r * P + c * 8) = g4_bf8_to_h8(v);
    }
    __syncthreads();
    /* 2. one pass per distinct sequence in the tile, key range = union of its tokens' ranges */
    if (tid == 0) {
        int n = 0;
        for (int i = 0; i < TT; i++) {
            int sq = t_seq[i], k = 0;
            if (sq < 0) continue;
            while (k < n && ps_seq[k] != sq) k++;
            if (k == n) {
                ps_seq[n] = sq;
                ps_lo[n] = t_lo[i];
                ps_hi[n] = t_hi[i];
                n++;
            } else {
                ps_lo[k] = min(ps_lo[k], t_lo[i]);
                ps_hi[k] = max(ps_hi[k], t_hi[i]);
            }
        }
        n_pass = n;
    }
    __syncthreads();

    /* this thread's two rows of the fragment layout: r0 = 16·rg + lane/4, r1 = r0 + 8 */
    const int r0 = 16 * rg + (lane >> 2), r1 = r0 + 8;
    const int hi0 = t_hi[r0 / G], sq0 = t_seq[r0 / G], lo0 = t_lo[r0 / G];
    const int hi1 = t_hi[r1 / G], sq1 = t_seq[r1 / G], lo1 = t_lo[r1 / G];

    float o[DH / 8][4];
#pragma unroll
    for (int nb = 0; nb < DH / 8; nb++) o[nb][0] = o[nb][1] = o[nb][2] = o[nb][3] = 0.0f;
    float m_r[2] = {-INFINITY, -INFINITY}, l_r[2] = {0.0f, 0.0f};

    for (int ps = 0; ps < n_pass; ps++) {
        const int sq = ps_seq[ps], klo = ps_lo[ps], khi = ps_hi[ps];
        const int32_t *row = g4_kv_dev_row(table, sq, n_seqs, max_blocks);
        /* key range of this warp's 16 rows in this pass (identical for the two warps of a pair) */
        int w_lo = INT_MAX, w_hi = -1;
        if (sq0 == sq) w_lo = min(w_lo, lo0), w_hi = max(w_hi, hi0);
        if (sq1 == sq) w_lo = min(w_lo, lo1), w_hi = max(w_hi, hi1);
        for (int o_ = 16; o_ > 0; o_ >>= 1) {
            w_lo = min(w_lo, __shfl_xor_sync(0xffffffffu, w_lo, o_));
            w_hi = max(w_hi, __shfl_xor_sync(0xffffffffu, w_hi, o_));
        }

        for (int j0 = klo; j0 <= khi; j0 += BN) {
            __syncthreads(); /* every warp is done with the previous K/V tile */
            /* 3. K/V tile [BN keys] through the block table (zeros + k_ok = 0 where missing) */
            for (int jj = tid; jj < BN; jj += THREADS)
                k_ok[jj] = j0 + jj <= khi && g4_kv_dev_block(kv, row, max_blocks, j0 + jj) >= 0;
            if (!kv.single) {
                for (int idx = tid; idx < BN * (D / 8); idx += THREADS) {
                    int jj = idx / (D / 8), c = idx % (D / 8), j = j0 + jj;
                    int blk = j <= khi ? g4_kv_dev_block(kv, row, max_blocks, j) : -1;
                    uint4 k4 = make_uint4(0u, 0u, 0u, 0u), v4 = k4;
                    if (blk >= 0) {
                        k4 = *(const uint4 *)(cache + g4_kv_dev_offset(kv, blk, j % kv.block_size, g, 0) + c * 8);
                        v4 = *(const uint4 *)(cache + g4_kv_dev_offset(kv, blk, j % kv.block_size, g, 1) + c * 8);
                    }
                    *(uint4 *)(Ks + (size_t)jj * P + c * 8) = g4_bf8_to_h8(k4);
                    *(uint4 *)(Vs + (size_t)jj * P + c * 8) = g4_bf8_to_h8(v4);
                }
            } else {
                /* dims [c·8, c·8+8) and their rotate-half partners [HALF + c·8, …) */
                for (int idx = tid; idx < BN * (HALF / 8); idx += THREADS) {
                    int jj = idx / (HALF / 8), c = idx % (HALF / 8), j = j0 + jj;
                    int blk = j <= khi ? g4_kv_dev_block(kv, row, max_blocks, j) : -1;
                    uint4 ua = make_uint4(0u, 0u, 0u, 0u), ub = ua;
                    if (blk >= 0) {
                        const __nv_bfloat16 *u = cache + g4_kv_dev_offset(kv, blk, j % kv.block_size, g, 0);
                        ua = *(const uint4 *)(u + c * 8);
                        ub = *(const uint4 *)(u + HALF + c * 8);
                    }
                    *(uint4 *)(Vs + (size_t)jj * P + c * 8) = g4_bf8_to_h8(ua);
                    *(uint4 *)(Vs + (size_t)jj * P + HALF + c * 8) = g4_bf8_to_h8(ub);
                    const uint32_t wa[4] = {ua.x, ua.y, ua.z, ua.w}, wb[4] = {ub.x, ub.y, ub.z, ub.w};
                    uint32_t ka[4], kb[4];
#pragma unroll
                    for (int e = 0; e < 4; e++) {
                        float a2[2] = {g4_bf_lo(wa[e]), g4_bf_hi(wa[e])}, b2[2] = {g4_bf_lo(wb[e]), g4_bf_hi(wb[e])};
                        float ra[2], rb[2];
#pragma unroll
                        for (int h = 0; h < 2; h++) {
                            int i = c * 8 + 2 * e + h;
                            float a = a2[h] * kn[i], b = b2[h] * kn[i + HALF], f = invf[i], sn = 0.0f, cs = 1.0f;
                            if (f != 0.0f) sincosf((float)j * f, &sn, &cs);
                            ra[h] = a * cs - b * sn;
                            rb[h] = b * cs + a * sn;
                        }
                        ka[e] = g4_pack_h2(ra[0], ra[1]);
                        kb[e] = g4_pack_h2(rb[0], rb[1]);
                    }
                    *(uint4 *)(Ks + (size_t)jj * P + c * 8) = make_uint4(ka[0], ka[1], ka[2], ka[3]);
                    *(uint4 *)(Ks + (size_t)jj * P + HALF + c * 8) = make_uint4(kb[0], kb[1], kb[2], kb[3]);
                }
            }
            __syncthreads();

            /* 4. partial S over this warp's half of d; skipped when no row of the pair sees the tile */
            const bool active = w_lo <= w_hi && j0 <= w_hi && j0 + BN - 1 >= w_lo;
            float s[BN / 8][4];
            if (active) {
#pragma unroll
                for (int nb = 0; nb < BN / 8; nb++) s[nb][0] = s[nb][1] = s[nb][2] = s[nb][3] = 0.0f;
                const __half *qa = Qs + (size_t)(16 * rg + (lane & 15)) * P + hf * DH + (lane >> 4) * 8;
                const __half *kb = Ks + (size_t)((lane & 7) + (lane >> 4) * 8) * P + hf * DH + ((lane >> 3) & 1) * 8;
#pragma unroll 4
                for (int kk = 0; kk < DH / 16; kk++) {
                    uint32_t a[4];
                    g4_ldsm_x4(a, qa + kk * 16);
#pragma unroll
                    for (int nb = 0; nb < BN / 8; nb += 2) {
                        uint32_t b[4];
                        g4_ldsm_x4(b, kb + (size_t)nb * 8 * P + kk * 16);
                        g4_mma_f16(s[nb], a, b[0], b[1]);
                        g4_mma_f16(s[nb + 1], a, b[2], b[3]);
                    }
                }
                float4 *mine = (float4 *)(Sx + warp * 16 * BN);
#pragma unroll
                for (int nb = 0; nb < BN / 8; nb++)
                    mine[nb * 32 + lane] = make_float4(s[nb][0], s[nb][1], s[nb][2], s[nb][3]);
            }
            __syncthreads(); /* partials of both warps of every pair are in Sx */
            if (!active) continue;

            /* 5. full S = mine + partner's; mask; online softmax (exp2, −inf guard) */
            const float4 *other = (const float4 *)(Sx + (warp ^ 1) * 16 * BN);
            float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
            for (int nb = 0; nb < BN / 8; nb++) {
                float4 v = other[nb * 32 + lane];
                float pv[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    int jj = nb * 8 + 2 * (lane & 3) + (e & 1), j = j0 + jj;
                    bool ok =
                        k_ok[jj] && (e < 2 ? (sq0 == sq && j >= lo0 && j <= hi0) : (sq1 == sq && j >= lo1 && j <= hi1));
                    s[nb][e] = ok ? (s[nb][e] + pv[e]) * G4_FA_LOG2E : -INFINITY;
                    mx[e >> 1] = fmaxf(mx[e >> 1], s[nb][e]);
                }
            }
            g4_online_softmax<BN, DH / 8>(s, o, m_r, l_r, mx);

            /* 6. O[:, half] += P · V[:, half]; P's C fragments reused as A fragments (fp16) */
            const __half *vb = Vs + (size_t)((lane & 7) + ((lane >> 3) & 1) * 8) * P + hf * DH + (lane >> 4) * 8;
            g4_mma_pv<BN, DH / 8>(o, s, vb, P);
        }
    }

    /* 7. out = O / l (l summed over the quad; l = 0 → 0) */
#pragma unroll
    for (int h = 0; h < 2; h++) {
        float l = g4_quad_sum(l_r[h]);
        l_r[h] = l > 0.0f ? 1.0f / l : 0.0f;
    }
    const int tA = t0 + r0 / G, tB = t0 + r1 / G;
    __nv_bfloat16 *oA = out + ((size_t)tA * n_heads + (size_t)g * G + r0 % G) * D + hf * DH + 2 * (lane & 3);
    __nv_bfloat16 *oB = out + ((size_t)tB * n_heads + (size_t)g * G + r1 % G) * D + hf * DH + 2 * (lane & 3);
#pragma unroll
    for (int nb = 0; nb < DH / 8; nb++) {
        if (tA < n_tokens) *(uint32_t *)(oA + nb * 8) = g4_pack_bf2(o[nb][0] * l_r[0], o[nb][1] * l_r[0]);
        if (tB < n_tokens) *(uint32_t *)(oB + nb * 8) = g4_pack_bf2(o[nb][2] * l_r[1], o[nb][3] * l_r[1]);
    }
}

/* --- launcher ------------------------------------------------------------------------------ */

/* Tile config per head dim: the big tiles where the device grants ≥ 227 KiB of shared memory
 * per block (sm_90), else the small ones (sm_89's 99 KiB). */
static int g4_fa_rows(const g4_cuda_ctx *c, int d) {
    int big = c->smem_optin >= G4_FA_SMEM_SM90;
    return d == 256 ? 64 : big ? 64 : 32;
}

int g4_cuda_attention_flash_supported(const g4_cuda_ctx *c, const g4_attn_geom *g) {
    int d = g->head_dim, G = g->n_kv_heads > 0 ? g->n_heads / g->n_kv_heads : 0;
    if ((d != 256 && d != 512) || G <= 0) return 0;
    if (c->smem_optin < G4_FA_SMEM_SM89) return 0;
    return g4_fa_rows(c, d) % G == 0;
}

template <int D, int RG, int BN>
static int g4_fa_launch(g4_cuda_ctx *c, void *out, const void *q, const void *kn, const g4_attn_geom *g,
                        const g4_kv_layer *kv, const g4_step_dev *s, g4_error *err) {
    typedef g4_fa_cfg<D, RG, BN> C;
    int G = g->n_heads / g->n_kv_heads, TT = C::BM / G;
    G4_CHECK(cudaFuncSetAttribute(g4_attention_flash_kernel<D, RG, BN>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                  (int)C::SMEM));
    g4_kv_dev kd = {kv->n_blocks, kv->block_size, kv->n_kv_heads, kv->head_dim, kv->single};
    const int32_t *table = g->window > 0 ? s->blocks_sliding : s->blocks_global;
    dim3 grid(g4_ceil_div((size_t)s->n_tokens, (size_t)TT), (unsigned)g->n_kv_heads);
    G4_LAUNCH(grid, C::THREADS, C::SMEM, g4_launch_stream(c), g4_attention_flash_kernel<D, RG, BN>)
    ((__nv_bfloat16 *)out, (const __nv_bfloat16 *)q, (const __nv_bfloat16 *)kv->base, (const __nv_bfloat16 *)kn, kd,
     s->pos, s->seq, s->key_end, table, s->n_tokens, s->n_seqs, s->max_blocks, g->n_heads, g->window,
     g->k_eq_v ? (float)log2(g->rope.theta) : 0.0f, g->k_eq_v ? g->rope.rotated_pairs : 0);
    G4_CHECK_LAUNCH();
    return 0;
}

int g4_cuda_attention_flash(g4_cuda_ctx *c, void *out, const void *q, const g4_weight *k_norm, const g4_attn_geom *g,
                            const g4_kv_layer *kv, const g4_step_dev *s, g4_error *err) {
    if (!g4_cuda_attention_flash_supported(c, g))
        return g4_fail(err, "attention_flash: layer %d: d=%d, %d/%d heads not supported", g->layer, g->head_dim,
                       g->n_heads, g->n_kv_heads);
    const void *kn = g->k_eq_v ? k_norm->data : NULL;
    uintptr_t al = (uintptr_t)out | (uintptr_t)q | (uintptr_t)kv->base | (uintptr_t)kn;
    if (al & 15) return g4_fail(err, "attention_flash: layer %d: q/out/cache/k_norm not 16-byte aligned", g->layer);
    int big = c->smem_optin >= G4_FA_SMEM_SM90;
    if (g->head_dim == 256)
        return big ? g4_fa_launch<256, 4, 64>(c, out, q, kn, g, kv, s, err)
                   : g4_fa_launch<256, 4, 32>(c, out, q, kn, g, kv, s, err);
    return big ? g4_fa_launch<512, 4, 32>(c, out, q, kn, g, kv, s, err)
               : g4_fa_launch<512, 2, 16>(c, out, q, kn, g, kv, s, err);
}
