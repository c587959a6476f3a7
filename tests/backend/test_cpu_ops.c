/* test_cpu_ops.c — CPU backend row-wise and MoE ops vs naive double-precision formulas, at real
 * 31B / 26B-A4B widths on random inputs: embed, rmsnorm (with/without weight), add_rmsnorm,
 * scale, add, matmul, geglu, RoPE (incl. the proportional d=512 layout), lm_head + softcap,
 * MoE router (incl. tie-break) and experts. */
#include <stdio.h>

#include "backend/backend.h"
#include "backend/cpu/cpu_internal.h"
#include "check.h"
#include "test_util.h"

static g4_backend *be;
static g4_error err;

static void load(g4_weight *w) { CHECK(be->ops->load_weight(be->ctx, w, &err) == 0, "%s", err.msg); }

static void test_rmsnorm(void) {
    int rows = 3, n = 5376;
    float *x = tu_randf((size_t)rows * n, 3.0), *wf, *y = malloc(sizeof(float) * rows * n);
    int64_t sh[1] = {n};
    g4_weight w = tu_weight("norm", 1, sh, 1.0, 0.3, &wf);
    load(&w);
    double *ref = malloc(sizeof(double) * rows * n), *xd = malloc(sizeof(double) * n);
    for (int pass = 0; pass < 2; pass++) {
        for (int r = 0; r < rows; r++) {
            for (int i = 0; i < n; i++) xd[i] = x[(size_t)r * n + i];
            tu_rmsnorm(ref + (size_t)r * n, xd, pass ? NULL : wf, n, 1e-6);
        }
        CHECK(be->ops->rmsnorm(be->ctx, y, x, pass ? NULL : &w, rows, n, 1e-6f, &err) == 0, "%s", err.msg);
        double e = tu_rel_err(y, ref, (size_t)rows * n);
        CHECK(e < 1e-6, "rmsnorm (weight %d) rel err %g", !pass, e);
    }
    /* add_rmsnorm: h += RMSNorm_w(x) */
    float *h = tu_randf((size_t)rows * n, 2.0);
    double *href = malloc(sizeof(double) * rows * n);
    for (int r = 0; r < rows; r++) {
        for (int i = 0; i < n; i++) xd[i] = x[(size_t)r * n + i];
        tu_rmsnorm(href + (size_t)r * n, xd, wf, n, 1e-6);
        for (int i = 0; i < n; i++) href[(size_t)r * n + i] += h[(size_t)r * n + i];
    }
    CHECK(be->ops->add_rmsnorm(be->ctx, h, x, &w, rows, n, 1e-6f, &err) == 0, "%s", err.msg);
    CHECK(tu_rel_err(h, href, (size_t)rows * n) < 1e-6, "add_rmsnorm");
    free(x), free(wf), free(y), free((void *)w.host), free(ref), free(xd), free(h), free(href);
}

static void test_scale_add_geglu(void) {
    size_t n = 2816 * 3;
    float *a = tu_randf(n, 4.0), *b = tu_randf(n, 4.0), *y = malloc(n * sizeof *y), *lf;
    double *ref = malloc(n * sizeof *ref);
    int64_t one = 1;
    g4_weight lam = tu_weight("layer_scalar", 1, &one, 0.1, 0.05, &lf);
    load(&lam);
    memcpy(y, a, n * sizeof *y);
    CHECK(be->ops->scale(be->ctx, y, &lam, n, &err) == 0, "%s", err.msg);
    for (size_t i = 0; i < n; i++) ref[i] = (double)a[i] * lf[0];
    CHECK(tu_rel_err(y, ref, n) < 1e-7, "scale");
    CHECK(be->ops->add(be->ctx, y, a, b, n, &err) == 0, "%s", err.msg);
    for (size_t i = 0; i < n; i++) ref[i] = (double)a[i] + b[i];
    CHECK(tu_rel_err(y, ref, n) < 1e-7, "add");
    /* geglu on 3 rows of [gate | up] (the fused GEMM's layout): y[r,i] = gelu(a[r,i]) · b[r,i] */
    int rows = 3, w = (int)(n / 3);
    float *gu = malloc(2 * n * sizeof *gu);
    for (int r = 0; r < rows; r++) {
        memcpy(gu + (size_t)r * 2 * w, a + (size_t)r * w, w * sizeof *gu);
        memcpy(gu + (size_t)r * 2 * w + w, b + (size_t)r * w, w * sizeof *gu);
    }
    CHECK(be->ops->geglu(be->ctx, y, gu, rows, w, &err) == 0, "%s", err.msg);
    for (size_t i = 0; i < n; i++) ref[i] = tu_gelu_tanh(a[i]) * b[i];
    double e = tu_rel_err(y, ref, n);
    CHECK(e < 1e-6, "geglu rel err %g", e);
    free(a), free(b), free(gu), free(y), free(ref), free(lf), free((void *)lam.host);
}

static void test_matmul(void) {
    int M = 3, N = 8192, K = 5376; /* 31B sliding q_proj */
    int64_t sh[2] = {N, K};
    float *wf, *x = tu_randf((size_t)M * K, 1.0), *y = malloc(sizeof(float) * M * N);
    g4_weight W = tu_weight("q_proj", 2, sh, 0.0, 0.02, &wf);
    load(&W);
    CHECK(be->ops->matmul(be->ctx, y, x, &W, M, &err) == 0, "%s", err.msg);
    double *ref = malloc(sizeof(double) * M * N);
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            double s = 0;
            for (int k = 0; k < K; k++) s += (double)x[(size_t)m * K + k] * wf[(size_t)n * K + k];
            ref[(size_t)m * N + n] = s;
        }
    double e = tu_rel_err(y, ref, (size_t)M * N);
    CHECK(e < 1e-5, "matmul rel err %g", e);
    free(wf), free(x), free(y), free(ref), free((void *)W.host);
}

static void test_rope(void) {
    /* global layers: d = 512, θ = 1e6, 64 of 256 pairs rotate → dims [0,64) and [256,320) */
    int d = 512;
    g4_rope rope = {.theta = 1e6, .rotated_pairs = 64};
    float *x = tu_randf(d, 1.0), *y = malloc(d * sizeof *y);
    double *ref = malloc(d * sizeof *ref);
    for (int pos = 1; pos < 300000; pos = pos * 7 + 3) {
        memcpy(y, x, d * sizeof *y);
        g4_cpu_rope(y, d, &rope, pos);
        for (int i = 0; i < d; i++) ref[i] = x[i];
        tu_rope(ref, d, 1e6, 64, pos);
        int moved_outside = 0, moved_inside = 0;
        for (int i = 0; i < d; i++) {
            int rotated = i < 64 || (i >= 256 && i < 320);
            if (!rotated) moved_outside += y[i] != x[i];
            else moved_inside += y[i] != x[i];
        }
        CHECK(moved_outside == 0, "pos %d: %d pass-through dims changed", pos, moved_outside);
        CHECK(moved_inside > 100, "pos %d: only %d rotated dims changed", pos, moved_inside);
        /* fp32 angles: error grows with pos (spec §2.9: ~0.02 rad at 2.6e5) */
        double e = tu_rel_err(y, ref, d), bound = pos < 5000 ? 1e-4 : 5e-2;
        CHECK(e < bound, "rope d512 pos %d rel err %g", pos, e);
    }
    /* sliding layers: d = 256, θ = 1e4, all 128 pairs */
    g4_rope rs = {.theta = 1e4, .rotated_pairs = 128};
    memcpy(y, x, 256 * sizeof *y);
    g4_cpu_rope(y, 256, &rs, 1000);
    for (int i = 0; i < 256; i++) ref[i] = x[i];
    tu_rope(ref, 256, 1e4, 128, 1000);
    CHECK(tu_rel_err(y, ref, 256) < 1e-4, "rope d256");
    free(x), free(y), free(ref);
}

static void test_embed_lm_head(void) {
    int V = 262144, H = 256, T = 4;
    int64_t sh[2] = {V, H};
    float *Ef;
    g4_weight E = tu_weight("embed_tokens", 2, sh, 0.0, 0.5, &Ef);
    load(&E);
    int32_t ids[4] = {0, 262143, 106, 77777}, rows[2] = {3, 1};
    g4_step_dev s = {.n_tokens = T, .token_ids = ids, .n_rows = 2, .rows = rows};
    float *x = malloc(sizeof(float) * T * H);
    CHECK(be->ops->embed(be->ctx, x, &s, &E, 16.0f, &err) == 0, "%s", err.msg);
    int exact = 1;
    for (int t = 0; t < T; t++)
        for (int i = 0; i < H; i++) exact &= x[(size_t)t * H + i] == Ef[(size_t)ids[t] * H + i] * 16.0f;
    CHECK(exact, "embed rows = E[id] × scale");
    int32_t bad_id = 262144;
    g4_step_dev sb = {.n_tokens = 1, .token_ids = &bad_id};
    CHECK(be->ops->embed(be->ctx, x, &sb, &E, 16.0f, &err) != 0 && strstr(err.msg, "262144"), "bad id rejected: %s",
          err.msg);
    float *logits = malloc(sizeof(float) * 2 * V);
    double *ref = malloc(sizeof(double) * 2 * V);
    float cap = 1.0f; /* small so it bites: |x·e| reaches ~8 */
    CHECK(be->ops->lm_head(be->ctx, logits, x, &s, &E, cap, &err) == 0, "%s", err.msg);
    int capped = 0;
    for (int r = 0; r < 2; r++)
        for (int v = 0; v < V; v++) {
            double z = 0;
            for (int i = 0; i < H; i++) z += (double)x[(size_t)rows[r] * H + i] * Ef[(size_t)v * H + i];
            capped += fabs(z) > 2 * cap;
            ref[(size_t)r * V + v] = cap * tanh(z / cap);
        }
    CHECK(capped > 1000, "softcap engaged on %d logits", capped);
    double e = tu_rel_err(logits, ref, (size_t)2 * V);
    CHECK(e < 1e-5, "lm_head rel err %g", e);
    free(Ef), free((void *)E.host), free(x), free(logits), free(ref);
}

/* Router at the 26B shapes: E = 128, H = 2816, top-8. */
static void test_moe(void) {
    int E = 128, H = 2816, K = 8, I = 704, T = 3;
    int64_t sp[2] = {E, H}, ss[1] = {H}, se[1] = {E};
    float *pf, *sf, *ef;
    g4_weight proj = tu_weight("router.proj", 2, sp, 0.0, 0.05, &pf);
    g4_weight scale = tu_weight("router.scale", 1, ss, 1.0, 0.3, &sf);
    g4_weight es = tu_weight("router.per_expert_scale", 1, se, 1.0, 0.4, &ef);
    /* make experts 40 and 41 identical so their probabilities tie exactly */
    memcpy((uint16_t *)proj.host + 41 * H, (uint16_t *)proj.host + 40 * H, H * sizeof(uint16_t));
    memcpy(pf + 41 * H, pf + 40 * H, H * sizeof(float));
    load(&proj), load(&scale), load(&es);
    float *h1 = tu_randf((size_t)T * H, 5.0), wts[24];
    int32_t ids[24];
    /* token 2 pushed towards expert 40/41 so the tie is inside the top-8 */
    for (int i = 0; i < H; i++) h1[2 * H + i] = pf[40 * H + i] * 400.0f / sf[i];
    CHECK(be->ops->moe_route(be->ctx, ids, wts, h1, &proj, &scale, &es, T, K, 1e-6f, &err) == 0, "%s", err.msg);
    for (int t = 0; t < T; t++) {
        double xd[2816], u[2816], p[128], mx = -1e300, sum = 0;
        for (int i = 0; i < H; i++) xd[i] = h1[(size_t)t * H + i];
        tu_rmsnorm(u, xd, NULL, H, 1e-6);
        for (int i = 0; i < H; i++) u[i] *= sf[i] / sqrt((double)H);
        for (int e = 0; e < E; e++) {
            p[e] = 0;
            for (int i = 0; i < H; i++) p[e] += u[i] * pf[(size_t)e * H + i];
            if (p[e] > mx) mx = p[e];
        }
        for (int e = 0; e < E; e++) sum += (p[e] = exp(p[e] - mx));
        /* reference top-8 by sorting (value desc, id asc) */
        int order[128];
        for (int e = 0; e < E; e++) order[e] = e;
        for (int a = 0; a < K; a++)
            for (int b = a + 1; b < E; b++)
                if (p[order[b]] > p[order[a]] || (p[order[b]] == p[order[a]] && order[b] < order[a])) {
                    int tmp = order[a];
                    order[a] = order[b];
                    order[b] = tmp;
                }
        double top = 0;
        for (int j = 0; j < K; j++) top += p[order[j]];
        for (int j = 0; j < K; j++) {
            CHECK(ids[t * K + j] == order[j], "token %d slot %d: expert %d, expected %d", t, j, ids[t * K + j],
                  order[j]);
            double w = p[order[j]] / top * ef[order[j]];
            CHECK(fabs(wts[t * K + j] - w) < 1e-5 * fabs(w) + 1e-7, "token %d slot %d weight %g vs %g", t, j,
                  wts[t * K + j], w);
        }
    }
    int pos40 = -1, pos41 = -1;
    for (int j = 0; j < K; j++) {
        if (ids[2 * K + j] == 40) pos40 = j;
        if (ids[2 * K + j] == 41) pos41 = j;
    }
    CHECK(pos40 >= 0 && pos41 == pos40 + 1, "tied experts 40/41 ordered by id (%d, %d)", pos40, pos41);

    /* experts: y = Σ w · D_e(gelu(G_e x) ⊙ U_e x). The full [128, 1408, 2816] tensors are
     * allocated (zero pages cost nothing) and only the experts the ids select get random values,
     * so a wrong expert index reads zeros and shows up as a mismatch. */
    g4_weight gu = {.name = "experts.gate_up_proj", .dtype = G4_DT_BF16, .ndim = 3, .shape = {E, 2 * I, H}};
    g4_weight dn = {.name = "experts.down_proj", .dtype = G4_DT_BF16, .ndim = 3, .shape = {E, H, I}};
    uint16_t *guh = calloc((size_t)E * 2 * I * H, 2), *dnh = calloc((size_t)E * H * I, 2);
    gu.host = guh, dn.host = dnh;
    int Te = 2;
    float *x = tu_randf((size_t)Te * H, 1.0), *y = malloc(sizeof(float) * Te * H);
    ids[0] = 0, ids[1] = 127, ids[2] = 5, ids[3] = 64, ids[4] = 9, ids[5] = 10, ids[6] = 11, ids[7] = 12;
    ids[8] = 127, ids[9] = 3, ids[10] = 2, ids[11] = 1, ids[12] = 0, ids[13] = 100, ids[14] = 99, ids[15] = 98;
    for (int j = 0; j < 16; j++) wts[j] = (float)(0.05 + 0.1 * (j % 8));
    for (int j = 0; j < 16; j++) {
        size_t e = (size_t)ids[j];
        for (size_t i = 0; i < (size_t)2 * I * H; i++)
            guh[e * 2 * I * H + i] = g4_f32_to_bf16((float)(0.03 * tu_uniform()));
        for (size_t i = 0; i < (size_t)H * I; i++) dnh[e * H * I + i] = g4_f32_to_bf16((float)(0.06 * tu_uniform()));
    }
    load(&gu), load(&dn);
    CHECK(be->ops->moe_experts(be->ctx, y, x, ids, wts, &gu, &dn, Te, K, &err) == 0, "%s", err.msg);
    double *ref = calloc((size_t)Te * H, sizeof *ref), *act = malloc(sizeof(double) * I);
    for (int t = 0; t < Te; t++)
        for (int j = 0; j < K; j++) {
            int e = ids[t * K + j];
            for (int r = 0; r < I; r++) {
                double g = 0, u2 = 0;
                for (int i = 0; i < H; i++) {
                    g += (double)g4_bf16_to_f32(guh[((size_t)e * 2 * I + r) * H + i]) * x[(size_t)t * H + i];
                    u2 += (double)g4_bf16_to_f32(guh[((size_t)e * 2 * I + I + r) * H + i]) * x[(size_t)t * H + i];
                }
                act[r] = tu_gelu_tanh(g) * u2;
            }
            for (int o = 0; o < H; o++) {
                double s = 0;
                for (int r = 0; r < I; r++) s += g4_bf16_to_f32(dnh[((size_t)e * H + o) * I + r]) * act[r];
                ref[(size_t)t * H + o] += wts[t * K + j] * s;
            }
        }
    double e = tu_rel_err(y, ref, (size_t)Te * H);
    CHECK(e < 1e-5, "moe_experts rel err %g", e);
    ids[3] = 128;
    CHECK(be->ops->moe_experts(be->ctx, y, x, ids, wts, &gu, &dn, Te, K, &err) != 0 && strstr(err.msg, "128"),
          "bad expert id rejected: %s", err.msg);
    free(pf), free(sf), free(ef), free(h1), free(x), free(y), free(ref), free(act);
    free((void *)proj.host), free((void *)scale.host), free((void *)es.host), free(guh), free(dnh);
}

int main(void) {
    be = g4_backend_cpu_create(&err);
    REQUIRE(be != NULL, "%s", err.msg);
    test_rmsnorm();
    test_scale_add_geglu();
    test_matmul();
    test_rope();
    test_embed_lm_head();
    test_moe();
    g4_backend_destroy(be);
    return check_summary();
}
