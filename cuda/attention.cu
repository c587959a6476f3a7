/* attention.cu — paged causal attention over the KV cache, any T (prefill chunks and decode
 * tokens mixed), both layer types (image soft-token runs bidirectional on sliding layers, the
 * step's key_end); split-KV with a combine step when the grid is too small.
 *
 * This is the simple, obviously-correct kernel: one block per (token, query head[, split]),
 * keys walked in tiles of 32 through the block table, online softmax in fp32. It is the
 * oracle and fallback for the tiled flash kernel (attention_flash.cu, chosen at the end of the
 * validation in g4_cuda_attention by shape and the attention path option) and for the split-KV decode kernel
 * (attention_decode.cu, chosen there for decode steps); it does not share K/V loads between the
 * query heads of a GQA group or between the tokens of a chunk.
 * Not here: writing the cache (rope_cache.cu).
 * Twin: g4_cpu_attention (csrc/backend/cpu/cpu_attention.c). Test: tests/gpu/test_gpu_attention.c.
 * Bench: bench/kernels/bench_kernels.c "prefill_attention" / "decode_attention" (with the simple path). */
#include "ctx.cuh"
#include "kv.cuh"

#define G4_ATT_THREADS 128 /* 4 warps; each thread owns dims tid + r·128, r < 4 → d ≤ 512 */
#define G4_ATT_DPT 4
#define G4_ATT_KT 32       /* keys per tile */

/* For token t (pos p, seq sq), query head h, KV head g = h / (n_heads/n_kv), split z:
 *   keys j ∈ [lo, hi], lo = window ? max(0, p−window+1) : 0, hi = p, or on sliding layers the end
 *   of t's image soft-token run (key_end, g4_attn_key_hi); this split's part of that range:
 *   [lo + z·split_len, lo + (z+1)·split_len) ∩ [lo, hi]
 *   s_j = q[t,h,:] · K_j        (scale 1.0)
 *     sliding: K_j = cache K[blk(j), j%B, g]
 *     single (k_eq_v): K_j = RoPE(U_j ⊙ k_norm, j), U_j = cache U[blk(j), j%B, g]
 *   V_j = cache V (sliding) or U_j (single)
 *   online softmax: m = max s, l = Σ exp(s−m), acc = Σ exp(s−m) V_j
 *   n_splits == 1: out[t,h,:] = bf16(acc / l)
 *   else partial[((t·n_heads + h)·n_splits + z)] = {m, l, acc[0:d]} (f32) for the combine.
 * q, out [T, n_heads, d] bf16. grid (T, n_heads, n_splits), 128 threads,
 * dynamic shared (d + d/2 + d + KT) floats. */
static __global__ void g4_attention_simple_kernel(__nv_bfloat16 *out, float *partial, const __nv_bfloat16 *q,
                                                  const __nv_bfloat16 *cache, const __nv_bfloat16 *k_norm, g4_kv_dev kv,
                                                  const int32_t *pos, const int32_t *seq, const int32_t *key_end,
                                                  const int32_t *table, int n_seqs, int max_blocks, int n_heads,
                                                  int window, float log2_theta, int rotated_pairs, int split_len) {
    G4_SHARED_DYN(float, sm);
    const int d = kv.head_dim, half = d / 2;
    float *qs = sm;          /* [d]    query, f32 */
    float *invf = qs + d;    /* [d/2]  RoPE inverse frequencies (single only) */
    float *kn = invf + half; /* [d]    k_norm weight (single only) */
    float *sc = kn + d;      /* [KT]   scores of the current tile */
    const int t = blockIdx.x, h = blockIdx.y, z = blockIdx.z, n_splits = gridDim.z;
    const int g = h / (n_heads / kv.n_kv_heads);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;
    const int p = pos[t];
    const int32_t *row = g4_kv_dev_row(table, seq[t], n_seqs, max_blocks); /* NULL: no keys */

    const __nv_bfloat16 *qh = q + ((size_t)t * n_heads + h) * d;
    for (int i = threadIdx.x; i < d; i += blockDim.x) {
        qs[i] = g4_ld(qh, i);
        kn[i] = kv.single ? g4_ld(k_norm, i) : 0.0f;
    }
    for (int i = threadIdx.x; i < half; i += blockDim.x) invf[i] = g4_rope_inv_freq(i, d, log2_theta, rotated_pairs);
    __syncthreads();

    int lo = window > 0 ? max(0, p - window + 1) : 0;
    int hi = g4_attn_key_hi(key_end, t, p, window);
    int j_begin = lo + z * split_len, j_end = min(hi + 1, lo + (z + 1) * split_len); /* [j_begin, j_end) */
    float m = -INFINITY, l = 0.0f, acc[G4_ATT_DPT];
    for (int r = 0; r < G4_ATT_DPT; r++) acc[r] = 0.0f;

    for (int j0 = j_begin; j0 < j_end; j0 += G4_ATT_KT) {
        int n_in = min(G4_ATT_KT, j_end - j0);
        /* scores: one warp per key, lanes over the head dim */
        for (int kk = warp; kk < n_in; kk += n_warps) {
            int j = j0 + kk, blk = g4_kv_dev_block(kv, row, max_blocks, j);
            float s = -INFINITY;
            if (blk >= 0) {
                const __nv_bfloat16 *kp = cache + g4_kv_dev_offset(kv, blk, j % kv.block_size, g, 0);
                float part = 0.0f;
                if (!kv.single) {
                    for (int i = lane; i < d; i += 32) part += qs[i] * g4_ld(kp, i);
                } else {
                    for (int i = lane; i < half; i += 32) {
                        float a = g4_ld(kp, i) * kn[i], b = g4_ld(kp, i + half) * kn[i + half];
                        float sn = 0.0f, cs = 1.0f;
                        if (invf[i] != 0.0f) sincosf((float)j * invf[i], &sn, &cs);
                        part += qs[i] * (a * cs - b * sn) + qs[i + half] * (b * cs + a * sn);
                    }
                }
                s = g4_warp_sum(part);
            }
            if (lane == 0) sc[kk] = s;
        }
        __syncthreads();
        float tmax = -INFINITY;
        for (int kk = 0; kk < n_in; kk++) tmax = fmaxf(tmax, sc[kk]);
        if (tmax > -INFINITY) { /* a tile with no valid key changes nothing (and makes no NaN) */
            float m_new = fmaxf(m, tmax), corr = expf(m - m_new); /* m = −inf → corr = 0 */
            l *= corr;
            for (int r = 0; r < G4_ATT_DPT; r++) acc[r] *= corr;
            for (int kk = 0; kk < n_in; kk++) {
                if (sc[kk] == -INFINITY) continue;
                int j = j0 + kk, blk = g4_kv_dev_block(kv, row, max_blocks, j);
                float pj = expf(sc[kk] - m_new);
                l += pj;
                const __nv_bfloat16 *vp = cache + g4_kv_dev_offset(kv, blk, j % kv.block_size, g, 1);
                for (int r = 0; r < G4_ATT_DPT; r++) {
                    int i = threadIdx.x + r * G4_ATT_THREADS;
                    if (i < d) acc[r] += pj * g4_ld(vp, i);
                }
            }
            m = m_new;
        }
        __syncthreads(); /* sc is rewritten by the next tile */
    }

    if (n_splits == 1) {
        __nv_bfloat16 *oh = out + ((size_t)t * n_heads + h) * d;
        float inv_l = l > 0.0f ? 1.0f / l : 0.0f;
        for (int r = 0; r < G4_ATT_DPT; r++) {
            int i = threadIdx.x + r * G4_ATT_THREADS;
            if (i < d) g4_st(oh, i, acc[r] * inv_l);
        }
    } else {
        float *pp = partial + (((size_t)t * n_heads + h) * n_splits + z) * (size_t)(d + 2);
        if (threadIdx.x == 0) {
            pp[0] = m;
            pp[1] = l;
        }
        for (int r = 0; r < G4_ATT_DPT; r++) {
            int i = threadIdx.x + r * G4_ATT_THREADS;
            if (i < d) pp[2 + i] = acc[r];
        }
    }
}

/* out[t,h,:] = Σ_z exp(m_z − M) acc_z / Σ_z exp(m_z − M) l_z,   M = max_z m_z
 * (splits with m_z = −inf hold no keys and are skipped)
 * grid (T, n_heads), 128 threads. */
static __global__ void g4_attention_combine_kernel(__nv_bfloat16 *out, const float *partial, int n_heads, int d,
                                                   int n_splits) {
    const float *pp = partial + ((size_t)blockIdx.x * n_heads + blockIdx.y) * n_splits * (size_t)(d + 2);
    float M = -INFINITY;
    for (int z = 0; z < n_splits; z++) M = fmaxf(M, pp[(size_t)z * (d + 2)]);
    float L = 0.0f;
    for (int z = 0; z < n_splits; z++) {
        float mz = pp[(size_t)z * (d + 2)];
        if (mz > -INFINITY) L += expf(mz - M) * pp[(size_t)z * (d + 2) + 1];
    }
    float inv_L = L > 0.0f ? 1.0f / L : 0.0f;
    __nv_bfloat16 *oh = out + ((size_t)blockIdx.x * n_heads + blockIdx.y) * d;
    for (int i = threadIdx.x; i < d; i += blockDim.x) {
        float a = 0.0f;
        for (int z = 0; z < n_splits; z++) {
            float mz = pp[(size_t)z * (d + 2)];
            if (mz > -INFINITY) a += expf(mz - M) * pp[(size_t)z * (d + 2) + 2 + i];
        }
        g4_st(oh, i, a * inv_L);
    }
}

/* Splits per query: enough blocks to cover the GPU ~4 times over when T·n_heads is small
 * (decode), never fewer than 256 keys per split. Worked example: T=1, 32 heads, 32K keys on
 * 132 SMs → 528 blocks wanted → 17 splits of 1928 keys. Prefill (T·heads ≥ 4·SMs) → 1. */
static int g4_attention_splits(const g4_cuda_ctx *c, int T, int n_heads, int max_keys, int *split_len) {
    long blocks = (long)T * n_heads, want = 4L * c->n_sms;
    int n = 1;
    if (blocks < want) n = (int)((want + blocks - 1) / blocks);
    int cap = (max_keys + 255) / 256;
    if (n > cap) n = cap;
    if (n < 1) n = 1;
    int len = (max_keys + n - 1) / n;
    len = (len + G4_ATT_KT - 1) / G4_ATT_KT * G4_ATT_KT;
    *split_len = len;
    return (max_keys + len - 1) / len;
}

int g4_cuda_attention(void *ctx, void *out, const void *q, const g4_weight *k_norm, const g4_attn_geom *g,
                      const g4_kv_layer *kv, const g4_step_dev *s, g4_error *err) {
    g4_cuda_ctx *c = (g4_cuda_ctx *)ctx;
    int d = g->head_dim;
    if (d <= 0 || d % 2 || d > G4_ATT_THREADS * G4_ATT_DPT)
        return g4_fail(err, "attention: layer %d: head_dim %d unsupported (even, ≤ %d)", g->layer, d,
                       G4_ATT_THREADS * G4_ATT_DPT);
    if (kv->head_dim != d || kv->n_kv_heads != g->n_kv_heads || kv->block_size <= 0)
        return g4_fail(err, "attention: layer %d: kv layer geometry (d=%d, n_kv=%d, B=%d) != attention (d=%d, n_kv=%d)",
                       g->layer, kv->head_dim, kv->n_kv_heads, kv->block_size, d, g->n_kv_heads);
    if (g->n_kv_heads <= 0 || g->n_heads % g->n_kv_heads)
        return g4_fail(err, "attention: layer %d: n_heads %d not a multiple of n_kv_heads %d", g->layer, g->n_heads,
                       g->n_kv_heads);
    if (!!g->k_eq_v != !!kv->single)
        return g4_fail(err, "attention: layer %d: k_eq_v=%d but kv layer single=%d", g->layer, g->k_eq_v, kv->single);
    if (g->k_eq_v) {
        G4_TRY(g4_cuda_check_weight(k_norm, "attention k_norm", d, err));
        if (g->rope.rotated_pairs < 0 || g->rope.rotated_pairs > d / 2 || g->rope.theta <= 1.0)
            return g4_fail(err, "attention: layer %d: bad rope (theta %g, pairs %d)", g->layer, g->rope.theta,
                           g->rope.rotated_pairs);
    }
    if (s->n_tokens <= 0) return 0;
    if (s->max_pos < 0) return g4_fail(err, "attention: step max_pos %d < 0", s->max_pos);

    /* Split-KV decode kernel (attention_decode.cu) for decode steps: T ≤ n_seqs, i.e. one token
     * per sequence when every sequence of the step has one (it is correct for any step: each
     * token reads its own key range; it only stops sharing K/V between the tokens of a chunk). */
    if ((c->attn_path == G4_ATTN_AUTO || c->attn_path == G4_ATTN_DECODE) && s->n_tokens <= s->n_seqs &&
        g4_cuda_attention_decode_supported(c, g, kv))
        return g4_cuda_attention_decode(c, out, q, k_norm, g, kv, s, err);

    /* Tiled tensor-core kernel (attention_flash.cu) for prefill-like steps: on average ≥ 8
     * tokens per sequence, where its K/V tiles are shared by the tokens of a chunk. */
    if ((c->attn_path == G4_ATTN_AUTO || c->attn_path == G4_ATTN_FAST) && g4_cuda_attention_flash_supported(c, g) &&
        (c->attn_path == G4_ATTN_FAST || s->n_tokens >= 8 * (s->n_seqs > 0 ? s->n_seqs : 1)))
        return g4_cuda_attention_flash(c, out, q, k_norm, g, kv, s, err);

    int max_keys = s->max_pos + 1; /* with image runs a sliding key range reaches up to the run's end ≤ max_pos */
    if (g->window > 0 && !s->key_end && max_keys > g->window) max_keys = g->window;
    int split_len = 0, n_splits = g4_attention_splits(c, s->n_tokens, g->n_heads, max_keys, &split_len);
    float *partial = NULL;
    if (n_splits > 1) {
        size_t bytes = (size_t)s->n_tokens * g->n_heads * n_splits * (size_t)(d + 2) * sizeof(float);
        G4_TRY(g4_cuda_scratch(c, G4_SCR_ATTN, bytes, (void **)&partial, err));
    }
    g4_kv_dev kd = {kv->n_blocks, kv->block_size, kv->n_kv_heads, kv->head_dim, kv->single};
    const int32_t *table = g->window > 0 ? s->blocks_sliding : s->blocks_global;
    size_t shmem = (size_t)(d + d / 2 + d + G4_ATT_KT) * sizeof(float);
    dim3 grid((unsigned)s->n_tokens, (unsigned)g->n_heads, (unsigned)n_splits);
    G4_LAUNCH(grid, G4_ATT_THREADS, shmem, g4_launch_stream(c), g4_attention_simple_kernel)
    ((__nv_bfloat16 *)out, partial, (const __nv_bfloat16 *)q, (const __nv_bfloat16 *)kv->base,
     g->k_eq_v ? (const __nv_bfloat16 *)k_norm->data : NULL, kd, s->pos, s->seq, s->key_end, table, s->n_seqs,
     s->max_blocks, g->n_heads, g->window, g->k_eq_v ? (float)log2(g->rope.theta) : 0.0f,
     g->k_eq_v ? g->rope.rotated_pairs : 0, split_len);
    G4_CHECK_LAUNCH();
    if (n_splits > 1) {
        G4_LAUNCH(dim3((unsigned)s->n_tokens, (unsigned)g->n_heads), G4_ATT_THREADS, 0, g4_launch_stream(c),
                  g4_attention_combine_kernel)
        ((__nv_bfloat16 *)out, partial, g->n_heads, d, n_splits);
        G4_CHECK_LAUNCH();
    }
    return 0;
}
