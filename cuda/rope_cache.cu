/* rope_cache.cu — fused per-head Q/K RMSNorm + RoPE + paged KV-cache write (one op before
 * attention). Sliding layers store K and V; k_eq_v global layers store the one tensor
 * U = RMSNorm_∅(raw K), from which attention forms K and V on the fly.
 * Not here: reading the cache (attention.cu).
 * Twin: g4_cpu_qk_norm_rope_cache (csrc/backend/cpu/cpu_attention.c). Test: tests/gpu/test_gpu_attention.c.
 * Bench: the whole step, bench/kernels/bench_model.c. */
#include "ctx.cuh"
#include "kv.cuh"

#define G4_ROPE_THREADS 128

/* dst[0:d] = RoPE?( bf16( RMSNorm_w(src[0:d]) ), p )       one head vector, fp32 inside
 * rotate-half pairs (i, i+d/2): x'[i] = x[i]cosθ − x[i+h]sinθ, x'[i+h] = x[i+h]cosθ + x[i]sinθ,
 * θ = p·inv_freq[i]. xs is d floats of shared memory; dst may equal src.
 * Called by all threads of the block (contains __syncthreads). */
__device__ static void g4_norm_rope_head(__nv_bfloat16 *dst, const __nv_bfloat16 *src, const __nv_bfloat16 *w, int rope,
                                         int p, int d, float eps, float log2_theta, int rotated_pairs, float *xs,
                                         float *red) {
    float ss = 0.0f;
    for (int i = threadIdx.x; i < d; i += blockDim.x) {
        float v = g4_ld(src, i);
        xs[i] = v;
        ss += v * v;
    }
    float inv = rsqrtf(g4_block_sum(ss, red) / (float)d + eps);
    for (int i = threadIdx.x; i < d; i += blockDim.x) /* same i as written above: no race */
        xs[i] = g4_round_bf(xs[i] * inv * (w ? g4_ld(w, i) : 1.0f));
    __syncthreads();
    if (rope) {
        int half = d / 2;
        for (int i = threadIdx.x; i < half; i += blockDim.x) {
            float a = xs[i], b = xs[i + half];
            float f = g4_rope_inv_freq(i, d, log2_theta, rotated_pairs), sn = 0.0f, cs = 1.0f;
            if (f != 0.0f) sincosf((float)p * f, &sn, &cs);
            g4_st(dst, i, a * cs - b * sn);
            g4_st(dst, i + half, b * cs + a * sn);
        }
    } else {
        for (int i = threadIdx.x; i < d; i += blockDim.x) g4_st(dst, i, xs[i]);
    }
    __syncthreads(); /* xs is reused by the next call */
}

/* For token t (position p = pos[t], sequence sq = seq[t]) and head slot hs:
 *   hs < n_heads:  q_out[t,hs,:] = RoPE(RMSNorm_{q_norm}(q[t,hs,:]), p)   (q_out may be q)
 *   else g = hs − n_heads:
 *     sliding:  cache K[blk,slot,g] = RoPE(RMSNorm_{k_norm}(k[t,g,:]), p)
 *               cache V[blk,slot,g] = RMSNorm_∅(v[t,g,:])
 *     single:   cache U[blk,slot,g] = RMSNorm_∅(k[t,g,:])
 *   blk = table[sq, p / B], slot = p % B; a missing block skips the write.
 * q_out [T,n_heads,d] packed; token t's q, k, v rows start at t·ld (ld = the fused QKV width,
 * or the packed widths when ld = 0: ldq = n_heads·d, ldk = n_kv·d); bf16; cache in kv_layout.h
 * order, bf16. grid: (T, n_heads + n_kv); 128 threads; dynamic shared d floats. Reading the
 * fused GEMM's rows in place (one strided head per block, the same bytes) saves the two GEMM
 * launches of separate K and V projections and copies nothing. */
static __global__ void g4_qk_norm_rope_cache_kernel(__nv_bfloat16 *q_out, const __nv_bfloat16 *q, size_t ldq,
                                                    const __nv_bfloat16 *k, const __nv_bfloat16 *v, size_t ldk,
                                                    const __nv_bfloat16 *q_norm, const __nv_bfloat16 *k_norm,
                                                    __nv_bfloat16 *cache, g4_kv_dev kv, const int32_t *pos,
                                                    const int32_t *seq, const int32_t *table, int n_seqs,
                                                    int max_blocks, int n_heads, float eps, float log2_theta,
                                                    int rotated_pairs) {
    G4_SHARED_DYN(float, xs);
    G4_SHARED(float, red, [32]);
    int t = blockIdx.x, hs = blockIdx.y, d = kv.head_dim;
    int p = pos[t];
    if (hs < n_heads) {
        g4_norm_rope_head(q_out + ((size_t)t * n_heads + hs) * d, q + (size_t)t * ldq + (size_t)hs * d, q_norm, 1, p, d,
                          eps, log2_theta, rotated_pairs, xs, red);
        return;
    }
    int g = hs - n_heads;
    int blk = g4_kv_dev_block(kv, g4_kv_dev_row(table, seq[t], n_seqs, max_blocks), max_blocks, p);
    if (blk < 0) return; /* uniform over the block: no thread is left inside a __syncthreads */
    int slot = p % kv.block_size;
    const __nv_bfloat16 *kh = k + (size_t)t * ldk + (size_t)g * d;
    if (kv.single) {
        g4_norm_rope_head(cache + g4_kv_dev_offset(kv, blk, slot, g, 0), kh, NULL, 0, p, d, eps, log2_theta,
                          rotated_pairs, xs, red);
    } else {
        const __nv_bfloat16 *vh = v + (size_t)t * ldk + (size_t)g * d;
        g4_norm_rope_head(cache + g4_kv_dev_offset(kv, blk, slot, g, 0), kh, k_norm, 1, p, d, eps, log2_theta,
                          rotated_pairs, xs, red);
        g4_norm_rope_head(cache + g4_kv_dev_offset(kv, blk, slot, g, 1), vh, NULL, 0, p, d, eps, log2_theta,
                          rotated_pairs, xs, red);
    }
}

int g4_cuda_qk_norm_rope_cache(void *ctx, void *q_out, const void *q, const void *k, const void *v, int64_t ld,
                               const g4_weight *q_norm, const g4_weight *k_norm, const g4_attn_geom *g,
                               const g4_kv_layer *kv, const g4_step_dev *s, g4_error *err) {
    g4_cuda_ctx *c = (g4_cuda_ctx *)ctx;
    int d = g->head_dim;
    if (d <= 0 || d % 2 || d > 1024)
        return g4_fail(err, "qk_norm_rope_cache: layer %d: head_dim %d unsupported (even, ≤ 1024)", g->layer, d);
    if (kv->head_dim != d || kv->n_kv_heads != g->n_kv_heads || kv->block_size <= 0)
        return g4_fail(
            err, "qk_norm_rope_cache: layer %d: kv layer geometry (d=%d, n_kv=%d, B=%d) != attention (d=%d, n_kv=%d)",
            g->layer, kv->head_dim, kv->n_kv_heads, kv->block_size, d, g->n_kv_heads);
    if (g->n_kv_heads <= 0 || g->n_heads % g->n_kv_heads)
        return g4_fail(err, "qk_norm_rope_cache: layer %d: n_heads %d not a multiple of n_kv_heads %d", g->layer,
                       g->n_heads, g->n_kv_heads);
    if (!!g->k_eq_v != !!kv->single)
        return g4_fail(err, "qk_norm_rope_cache: layer %d: k_eq_v=%d but kv layer single=%d", g->layer, g->k_eq_v,
                       kv->single);
    if (!g->k_eq_v && !v)
        return g4_fail(err, "qk_norm_rope_cache: layer %d: v is NULL on a layer with v_proj", g->layer);
    if (g->rope.rotated_pairs < 0 || g->rope.rotated_pairs > d / 2 || g->rope.theta <= 1.0)
        return g4_fail(err, "qk_norm_rope_cache: layer %d: bad rope (theta %g, pairs %d)", g->layer, g->rope.theta,
                       g->rope.rotated_pairs);
    G4_TRY(g4_cuda_check_weight(q_norm, "q_norm", d, err));
    G4_TRY(g4_cuda_check_weight(k_norm, "k_norm", d, err));
    if (ld < 0 || (ld > 0 && ld < (int64_t)g->n_heads * d))
        return g4_fail(err, "qk_norm_rope_cache: layer %d: row stride %lld shorter than the %d query heads", g->layer,
                       (long long)ld, g->n_heads);
    if (ld > 0 && q_out == q)
        return g4_fail(err, "qk_norm_rope_cache: layer %d: q_out must not be the strided q", g->layer);
    if (s->n_tokens <= 0) return 0;
    size_t ldq = ld ? (size_t)ld : (size_t)g->n_heads * d, ldk = ld ? (size_t)ld : (size_t)g->n_kv_heads * d;
    g4_kv_dev kd = {kv->n_blocks, kv->block_size, kv->n_kv_heads, kv->head_dim, kv->single};
    const int32_t *table = g->window > 0 ? s->blocks_sliding : s->blocks_global;
    dim3 grid((unsigned)s->n_tokens, (unsigned)(g->n_heads + g->n_kv_heads));
    G4_LAUNCH(grid, G4_ROPE_THREADS, (size_t)d * sizeof(float), g4_launch_stream(c), g4_qk_norm_rope_cache_kernel)
    ((__nv_bfloat16 *)q_out, (const __nv_bfloat16 *)q, ldq, (const __nv_bfloat16 *)k, (const __nv_bfloat16 *)v, ldk,
     (const __nv_bfloat16 *)q_norm->data, (const __nv_bfloat16 *)k_norm->data, (__nv_bfloat16 *)kv->base, kd, s->pos,
     s->seq, table, s->n_seqs, s->max_blocks, g->n_heads, g->eps, (float)log2(g->rope.theta), g->rope.rotated_pairs);
    G4_CHECK_LAUNCH();
    return 0;
}
