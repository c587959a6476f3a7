/* test_cpu_bf16_ops.c — the CPU backend's bf16 mode, op by op: each output must equal, bit for
 * bit, the fp32 op applied to bf16-rounded inputs and then rounded, with the intermediate
 * roundings of the table in cpu_ops.c composed from fp32 pieces. For every op with an internal
 * rounding point the test also shows that point is really there (the same composition without
 * it gives different bits), and for every op that bf16 mode differs from fp32 mode (not a no-op).
 * Inputs are deliberately NOT bf16 values, so rounding on read is exercised too.
 * Shapes are small (one OpenMP-free path), the backend ops are called directly. */
#include <stdio.h>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_internal.h"
#include "check.h"
#include "test_util.h"

static g4_backend *b32, *b16;
static g4_error err;

static float *rb(const float *x, size_t n) { /* rounded copy */
    float *r = malloc(n * sizeof *r);
    for (size_t i = 0; i < n; i++) r[i] = g4_round_bf16(x[i]);
    return r;
}
static int same(const float *a, const float *b, size_t n) { return !memcmp(a, b, n * sizeof *a); }
static int all_bf16(const float *a, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (g4_round_bf16(a[i]) != a[i]) return 0;
    return 1;
}

/* Checks one op: bf16-mode output == reference, output ≠ fp32-mode output, and (when alt is
 * given) output ≠ the reference without the internal rounding point. */
static void judge(const char *op, const float *got, const float *ref, const float *fp32, const float *alt, size_t n,
                  int rounded_out) {
    CHECK(same(got, ref, n), "%s: bf16 mode != fp32 op on rounded inputs, rounded", op);
    CHECK(!same(got, fp32, n), "%s: bf16 mode equals fp32 mode", op);
    if (alt) CHECK(!same(got, alt, n), "%s: the internal rounding point makes no difference here", op);
    if (rounded_out) CHECK(all_bf16(got, n), "%s: output not bf16-representable", op);
    printf("%-20s bit-exact vs composed reference%s\n", op, alt ? "; internal rounding point confirmed" : "");
}

static void test_rowwise(void) {
    enum { R = 3, N = 40 };
    float *x = tu_randf(R * N, 2.0), *h = tu_randf(R * N, 3.0), *xr = rb(x, R * N), *hr = rb(h, R * N);
    int64_t sh[1] = {N};
    g4_weight w = tu_weight("w", 1, sh, 1.0, 0.3, NULL);
    b32->ops->load_weight(b32->ctx, &w, &err);
    float got[R * N], ref[R * N], f32[R * N], alt[R * N], t[R * N];

    /* rmsnorm */
    b16->ops->rmsnorm(b16->ctx, got, x, &w, R, N, 1e-6f, &err);
    b32->ops->rmsnorm(b32->ctx, ref, xr, &w, R, N, 1e-6f, &err);
    g4_cpu_round_bf16(ref, R * N);
    b32->ops->rmsnorm(b32->ctx, f32, x, &w, R, N, 1e-6f, &err);
    judge("rmsnorm", got, ref, f32, NULL, R * N, 1);

    /* add_rmsnorm: h = bf16(bf16(h) + bf16(RMSNorm(bf16 x))) */
    memcpy(got, h, sizeof got);
    b16->ops->add_rmsnorm(b16->ctx, got, x, &w, R, N, 1e-6f, &err);
    b32->ops->rmsnorm(b32->ctx, t, xr, &w, R, N, 1e-6f, &err);
    for (int i = 0; i < R * N; i++) {
        ref[i] = g4_round_bf16(hr[i] + g4_round_bf16(t[i]));
        alt[i] = g4_round_bf16(hr[i] + t[i]); /* without the branch's rounding */
    }
    memcpy(f32, h, sizeof f32);
    b32->ops->add_rmsnorm(b32->ctx, f32, x, &w, R, N, 1e-6f, &err);
    judge("add_rmsnorm", got, ref, f32, alt, R * N, 1);

    /* add, geglu, scale */
    b16->ops->add(b16->ctx, got, x, h, R * N, &err);
    b32->ops->add(b32->ctx, ref, xr, hr, R * N, &err);
    g4_cpu_round_bf16(ref, R * N);
    b32->ops->add(b32->ctx, f32, x, h, R * N, &err);
    judge("add", got, ref, f32, NULL, R * N, 1);
    { /* geglu reads [gate | up] rows: gate = x, up = h */
        float gu[R * 2 * N], gur[R * 2 * N];
        for (int r = 0; r < R; r++) {
            memcpy(gu + r * 2 * N, x + r * N, N * sizeof(float));
            memcpy(gu + r * 2 * N + N, h + r * N, N * sizeof(float));
            memcpy(gur + r * 2 * N, xr + r * N, N * sizeof(float));
            memcpy(gur + r * 2 * N + N, hr + r * N, N * sizeof(float));
        }
        b16->ops->geglu(b16->ctx, got, gu, R, N, &err);
        b32->ops->geglu(b32->ctx, ref, gur, R, N, &err);
        g4_cpu_round_bf16(ref, R * N);
        b32->ops->geglu(b32->ctx, f32, gu, R, N, &err);
        judge("geglu", got, ref, f32, NULL, R * N, 1);
    }
    int64_t one[1] = {1};
    g4_weight lam = tu_weight("lambda", 1, one, 0.77, 0.0, NULL);
    b32->ops->load_weight(b32->ctx, &lam, &err);
    memcpy(got, h, sizeof got);
    b16->ops->scale(b16->ctx, got, &lam, R * N, &err);
    memcpy(ref, hr, sizeof ref);
    b32->ops->scale(b32->ctx, ref, &lam, R * N, &err);
    g4_cpu_round_bf16(ref, R * N);
    memcpy(f32, h, sizeof f32);
    b32->ops->scale(b32->ctx, f32, &lam, R * N, &err);
    judge("scale", got, ref, f32, NULL, R * N, 1);
    free(x), free(h), free(xr), free(hr), free((void *)w.host), free((void *)lam.host);
}

static void test_matmul_embed_lm_head(void) {
    enum { M = 5, K = 48, N = 24 };
    float *x = tu_randf(M * K, 1.5), *xr = rb(x, M * K);
    int64_t sh[2] = {N, K};
    g4_weight W = tu_weight("W", 2, sh, 0.0, 0.3, NULL);
    b32->ops->load_weight(b32->ctx, &W, &err);
    float got[M * N], ref[M * N], f32[M * N];
    b16->ops->matmul(b16->ctx, got, x, &W, M, &err);
    b32->ops->matmul(b32->ctx, ref, xr, &W, M, &err);
    g4_cpu_round_bf16(ref, M * N);
    b32->ops->matmul(b32->ctx, f32, x, &W, M, &err);
    judge("matmul", got, ref, f32, NULL, M * N, 1);

    /* embed: rows of W (as E [V=N, H=K]) × a scale that is not a power of two */
    int32_t ids[3] = {5, 0, 23}, pos[3] = {0, 1, 2}, rows[2] = {4, 1};
    g4_step_dev s = {.n_tokens = 3, .token_ids = ids, .pos = pos, .n_rows = 0};
    float eg[3 * K], er[3 * K], ef[3 * K];
    b16->ops->embed(b16->ctx, eg, &s, &W, 6.9282f, &err);
    b32->ops->embed(b32->ctx, er, &s, &W, 6.9282f, &err);
    memcpy(ef, er, sizeof ef);
    g4_cpu_round_bf16(er, 3 * K);
    judge("embed", eg, er, ef, NULL, 3 * K, 1);

    /* lm_head: input rounded on read, logits (and softcap) stay f32 */
    s = (g4_step_dev){.n_tokens = M, .n_rows = 2, .rows = rows};
    float lg[2 * N], lr[2 * N], lf[2 * N];
    b16->ops->lm_head(b16->ctx, lg, x, &s, &W, 3.0f, &err);
    b32->ops->lm_head(b32->ctx, lr, xr, &s, &W, 3.0f, &err);
    b32->ops->lm_head(b32->ctx, lf, x, &s, &W, 3.0f, &err);
    judge("lm_head", lg, lr, lf, NULL, 2 * N, 0);
    CHECK(!all_bf16(lg, 2 * N), "lm_head: logits were rounded to bf16 (the CUDA backend keeps them f32)");
    free(x), free(xr), free((void *)W.host);
}

/* qk_norm_rope_cache on a sliding (K, V) and a global single-tensor (U) layer, then attention. */
static void test_attention(int single) {
    enum { T = 5, NQ = 4, NKV = 2, D = 32, B = 4, NB = 2 };
    int64_t sh[1] = {D};
    float *qwf, *kwf;
    g4_weight qn = tu_weight("q_norm", 1, sh, 0.6, 0.2, &qwf), kn = tu_weight("k_norm", 1, sh, 0.6, 0.2, &kwf);
    b32->ops->load_weight(b32->ctx, &qn, &err);
    b32->ops->load_weight(b32->ctx, &kn, &err);
    float *q = tu_randf(T * NQ * D, 2.0), *k = tu_randf(T * NKV * D, 2.0), *v = tu_randf(T * NKV * D, 2.0);
    int32_t pos[T] = {0, 1, 2, 3, 4}, seq[T] = {0}, table[NB] = {1, 0};
    g4_step_dev s = {.n_tokens = T,
                     .pos = pos,
                     .seq = seq,
                     .n_seqs = 1,
                     .max_blocks = NB,
                     .blocks_sliding = table,
                     .blocks_global = table,
                     .max_pos = T - 1};
    g4_attn_geom g = {.layer = 0,
                      .n_heads = NQ,
                      .n_kv_heads = NKV,
                      .head_dim = D,
                      .window = single ? 0 : 3,
                      .rope = {.theta = 10000.0, .rotated_pairs = single ? 4 : D / 2},
                      .k_eq_v = single,
                      .eps = 1e-6f};
    size_t ce = (size_t)NB * (single ? 1 : 2) * B * NKV * D;
    float c16[2 * NB * B * NKV * D] = {0}, c32[2 * NB * B * NKV * D] = {0};
    g4_kv_layer kv16 = {c16, NB, B, NKV, D, single}, kv32 = {c32, NB, B, NKV, D, single};
    float q16[T * NQ * D], q32[T * NQ * D], qref[T * NQ * D], qalt[T * NQ * D];
    memcpy(q16, q, sizeof q16);
    memcpy(q32, q, sizeof q32);
    CHECK(!b16->ops->qk_norm_rope_cache(b16->ctx, q16, q16, k, v, 0, &qn, &kn, &g, &kv16, &s, &err), "%s", err.msg);
    CHECK(!b32->ops->qk_norm_rope_cache(b32->ctx, q32, q32, k, v, 0, &qn, &kn, &g, &kv32, &s, &err), "%s", err.msg);
    /* reference: q = bf16(RoPE(bf16(RMSNorm_w(bf16 q)))); alt: without the rounding before RoPE */
    for (int t = 0; t < T; t++)
        for (int h = 0; h < NQ; h++) {
            float *r = qref + ((size_t)t * NQ + h) * D, *a = qalt + ((size_t)t * NQ + h) * D;
            for (int i = 0; i < D; i++) r[i] = g4_round_bf16(q[((size_t)t * NQ + h) * D + i]);
            g4_cpu_rmsnorm_row(r, r, qwf, D, 1e-6f);
            memcpy(a, r, D * sizeof *a);
            g4_cpu_round_bf16(r, D);
            g4_cpu_rope(r, D, &g.rope, pos[t]);
            g4_cpu_rope(a, D, &g.rope, pos[t]);
            g4_cpu_round_bf16(r, D);
            g4_cpu_round_bf16(a, D);
        }
    judge(single ? "q (global layer)" : "q (sliding layer)", q16, qref, q32, qalt, T * NQ * D, 1);
    /* cache: K = bf16(RoPE(bf16(RMSNorm_k(bf16 k)))), V = bf16(RMSNorm(bf16 v)); U = bf16(RMSNorm(bf16 k)) */
    float cref[2 * NB * B * NKV * D] = {0}, calt[2 * NB * B * NKV * D] = {0};
    for (int t = 0; t < T; t++)
        for (int h = 0; h < NKV; h++) {
            int blk = table[pos[t] / B], slot = pos[t] % B;
            float *kr = cref + g4_kv_offset(&kv16, blk, slot, h, 0), *ka = calt + g4_kv_offset(&kv16, blk, slot, h, 0);
            for (int i = 0; i < D; i++) kr[i] = g4_round_bf16(k[((size_t)t * NKV + h) * D + i]);
            g4_cpu_rmsnorm_row(kr, kr, single ? NULL : kwf, D, 1e-6f);
            memcpy(ka, kr, D * sizeof *ka);
            g4_cpu_round_bf16(kr, D);
            if (!single) {
                g4_cpu_rope(kr, D, &g.rope, pos[t]);
                g4_cpu_rope(ka, D, &g.rope, pos[t]);
                g4_cpu_round_bf16(kr, D);
                float *vr = cref + g4_kv_offset(&kv16, blk, slot, h, 1),
                      *va = calt + g4_kv_offset(&kv16, blk, slot, h, 1);
                for (int i = 0; i < D; i++) vr[i] = g4_round_bf16(v[((size_t)t * NKV + h) * D + i]);
                g4_cpu_rmsnorm_row(vr, vr, NULL, D, 1e-6f);
                g4_cpu_round_bf16(vr, D);
                memcpy(va, vr, D * sizeof *va);
            }
            g4_cpu_round_bf16(ka, D);
        }
    judge(single ? "cache U" : "cache K, V", c16, cref, c32, single ? NULL : calt, ce, 1);

    /* attention: the fp32 op on the rounded query over the same (bf16-valued) cache, rounded */
    float *qraw = tu_randf(T * NQ * D, 1.0), *qr = rb(qraw, T * NQ * D);
    float o16[T * NQ * D], oref[T * NQ * D], of32[T * NQ * D];
    CHECK(!b16->ops->attention(b16->ctx, o16, qraw, &kn, &g, &kv16, &s, &err), "%s", err.msg);
    CHECK(!b32->ops->attention(b32->ctx, oref, qr, &kn, &g, &kv16, &s, &err), "%s", err.msg);
    g4_cpu_round_bf16(oref, T * NQ * D);
    CHECK(!b32->ops->attention(b32->ctx, of32, qraw, &kn, &g, &kv32, &s, &err), "%s", err.msg);
    judge(single ? "attention (global)" : "attention (sliding)", o16, oref, of32, NULL, T * NQ * D, 1);
    free(q), free(k), free(v), free(qraw), free(qr), free(qwf), free(kwf), free((void *)qn.host), free((void *)kn.host);
}

static void test_moe(void) {
    enum { T = 4, H = 32, E = 4, I = 16, K = 2 };
    int64_t sp[2] = {E, H}, ss[1] = {H}, se[1] = {E}, sgu[3] = {E, 2 * I, H}, sd[3] = {E, H, I};
    g4_weight proj = tu_weight("proj", 2, sp, 0.0, 0.5, NULL), sc = tu_weight("scale", 1, ss, 1.0, 0.2, NULL);
    g4_weight es = tu_weight("es", 1, se, 1.0, 0.3, NULL);
    float *guf, *dnf;
    g4_weight gu = tu_weight("gate_up", 3, sgu, 0.0, 0.3, &guf), dn = tu_weight("down", 3, sd, 0.0, 0.3, &dnf);
    g4_weight *all[] = {&proj, &sc, &es, &gu, &dn};
    for (int i = 0; i < 5; i++) b32->ops->load_weight(b32->ctx, all[i], &err);
    float *h1 = tu_randf(T * H, 3.0), *h1r = rb(h1, T * H);
    int32_t id16[T * K], id32[T * K];
    float w16[T * K], w32[T * K];
    b16->ops->moe_route(b16->ctx, id16, w16, h1, &proj, &sc, &es, T, K, 1e-6f, &err);
    b32->ops->moe_route(b32->ctx, id32, w32, h1r, &proj, &sc, &es, T, K, 1e-6f, &err);
    CHECK(!memcmp(id16, id32, sizeof id16) && same(w16, w32, T * K), "moe_route: bf16 mode != fp32 router on bf16(h1)");
    printf("%-20s bit-exact vs fp32 router on rounded input\n", "moe_route");

    /* experts: gate/up rounded, act rounded, down f32, Σ w·down rounded once */
    float got[T * H], ref[T * H], alt[T * H], f32[T * H];
    b16->ops->moe_experts(b16->ctx, got, h1, id32, w32, &gu, &dn, T, K, &err);
    b32->ops->moe_experts(b32->ctx, f32, h1, id32, w32, &gu, &dn, T, K, &err);
    for (int t = 0; t < T; t++) {
        float g[2 * I], ga[2 * I];
        for (int o = 0; o < H; o++) ref[t * H + o] = alt[t * H + o] = 0;
        for (int j = 0; j < K; j++) {
            int e = id32[t * K + j];
            for (int r = 0; r < 2 * I; r++) {
                ga[r] = g4_cpu_dot(h1r + t * H, guf + ((size_t)e * 2 * I + r) * H, H);
                g[r] = g4_round_bf16(ga[r]);
            }
            for (int r = 0; r < I; r++) {
                g[r] = g4_round_bf16(g4_cpu_gelu_tanh(g[r]) * g[I + r]);
                ga[r] = g4_round_bf16(g4_cpu_gelu_tanh(ga[r]) * ga[I + r]); /* alt: gate/up not rounded */
            }
            for (int o = 0; o < H; o++) {
                ref[t * H + o] += w32[t * K + j] * g4_cpu_dot(g, dnf + ((size_t)e * H + o) * I, I);
                alt[t * H + o] += w32[t * K + j] * g4_cpu_dot(ga, dnf + ((size_t)e * H + o) * I, I);
            }
        }
    }
    g4_cpu_round_bf16(ref, T * H);
    g4_cpu_round_bf16(alt, T * H);
    judge("moe_experts", got, ref, f32, alt, T * H, 1);
    free(h1), free(h1r), free(guf), free(dnf);
    for (int i = 0; i < 5; i++) free((void *)all[i]->host);
}

/* F32 weights become bf16 copies in bf16 mode, stay aliased in fp32 mode. */
static void test_load_weight(void) {
    float vals[4] = {1.00390625f + 1e-3f, -2.5f, 3.14159f, 1e-3f};
    g4_weight w32 = {.name = "f32", .dtype = G4_DT_F32, .ndim = 1, .shape = {4}, .host = vals}, w16 = w32;
    CHECK(!b32->ops->load_weight(b32->ctx, &w32, &err) && !b16->ops->load_weight(b16->ctx, &w16, &err), "%s", err.msg);
    CHECK(w32.data == vals && w32.data_dtype == G4_DT_F32, "fp32 mode: F32 weight not aliased");
    CHECK(w16.data != vals && w16.data_dtype == G4_DT_BF16, "bf16 mode: F32 weight not converted");
    for (int i = 0; i < 4; i++)
        CHECK(g4_bf16_to_f32(((uint16_t *)w16.data)[i]) == g4_round_bf16(vals[i]), "bf16 mode: weight %d value", i);
    b16->ops->unload_weight(b16->ctx, &w16);
    b32->ops->unload_weight(b32->ctx, &w32);
    printf("%-20s F32 → bf16 at load in bf16 mode\n", "load_weight");
}

/* The vision tower's ops: inputs rounded on read, the output rounded once (vision.cu). */
static void test_vision(void) {
    enum { PH = 3, PW = 6, T = PH * PW, NH = 2, D = 8, NN = T * NH * D, W = 12 };
    float *x = tu_randf(NN, 2.0), *k = tu_randf(NN, 1.0), *v = tu_randf(NN, 1.5), *xr = rb(x, NN), *kr = rb(k, NN),
          *vr = rb(v, NN);
    float got[NN], ref[NN], f32[NN];
    int32_t pos[2 * T];
    for (int t = 0; t < T; t++) pos[2 * t] = t % PW, pos[2 * t + 1] = t / PW;

    memcpy(got, x, sizeof got);
    b16->ops->rope_2d(b16->ctx, got, pos, T, NH, D, 100.0f, &err);
    memcpy(ref, xr, sizeof ref);
    b32->ops->rope_2d(b32->ctx, ref, pos, T, NH, D, 100.0f, &err);
    g4_cpu_round_bf16(ref, NN);
    memcpy(f32, x, sizeof f32);
    b32->ops->rope_2d(b32->ctx, f32, pos, T, NH, D, 100.0f, &err);
    judge("rope_2d", got, ref, f32, NULL, NN, 1);

    b16->ops->encoder_attention(b16->ctx, got, x, k, v, T, NH, NH, D, 1.0f, &err);
    b32->ops->encoder_attention(b32->ctx, ref, xr, kr, vr, T, NH, NH, D, 1.0f, &err);
    g4_cpu_round_bf16(ref, NN);
    b32->ops->encoder_attention(b32->ctx, f32, x, k, v, T, NH, NH, D, 1.0f, &err);
    judge("encoder_attention", got, ref, f32, NULL, NN, 1);

    int64_t sh[1] = {W};
    g4_weight bias = tu_weight("std_bias", 1, sh, 0.2, 1.0, NULL),
              scale = tu_weight("std_scale", 1, sh, 0.7, 0.2, NULL);
    b32->ops->load_weight(b32->ctx, &bias, &err);
    b32->ops->load_weight(b32->ctx, &scale, &err);
    float *px = tu_randf(T * W, 3.0), *pxr = rb(px, T * W), pg[T / 9 * W], pr[T / 9 * W], pf[T / 9 * W];
    b16->ops->vision_pool(b16->ctx, pg, px, PH, PW, W, 3, 3.4641f, &bias, &scale, &err);
    b32->ops->vision_pool(b32->ctx, pr, pxr, PH, PW, W, 3, 3.4641f, &bias, &scale, &err);
    g4_cpu_round_bf16(pr, T / 9 * W);
    b32->ops->vision_pool(b32->ctx, pf, px, PH, PW, W, 3, 3.4641f, &bias, &scale, &err);
    judge("vision_pool", pg, pr, pf, NULL, T / 9 * W, 1);
    free(x), free(k), free(v), free(xr), free(kr), free(vr), free(px), free(pxr);
    free((void *)bias.host), free((void *)scale.host);
}

int main(void) {
    g4_cpu_opts o;
    g4_cpu_opts_default(&o);
    b32 = g4_backend_cpu_create_opts(&o, &err);
    o.round_bf16 = 1;
    b16 = g4_backend_cpu_create_opts(&o, &err);
    REQUIRE(b32 && b16, "%s", err.msg);
    CHECK(b16->ops->act_dtype == G4_DT_F32 && b16->ops->kv_dtype == G4_DT_F32, "bf16 mode keeps f32 buffers");
    o.sum_order = 4;
    g4_backend *bad = g4_backend_cpu_create_opts(&o, &err);
    CHECK(bad == NULL, "sum_order 4 accepted");
    test_rowwise();
    test_matmul_embed_lm_head();
    test_attention(0);
    test_attention(1);
    test_moe();
    test_vision();
    test_load_weight();
    g4_backend_destroy(b32);
    g4_backend_destroy(b16);
    return check_summary();
}
