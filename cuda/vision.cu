/* vision.cu — the vision tower's three ops (contracts in csrc/backend/backend.h): 2-D RoPE, the
 * bidirectional encoder attention over one image's patches, and the 3 × 3 pooler with
 * standardisation. bf16 in and out, f32 inside. The tower's other ops are the text model's
 * (norm.cu, gemm.cu, activation.cu, embed.cu).
 *
 * Roofline of one call (one layer) for an image of N patches at the real geometry (D = 1152, 16 heads × 72), H100 SXM
 * (3.35 TB/s HBM, ~60 TFLOP/s f32 CUDA cores, ~990 TFLOP/s dense bf16 tensor cores):
 *   rope_2d             bytes 2 · N·D·2 (read + write, q or k)   N = 10080: 46 MB → ~14 µs
 *   encoder_attention   FLOPs 4·N²·D (QKᵀ and P·V)              N = 10080: 4.7e11 → 7.8 ms on
 *                       CUDA cores, 0.47 ms at tensor-core peak; bytes from HBM 4·N·D·2 = 93 MB
 *                       (q, k, v, out) → 28 µs, so the op is compute-bound at every budget
 *   vision_pool         bytes N·D·2 + N/9·D·2                   N = 10080: 26 MB → ~8 µs
 * The attention runs on tensor cores where it can (g4_encoder_attention_mma_kernel: d ≤ 128, a
 * multiple of 8 — the real 72 padded to 80 — predicted 1.7–2.6 ms per layer at N = 10080,
 * unmeasured; its own comment below). The CUDA-core kernels stay as the fallback and the oracle
 * (backend option attn_path = SIMPLE pins them): for d ≤ 128 the query-tiled kernel (16 queries
 * of one head per block share each K/V tile staged in shared memory: K/V are read from L2
 * T/16 times instead of T times — at N = 10080, 16 heads, 27 layers that is 0.8 TB instead of
 * 12.6 TB of L2 reads per image), otherwise the simple one (one block per query and head). The
 * whole encoder's FLOPs and bytes per budget: docs/benchmarks.md ("Vision encoder").
 * Twin: csrc/backend/cpu/cpu_vision.c. Test: tests/gpu/test_gpu_vision.c. */
#include <cuda_fp16.h>

#include "ctx.cuh"
#include "pack.cuh"
#include "mma_tile.cuh"
#include "ptx.cuh"

#define G4_VIS_THREADS 128 /* attention: 4 warps; thread owns dims tid + r·128, r < 4 → d ≤ 512 */
#define G4_VIS_DPT 4
#define G4_VIS_KT 32 /* keys per tile */
#define G4_VIS_QT 16 /* tiled kernel: queries per block, one warp each (512 threads) */
#define G4_VIS_TILED_D 128 /* tiled kernel: largest head dim (K/V tiles in static shared memory) */

/* x[t,h,:] ← RoPE₂ in place, one thread per rotate-half pair:
 *   pair e of head (t, h), e < d/2: half = e / (m/2) (0: column px = pos[2t], 1: row py = pos[2t+1]),
 *   i = e % (m/2), m = d/2; (a, b) = (x[half·m + i], x[half·m + i + m/2]);
 *   θ = p · theta^(−2i/m);  (a, b) ← bf16(a cosθ − b sinθ), bf16(b cosθ + a sinθ)
 * x [T, n_heads, d] bf16; grid-stride over T·n_heads·d/2 pairs. */
static __global__ void g4_rope_2d_kernel(__nv_bfloat16 *x, const int32_t *pos, size_t n_pairs, int n_heads, int d,
                                         float log2_theta) {
    const int m = d / 2, mh = m / 2, per_head = d / 2;
    for (size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x; e < n_pairs; e += (size_t)gridDim.x * blockDim.x) {
        size_t th = e / per_head;
        int r = (int)(e % per_head), half = r / mh, i = r % mh;
        size_t t = th / n_heads;
        int p = pos[2 * t + half];
        __nv_bfloat16 *xh = x + th * d + (size_t)half * m;
        float a = g4_ld(xh, i), b = g4_ld(xh, i + mh), sn, cs;
        sincosf((float)p * g4_rope_inv_freq(i, m, log2_theta, mh), &sn, &cs);
        g4_st(xh, i, a * cs - b * sn);
        g4_st(xh, i + mh, b * cs + a * sn);
    }
}

/* For query t, head h, KV head g = h / (n_heads / n_kv):
 *   s_j = scale · q[t,h,:]·k[j,g,:] for every j < T (no mask);  online softmax over tiles of 32:
 *   m = max s, l = Σ exp(s − m), acc = Σ exp(s − m) v[j,g,:];  out[t,h,:] = bf16(acc / l)
 * q, out [T, n_heads, d], k, v [T, n_kv, d] bf16. grid (T, n_heads), 128 threads; static shared
 * q (d ≤ 512 floats) and one tile's scores. */
static __global__ void g4_encoder_attention_kernel(__nv_bfloat16 *out, const __nv_bfloat16 *q, const __nv_bfloat16 *k,
                                                   const __nv_bfloat16 *v, int T, int n_heads, int n_kv, int d,
                                                   float scale) {
    G4_SHARED(float, qs, [G4_VIS_THREADS * G4_VIS_DPT]);
    G4_SHARED(float, sc, [G4_VIS_KT]);
    const int t = blockIdx.x, h = blockIdx.y, g = h / (n_heads / n_kv);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;
    const __nv_bfloat16 *qh = q + ((size_t)t * n_heads + h) * d;
    for (int i = threadIdx.x; i < d; i += blockDim.x) qs[i] = g4_ld(qh, i);
    __syncthreads();
    float m = -INFINITY, l = 0.0f, acc[G4_VIS_DPT];
    for (int r = 0; r < G4_VIS_DPT; r++) acc[r] = 0.0f;
    for (int j0 = 0; j0 < T; j0 += G4_VIS_KT) {
        int n_in = min(G4_VIS_KT, T - j0);
        for (int kk = warp; kk < n_in; kk += n_warps) { /* one warp per key, lanes over d */
            const __nv_bfloat16 *kj = k + ((size_t)(j0 + kk) * n_kv + g) * d;
            float part = 0.0f;
            for (int i = lane; i < d; i += 32) part += qs[i] * g4_ld(kj, i);
            part = g4_warp_sum(part);
            if (lane == 0) sc[kk] = scale * part;
        }
        __syncthreads();
        float tmax = -INFINITY;
        for (int kk = 0; kk < n_in; kk++) tmax = fmaxf(tmax, sc[kk]);
        float m_new = fmaxf(m, tmax), corr = expf(m - m_new); /* m = −inf: corr = 0, acc and l are 0 */
        __syncthreads();                                      /* every thread has read the raw scores */
        if ((int)threadIdx.x < n_in) sc[threadIdx.x] = expf(sc[threadIdx.x] - m_new);
        __syncthreads();
        float ls = 0.0f;
        for (int kk = 0; kk < n_in; kk++) ls += sc[kk];
        l = l * corr + ls;
        for (int r = 0; r < G4_VIS_DPT; r++) {
            int i = threadIdx.x + r * G4_VIS_THREADS;
            if (i >= d) break;
            float a = acc[r] * corr;
            for (int kk = 0; kk < n_in; kk++) a += sc[kk] * g4_ld(v + ((size_t)(j0 + kk) * n_kv + g) * d, i);
            acc[r] = a;
        }
        m = m_new;
        __syncthreads(); /* sc is rewritten by the next tile */
    }
    __nv_bfloat16 *oh = out + ((size_t)t * n_heads + h) * d;
    for (int r = 0; r < G4_VIS_DPT; r++) {
        int i = threadIdx.x + r * G4_VIS_THREADS;
        if (i < d) g4_st(oh, i, acc[r] / l);
    }
}

/* The same contract for d ≤ 128, query-tiled: block (z, h) serves queries t = 16z + w (warp w)
 * of head h. Per tile of 32 keys j0..j0+31 of KV head g:
 *   Ks, Vs [32][d+1] f32 ← k, v (all 512 threads; row stride d+1 avoids bank conflicts)
 *   lane j: s_j = scale · Σ_i qs[w][i]·Ks[j][i];  warp: m' = max(m, max_j s_j), p_j = exp(s_j − m'),
 *   l = l·exp(m − m') + Σ_j p_j;  lane owns dims lane + 32r: acc = acc·exp(m − m') + Σ_j p_j·Vs[j][·]
 * out[t,h,:] = bf16(acc / l). A warp whose query is past T loads its share and idles. */
static __global__ void g4_encoder_attention_tiled_kernel(__nv_bfloat16 *out, const __nv_bfloat16 *q,
                                                         const __nv_bfloat16 *k, const __nv_bfloat16 *v, int T,
                                                         int n_heads, int n_kv, int d, float scale) {
    G4_SHARED(float, Ks, [G4_VIS_KT * (G4_VIS_TILED_D + 1)]);
    G4_SHARED(float, Vs, [G4_VIS_KT * (G4_VIS_TILED_D + 1)]);
    G4_SHARED(float, qs, [G4_VIS_QT * G4_VIS_TILED_D]);
    const int h = blockIdx.y, g = h / (n_heads / n_kv), lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    const int t = blockIdx.x * G4_VIS_QT + w, ld = d + 1;
    const bool active = t < T;
    float *qw = qs + w * G4_VIS_TILED_D;
    if (active)
        for (int i = lane; i < d; i += 32) qw[i] = g4_ld(q + ((size_t)t * n_heads + h) * d, i);
    float m = -INFINITY, l = 0.0f, acc[G4_VIS_TILED_D / 32];
    for (int r = 0; r < G4_VIS_TILED_D / 32; r++) acc[r] = 0.0f;
    for (int j0 = 0; j0 < T; j0 += G4_VIS_KT) {
        const int n_in = min(G4_VIS_KT, T - j0);
        __syncthreads(); /* the previous tile is consumed (and qs written, the first time) */
        for (int e = threadIdx.x; e < n_in * d; e += blockDim.x) {
            int j = e / d, i = e % d;
            size_t at = ((size_t)(j0 + j) * n_kv + g) * d + i;
            Ks[j * ld + i] = g4_ld(k, at);
            Vs[j * ld + i] = g4_ld(v, at);
        }
        __syncthreads();
        if (!active) continue;
        float s = -INFINITY;
        if (lane < n_in) {
            float dot = 0.0f;
            for (int i = 0; i < d; i++) dot += qw[i] * Ks[lane * ld + i];
            s = scale * dot;
        }
        float tmax = s;
        for (int o = 16; o > 0; o >>= 1) tmax = fmaxf(tmax, __shfl_xor_sync(0xffffffffu, tmax, o));
        const float m_new = fmaxf(m, tmax), corr = expf(m - m_new); /* m = −inf: corr = 0 */
        const float pj = lane < n_in ? expf(s - m_new) : 0.0f;
        l = l * corr + g4_warp_sum(pj);
        for (int r = 0; r < G4_VIS_TILED_D / 32; r++) acc[r] *= corr;
        for (int j = 0; j < n_in; j++) {
            float p = __shfl_sync(0xffffffffu, pj, j);
            for (int r = 0; r < G4_VIS_TILED_D / 32; r++) {
                int i = lane + 32 * r;
                if (i < d) acc[r] += p * Vs[j * ld + i];
            }
        }
        m = m_new;
    }
    if (!active) return;
    __nv_bfloat16 *oh = out + ((size_t)t * n_heads + h) * d;
    for (int r = 0; r < G4_VIS_TILED_D / 32; r++) {
        int i = lane + 32 * r;
        if (i < d) g4_st(oh, i, acc[r] / l);
    }
}

/* --- the tensor-core kernel ------------------------------------------------------------------
 * The same contract on tensor cores (mma.sync m16n8k16, fp16 operands → fp32 accumulate; sm_80+
 * PTX, built for sm_89 and sm_90a), modelled on attention_flash.cu without its paging, masks,
 * RoPE and GQA row packing. Needs d ≤ 128, d a multiple of 8 (16-byte rows), 16-byte aligned
 * q/k/v and the shared memory below; the launcher falls back to the CUDA-core kernels otherwise,
 * and always under the backend option attn_path = SIMPLE (the oracle path the tests pin).
 *
 * Math, for head h, KV head g = h / (n_heads / n_kv), DP = d rounded up to a multiple of 16:
 *   Q̂ [T, DP] = fp16(q[:, h, :]) | 0,  K̂, V̂ [T, DP] = fp16(k[:, g, :]), fp16(v[:, g, :]) | 0
 *     (columns d..DP−1 are zeros: they add nothing to Q̂K̂ᵀ, and O's padded columns are dropped)
 *   S = Q̂ K̂ᵀ [T, T] in fp32;  s2 = S · scale · log2 e  (keys j ≥ T of the last tile: −inf)
 *   per key tile of BN: m' = max(m, rowmax s2), P = exp2(s2 − m'), l = l·2^(m−m') + rowsum P,
 *     O = O·2^(m−m') + fp16(P) V̂  [T, DP]
 *   out[t, h, :] = bf16(O[t, :d] / l)
 * bf16 → fp16 is exact for |x| in [2^-14, 65504] (8 significant bits fit in 11; smaller values
 * keep an absolute error < 2^-25), so S is exact up to fp32 summation; the only rounding this
 * kernel adds is P to fp16 (2^-11 relative per element; l sums the unrounded P), and the output's
 * bf16 rounding. Error bound and its test: tests/gpu/test_gpu_vision.c.
 *
 * Block layout: one block = BM = 64 queries (t0 = 64·blockIdx.x) of one head (blockIdx.y); 4
 * warps, warp w owns query rows [16w, 16w + 16) over all of DP: its Q̂ A-fragments stay in
 * registers (DP/16 × 4 words), S for its rows and a tile of BN = 64 keys is BN/8 C-fragments, O
 * is DP/8 C-fragments (≤ 64 fp32 per lane). The K̂/V̂ tile is staged in shared memory by all 128
 * threads (bf16 → fp16, synchronous loads), read with ldmatrix (K̂ as the col-major B operand of
 * QKᵀ, V̂ transposed for P·V); P's C-fragments are repacked as A-fragments in registers.
 *
 * Shared memory (bytes; rows padded by 8 halves, P = DP + 8, so the 8 rows of an ldmatrix start
 * in 8 distinct 16-byte bank groups: a row is 16·(DP/8 + 1) bytes, an odd multiple of 16):
 *   Q̂ BM·P·2 + K̂ BN·P·2 + V̂ BN·P·2 = 192·P·2
 *   d 72 (DP 80): 11264 + 11264 + 11264 = 33792;  d 128: 17408 · 3 = 52224 (over the 48 KiB
 *   default: opted in, within sm_89's 99 KiB) — static_asserts below.
 *
 * Roofline (H100 SXM, 989 TFLOP/s dense fp16 at peak; mma.sync kernels of this shape — FA2-like,
 * no wgmma, synchronous loads — reach roughly 200–300 TFLOP/s there; UNMEASURED: no GPU here).
 * Tensor-core FLOPs per layer are 4·N²·heads·DP = 4·N²·16·80 (the padding costs 11 % over the
 * useful 4·N²·1152); exp2 count N²·16 on the SFUs (~3.9 T/s, overlapping the MMAs); K/V re-read
 * from L2 once per query block: N/64 · N · 2·72·2 B · 16 heads.
 *   N = 2520:  32.5 GFLOP → 0.11–0.16 ms per layer (0.033 ms at peak; CUDA cores ≥ 0.49 ms);
 *              640 blocks = 1.6 waves of 3 blocks/SM on 132 SMs (ptxas: 139 registers at DP 80
 *              on sm_90a, no spills — registers, not shared memory, bound the occupancy), so
 *              expect the high end; exp2 0.03 ms; L2 0.46 GB.
 *   N = 10080: 520 GFLOP → 1.7–2.6 ms per layer (0.53 ms at peak; CUDA cores ≥ 7.8 ms); exp2
 *              0.42 ms; L2 7.3 GB (~0.7 ms at ~10 TB/s: BM = 128 would halve it).
 * Is not: a wgmma/TMA kernel, pipelined (cp.async) loads, split-KV for small N. */
#define G4_VTC_WARPS 4
#define G4_VTC_BM (16 * G4_VTC_WARPS) /* queries per block */
#define G4_VTC_BN 64                  /* keys per tile */
#define G4_VTC_LOG2E 1.4426950408889634f

template <int DP> struct g4_vtc_cfg {
    static constexpr int P = DP + 8;
    static constexpr size_t SMEM = (size_t)(G4_VTC_BM + 2 * G4_VTC_BN) * P * 2;
    static_assert(DP % 16 == 0 && DP >= 16 && DP <= G4_VIS_TILED_D, "head dim padded to 16, at most 128");
    static_assert((P * 2) % 16 == 0 && ((P * 2) / 16) % 2 == 1, "16-byte rows, an odd number of bank groups");
    static_assert(G4_VTC_BN % 16 == 0, "key tile a multiple of the mma k");
};
static_assert(g4_vtc_cfg<80>::SMEM == 33792, "d 72: within the 48 KiB default");
static_assert(g4_vtc_cfg<112>::SMEM <= 48 * 1024, "d ≤ 112: within the 48 KiB default");
static_assert(g4_vtc_cfg<128>::SMEM == 52224 && g4_vtc_cfg<128>::SMEM <= 99 * 1024, "d 128: within sm_89's opt-in");

/* q, out [T, n_heads, d], k, v [T, n_kv, d] bf16, d ≤ DP < d + 16, d % 8 == 0;
 * grid (ceil(T/64), n_heads), 128 threads, dynamic shared g4_vtc_cfg<DP>::SMEM. */
template <int DP>
static __global__ void __launch_bounds__(32 * G4_VTC_WARPS)
    g4_encoder_attention_mma_kernel(__nv_bfloat16 *out, const __nv_bfloat16 *q, const __nv_bfloat16 *k,
                                    const __nv_bfloat16 *v, int T, int n_heads, int n_kv, int d, float scale_log2) {
    constexpr int P = g4_vtc_cfg<DP>::P, BM = G4_VTC_BM, BN = G4_VTC_BN, NC = DP / 8, THREADS = 32 * G4_VTC_WARPS;
    G4_SHARED_DYN(unsigned char, g4_vtc_smem);
    __half *Qs = (__half *)g4_vtc_smem; /* [BM][P] fp16 */
    __half *Ks = Qs + (size_t)BM * P;   /* [BN][P] fp16 */
    __half *Vs = Ks + (size_t)BN * P;   /* [BN][P] fp16 */
    const int h = blockIdx.y, g = h / (n_heads / n_kv), t0 = blockIdx.x * BM, dc = d / 8;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;

    /* 1. Q̂ tile (rows past T and columns past d: zeros), then this warp's A-fragments */
    for (int idx = tid; idx < BM * NC; idx += THREADS) {
        int r = idx / NC, c = idx % NC, t = t0 + r;
        uint4 w = make_uint4(0u, 0u, 0u, 0u);
        if (t < T && c < dc) w = *(const uint4 *)(q + ((size_t)t * n_heads + h) * d + c * 8);
        *(uint4 *)(Qs + (size_t)r * P + c * 8) = g4_bf8_to_h8(w);
    }
    __syncthreads();
    uint32_t qf[DP / 16][4];
    const __half *qa = Qs + (size_t)(16 * warp + (lane & 15)) * P + (lane >> 4) * 8;
#pragma unroll
    for (int kk = 0; kk < DP / 16; kk++) g4_ldsm_x4(qf[kk], qa + kk * 16);

    float o[DP / 8][4];
#pragma unroll
    for (int nb = 0; nb < DP / 8; nb++) o[nb][0] = o[nb][1] = o[nb][2] = o[nb][3] = 0.0f;
    float m_r[2] = {-INFINITY, -INFINITY}, l_r[2] = {0.0f, 0.0f}; /* rows lane/4 and lane/4 + 8 */
    const __half *kb = Ks + (size_t)((lane & 7) + (lane >> 4) * 8) * P + ((lane >> 3) & 1) * 8;
    const __half *vb = Vs + (size_t)((lane & 7) + ((lane >> 3) & 1) * 8) * P + (lane >> 4) * 8;

    for (int j0 = 0; j0 < T; j0 += BN) {
        __syncthreads(); /* every warp is done with the previous K̂/V̂ tile */
        /* 2. K̂/V̂ tile (keys past T and columns past d: zeros) */
        for (int idx = tid; idx < BN * NC; idx += THREADS) {
            int jj = idx / NC, c = idx % NC, j = j0 + jj;
            uint4 k4 = make_uint4(0u, 0u, 0u, 0u), v4 = k4;
            if (j < T && c < dc) {
                size_t at = ((size_t)j * n_kv + g) * d + c * 8;
                k4 = *(const uint4 *)(k + at);
                v4 = *(const uint4 *)(v + at);
            }
            *(uint4 *)(Ks + (size_t)jj * P + c * 8) = g4_bf8_to_h8(k4);
            *(uint4 *)(Vs + (size_t)jj * P + c * 8) = g4_bf8_to_h8(v4);
        }
        __syncthreads();

        /* 3. S = Q̂ K̂ᵀ for this warp's 16 rows × BN keys */
        float s[BN / 8][4];
#pragma unroll
        for (int nb = 0; nb < BN / 8; nb++) s[nb][0] = s[nb][1] = s[nb][2] = s[nb][3] = 0.0f;
#pragma unroll
        for (int kk = 0; kk < DP / 16; kk++) {
#pragma unroll
            for (int nb = 0; nb < BN / 8; nb += 2) {
                uint32_t b[4];
                g4_ldsm_x4(b, kb + (size_t)nb * 8 * P + kk * 16);
                g4_mma_f16(s[nb], qf[kk], b[0], b[1]);
                g4_mma_f16(s[nb + 1], qf[kk], b[2], b[3]);
            }
        }

        /* 4. online softmax in base 2 (keys past T: −inf; −inf guard as attention_flash.cu) */
        const int n_in = T - j0; /* keys of this tile below T (≥ BN on every tile but the last) */
        float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
        for (int nb = 0; nb < BN / 8; nb++) {
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int jj = nb * 8 + 2 * (lane & 3) + (e & 1);
                s[nb][e] = jj < n_in ? s[nb][e] * scale_log2 : -INFINITY;
                mx[e >> 1] = fmaxf(mx[e >> 1], s[nb][e]);
            }
        }
        g4_online_softmax<BN, DP / 8>(s, o, m_r, l_r, mx);

        /* 5. O += fp16(P) V̂; P's C-fragments repacked as A-fragments */
        g4_mma_pv<BN, DP / 8>(o, s, vb, P);
    }

    /* 6. out = O / l (l summed over the quad), columns < d, rows < T */
#pragma unroll
    for (int r = 0; r < 2; r++) l_r[r] = 1.0f / g4_quad_sum(l_r[r]); /* ≥ 1: the row maximum adds exp2(0) */
    const int tA = t0 + 16 * warp + (lane >> 2), tB = tA + 8;
    __nv_bfloat16 *oA = out + ((size_t)tA * n_heads + h) * d + 2 * (lane & 3);
    __nv_bfloat16 *oB = out + ((size_t)tB * n_heads + h) * d + 2 * (lane & 3);
#pragma unroll
    for (int nb = 0; nb < DP / 8; nb++) {
        if (nb < dc && tA < T) *(uint32_t *)(oA + nb * 8) = g4_pack_bf2(o[nb][0] * l_r[0], o[nb][1] * l_r[0]);
        if (nb < dc && tB < T) *(uint32_t *)(oB + nb * 8) = g4_pack_bf2(o[nb][2] * l_r[1], o[nb][3] * l_r[1]);
    }
}

/* y[o,:] = bf16((mult · (1/k²) Σ_{dr,dc<k} x[(r0+dr)·pw + c0+dc, :] − bias) ⊙ scale)
 *   o = pooled cell (row o / (pw/k), column o % (pw/k)), r0 = k·row, c0 = k·column; sums in the
 *   twin's order (dr, then dc). x [ph·pw, n], y [(ph/k)·(pw/k), n] bf16; bias, scale bf16 [n] or NULL.
 * grid: one block per pooled cell; 256 threads stride over n. */
static __global__ void g4_vision_pool_kernel(__nv_bfloat16 *y, const __nv_bfloat16 *x, int pw, int n, int k, float mult,
                                             const __nv_bfloat16 *bias, const __nv_bfloat16 *scale) {
    const int o = blockIdx.x, ow = pw / k, r0 = (o / ow) * k, c0 = (o % ow) * k;
    const float inv = 1.0f / (float)(k * k);
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        float sum = 0.0f;
        for (int dr = 0; dr < k; dr++)
            for (int dc = 0; dc < k; dc++) sum += g4_ld(x, ((size_t)(r0 + dr) * pw + c0 + dc) * n + i);
        float val = sum * inv * mult;
        if (bias) val -= g4_ld(bias, i);
        if (scale) val *= g4_ld(scale, i);
        g4_st(y, (size_t)o * n + i, val);
    }
}

int g4_cuda_rope_2d(void *ctx, void *x, const int32_t *pos, int T, int n_heads, int head_dim, float theta,
                    g4_error *err) {
    g4_cuda_ctx *c = (g4_cuda_ctx *)ctx;
    if (head_dim <= 0 || head_dim % 4) return g4_fail(err, "rope_2d: head_dim %d is not a multiple of 4", head_dim);
    if (!(theta > 1.0f)) return g4_fail(err, "rope_2d: theta %g", (double)theta);
    size_t n = (size_t)(T > 0 ? T : 0) * (size_t)(n_heads > 0 ? n_heads : 0) * (size_t)(head_dim / 2);
    if (n == 0) return 0;
    size_t blocks = (n + 255) / 256;
    G4_LAUNCH((unsigned)(blocks < 65536 ? blocks : 65536), 256, 0, g4_launch_stream(c), g4_rope_2d_kernel)
    ((__nv_bfloat16 *)x, pos, n, n_heads, head_dim, log2f(theta));
    G4_CHECK_LAUNCH();
    return 0;
}

template <int DP>
static int g4_vtc_launch(g4_cuda_ctx *c, void *out, const void *q, const void *k, const void *v, int T, int n_heads,
                         int n_kv_heads, int head_dim, float scale, g4_error *err) {
    const size_t smem = g4_vtc_cfg<DP>::SMEM;
    G4_CHECK(cudaFuncSetAttribute(g4_encoder_attention_mma_kernel<DP>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                  (int)smem));
    G4_LAUNCH(dim3(g4_ceil_div((size_t)T, G4_VTC_BM), (unsigned)n_heads), 32 * G4_VTC_WARPS, smem, g4_launch_stream(c),
              g4_encoder_attention_mma_kernel<DP>)
    ((__nv_bfloat16 *)out, (const __nv_bfloat16 *)q, (const __nv_bfloat16 *)k, (const __nv_bfloat16 *)v, T, n_heads,
     n_kv_heads, head_dim, scale * G4_VTC_LOG2E);
    G4_CHECK_LAUNCH();
    return 0;
}

/* Whether the tensor-core kernel takes this call: not pinned to the CUDA-core oracle, d ≤ 128 and
 * a multiple of 8, 16-byte aligned out/q/k/v, its shared memory within the device's opt-in limit. */
static int g4_vtc_fits(const g4_cuda_ctx *c, const void *out, const void *q, const void *k, const void *v,
                       int head_dim) {
    if (c->attn_path == G4_ATTN_SIMPLE || head_dim > G4_VIS_TILED_D || head_dim % 8) return 0;
    if (((uintptr_t)out | (uintptr_t)q | (uintptr_t)k | (uintptr_t)v) & 15) return 0;
    return (size_t)c->smem_optin >=
           (size_t)(G4_VTC_BM + 2 * G4_VTC_BN) * (size_t)(g4_ceil_div(head_dim, 16) * 16 + 8) * 2;
}

int g4_cuda_encoder_attention(void *ctx, void *out, const void *q, const void *k, const void *v, int T, int n_heads,
                              int n_kv_heads, int head_dim, float scale, g4_error *err) {
    g4_cuda_ctx *c = (g4_cuda_ctx *)ctx;
    if (T < 1 || n_heads < 1 || n_kv_heads < 1 || n_heads % n_kv_heads || head_dim < 1 ||
        head_dim > G4_VIS_THREADS * G4_VIS_DPT || n_heads > 65535)
        return g4_fail(err, "encoder_attention: T=%d heads=%d kv_heads=%d d=%d unsupported (d ≤ %d)", T, n_heads,
                       n_kv_heads, head_dim, G4_VIS_THREADS * G4_VIS_DPT);
    if (g4_vtc_fits(c, out, q, k, v, head_dim)) {
        switch ((head_dim + 15) / 16) {
        case 1: return g4_vtc_launch<16>(c, out, q, k, v, T, n_heads, n_kv_heads, head_dim, scale, err);
        case 2: return g4_vtc_launch<32>(c, out, q, k, v, T, n_heads, n_kv_heads, head_dim, scale, err);
        case 3: return g4_vtc_launch<48>(c, out, q, k, v, T, n_heads, n_kv_heads, head_dim, scale, err);
        case 4: return g4_vtc_launch<64>(c, out, q, k, v, T, n_heads, n_kv_heads, head_dim, scale, err);
        case 5: return g4_vtc_launch<80>(c, out, q, k, v, T, n_heads, n_kv_heads, head_dim, scale, err);
        case 6: return g4_vtc_launch<96>(c, out, q, k, v, T, n_heads, n_kv_heads, head_dim, scale, err);
        case 7: return g4_vtc_launch<112>(c, out, q, k, v, T, n_heads, n_kv_heads, head_dim, scale, err);
        default: return g4_vtc_launch<128>(c, out, q, k, v, T, n_heads, n_kv_heads, head_dim, scale, err);
        }
    }
    if (head_dim <= G4_VIS_TILED_D) {
        G4_LAUNCH(dim3(g4_ceil_div((size_t)T, G4_VIS_QT), (unsigned)n_heads), 32 * G4_VIS_QT, 0, g4_launch_stream(c),
                  g4_encoder_attention_tiled_kernel)
        ((__nv_bfloat16 *)out, (const __nv_bfloat16 *)q, (const __nv_bfloat16 *)k, (const __nv_bfloat16 *)v, T, n_heads,
         n_kv_heads, head_dim, scale);
        G4_CHECK_LAUNCH();
        return 0;
    }
    G4_LAUNCH(dim3((unsigned)T, (unsigned)n_heads), G4_VIS_THREADS, 0, g4_launch_stream(c), g4_encoder_attention_kernel)
    ((__nv_bfloat16 *)out, (const __nv_bfloat16 *)q, (const __nv_bfloat16 *)k, (const __nv_bfloat16 *)v, T, n_heads,
     n_kv_heads, head_dim, scale);
    G4_CHECK_LAUNCH();
    return 0;
}

int g4_cuda_vision_pool(void *ctx, void *y, const void *x, int ph, int pw, int n, int k, float mult,
                        const g4_weight *bias, const g4_weight *scale, g4_error *err) {
    g4_cuda_ctx *c = (g4_cuda_ctx *)ctx;
    if (k < 1 || ph < k || pw < k || ph % k || pw % k || n < 1)
        return g4_fail(err, "vision_pool: grid %d × %d, width %d, kernel %d", ph, pw, n, k);
    if (bias) G4_TRY(g4_cuda_check_weight(bias, "vision_pool std_bias", n, err));
    if (scale) G4_TRY(g4_cuda_check_weight(scale, "vision_pool std_scale", n, err));
    G4_LAUNCH((unsigned)((ph / k) * (pw / k)), 256, 0, g4_launch_stream(c), g4_vision_pool_kernel)
    ((__nv_bfloat16 *)y, (const __nv_bfloat16 *)x, pw, n, k, mult, bias ? (const __nv_bfloat16 *)bias->data : NULL,
     scale ? (const __nv_bfloat16 *)scale->data : NULL);
    G4_CHECK_LAUNCH();
    return 0;
}
