/* attention_decode.cu — split-KV decode attention over the paged KV cache: one block per
 * (query token, KV head, split) serving every query head of the GQA group, so each K/V (or U)
 * byte is read from memory once per group; cp.async multi-stage pipeline of key tiles into
 * shared memory; tensor-core mma.sync for QKᵀ and PV; log-sum-exp combine of the splits.
 *
 * Is: the decode path (chosen in attention.cu's g4_cuda_attention for steps with T ≤ n_seqs, i.e.
 * at most one token per sequence when every sequence of the step has a token), correct for any
 * packed step — each token is served on its own, with its own key range [lo, p] read from
 * pos[t] on the device — so a step that is not pure decode only loses K/V sharing between the
 * tokens of a chunk (attention_flash.cu does that). Graph-capturable: no host sync, no
 * allocation once the split-KV scratch has grown to the captured shape, grid and split count a
 * function of (T, n_kv, context bucket, SM count) only, the split count of the batch bucket of T
 * rather than T — see g4_attention_decode_splits.
 * Is not: a prefill kernel, a kernel for head dims other than 256 / 512 or GQA groups above 8
 * (attention.cu falls back to the simple kernel, the oracle), a fused-combine kernel.
 *
 * Twin: g4_cpu_attention (csrc/backend/cpu/cpu_attention.c); oracle on the GPU:
 * g4_attention_simple_kernel (attention.cu). Test: tests/gpu/test_gpu_attention_decode.c.
 * Bench: bench/kernels/bench_kernels.c "decode_attention".
 *
 * --- Math (one token t at position p of sequence sq; KV head g; G = n_heads / n_kv query heads)
 *   q      [T, n_heads, D] bf16          out [T, n_heads, D] bf16          D ∈ {256, 512}
 *   keys   j ∈ [lo, hi], lo = W > 0 ? max(0, p − W + 1) : 0   (W = 1024: the window includes p),
 *          hi = p, or on sliding layers inside an image soft-token run the run's end (key_end;
 *          such prefill steps take this kernel only when T ≤ n_seqs)
 *   K_j, V_j [D]: sliding  K_j = cache K[blk(j), j mod B, g], V_j = cache V[…]   (K already normed+roped)
 *                 k_eq_v   K_j = RoPE(U_j ⊙ k_norm, j), V_j = U_j, U_j = cache U[blk(j), j mod B, g]
 *   s[h, j] = q[t, gG+h, :] · K_j            h < G, scale 1.0 (Gemma 4), fp32
 *   out[t, gG+h, :] = Σ_j exp(s[h,j] − m_h) V_j / Σ_j exp(s[h,j] − m_h)     m_h = max_j s[h,j]
 *   split z of Z: the key tiles of [lo, p] are dealt out in Z contiguous runs; each block keeps
 *   {m_z, l_z, o_z[D]} per head (online softmax in base 2: s·log2 e) and the combine forms
 *   out = Σ_z 2^(m_z − M) o_z / Σ_z 2^(m_z − M) l_z,  M = max_z m_z (splits with no key skipped).
 *
 * --- Precision
 *   Sliding: q and K are bf16, so the bf16 mma's products are exact and QKᵀ is an fp32 sum (only
 *   the order differs from the simple kernel). k_eq_v: the 2·rp rotated dims of K are formed in
 *   shared memory in fp16 (rounding 2^-12; fp16 mma with q in fp16, exact for |q| < 65504); the
 *   pass-through dims use U straight from the tile against q ⊙ k_norm split into bf16 hi + lo
 *   (two mmas; error ≈ 2^-17 relative), so U is never rewritten. P is rounded to bf16 before PV
 *   (≤ 2^-9 relative per weight, l summed in fp32 from the unrounded values): ≤ 0.2 % of max|V|.
 *
 * --- Roofline (bytes that must come from memory per decode token per layer; q/out/partials are
 *   < 1 % and in L2). KV bytes = keys × n_kv × D × 2 B × (2 for K+V | 1 for U).
 *   31B sliding (16 kv × d256, K+V, window 1024): 4K ctx → 1024 keys × 16 × 256 × 2 × 2 = 16.8 MB
 *                                                 32K ctx → the same 16.8 MB (the window bounds it)
 *                                                 → 5.0 µs at 3.35 TB/s (H100 SXM), both contexts
 *   31B global  (4 kv × d512, U only):           4K ctx → 4096 × 4 × 512 × 2 = 16.8 MB → 5.0 µs
 *                                                32K ctx → 32768 × 4 × 512 × 2 = 134 MB → 40.1 µs
 *   (Storing K and V for the global layers would double that: 80 µs at 32K.) Per 31B token at 32K:
 *   50 × 5.0 + 10 × 40.1 = 651 µs of attention per decode step at batch 1 (vs ~18 ms of weights).
 *   Goals (issue 15): ≥ 80 % of the measured copy bandwidth at 32K, ≥ 70 % at 4K, i.e. ≤ 56 µs per
 *   global layer at 32K and ≤ 8.0 µs per layer at 4K on an H100 whose copy measures 3.0 TB/s. At 4K
 *   and batch 1 the ~2–4 µs of launch + combine latency is of the same order as the ideal time:
 *   batch ≥ 8 (or a CUDA graph) is where the 4K goal is meaningful.
 *   Compute: global d512 G = 8 needs 4·G·D = 16 K FLOP per key per 1 KB read = 16 FLOP/B →
 *   54 TFLOP/s at 3.35 TB/s, ~80 % of the H100's non-tensor fp32 FMA rate (67 TFLOP/s): why QKᵀ and PV run on
 *   tensor cores (16-row mma tiles with G ≤ 8 real rows: ≤ 2× the useful FLOPs, well within the
 *   mma rate). The 2·rp·BN RoPE rotations per tile use one sincosf per (pair, key group) and an
 *   angle-addition recurrence along the keys.
 *
 * --- Block layout (4 warps, BN = 32 keys per tile, STAGES tiles in shared memory)
 *   load      all 128 threads issue 16-byte cp.async for tile i + STAGES − 1 (zero-fill for keys
 *             outside the split's range or with no valid block, so garbage never reaches an mma);
 *             physical block offsets of a tile are computed once per KV block, STAGES tiles ahead
 *             (table entry fetched one iteration earlier still), by threads < BN/B into a small
 *             ring (B a power of two: shifts and masks, no divisions)
 *   QKᵀ       warp w: keys [8w, 8w+8) of the tile, all D dims; S [8 rows][BN] fp32 → shared
 *   softmax   warp w: rows w and w + 4 (rows ≥ G: P = 0), lane = key; P bf16 → shared, corr
 *   PV        warp w: output dims [w·D/4, (w+1)·D/4) for all BN keys (ldmatrix.trans of V / U)
 *   3 barriers per tile (4 on k_eq_v layers: K_rot is formed between the first two).
 *
 * Shared memory (bytes, PD = D + 8 halves per row against ldmatrix bank conflicts, R = 2·rp + 8):
 *   tiles STAGES·BN·PD·2·(2|1) + q 8·PD·2·(1|2) + q_rot 8·R·2 + k_rot BN·R·2 + k_norm/inv_freq
 *   + S 8·(BN+4)·4 + P 8·(BN+8)·2 + corr/m/l 3·8·4 + ring STAGES·32·8:
 *   sm_90 (STAGES 3, 227 KiB opt-in): d256 sliding 108256 B (2 blocks / SM), d512 k_eq_v rp 64 130784 B (1 / SM)
 *   sm_89 (STAGES 2,  99 KiB opt-in): d256 sliding  74208 B,                  d512 k_eq_v rp 64  97248 B
 * (g4_dec_layout_of; g4_cuda_attention_decode_supported checks the total against the device). */
#include <cuda_fp16.h>

#include "base/bucket.h"
#include "ctx.cuh"
#include "kv.cuh"
#include "ptx.cuh"

#define G4_DEC_THREADS 128
#define G4_DEC_BN 32          /* keys per tile (absolute positions, aligned to BN) */
#define G4_DEC_GMAX 8         /* query heads per KV head served by one block */
#define G4_DEC_MAX_SPLITS 64
#define G4_DEC_LOG2E 1.4426950408889634f
#define G4_DEC_SMEM_BIG 232448 /* 227 KiB (sm_90 opt-in): 3 stages */

/* Offsets (bytes) of the dynamic shared memory sections; the same on host and device. */
typedef struct g4_dec_layout {
    unsigned kv, q_hi, q_lo, q_rot, k_rot, kn, invf, s, p, corr, ml, ring, total;
} g4_dec_layout;

__host__ __device__ static inline unsigned g4_dec_up16(unsigned x) { return (x + 15u) & ~15u; }

__host__ __device__ static inline g4_dec_layout g4_dec_layout_of(int D, int single, int rp, int stages) {
    g4_dec_layout L;
    const unsigned PD = (unsigned)D + 8, R = 2u * (unsigned)rp + 8, BN = G4_DEC_BN;
    unsigned o = 0;
    L.kv = o;
    o += g4_dec_up16((unsigned)stages * BN * PD * 2u * (single ? 1u : 2u));
    L.q_hi = o;
    o += g4_dec_up16(8u * PD * 2u);
    L.q_lo = o;
    o += single ? g4_dec_up16(8u * PD * 2u) : 0u;
    L.q_rot = o;
    o += single ? g4_dec_up16(8u * R * 2u) : 0u;
    L.k_rot = o;
    o += single ? g4_dec_up16(BN * R * 2u) : 0u;
    L.kn = o;
    o += single ? g4_dec_up16(2u * (unsigned)rp * 4u) : 0u;
    L.invf = o;
    o += single ? g4_dec_up16((unsigned)rp * 4u) : 0u;
    L.s = o;
    o += g4_dec_up16(8u * (BN + 4) * 4u);
    L.p = o;
    o += g4_dec_up16(8u * (BN + 8) * 2u);
    L.corr = o;
    o += g4_dec_up16(8u * 4u);
    L.ml = o;
    o += g4_dec_up16(16u * 4u);
    L.ring = o;
    o += (unsigned)stages * BN * 8u;
    L.total = o;
    return L;
}

/* bf16x2 / fp16x2 words: lo in bits 0..15 (lower address / column), hi in 16..31. */
__device__ __forceinline__ uint32_t g4_dec_bf2(float lo, float hi) {
    return (uint32_t)__bfloat16_as_ushort(__float2bfloat16_rn(lo)) |
           ((uint32_t)__bfloat16_as_ushort(__float2bfloat16_rn(hi)) << 16);
}
__device__ __forceinline__ __half g4_dec_h(float v) { /* clamped: nothing becomes inf */
    return __float2half_rn(fminf(fmaxf(v, -65504.0f), 65504.0f));
}

/* Block (t = blockIdx.x, g = blockIdx.y, z = blockIdx.z), the math above.
 * n_splits == 1: out[t, gG+h, :] = bf16(o / l).
 * else partial[((t·n_heads + gG+h)·Z + z)·(D+2) + {0: m (base-2 units), 1: l, 2+i: o[i]}] f32.
 * lb = log2(block_size); rp = rotated pairs (k_eq_v; multiple of 16, 2·rp ≤ D). */
template <int D, int STAGES>
static __global__ void __launch_bounds__(G4_DEC_THREADS)
    g4_attention_decode_kernel(__nv_bfloat16 *out, float *partial, const __nv_bfloat16 *q, const __nv_bfloat16 *cache,
                               const __nv_bfloat16 *k_norm, g4_kv_dev kv, int lb, const int32_t *pos,
                               const int32_t *seq, const int32_t *key_end, const int32_t *table, int n_seqs,
                               int max_blocks, int n_heads, int window, float log2_theta, int rp) {
    constexpr int BN = G4_DEC_BN, PD = D + 8, HALF = D / 2, NB_PV = D / 32; /* n-blocks of 8 dims per warp */
    static_assert(D % 64 == 0, "head dim");
    const int single = kv.single, R = 2 * rp + 8;
    const g4_dec_layout L = g4_dec_layout_of(D, single, rp, STAGES);
    G4_SHARED_DYN(unsigned char, g4_dec_smem);
    __nv_bfloat16 *tiles = (__nv_bfloat16 *)(g4_dec_smem + L.kv); /* [STAGES][K|U (, V)][BN][PD] */
    __nv_bfloat16 *q_hi = (__nv_bfloat16 *)(g4_dec_smem + L.q_hi);  /* [8][PD] q (sliding) | hi(q⊙kn) */
    __nv_bfloat16 *q_lo = (__nv_bfloat16 *)(g4_dec_smem + L.q_lo);  /* [8][PD] lo(q⊙kn) (k_eq_v) */
    __half *q_rot = (__half *)(g4_dec_smem + L.q_rot);              /* [8][R] q on rotated dims */
    __half *k_rot = (__half *)(g4_dec_smem + L.k_rot);              /* [BN][R] K on rotated dims */
    float *kn_s = (float *)(g4_dec_smem + L.kn);                     /* [2rp] k_norm of rotated dims */
    float *invf = (float *)(g4_dec_smem + L.invf);                   /* [rp] */
    float *S = (float *)(g4_dec_smem + L.s);                         /* [8][BN+4] */
    __nv_bfloat16 *P = (__nv_bfloat16 *)(g4_dec_smem + L.p);         /* [8][BN+8] */
    float *corr = (float *)(g4_dec_smem + L.corr);                   /* [8] */
    float *ml = (float *)(g4_dec_smem + L.ml);                       /* [8][2] final m, l */
    long long *ring = (long long *)(g4_dec_smem + L.ring);           /* [STAGES][BN] block offsets */

    const int t = blockIdx.x, g = blockIdx.y, z = blockIdx.z, Z = gridDim.z;
    const int G = n_heads / kv.n_kv_heads, tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int B = kv.block_size, NBT = BN >> lb > 0 ? BN >> lb : 1; /* KV blocks per tile */
    const size_t slot_stride = (size_t)kv.n_kv_heads * D;           /* elements between slots */
    const size_t v_off = single ? 0 : (size_t)B * slot_stride;       /* V tensor inside a block */
    const size_t blk_elems = (size_t)(single ? 1 : 2) * B * slot_stride;

    /* 1. key range of this split (from the device-side position: graph replays stay valid) */
    const int p = pos[t], sq = seq[t];
    const int32_t *row = g4_kv_dev_row(table, sq, n_seqs, max_blocks);
    const int lo = window > 0 ? max(0, p - window + 1) : 0;
    int kb = 0, ke = 0, tile0 = 0, n_t = 0; /* keys [kb, ke), tiles tile0 .. tile0 + n_t − 1 (absolute) */
    if (row && p >= 0) {
        const int hi = g4_attn_key_hi(key_end, t, p, window);
        /* tiles dealt out evenly: split z gets [first + ⌊z·n/Z⌋, first + ⌊(z+1)·n/Z⌋) (empty only when n < Z) */
        int first = lo / BN, n_all = hi / BN - first + 1;
        tile0 = first + (int)((long long)z * n_all / Z);
        n_t = first + (int)((long long)(z + 1) * n_all / Z) - tile0;
        if (n_t > 0) {
            kb = max(lo, tile0 * BN);
            ke = min(hi + 1, (tile0 + n_t) * BN);
        }
    }

    /* 2. q rows of the group (rows G..7 zero), k_norm / inv_freq of the rotated dims */
    for (int idx = tid; idx < 8 * (D / 2); idx += G4_DEC_THREADS) {
        int r = idx / (D / 2), i = 2 * (idx % (D / 2));
        float a = 0.0f, b = 0.0f;
        if (r < G) {
            const __nv_bfloat16 *qh = q + ((size_t)t * n_heads + (size_t)g * G + r) * D;
            a = g4_ld(qh, i);
            b = g4_ld(qh, i + 1);
        }
        if (!single) {
            *(uint32_t *)(q_hi + r * PD + i) = g4_dec_bf2(a, b);
        } else {
            int rot = i < rp || (i >= HALF && i < HALF + rp);
            if (rot) {
                int col = i < rp ? i : i - HALF + rp;
                q_rot[r * R + col] = g4_dec_h(a);
                q_rot[r * R + col + 1] = g4_dec_h(b);
                *(uint32_t *)(q_hi + r * PD + i) = 0u;
                *(uint32_t *)(q_lo + r * PD + i) = 0u;
            } else {
                float qa = a * g4_ld(k_norm, i), qb = b * g4_ld(k_norm, i + 1);
                float ha = __bfloat162float(__float2bfloat16_rn(qa)), hb = __bfloat162float(__float2bfloat16_rn(qb));
                *(uint32_t *)(q_hi + r * PD + i) = g4_dec_bf2(ha, hb);
                *(uint32_t *)(q_lo + r * PD + i) = g4_dec_bf2(qa - ha, qb - hb);
            }
        }
    }
    if (single) {
        for (int i = tid; i < rp; i += G4_DEC_THREADS) {
            kn_s[i] = g4_ld(k_norm, i);
            kn_s[rp + i] = g4_ld(k_norm, HALF + i);
            invf[i] = g4_rope_inv_freq(i, D, log2_theta, rp);
        }
    }

    /* physical offsets of the KV blocks of local tile k (threads < NBT), or −1 for a block with no
     * key in [kb, ke) or no valid table entry (never read). Fetched one iteration before it is
     * stored into ring[k % STAGES], so the table load's latency hides behind a tile's compute. */
    auto ring_fetch = [&](int k) -> long long {
        long long off = -1;
        if (tid < NBT && k < n_t) {
            int j0 = (tile0 + k) * BN, bi = (j0 >> lb) + tid;
            int b_lo = max(j0, bi << lb), b_hi = min(j0 + BN, (bi + 1) << lb); /* keys of block bi in the tile */
            if (max(b_lo, kb) < min(b_hi, ke) && bi < max_blocks) {
                int blk = row[bi];
                if (blk >= 0 && blk < kv.n_blocks) off = (long long)((size_t)blk * blk_elems + (size_t)g * D);
            }
        }
        return off;
    };
    auto ring_put = [&](int k, long long off) {
        if (tid < NBT && k < n_t) ring[(k % STAGES) * BN + tid] = off;
    };
    /* cp.async of local tile k into stage k % STAGES (zero-fill outside [kb, ke) / invalid blocks) */
    auto issue = [&](int k) {
        if (k < n_t) {
            const int j0 = (tile0 + k) * BN, st = k % STAGES;
            __nv_bfloat16 *dst = tiles + (size_t)st * BN * PD * (single ? 1 : 2);
            const long long *rg = ring + st * BN;
            constexpr int CH = D / 8; /* 16-byte chunks per row */
            const int n_ch = BN * CH * (single ? 1 : 2);
            for (int idx = tid; idx < n_ch; idx += G4_DEC_THREADS) {
                int which = idx >= BN * CH, rem = idx - which * BN * CH, jj = rem / CH, c = rem % CH, j = j0 + jj;
                long long off = (j >= kb && j < ke) ? rg[(j >> lb) - (j0 >> lb)] : -1;
                const __nv_bfloat16 *src = cache;
                int bytes = 0;
                if (off >= 0) {
                    src = cache + (size_t)off + (size_t)(j & (B - 1)) * slot_stride + (which ? v_off : 0) + c * 8;
                    bytes = 16;
                }
                g4_cp_async16(dst + ((size_t)which * BN + jj) * PD + c * 8, src, bytes);
            }
        }
        g4_cp_async_commit(); /* always: the wait below counts groups */
    };

    for (int k = 0; k < STAGES; k++) ring_put(k, ring_fetch(k));
    __syncthreads(); /* ring, q, k_norm visible */
    for (int k = 0; k < STAGES - 1; k++) issue(k);

    float o[NB_PV][4];
#pragma unroll
    for (int nb = 0; nb < NB_PV; nb++) o[nb][0] = o[nb][1] = o[nb][2] = o[nb][3] = 0.0f;
    float m_r[2] = {-INFINITY, -INFINITY}, l_r[2] = {0.0f, 0.0f}; /* rows warp, warp + 4 (softmax owner) */
    const int gr = lane >> 2, tq = lane & 3; /* fragment row / column pair */

    for (int i = 0; i < n_t; i++) {
        g4_cp_async_wait<STAGES - 2>();
        __syncthreads(); /* [A] tile i landed for everyone; tile i − 1 fully consumed */
        issue(i + STAGES - 1);
        const long long next_off = ring_fetch(i + STAGES); /* stored after [C] */
        const int j0 = (tile0 + i) * BN, st = i % STAGES;
        const __nv_bfloat16 *Kt = tiles + (size_t)st * BN * PD * (single ? 1 : 2);
        const __nv_bfloat16 *Vt = single ? Kt : Kt + (size_t)BN * PD;

        if (single) { /* K on the rotated dims: RoPE(U ⊙ k_norm, j) in fp16 */
            const int KG = rp >= G4_DEC_THREADS ? 1 : G4_DEC_THREADS / rp;
            for (int it = tid; it < rp * KG; it += G4_DEC_THREADS) {
                int pi = it % rp, kg = it / rp;
                float f = invf[pi], sn, cs, sd, cd;
                sincosf((float)(j0 + kg) * f, &sn, &cs);
                sincosf((float)KG * f, &sd, &cd);
                float ka_n = kn_s[pi], kb_n = kn_s[rp + pi];
                for (int jj = kg; jj < BN; jj += KG) {
                    float a = g4_ld(Kt, (size_t)jj * PD + pi) * ka_n, b = g4_ld(Kt, (size_t)jj * PD + HALF + pi) * kb_n;
                    k_rot[jj * R + pi] = g4_dec_h(a * cs - b * sn);
                    k_rot[jj * R + rp + pi] = g4_dec_h(b * cs + a * sn);
                    float c2 = cs * cd - sn * sd;
                    sn = sn * cd + cs * sd;
                    cs = c2;
                }
            }
            __syncthreads(); /* [A'] k_rot complete */
        }

        /* QKᵀ: warp w → keys [8w, 8w+8); rows 0..7 of the 16-row A tile (8..15 are zero) */
        {
            float c[4] = {0.0f, 0.0f, 0.0f, 0.0f};
            const int kr = 8 * warp + (lane & 7), kc = ((lane >> 3) & 1) * 8; /* ldmatrix row address */
#pragma unroll 4
            for (int kk = 0; kk < D / 16; kk++) {
                const int d0 = kk * 16;
                uint32_t a[4], b[2];
                a[1] = a[3] = 0u;
                if (single && (d0 < rp || (d0 >= HALF && d0 < HALF + rp))) {
                    const int col = d0 < rp ? d0 : d0 - HALF + rp;
                    a[0] = *(const uint32_t *)(q_rot + gr * R + col + 2 * tq);
                    a[2] = *(const uint32_t *)(q_rot + gr * R + col + 8 + 2 * tq);
                    g4_ldsm_x2(b, k_rot + kr * R + col + kc);
                    g4_mma_f16(c, a, b[0], b[1]);
                } else {
                    g4_ldsm_x2(b, Kt + (size_t)kr * PD + d0 + kc);
                    a[0] = *(const uint32_t *)(q_hi + gr * PD + d0 + 2 * tq);
                    a[2] = *(const uint32_t *)(q_hi + gr * PD + d0 + 8 + 2 * tq);
                    g4_mma_bf16(c, a, b[0], b[1]);
                    if (single) {
                        a[0] = *(const uint32_t *)(q_lo + gr * PD + d0 + 2 * tq);
                        a[2] = *(const uint32_t *)(q_lo + gr * PD + d0 + 8 + 2 * tq);
                        g4_mma_bf16(c, a, b[0], b[1]);
                    }
                }
            }
            S[gr * (BN + 4) + 8 * warp + 2 * tq] = c[0];
            S[gr * (BN + 4) + 8 * warp + 2 * tq + 1] = c[1];
        }
        __syncthreads(); /* [B] S complete */

        /* online softmax, base 2: warp w owns rows w and w + 4; lane = key */
        {
            const int j = j0 + lane;
            const long long off = (j >= kb && j < ke) ? ring[st * BN + (j >> lb) - (j0 >> lb)] : -1;
#pragma unroll
            for (int h2 = 0; h2 < 2; h2++) {
                const int r = warp + 4 * h2;
                float s = (r < G && off >= 0) ? S[r * (BN + 4) + lane] * G4_DEC_LOG2E : -INFINITY;
                float mx = s;
                for (int o_ = 16; o_ > 0; o_ >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o_));
                float m_new = fmaxf(m_r[h2], mx);
                float mu = m_new == -INFINITY ? 0.0f : m_new; /* nothing valid yet: exp2(−inf − 0) = 0 */
                float pj = exp2f(s - mu), cr = exp2f(m_r[h2] - mu);
                l_r[h2] = l_r[h2] * cr + g4_warp_sum(pj);
                m_r[h2] = m_new;
                P[r * (BN + 8) + lane] = __float2bfloat16_rn(pj);
                if (lane == 0) corr[r] = r < G ? cr : 1.0f;
            }
        }
        __syncthreads(); /* [C] P, corr complete */
        ring_put(i + STAGES, next_off); /* ring slot i % STAGES is free now (read by the softmax above) */

        /* PV: warp w → output dims [w·D/4, (w+1)·D/4) */
        {
            const float cr = corr[gr];
#pragma unroll
            for (int nb = 0; nb < NB_PV; nb++) {
                o[nb][0] *= cr;
                o[nb][1] *= cr;
            }
            const int vr = (lane & 7) + ((lane >> 3) & 1) * 8, vc = warp * (D / 4) + (lane >> 4) * 8;
#pragma unroll
            for (int ks = 0; ks < BN / 16; ks++) {
                uint32_t a[4];
                a[0] = *(const uint32_t *)(P + gr * (BN + 8) + ks * 16 + 2 * tq);
                a[2] = *(const uint32_t *)(P + gr * (BN + 8) + ks * 16 + 8 + 2 * tq);
                a[1] = a[3] = 0u;
#pragma unroll
                for (int nb = 0; nb < NB_PV; nb += 2) {
                    uint32_t b[4];
                    g4_ldsm_x4_t(b, Vt + (size_t)(ks * 16 + vr) * PD + vc + nb * 8);
                    g4_mma_bf16(o[nb], a, b[0], b[1]);
                    g4_mma_bf16(o[nb + 1], a, b[2], b[3]);
                }
            }
        }
    }
    g4_cp_async_wait<0>(); /* the empty trailing groups */

    /* 3. epilogue: rows < G of this thread's fragment (row gr, dims 2tq, 2tq+1 of each n-block) */
    if (lane == 0) {
        ml[2 * warp] = m_r[0];
        ml[2 * warp + 1] = l_r[0];
        ml[2 * (warp + 4)] = m_r[1];
        ml[2 * (warp + 4) + 1] = l_r[1];
    }
    __syncthreads();
    if (gr < G) {
        const int h = g * G + gr;
        const float m = ml[2 * gr], l = ml[2 * gr + 1];
        const int d0 = warp * (D / 4) + 2 * tq;
        if (Z == 1) {
            const float inv_l = l > 0.0f ? 1.0f / l : 0.0f;
            __nv_bfloat16 *oh = out + ((size_t)t * n_heads + h) * D + d0;
#pragma unroll
            for (int nb = 0; nb < NB_PV; nb++)
                *(uint32_t *)(oh + nb * 8) = g4_dec_bf2(o[nb][0] * inv_l, o[nb][1] * inv_l);
        } else {
            float *pp = partial + (((size_t)t * n_heads + h) * Z + z) * (size_t)(D + 2);
            if (warp == 0 && tq == 0) *(float2 *)pp = make_float2(m, l);
#pragma unroll
            for (int nb = 0; nb < NB_PV; nb++) *(float2 *)(pp + 2 + d0 + nb * 8) = make_float2(o[nb][0], o[nb][1]);
        }
    }
}

/* out[t,h,:] = Σ_z 2^(m_z − M) o_z / Σ_z 2^(m_z − M) l_z,  M = max_z m_z; splits with m_z = −inf
 * (no key) are skipped; no key at all → 0. grid (T, n_heads), 128 threads, D/2 float2 per row. */
static __global__ void __launch_bounds__(G4_DEC_THREADS)
    g4_attention_decode_combine_kernel(__nv_bfloat16 *out, const float *partial, int n_heads, int D, int Z) {
    G4_SHARED(float, w, [G4_DEC_MAX_SPLITS]);
    G4_SHARED(float, inv_L, );
    const float *pp = partial + ((size_t)blockIdx.x * n_heads + blockIdx.y) * Z * (size_t)(D + 2);
    if (threadIdx.x < 32) {
        float M = -INFINITY;
        for (int zz = threadIdx.x; zz < Z; zz += 32) M = fmaxf(M, pp[(size_t)zz * (D + 2)]);
        for (int o_ = 16; o_ > 0; o_ >>= 1) M = fmaxf(M, __shfl_xor_sync(0xffffffffu, M, o_));
        float Lp = 0.0f;
        for (int zz = threadIdx.x; zz < Z; zz += 32) {
            float mz = pp[(size_t)zz * (D + 2)], wz = mz > -INFINITY ? exp2f(mz - M) : 0.0f;
            w[zz] = wz;
            Lp += wz * pp[(size_t)zz * (D + 2) + 1];
        }
        float L = g4_warp_sum(Lp);
        if (threadIdx.x == 0) inv_L = L > 0.0f ? 1.0f / L : 0.0f;
    }
    __syncthreads();
    __nv_bfloat16 *oh = out + ((size_t)blockIdx.x * n_heads + blockIdx.y) * D;
    for (int i = 2 * threadIdx.x; i < D; i += 2 * G4_DEC_THREADS) {
        float a0 = 0.0f, a1 = 0.0f;
        for (int zz = 0; zz < Z; zz++) {
            if (w[zz] == 0.0f) continue;
            float2 v = *(const float2 *)(pp + (size_t)zz * (D + 2) + 2 + i);
            a0 += w[zz] * v.x;
            a1 += w[zz] * v.y;
        }
        *(uint32_t *)(oh + i) = g4_dec_bf2(a0 * inv_L, a1 * inv_L);
    }
}

/* --- launcher ------------------------------------------------------------------------------ */

static int g4_dec_stages(const g4_cuda_ctx *c) { return c->smem_optin >= G4_DEC_SMEM_BIG ? 3 : 2; }

/* Split count Z (grid.z). Depends only on the batch bucket of T, the context bucket, n_kv, the
 * head geometry and the SM count — never on the exact positions or the exact T — so a CUDA graph
 * captured for a (batch bucket, context bucket) stays right and efficient for every step in it;
 * any Z is correct for any context because each block derives its key range from pos[t] on the
 * device.
 *   keys    = min(max_pos + 1, W or ∞)            the largest key range of the step
 *   bucket  = g4_bucket(keys), ≥ BN                the context bucket
 *   Tb      = g4_bucket(T)                         the batch bucket (base/bucket.h)
 *   want    = ceil(2 · n_sms / (Tb · n_kv))        2 blocks per SM in one wave
 *   min_len = max(2 · BN, 8 · G · (D+2) · 4 B / KV bytes per key, rounded up to BN)
 *             keeps the partials (written + read by the combine) ≤ 1/8 of the KV bytes
 *   Z       = clamp(want, 1, min(bucket / min_len, 64))
 * Why Tb and not T: Z fixes how a token's keys are cut into runs and so the order the combine
 * adds them in — a token's output depends on Z and on nothing else of the step (each block serves
 * one token). The model pads a decode step of T tokens to min(g4_bucket(T), cap) and its real
 * rows must equal the unpadded step's bit for bit; both have the same Tb (base/bucket.h), hence
 * the same Z; the context bucket is the same too (the graph's position bound rounds max_pos up
 * to a power of two, whose bucket is max_pos's). Cost: a step of T just above a power of two
 * gets the Z of up to 2T tokens, so down to half of the "2 blocks per SM" target: at least one
 * block per SM still (ceil, and T · n_kv · Z ≥ n_sms unless the context caps Z), and once
 * T · n_kv ≥ 2 · n_sms (31B sliding, 16 kv: T ≥ 17 on an H100) Z = 1 from T or from Tb: no
 * change at the large batches where attention is most of the time.
 * Worked examples (H100, 132 SMs → want = ceil(264 / (Tb·n_kv))):
 *   31B sliding (16 kv, G 2, d256: min_len 64), T = 1, 4K or 32K: bucket 1024 → Z = 16, 256 blocks
 *   31B global (4 kv, G 8, d512: min_len 160), T = 1, 32K: Z = 64 (cap) → 256 blocks of 512 keys
 *   31B global, T = 1, 4K: bucket 4096 → Z = 25 → 100 blocks of 5–6 tiles (160–192 keys)
 *   31B global, T = 5..8, 32K: want 9 → Z = 9 → 180..288 blocks;  T = 33..64: Z = 2 */
static int g4_attention_decode_splits(const g4_cuda_ctx *c, int T, int n_kv, int G, int D, int single, int keys) {
    int bucket = g4_bucket(keys);
    if (bucket < G4_DEC_BN) bucket = G4_DEC_BN;
    long base = (long)g4_bucket(T) * n_kv, want = (2L * c->n_sms + base - 1) / base;
    long kv_bytes_per_key = (long)D * 2 * (single ? 1 : 2), part = 8L * G * (D + 2) * 4;
    long min_len = (part + kv_bytes_per_key - 1) / kv_bytes_per_key;
    min_len = (min_len + G4_DEC_BN - 1) / G4_DEC_BN * G4_DEC_BN;
    if (min_len < 2 * G4_DEC_BN) min_len = 2 * G4_DEC_BN;
    long cap = bucket / min_len;
    if (cap > G4_DEC_MAX_SPLITS) cap = G4_DEC_MAX_SPLITS;
    if (want > cap) want = cap;
    return want < 1 ? 1 : (int)want;
}

int g4_cuda_attention_decode_supported(const g4_cuda_ctx *c, const g4_attn_geom *g, const g4_kv_layer *kv) {
    int D = g->head_dim, G = g->n_kv_heads > 0 ? g->n_heads / g->n_kv_heads : 0, B = kv->block_size;
    if ((D != 256 && D != 512) || G < 1 || G > G4_DEC_GMAX || g->n_heads != G * g->n_kv_heads) return 0;
    if (B <= 0 || (B & (B - 1))) return 0; /* power of two: shifts instead of divisions */
    int rp = g->k_eq_v ? g->rope.rotated_pairs : 0;
    if (g->k_eq_v && (rp <= 0 || rp % 16 || 2 * rp > D)) return 0;
    g4_dec_layout L = g4_dec_layout_of(D, !!g->k_eq_v, rp, g4_dec_stages(c));
    return (int)L.total <= c->smem_optin;
}

template <int D, int STAGES>
static int g4_dec_launch(g4_cuda_ctx *c, void *out, const void *q, const void *kn, const g4_attn_geom *g,
                         const g4_kv_layer *kv, const g4_step_dev *s, g4_error *err) {
    const int single = !!g->k_eq_v, rp = single ? g->rope.rotated_pairs : 0, G = g->n_heads / g->n_kv_heads;
    int keys = s->max_pos + 1; /* image runs: a sliding range reaches the run's end ≤ max_pos */
    if (g->window > 0 && !s->key_end && keys > g->window) keys = g->window;
    const int Z = g4_attention_decode_splits(c, s->n_tokens, g->n_kv_heads, G, D, single, keys);
    float *partial = NULL;
    if (Z > 1) {
        size_t bytes = (size_t)s->n_tokens * g->n_heads * Z * (size_t)(D + 2) * sizeof(float);
        G4_TRY(g4_cuda_scratch(c, G4_SCR_ATTN, bytes, (void **)&partial, err));
    }
    const g4_dec_layout L = g4_dec_layout_of(D, single, rp, STAGES);
    G4_CHECK(cudaFuncSetAttribute(g4_attention_decode_kernel<D, STAGES>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                  (int)L.total));
    int lb = 0;
    while ((1 << lb) < kv->block_size) lb++;
    g4_kv_dev kd = {kv->n_blocks, kv->block_size, kv->n_kv_heads, kv->head_dim, kv->single};
    const int32_t *table = g->window > 0 ? s->blocks_sliding : s->blocks_global;
    dim3 grid((unsigned)s->n_tokens, (unsigned)g->n_kv_heads, (unsigned)Z);
    G4_LAUNCH(grid, G4_DEC_THREADS, L.total, g4_launch_stream(c), g4_attention_decode_kernel<D, STAGES>)
    ((__nv_bfloat16 *)out, partial, (const __nv_bfloat16 *)q, (const __nv_bfloat16 *)kv->base,
     (const __nv_bfloat16 *)kn, kd, lb, s->pos, s->seq, s->key_end, table, s->n_seqs, s->max_blocks, g->n_heads,
     g->window, single ? (float)log2(g->rope.theta) : 0.0f, rp);
    G4_CHECK_LAUNCH();
    if (Z > 1) {
        G4_LAUNCH(dim3((unsigned)s->n_tokens, (unsigned)g->n_heads), G4_DEC_THREADS, 0, g4_launch_stream(c),
                  g4_attention_decode_combine_kernel)
        ((__nv_bfloat16 *)out, partial, g->n_heads, D, Z);
        G4_CHECK_LAUNCH();
    }
    return 0;
}

int g4_cuda_attention_decode(g4_cuda_ctx *c, void *out, const void *q, const g4_weight *k_norm, const g4_attn_geom *g,
                             const g4_kv_layer *kv, const g4_step_dev *s, g4_error *err) {
    if (!g4_cuda_attention_decode_supported(c, g, kv))
        return g4_fail(err, "attention_decode: layer %d: d=%d, %d/%d heads, B=%d not supported", g->layer, g->head_dim,
                       g->n_heads, g->n_kv_heads, kv->block_size);
    const void *kn = g->k_eq_v ? k_norm->data : NULL;
    uintptr_t al = (uintptr_t)out | (uintptr_t)q | (uintptr_t)kv->base | (uintptr_t)kn;
    if (al & 15) return g4_fail(err, "attention_decode: layer %d: q/out/cache/k_norm not 16-byte aligned", g->layer);
    if (s->n_tokens <= 0) return 0;
    const int big = g4_dec_stages(c) == 3;
    if (g->head_dim == 256)
        return big ? g4_dec_launch<256, 3>(c, out, q, kn, g, kv, s, err)
                   : g4_dec_launch<256, 2>(c, out, q, kn, g, kv, s, err);
    return big ? g4_dec_launch<512, 3>(c, out, q, kn, g, kv, s, err)
               : g4_dec_launch<512, 2>(c, out, q, kn, g, kv, s, err);
}
