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
 * The attention runs on CUDA cores: for d ≤ 128 (the real 72) the query-tiled kernel (16 queries
 * of one head per block share each K/V tile staged in shared memory: K/V are read from L2
 * T/16 times instead of T times — at N = 10080, 16 heads, 27 layers that is 0.8 TB instead of
 * 12.6 TB of L2 reads per image), otherwise the simple one (one block per query and head). A
 * tensor-core kernel is still to come. The whole encoder's FLOPs and bytes per budget:
 * docs/benchmarks.md ("Vision encoder").
 * Twin: csrc/backend/cpu/cpu_vision.c. Test: tests/gpu/test_gpu_vision.c. */
#include "ctx.cuh"

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

int g4_cuda_encoder_attention(void *ctx, void *out, const void *q, const void *k, const void *v, int T, int n_heads,
                              int n_kv_heads, int head_dim, float scale, g4_error *err) {
    g4_cuda_ctx *c = (g4_cuda_ctx *)ctx;
    if (T < 1 || n_heads < 1 || n_kv_heads < 1 || n_heads % n_kv_heads || head_dim < 1 ||
        head_dim > G4_VIS_THREADS * G4_VIS_DPT || n_heads > 65535)
        return g4_fail(err, "encoder_attention: T=%d heads=%d kv_heads=%d d=%d unsupported (d ≤ %d)", T, n_heads,
                       n_kv_heads, head_dim, G4_VIS_THREADS * G4_VIS_DPT);
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
