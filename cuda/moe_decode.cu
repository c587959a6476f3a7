/* moe_decode.cu — the routed experts of a MoE layer for decode / small batches (1 ≤ T ≤ 64):
 * weight streaming on CUDA cores, with no host synchronisation (capturable in a CUDA graph).
 *
 *   1. sort     one block: (token, expert) pairs grouped by expert on the device; the list of
 *               experts hit (deduplicated across the batch) with their row offsets and counts
 *   2. gate_up  blocks over (expert hit, tile of 8 intermediate rows): one warp per row i
 *               computes G_e[i]·x and U_e[i]·x for every token routed to e, GeGLU in the
 *               epilogue → act[pair, I] (bf16)
 *   3. down     blocks over (expert hit, tile of 32 output rows): 8 lanes per row compute
 *               D_e[h]·act for every pair of e → ys[pair, H] (f32 partials, no atomics)
 *   4. combine  y[t] = Σ_j w[t,j] · ys[pair(t,j)] summed in j order: deterministic
 *
 * The grids are sized on the host for the worst case (min(T·k, E) experts hit); blocks past
 * the device's count of experts hit leave at once. BF16 weights, FP32 accumulation, 16-byte
 * loads (G4_MD_UNROLL of them in flight per lane), warp-shuffle reductions.
 *
 * Roofline (26B-A4B: E=128, k=8, I=704, H=2816; H100 SXM 3.35 TB/s, 132 SMs):
 *   bytes  = experts hit × 3·I·H·2 = experts hit × 11.89 MB (activations < 1 MB, ignored)
 *   FLOPs  = 2 · T·k · 3·I·H      = T · 95.2 MFLOP
 *   T=1:  8 experts     →   95.2 MB →  28.4 µs at 3.35 TB/s;   95 MFLOP
 *   T=8:  ≈52 (uniform routing; ≤ 64) → 0.62 GB → 185 µs (≤ 227 µs);  0.76 GFLOP
 *   T=64: ≈126 (≤ 128)  →  1.50 GB → 447 µs (≤ 454 µs);  6.1 GFLOP (≈103 µs of FP32 FMA peak,
 *         so still memory-bound, though the CUDA cores run at ≈ 1/4 of their peak there)
 * Fixed costs on top: four launches (≈ 2–3 µs each back to back, less inside a graph).
 * Not here: the simple grouped path used for large T and as the oracle (moe_experts.cu).
 * Twin: g4_cpu_moe_experts (csrc/backend/cpu/cpu_moe.c); oracle on the GPU: moe_experts.cu.
 * Test: tests/gpu/test_gpu_moe_fast.c. Bench: bench/kernels/bench_kernels.c "moe_layer". */
#include "ctx.cuh"

#define G4_MD_WARPS 8    /* warps per block (gate_up and down) */
#define G4_MD_UNROLL 4   /* 16-byte weight loads in flight per lane (over all its rows) */
#define G4_MD_MAX_NT 8   /* tokens per chunk held in shared memory (one accumulator each) */
#define G4_MD_DOWN_LPR 8 /* lanes per output row in the down kernel (4 rows per warp) */
#define G4_MD_SMEM_MAX (48 * 1024)

/* bf16 pair in one 32-bit word: the element at the lower address is the low half. */
__device__ __forceinline__ float g4_md_lo(uint32_t v) { return __uint_as_float(v << 16); }
__device__ __forceinline__ float g4_md_hi(uint32_t v) { return __uint_as_float(v & 0xffff0000u); }

/* a + Σ_{j<8} w_j · x_j of two 8-element bf16 vectors */
__device__ __forceinline__ float g4_md_fma8(uint4 w, uint4 x, float a) {
    a = fmaf(g4_md_lo(w.x), g4_md_lo(x.x), a);
    a = fmaf(g4_md_hi(w.x), g4_md_hi(x.x), a);
    a = fmaf(g4_md_lo(w.y), g4_md_lo(x.y), a);
    a = fmaf(g4_md_hi(w.y), g4_md_hi(x.y), a);
    a = fmaf(g4_md_lo(w.z), g4_md_lo(x.z), a);
    a = fmaf(g4_md_hi(w.z), g4_md_hi(x.z), a);
    a = fmaf(g4_md_lo(w.w), g4_md_lo(x.w), a);
    a = fmaf(g4_md_hi(w.w), g4_md_hi(x.w), a);
    return a;
}

/* acc[r][t] += Σ_{v ≡ sub (mod LPR), v < nvec} W_r[v] · xs[t·nvec + v]
 * over 16-byte vectors v (8 bf16 each): W_r are NR weight rows in global memory (nvec vectors
 * each), xs holds NT rows in shared memory. The caller reduces acc over the LPR lanes. */
template <int NR, int NT, int LPR>
__device__ __forceinline__ void g4_md_dot(float (&acc)[NR][NT], const uint4 *const (&w)[NR], const uint4 *xs, int nvec,
                                          int sub) {
    constexpr int U = G4_MD_UNROLL / NR; /* steps per iteration: NR·U loads in flight */
#pragma unroll 1
    for (int v0 = sub; v0 < nvec; v0 += LPR * U) {
        uint4 wv[NR][U];
#pragma unroll
        for (int u = 0; u < U; u++) {
            int v = v0 + u * LPR;
#pragma unroll
            for (int r = 0; r < NR; r++) wv[r][u] = v < nvec ? __ldg(w[r] + v) : make_uint4(0u, 0u, 0u, 0u);
        }
#pragma unroll
        for (int u = 0; u < U; u++) {
            int v = v0 + u * LPR;
            if (v < nvec) {
#pragma unroll
                for (int t = 0; t < NT; t++) {
                    uint4 xv = xs[t * nvec + v];
#pragma unroll
                    for (int r = 0; r < NR; r++) acc[r][t] = g4_md_fma8(wv[r][u], xv, acc[r][t]);
                }
            }
        }
    }
}
static_assert(G4_MD_UNROLL % 2 == 0, "g4_md_dot splits the unroll over 1 or 2 rows");

/* Tokens per shared-memory chunk, rounded up to the template sizes 1, 2, 4, 8. */
__device__ __forceinline__ int g4_md_bucket(int nt) { return nt <= 1 ? 1 : nt <= 2 ? 2 : nt <= 4 ? 4 : 8; }

/* ---- 1. sort ------------------------------------------------------------------------------
 * P = T·k pairs q = t·k + j, expert ids[q] (ids outside [0,E) are dropped, as in the simple path):
 *   cnt[e]                    #pairs of expert e;  off[e] = Σ_{e'<e} cnt[e']
 *   a_e/a_off/a_cnt[a]        the a-th expert with cnt > 0 (ascending id), a < meta[0]
 *   meta[0] = experts hit, meta[1] = valid pairs
 *   src[r] = q, inv[q] = r    r = off[e] + #{q' < q : ids[q'] = e}  (stable), inv −1 if dropped
 * One block; dynamic shared (P + 2E) int32. Counts by shared atomics (order-free, so exact);
 * scans by warp 0 (each lane a contiguous run of ⌈E/32⌉ experts); ranks O(P) per pair. */
static __global__ void g4_md_sort_kernel(int32_t *meta, int32_t *a_e, int32_t *a_off, int32_t *a_cnt, int32_t *src,
                                         int32_t *inv, const int32_t *ids, int P, int E) {
    G4_SHARED_DYN(int32_t, g4_md_sort_sm);
    int32_t *s_ids = g4_md_sort_sm, *cnt = s_ids + P, *off = cnt + E;
    for (int q = threadIdx.x; q < P; q += blockDim.x) {
        int e = ids[q];
        s_ids[q] = e >= 0 && e < E ? e : -1;
    }
    for (int e = threadIdx.x; e < E; e += blockDim.x) cnt[e] = 0;
    __syncthreads();
    for (int q = threadIdx.x; q < P; q += blockDim.x)
        if (s_ids[q] >= 0) atomicAdd(&cnt[s_ids[q]], 1);
    __syncthreads();
    if (threadIdx.x < 32) {
        int lane = threadIdx.x, C = (E + 31) / 32;
        int e0 = min(lane * C, E), e1 = min(e0 + C, E), n = 0, na = 0;
        for (int e = e0; e < e1; e++) {
            n += cnt[e];
            na += cnt[e] > 0;
        }
        int sn = n, sa = na; /* inclusive prefix sums over lanes */
        for (int o = 1; o < 32; o <<= 1) {
            int tn = __shfl_up_sync(0xffffffffu, sn, o), ta = __shfl_up_sync(0xffffffffu, sa, o);
            if (lane >= o) {
                sn += tn;
                sa += ta;
            }
        }
        int pn = sn - n, pa = sa - na;
        for (int e = e0; e < e1; e++) {
            off[e] = pn;
            if (cnt[e] > 0) {
                a_e[pa] = e;
                a_off[pa] = pn;
                a_cnt[pa] = cnt[e];
                pa++;
            }
            pn += cnt[e];
        }
        if (lane == 31) {
            meta[0] = sa;
            meta[1] = sn;
        }
    }
    __syncthreads();
    for (int q = threadIdx.x; q < P; q += blockDim.x) {
        int e = s_ids[q];
        if (e < 0) {
            inv[q] = -1;
            continue;
        }
        int rank = 0;
        for (int p = 0; p < q; p++) rank += s_ids[p] == e;
        int r = off[e] + rank;
        src[r] = q;
        inv[q] = r;
    }
}

/* ---- 2. gate_up + GeGLU ---------------------------------------------------------------------
 * For expert hit a (e = a_e[a]), intermediate row i = tile·8 + warp, and each of its pairs
 * r ∈ [off, off + cnt) with token t = src[r] / k:
 *   act[r, i] = bf16( gelu_tanh(G_e[i] · x[t]) · (U_e[i] · x[t]) )
 *   G_e[i] = gate_up[e, i, :], U_e[i] = gate_up[e, I + i, :]       x [T,H], act [P,I] bf16
 * grid: (min(P,E) · tiles) blocks, tiles = ⌈I/8⌉; 256 threads; dynamic shared cap·H bf16
 * (x rows of up to cap ≤ 8 pairs at a time; more pairs loop over chunks). */
template <int NT>
__device__ __forceinline__ void g4_md_gate_up_chunk(__nv_bfloat16 *act, const uint4 *g, const uint4 *u, const uint4 *xs,
                                                    int nvec, int lane, size_t row0, int nt, int i, int I, bool valid) {
    float acc[2][NT];
#pragma unroll
    for (int t = 0; t < NT; t++) acc[0][t] = acc[1][t] = 0.0f;
    const uint4 *const w[2] = {g, u};
    g4_md_dot<2, NT, 32>(acc, w, xs, nvec, lane);
#pragma unroll
    for (int t = 0; t < NT; t++) {
        acc[0][t] = g4_warp_sum(acc[0][t]);
        acc[1][t] = g4_warp_sum(acc[1][t]);
    }
    if (lane == 0 && valid) {
#pragma unroll
        for (int t = 0; t < NT; t++)
            if (t < nt) g4_st(act, (row0 + t) * I + i, g4_gelu_tanh(acc[0][t]) * acc[1][t]);
    }
}

/* (256, 3): ≤ 80 registers so three blocks fit an SM (83 unbounded rounds to two); ptxas
 * reports 4 bytes of spill for it, outside the inner loop. */
static __global__ void __launch_bounds__(G4_MD_WARPS * 32, 3)
    g4_md_gate_up_kernel(__nv_bfloat16 *act, const __nv_bfloat16 *x, const __nv_bfloat16 *Wgu, const int32_t *meta,
                         const int32_t *a_e, const int32_t *a_off, const int32_t *a_cnt, const int32_t *src, int H,
                         int I, int k, int cap, int tiles) {
    G4_SHARED_DYN(uint4, g4_md_gu_sm);
    const int a = blockIdx.x / tiles, tile = blockIdx.x % tiles;
    if (a >= meta[0]) return; /* block-uniform: fewer experts hit than the grid allows */
    const int e = a_e[a], off = a_off[a], cnt = a_cnt[a];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, nvec = H / 8;
    const int i = tile * G4_MD_WARPS + warp;
    const bool valid = i < I;
    const int ic = valid ? i : I - 1; /* idle warps read a real row and store nothing */
    const uint4 *g = (const uint4 *)(Wgu + ((size_t)e * 2 * I + ic) * H);
    const uint4 *u = (const uint4 *)(Wgu + ((size_t)e * 2 * I + I + ic) * H);
    uint4 *xs = g4_md_gu_sm;
    for (int c0 = 0; c0 < cnt; c0 += cap) {
        const int nt = min(cap, cnt - c0), nb = g4_md_bucket(nt);
        __syncthreads(); /* the previous chunk's readers are done with xs */
        for (int v = threadIdx.x; v < nb * nvec; v += blockDim.x) {
            int t = v / nvec, kv = v - t * nvec;
            uint4 val = make_uint4(0u, 0u, 0u, 0u);
            if (t < nt) val = __ldg((const uint4 *)(x + (size_t)(src[off + c0 + t] / k) * H) + kv);
            xs[v] = val;
        }
        __syncthreads();
        const size_t row0 = (size_t)off + c0;
        switch (nb) {
        case 1: g4_md_gate_up_chunk<1>(act, g, u, xs, nvec, lane, row0, nt, i, I, valid); break;
        case 2: g4_md_gate_up_chunk<2>(act, g, u, xs, nvec, lane, row0, nt, i, I, valid); break;
        case 4: g4_md_gate_up_chunk<4>(act, g, u, xs, nvec, lane, row0, nt, i, I, valid); break;
        default: g4_md_gate_up_chunk<8>(act, g, u, xs, nvec, lane, row0, nt, i, I, valid); break;
        }
    }
}

/* ---- 3. down ---------------------------------------------------------------------------------
 * For expert hit a (e = a_e[a]), output row h = tile·32 + warp·4 + lane/8, and each pair r of e:
 *   ys[r, h] = D_e[h] · act[r]          D_e = down[e] [H,I]; act [P,I] bf16; ys [P,H] f32
 * 8 lanes per row (an I=704 row is 88 16-byte vectors: 11 per lane). grid: (min(P,E) · ⌈H/32⌉)
 * blocks; 256 threads; dynamic shared cap·I bf16 (the act rows of e are contiguous). */
template <int NT>
__device__ __forceinline__ void g4_md_down_chunk(float *ys, const uint4 *w, const uint4 *xs, int nvec, int sub,
                                                 size_t row0, int nt, int h, int H, bool valid) {
    float acc[1][NT];
#pragma unroll
    for (int t = 0; t < NT; t++) acc[0][t] = 0.0f;
    const uint4 *const wr[1] = {w};
    g4_md_dot<1, NT, G4_MD_DOWN_LPR>(acc, wr, xs, nvec, sub);
#pragma unroll
    for (int t = 0; t < NT; t++)
        for (int o = G4_MD_DOWN_LPR / 2; o > 0; o >>= 1) acc[0][t] += __shfl_xor_sync(0xffffffffu, acc[0][t], o);
    if (sub == 0 && valid) {
#pragma unroll
        for (int t = 0; t < NT; t++)
            if (t < nt) ys[(row0 + t) * H + h] = acc[0][t];
    }
}

static __global__ void __launch_bounds__(G4_MD_WARPS * 32)
    g4_md_down_kernel(float *ys, const __nv_bfloat16 *act, const __nv_bfloat16 *Wd, const int32_t *meta,
                      const int32_t *a_e, const int32_t *a_off, const int32_t *a_cnt, int H, int I, int cap,
                      int tiles) {
    G4_SHARED_DYN(uint4, g4_md_down_sm);
    const int a = blockIdx.x / tiles, tile = blockIdx.x % tiles;
    if (a >= meta[0]) return; /* block-uniform */
    const int e = a_e[a], off = a_off[a], cnt = a_cnt[a];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, nvec = I / 8;
    const int rows_per_warp = 32 / G4_MD_DOWN_LPR;
    const int h = (tile * G4_MD_WARPS + warp) * rows_per_warp + lane / G4_MD_DOWN_LPR, sub = lane % G4_MD_DOWN_LPR;
    const bool valid = h < H;
    const int hc = valid ? h : H - 1;
    const uint4 *w = (const uint4 *)(Wd + ((size_t)e * H + hc) * I);
    const uint4 *act_v = (const uint4 *)act;
    uint4 *xs = g4_md_down_sm;
    for (int c0 = 0; c0 < cnt; c0 += cap) {
        const int nt = min(cap, cnt - c0), nb = g4_md_bucket(nt);
        __syncthreads();
        for (int v = threadIdx.x; v < nb * nvec; v += blockDim.x)
            xs[v] = v < nt * nvec ? act_v[((size_t)off + c0) * nvec + v] : make_uint4(0u, 0u, 0u, 0u);
        __syncthreads();
        const size_t row0 = (size_t)off + c0;
        switch (nb) {
        case 1: g4_md_down_chunk<1>(ys, w, xs, nvec, sub, row0, nt, h, H, valid); break;
        case 2: g4_md_down_chunk<2>(ys, w, xs, nvec, sub, row0, nt, h, H, valid); break;
        case 4: g4_md_down_chunk<4>(ys, w, xs, nvec, sub, row0, nt, h, H, valid); break;
        default: g4_md_down_chunk<8>(ys, w, xs, nvec, sub, row0, nt, h, H, valid); break;
        }
    }
}

/* ---- 4. combine ------------------------------------------------------------------------------
 * y[t, h] = bf16( Σ_{j<k, inv[t·k+j] ≥ 0} weights[t,j] · ys[inv[t·k+j], h] )   (j ascending)
 * ys [P,H] f32, y [T,H] bf16; grid (⌈H/4/128⌉, T), 128 threads, 4 consecutive h per thread. */
static __global__ void g4_md_combine_kernel(__nv_bfloat16 *y, const float *ys, const int32_t *inv, const float *weights,
                                            int H, int k) {
    const int t = blockIdx.y, h4 = blockIdx.x * blockDim.x + threadIdx.x;
    if (h4 * 4 >= H) return;
    float4 s = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    for (int j = 0; j < k; j++) {
        int r = inv[(size_t)t * k + j];
        if (r < 0) continue;
        float wt = weights[(size_t)t * k + j];
        float4 v = ((const float4 *)(ys + (size_t)r * H))[h4];
        s.x += wt * v.x;
        s.y += wt * v.y;
        s.z += wt * v.z;
        s.w += wt * v.w;
    }
    __nv_bfloat162 *dst = (__nv_bfloat162 *)(y + (size_t)t * H) + 2 * h4;
    dst[0] = __floats2bfloat162_rn(s.x, s.y);
    dst[1] = __floats2bfloat162_rn(s.z, s.w);
}

/* ---- launcher ---------------------------------------------------------------------------------- */

/* Largest power of two ≤ G4_MD_MAX_NT whose rows of n bf16 fit the 48 KiB default, and no
 * larger than needed for T tokens (a chunk size only: more pairs per expert loop). 0: none fits. */
static int g4_md_cap(int T, int n) {
    int cap = G4_MD_MAX_NT;
    while (cap > 1 && (cap / 2 >= T || (size_t)cap * n * 2 > G4_MD_SMEM_MAX)) cap /= 2;
    return (size_t)cap * n * 2 <= G4_MD_SMEM_MAX ? cap : 0;
}

static int g4_md_aligned16(const void *p) { return ((uintptr_t)p & 15u) == 0; }

int g4_cuda_moe_decode_fits(int E, int I, int H, int T, int top_k, const void *y, const void *x, const void *Wgu,
                            const void *Wd) {
    size_t P = (size_t)T * top_k;
    return T >= 1 && T <= G4_MOE_DECODE_MAX_T && I % 8 == 0 && H % 8 == 0 && I >= 1 && H >= 1 && g4_md_cap(T, H) > 0 &&
           g4_md_cap(T, I) > 0 && (P + 2 * (size_t)E) * 4 <= G4_MD_SMEM_MAX && g4_md_aligned16(y) &&
           g4_md_aligned16(x) && g4_md_aligned16(Wgu) && g4_md_aligned16(Wd);
}

int g4_cuda_moe_decode(g4_cuda_ctx *c, void *y, const void *x, const int32_t *ids, const float *weights,
                       const void *Wgu, const void *Wd, int E, int I, int H, int T, int top_k, g4_error *err) {
    if (!g4_cuda_moe_decode_fits(E, I, H, T, top_k, y, x, Wgu, Wd))
        return g4_fail(err, "moe_decode: shape E=%d I=%d H=%d T=%d k=%d (or a pointer's alignment) not supported", E, I,
                       H, T, top_k);
    const int P = T * top_k, hit_max = P < E ? P : E;
    int32_t *idx;
    void *act, *ys;
    G4_TRY(
        g4_cuda_scratch(c, G4_SCR_MOE_IDX, (2 + 3 * (size_t)E + 2 * (size_t)P) * sizeof(int32_t), (void **)&idx, err));
    G4_TRY(g4_cuda_scratch(c, G4_SCR_MOE_ACT, (size_t)P * I * sizeof(__nv_bfloat16), &act, err));
    G4_TRY(g4_cuda_scratch(c, G4_SCR_MOE_Y, (size_t)P * H * sizeof(float), &ys, err));
    int32_t *meta = idx, *a_e = meta + 2, *a_off = a_e + E, *a_cnt = a_off + E, *src = a_cnt + E, *inv = src + P;

    G4_LAUNCH(1, 256, (size_t)(P + 2 * E) * sizeof(int32_t), g4_launch_stream(c), g4_md_sort_kernel)
    (meta, a_e, a_off, a_cnt, src, inv, ids, P, E);
    G4_CHECK_LAUNCH();

    const int cap_gu = g4_md_cap(T, H), tiles_gu = (I + G4_MD_WARPS - 1) / G4_MD_WARPS;
    G4_LAUNCH((unsigned)hit_max * tiles_gu, G4_MD_WARPS * 32, (size_t)cap_gu * H * 2, g4_launch_stream(c),
              g4_md_gate_up_kernel)
    ((__nv_bfloat16 *)act, (const __nv_bfloat16 *)x, (const __nv_bfloat16 *)Wgu, meta, a_e, a_off, a_cnt, src, H, I,
     top_k, cap_gu, tiles_gu);
    G4_CHECK_LAUNCH();

    const int rows_d = G4_MD_WARPS * (32 / G4_MD_DOWN_LPR);
    const int cap_d = g4_md_cap(T, I), tiles_d = (H + rows_d - 1) / rows_d;
    G4_LAUNCH((unsigned)hit_max * tiles_d, G4_MD_WARPS * 32, (size_t)cap_d * I * 2, g4_launch_stream(c),
              g4_md_down_kernel)
    ((float *)ys, (const __nv_bfloat16 *)act, (const __nv_bfloat16 *)Wd, meta, a_e, a_off, a_cnt, H, I, cap_d, tiles_d);
    G4_CHECK_LAUNCH();

    dim3 grid(g4_ceil_div((size_t)H / 4, 128), (unsigned)T);
    G4_LAUNCH(grid, 128, 0, g4_launch_stream(c), g4_md_combine_kernel)
    ((__nv_bfloat16 *)y, (const float *)ys, inv, weights, H, top_k);
    G4_CHECK_LAUNCH();
    return 0;
}
