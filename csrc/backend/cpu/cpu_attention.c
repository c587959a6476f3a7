/* cpu_attention.c — reference attention for the CPU backend: fused Q/K norm + RoPE + paged
 * cache write, and paged causal (optionally windowed) attention with GQA, scale 1.0; on sliding
 * layers an image's soft tokens also see the later tokens of their run (backend.h, key_end).
 * The cache holds f32. Global k_eq_v layers store one tensor U = RMSNorm_∅(raw K); keys are
 * re-formed from it as K = RoPE(U ⊙ k_norm, pos) for every read (docs/architecture.md, "KV cache").
 * bf16 mode (rope_cache.cu, attention.cu): inputs rounded on read, the normed head rounded
 * before RoPE, q / K / V / U rounded when written, the attention output rounded; K formed from
 * U, scores, softmax and P·V stay f32 (table in cpu_ops.c). */
#include <math.h>
#include <stdlib.h>

#include "backend/cpu/cpu_internal.h"

int g4_cpu_block_of(const int32_t *table, const g4_step_dev *s, const g4_kv_layer *kv, int seq, int pos,
                    g4_error *err) {
    int logical = pos / kv->block_size;
    if (seq < 0 || seq >= s->n_seqs || logical >= s->max_blocks)
        return g4_fail(err, "kv: sequence %d position %d outside the block table", seq, pos);
    int b = table[(size_t)seq * s->max_blocks + logical];
    if (b < 0 || b >= kv->n_blocks)
        return g4_fail(err, "kv: sequence %d position %d has no block (table entry %d)", seq, pos, b);
    return b;
}

/* Sliding layers index the sliding pool, global layers the global pool. */
static const int32_t *table_of(const g4_attn_geom *g, const g4_step_dev *s) {
    return g->window > 0 ? s->blocks_sliding : s->blocks_global;
}

/* q_out[t,h,:] = RoPE(RMSNorm_{q_norm}(q[t,h,:]), p); sliding: K = RoPE(RMSNorm_{k_norm}(k)),
 * V = RMSNorm_∅(v) → cache; k_eq_v: U = RMSNorm_∅(k) → cache. Token t's rows at t·ld (0: packed). */
int g4_cpu_qk_norm_rope_cache(void *ctx, void *q_outv, const void *q_in, const void *kv_in, const void *v_in,
                              int64_t ld, const g4_weight *q_norm, const g4_weight *k_norm, const g4_attn_geom *g,
                              const g4_kv_layer *kv, const g4_step_dev *s, g4_error *err) {
    int bf = g4_cpu_is_bf16(ctx);
    int d = g->head_dim, nq = g->n_heads, nkv = g->n_kv_heads;
    float *q = q_outv, *cache = kv->base;
    const float *qi = q_in, *k = kv_in, *v = v_in;
    if (ld < 0 || (ld > 0 && (ld < (int64_t)nq * d || q_outv == q_in)))
        return g4_fail(err, "qk_norm_rope_cache: layer %d: row stride %lld (q_out %s q)", g->layer, (long long)ld,
                       q_outv == q_in ? "is" : "is not");
    size_t ldq = ld ? (size_t)ld : (size_t)nq * d, ldk = ld ? (size_t)ld : (size_t)nkv * d;
    const int32_t *table = table_of(g, s);
    float *qw = malloc((size_t)d * sizeof *qw), *kw = malloc((size_t)d * sizeof *kw);
    float *in = malloc((size_t)d * sizeof *in); /* bf16 mode: one input head rounded on read */
    if (!qw || !kw || !in) {
        free(qw);
        free(kw);
        free(in);
        return g4_fail(err, "qk_norm_rope_cache: out of memory");
    }
    g4_cpu_weight_f32(q_norm, 0, d, qw);
    g4_cpu_weight_f32(k_norm, 0, d, kw);
    int rc = 0;
    for (int t = 0; t < s->n_tokens && rc == 0; t++) {
        int p = s->pos[t];
        for (int h = 0; h < nq; h++) {
            float *qh = q + ((size_t)t * nq + h) * d;
            const float *src = qi + (size_t)t * ldq + (size_t)h * d;
            if (qh != src)
                for (int i = 0; i < d; i++) qh[i] = src[i];
            if (bf) g4_cpu_round_bf16(qh, (size_t)d);
            g4_cpu_rmsnorm_row(qh, qh, qw, d, g->eps);
            if (bf) g4_cpu_round_bf16(qh, (size_t)d);
            g4_cpu_rope(qh, d, &g->rope, p);
            if (bf) g4_cpu_round_bf16(qh, (size_t)d);
        }
        int blk = g4_cpu_block_of(table, s, kv, s->seq[t], p, err);
        if (blk < 0) {
            rc = -1;
            break;
        }
        int slot = p % kv->block_size;
        for (int h = 0; h < nkv; h++) {
            const float *kh = k + (size_t)t * ldk + (size_t)h * d;
            float *kdst = cache + g4_kv_offset(kv, blk, slot, h, 0);
            if (bf) {
                for (int i = 0; i < d; i++) in[i] = g4_round_bf16(kh[i]);
                kh = in;
            }
            if (g->k_eq_v) {
                g4_cpu_rmsnorm_row(kdst, kh, NULL, d, g->eps);
                if (bf) g4_cpu_round_bf16(kdst, (size_t)d);
            } else {
                float *vdst = cache + g4_kv_offset(kv, blk, slot, h, 1);
                g4_cpu_rmsnorm_row(kdst, kh, kw, d, g->eps);
                if (bf) g4_cpu_round_bf16(kdst, (size_t)d);
                g4_cpu_rope(kdst, d, &g->rope, p);
                const float *vh = v + (size_t)t * ldk + (size_t)h * d;
                if (bf) {
                    g4_cpu_round_bf16(kdst, (size_t)d);
                    for (int i = 0; i < d; i++) in[i] = g4_round_bf16(vh[i]);
                    vh = in;
                }
                g4_cpu_rmsnorm_row(vdst, vh, NULL, d, g->eps);
                if (bf) g4_cpu_round_bf16(vdst, (size_t)d);
            }
        }
    }
    free(qw);
    free(kw);
    free(in);
    return rc;
}

/* out[t,h,:] = Σ_j softmax_j(q[t,h]·K_j) V_j over keys pos_j ∈ [lo, hi] of the token's sequence,
 * lo = max(0, p − window + 1) on sliding layers, 0 on global layers; hi = p, or on sliding layers
 * the end of the token's image soft-token run (g4_attn_key_hi: bidirectional inside the run). */
int g4_cpu_attention(void *ctx, void *outv, const void *qv, const g4_weight *k_norm, const g4_attn_geom *g,
                     const g4_kv_layer *kv, const g4_step_dev *s, g4_error *err) {
    int bf = g4_cpu_is_bf16(ctx), order = g4_cpu_order(ctx);
    int d = g->head_dim, nq = g->n_heads, nkv = g->n_kv_heads, group = nq / nkv;
    const float *q = qv, *cache = kv->base;
    float *out = outv;
    const int32_t *table = table_of(g, s);
    float *kw = malloc((size_t)d * sizeof *kw);
    if (!kw) return g4_fail(err, "attention: out of memory");
    g4_cpu_weight_f32(k_norm, 0, d, kw);
    int failed = 0;
    g4_error first_err = {{0}};
#pragma omp parallel for schedule(dynamic, 1) if ((long)s->n_tokens * (s->max_pos + 1) * nq * d > G4_CPU_PAR_MIN_WORK)
    for (int t = 0; t < s->n_tokens; t++) {
        int p = s->pos[t], seq = s->seq[t];
        int lo = g->window > 0 && p - g->window + 1 > 0 ? p - g->window + 1 : 0;
        int n = g4_attn_key_hi(s->key_end, t, p, g->window) - lo + 1;
        float *keys = malloc((size_t)n * d * sizeof *keys), *sc = malloc((size_t)n * sizeof *sc);
        float *qb = malloc((size_t)d * sizeof *qb); /* bf16 mode: the query head rounded on read */
        const float **vals = malloc((size_t)n * sizeof *vals);
        g4_error e = {{0}};
        int bad = !keys || !sc || !vals || !qb;
        if (bad) g4_fail(&e, "attention: out of memory");
        for (int h = 0; h < nkv && !bad; h++) {
            for (int j = 0; j < n && !bad; j++) {
                int blk = g4_cpu_block_of(table, s, kv, seq, lo + j, &e);
                if (blk < 0) {
                    bad = 1;
                    break;
                }
                const float *kc = cache + g4_kv_offset(kv, blk, (lo + j) % kv->block_size, h, 0);
                float *kj = keys + (size_t)j * d;
                if (g->k_eq_v) {
                    for (int i = 0; i < d; i++) kj[i] = kc[i] * kw[i];
                    g4_cpu_rope(kj, d, &g->rope, lo + j);
                } else {
                    for (int i = 0; i < d; i++) kj[i] = kc[i];
                }
                vals[j] = cache + g4_kv_offset(kv, blk, (lo + j) % kv->block_size, h, 1);
            }
            for (int qh = h * group; qh < (h + 1) * group && !bad; qh++) {
                const float *qr = q + ((size_t)t * nq + qh) * d;
                if (bf) {
                    for (int i = 0; i < d; i++) qb[i] = g4_round_bf16(qr[i]);
                    qr = qb;
                }
                float mx = -INFINITY;
                for (int j = 0; j < n; j++) {
                    sc[j] = g4_cpu_dot_ord(qr, keys + (size_t)j * d, d, order);
                    if (sc[j] > mx) mx = sc[j];
                }
                double sum = 0;
                for (int j = 0; j < n; j++) sum += (sc[j] = expf(sc[j] - mx));
                float *o = out + ((size_t)t * nq + qh) * d;
                for (int i = 0; i < d; i++) o[i] = 0;
                for (int jj = 0; jj < n; jj++) {
                    int j = order == 1 ? n - 1 - jj : jj;
                    float pj = (float)(sc[j] / sum);
                    for (int i = 0; i < d; i++) o[i] += pj * vals[j][i];
                }
                if (bf) g4_cpu_round_bf16(o, (size_t)d);
            }
        }
        if (bad) {
#pragma omp critical
            if (!failed) {
                failed = 1;
                first_err = e;
            }
        }
        free(keys);
        free(sc);
        free(qb);
        free(vals);
    }
    free(kw);
    if (failed) {
        if (err) *err = first_err;
        return -1;
    }
    return 0;
}
