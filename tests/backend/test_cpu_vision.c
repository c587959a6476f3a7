/* test_cpu_vision.c — the CPU twins of the vision tower's ops (cpu_vision.c) against naive
 * double-precision formulas written the way transformers' Gemma 4 vision code states them, at
 * the real tower's geometry: a 70-token image (21 × 30 patches, N = 630), 16 heads × 72, D = 1152.
 *   rope_2d: cos / sin laid out as [f(x), f(x), f(y), f(y)] with inv_freq = θ^(−2i/36), i < 18,
 *            x·cos + rotate_half(x)·sin on each 36-channel half (apply_multidimensional_rope)
 *   encoder_attention: softmax(q·kᵀ) · v over all N patches, in double
 *   vision_pool: the one-hot averaging matrix of _avg_pool_by_positions (cell = x/3 + (pw/3)·(y/3),
 *            weight 1/9), × √D, then (· − std_bias) ⊙ std_scale
 * Inputs random (never zeros). Bar: 1e-5 relative (f32 vs double over sums of ≤ 630 terms). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "backend/backend.h"
#include "check.h"
#include "test_util.h"

#define PH 21
#define PW 30
#define N (PH * PW)
#define NH 16
#define HD 72
#define DM 1152
#define BAR 1e-5

static g4_backend *be;
static g4_error err;

static void test_rope_2d(void) {
    size_t n = (size_t)N * NH * HD;
    float *x = tu_randf(n, 2.0);
    double *want = malloc(n * sizeof *want);
    int32_t pos[2 * N];
    for (int t = 0; t < N; t++) pos[2 * t] = t % PW, pos[2 * t + 1] = t / PW;
    const int spatial = HD / 2, nf = spatial / 2; /* 36 channels per axis, 18 frequencies */
    for (int t = 0; t < N; t++)
        for (int h = 0; h < NH; h++) {
            const float *xh = x + ((size_t)t * NH + h) * HD;
            double cosv[HD], sinv[HD];
            for (int c = 0; c < HD; c++) { /* [f(x), f(x), f(y), f(y)] */
                int axis = c / spatial, i = c % nf;
                double ang = pos[2 * t + axis] * (1.0 / pow(100.0, 2.0 * i / spatial));
                cosv[c] = cos(ang), sinv[c] = sin(ang);
            }
            for (int part = 0; part < 2; part++)
                for (int c = 0; c < spatial; c++) {
                    int at = part * spatial + c;
                    double rot = c < nf ? -(double)xh[at + nf] : (double)xh[at - nf]; /* rotate_half */
                    want[((size_t)t * NH + h) * HD + at] = xh[at] * cosv[at] + rot * sinv[at];
                }
        }
    CHECK(be->ops->rope_2d(be->ctx, x, pos, N, NH, HD, 100.0f, &err) == 0, "%s", err.msg);
    double e = tu_rel_err(x, want, n);
    printf("rope_2d [%d,%d,%d]: rel err %.3g\n", N, NH, HD, e);
    CHECK(e < BAR, "rope_2d rel err %g", e);
    CHECK(be->ops->rope_2d(be->ctx, x, pos, N, NH, 70, 100.0f, &err) == -1, "head_dim 70 refused");
    free(x), free(want);
}

static void test_attention(void) {
    size_t n = (size_t)N * NH * HD;
    float *q = tu_randf(n, 1.0), *k = tu_randf(n, 1.0), *v = tu_randf(n, 1.5), *out = malloc(n * sizeof *out);
    double *want = malloc(n * sizeof *want), *s = malloc(N * sizeof *s);
    for (int t = 0; t < N; t++)
        for (int h = 0; h < NH; h++) {
            const float *qh = q + ((size_t)t * NH + h) * HD;
            double mx = -INFINITY, sum = 0;
            for (int j = 0; j < N; j++) {
                double d = 0;
                for (int i = 0; i < HD; i++) d += (double)qh[i] * k[((size_t)j * NH + h) * HD + i];
                s[j] = d;
                mx = fmax(mx, d);
            }
            for (int j = 0; j < N; j++) sum += s[j] = exp(s[j] - mx);
            for (int i = 0; i < HD; i++) {
                double a = 0;
                for (int j = 0; j < N; j++) a += s[j] * v[((size_t)j * NH + h) * HD + i];
                want[((size_t)t * NH + h) * HD + i] = a / sum;
            }
        }
    CHECK(be->ops->encoder_attention(be->ctx, out, q, k, v, N, NH, NH, HD, 1.0f, &err) == 0, "%s", err.msg);
    double e = tu_rel_err(out, want, n);
    printf("encoder_attention [%d,%d,%d]: rel err %.3g\n", N, NH, HD, e);
    CHECK(e < BAR, "encoder_attention rel err %g", e);
    /* kv heads must divide the query heads */
    CHECK(be->ops->encoder_attention(be->ctx, out, q, k, v, N, NH, 5, HD, 1.0f, &err) == -1, "5 kv heads refused");
    free(q), free(k), free(v), free(out), free(want), free(s);
}

static void test_pool(void) {
    size_t n = (size_t)N * DM, m = (size_t)(N / 9) * DM;
    float *x = tu_randf(n, 3.0), *y = malloc(m * sizeof *y), *bf, *sf;
    double *want = calloc(m, sizeof *want);
    const int64_t shape[1] = {DM};
    g4_weight bias = tu_weight("std_bias", 1, shape, 0.3, 2.0, &bf),
              scale = tu_weight("std_scale", 1, shape, 0.6, 0.3, &sf);
    CHECK(be->ops->load_weight(be->ctx, &bias, &err) == 0 && be->ops->load_weight(be->ctx, &scale, &err) == 0, "load");
    for (int t = 0; t < N; t++) { /* the one-hot averaging matrix, as transformers builds it */
        int cx = t % PW, cy = t / PW, cell = cx / 3 + (PW / 3) * (cy / 3);
        for (int i = 0; i < DM; i++) want[(size_t)cell * DM + i] += x[(size_t)t * DM + i] / 9.0;
    }
    for (size_t c = 0; c < m; c++) want[c] = (want[c] * sqrt((double)DM) - bf[c % DM]) * sf[c % DM];
    CHECK(be->ops->vision_pool(be->ctx, y, x, PH, PW, DM, 3, sqrtf((float)DM), &bias, &scale, &err) == 0, "%s",
          err.msg);
    double e = tu_rel_err(y, want, m);
    printf("vision_pool [%d x %d, %d] -> [%d, %d]: rel err %.3g\n", PH, PW, DM, N / 9, DM, e);
    CHECK(e < BAR, "vision_pool rel err %g", e);
    CHECK(be->ops->vision_pool(be->ctx, y, x, 20, PW, DM, 3, 1.0f, NULL, NULL, &err) == -1, "20 rows refused");
    be->ops->unload_weight(be->ctx, &bias), be->ops->unload_weight(be->ctx, &scale);
    free((void *)bias.host), free((void *)scale.host), free(bf), free(sf);
    free(x), free(y), free(want);
}

int main(void) {
    be = g4_backend_cpu_create(&err);
    REQUIRE(be != NULL, "%s", err.msg);
    CHECK(g4_backend_supports(be, G4_OP_ROPE_2D, G4_DT_F32) &&
              g4_backend_supports(be, G4_OP_ENCODER_ATTENTION, G4_DT_F32) &&
              g4_backend_supports(be, G4_OP_VISION_POOL, G4_DT_F32),
          "cpu supports the vision ops");
    test_rope_2d();
    test_attention();
    test_pool();
    g4_backend_destroy(be);
    return check_summary();
}
