/* cpu_ops.c — the row-wise ops of the CPU reference backend: embedding, norms, residual
 * add, layer scalar, matmul, GeGLU, LM head. Plain fp32 loops, OpenMP over rows/columns.
 * Attention lives in cpu_attention.c, the MoE ops in cpu_moe.c. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu_internal.h"
#include "base/bf16.h"
#include "base/dummy.h"

void g4_cpu_weight_f32(const g4_weight *w, int64_t first, int64_t n, float *dst) {
    const void *p = w->data ? w->data : w->host;
    switch (w->data ? (g4_dtype)w->data_dtype : w->dtype) {
    case G4_DT_F32: memcpy(dst, (const float *)p + first, (size_t)n * sizeof(float)); break;
    case G4_DT_BF16: {
        const uint16_t *s = (const uint16_t *)p + first;
        for (int64_t i = 0; i < n; i++) dst[i] = g4_bf16_to_f32(s[i]);
        break;
    }
    case G4_DT_F16: {
        const uint16_t *s = (const uint16_t *)p + first;
        for (int64_t i = 0; i < n; i++) dst[i] = g4_f16_to_f32(s[i]);
        break;
    }
    default: /* the loader admits only float dtypes for weights */
        for (int64_t i = 0; i < n; i++) dst[i] = NAN;
    }
}

float g4_cpu_dot(const float *a, const float *b, int n) {
    float acc[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) acc[j] += a[i + j] * b[i + j];
    float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

void g4_cpu_rmsnorm_row(float *y, const float *x, const float *w, int n, float eps) {
    double ss = 0;
    for (int i = 0; i < n; i++) ss += (double)x[i] * x[i];
    float inv = (float)(1.0 / sqrt(ss / n + eps));
    for (int i = 0; i < n; i++) y[i] = x[i] * inv * (w ? w[i] : 1.0f);
}

float g4_cpu_gelu_tanh(float z) {
    const float k = 0.7978845608028654f; /* √(2/π) */
    return 0.5f * z * (1.0f + tanhf(k * (z + 0.044715f * z * z * z)));
}

/* x[i] ← x[i]cosθ − x[i+d/2]sinθ, x[i+d/2] ← x[i+d/2]cosθ + x[i]sinθ, θ = pos·θ_base^(−2i/d),
 * for the first rotated_pairs pairs; the rest pass through (inv_freq = 0). */
void g4_cpu_rope(float *x, int d, const g4_rope *rope, int pos) {
    int half = d / 2;
    for (int i = 0; i < rope->rotated_pairs && i < half; i++) {
        float inv_freq = (float)(1.0 / pow(rope->theta, (double)(2 * i) / d));
        float ang = (float)pos * inv_freq;
        float c = cosf(ang), s = sinf(ang);
        float a = x[i], b = x[i + half];
        x[i] = a * c - b * s;
        x[i + half] = b * c + a * s;
    }
}

/* x[t,:] = E[ids[t],:] × scale */
static int cpu_embed(void *ctx, void *x, const g4_step_dev *s, const g4_weight *E, float scale, g4_error *err) {
    (void)ctx;
    float *out = x;
    int64_t V = E->shape[0], H = E->shape[1];
    for (int t = 0; t < s->n_tokens; t++) {
        int id = s->token_ids[t];
        if (id < 0 || id >= V) return g4_fail(err, "embed: token id %d out of range [0, %lld)", id, (long long)V);
        g4_cpu_weight_f32(E, (int64_t)id * H, H, out + (size_t)t * H);
        for (int64_t i = 0; i < H; i++) out[(size_t)t * H + i] *= scale;
    }
    return 0;
}

static float *norm_weight_f32(const g4_weight *w, int n) {
    if (!w) return NULL;
    float *f = malloc((size_t)n * sizeof *f);
    if (f) g4_cpu_weight_f32(w, 0, n, f);
    return f;
}

/* y[r,:] = RMSNorm_w(x[r,:]) */
static int cpu_rmsnorm(void *ctx, void *y, const void *x, const g4_weight *w, int rows, int n, float eps,
                       g4_error *err) {
    (void)ctx;
    float *wf = norm_weight_f32(w, n);
    if (w && !wf) return g4_fail(err, "rmsnorm: out of memory");
#pragma omp parallel for schedule(static) if ((long)rows * n > G4_CPU_PAR_MIN_WORK)
    for (int r = 0; r < rows; r++) g4_cpu_rmsnorm_row((float *)y + (size_t)r * n, (const float *)x + (size_t)r * n, wf, n, eps);
    free(wf);
    return 0;
}

/* h[r,:] += RMSNorm_w(x[r,:]) */
static int cpu_add_rmsnorm(void *ctx, void *h, const void *x, const g4_weight *w, int rows, int n, float eps,
                           g4_error *err) {
    (void)ctx;
    float *wf = norm_weight_f32(w, n);
    float *tmp = malloc((size_t)rows * n * sizeof *tmp);
    if ((w && !wf) || !tmp) {
        free(wf);
        free(tmp);
        return g4_fail(err, "add_rmsnorm: out of memory");
    }
#pragma omp parallel for schedule(static) if ((long)rows * n > G4_CPU_PAR_MIN_WORK)
    for (int r = 0; r < rows; r++) {
        float *t = tmp + (size_t)r * n, *hr = (float *)h + (size_t)r * n;
        g4_cpu_rmsnorm_row(t, (const float *)x + (size_t)r * n, wf, n, eps);
        for (int i = 0; i < n; i++) hr[i] += t[i];
    }
    free(tmp);
    free(wf);
    return 0;
}

static int cpu_add(void *ctx, void *y, const void *a, const void *b, size_t n, g4_error *err) {
    (void)ctx, (void)err;
    for (size_t i = 0; i < n; i++) ((float *)y)[i] = ((const float *)a)[i] + ((const float *)b)[i];
    return 0;
}

static int cpu_scale(void *ctx, void *h, const g4_weight *lambda, size_t n, g4_error *err) {
    (void)ctx, (void)err;
    float l;
    g4_cpu_weight_f32(lambda, 0, 1, &l);
    for (size_t i = 0; i < n; i++) ((float *)h)[i] *= l;
    return 0;
}

/* y[m,:] = x[rows[m],:] · Wᵀ for m < M (rows NULL = m itself), W [N,K]: each W row is converted
 * once and used for all M rows. Shared by matmul and the LM head. */
static int rows_times_wt(float *y, const float *x, const int32_t *rows, int M, const g4_weight *W, g4_error *err) {
    int N = (int)W->shape[0], K = (int)W->shape[1];
    int failed = 0;
#pragma omp parallel if ((long)M * N * K > G4_CPU_PAR_MIN_WORK)
    {
        float *row = malloc((size_t)K * sizeof *row);
        if (!row) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(static)
        for (int n = 0; n < N; n++) {
            if (!row) continue;
            g4_cpu_weight_f32(W, (int64_t)n * K, K, row);
            for (int m = 0; m < M; m++) y[(size_t)m * N + n] = g4_cpu_dot(x + (size_t)(rows ? rows[m] : m) * K, row, K);
        }
        free(row);
    }
    return failed ? g4_fail(err, "matmul %s: out of memory", W->name ? W->name : "?") : 0;
}

/* y[M,N] = x[M,K] · Wᵀ, W [N,K] */
static int cpu_matmul(void *ctx, void *y, const void *x, const g4_weight *W, int M, g4_error *err) {
    (void)ctx;
    if (W->ndim != 2) return g4_fail(err, "matmul: weight %s is not 2-D", W->name ? W->name : "?");
    return rows_times_wt(y, x, NULL, M, W, err);
}

static int cpu_geglu(void *ctx, void *y, const void *g, const void *u, size_t n, g4_error *err) {
    (void)ctx, (void)err;
    for (size_t i = 0; i < n; i++) ((float *)y)[i] = g4_cpu_gelu_tanh(((const float *)g)[i]) * ((const float *)u)[i];
    return 0;
}

/* logits[r,:] = softcap(x[rows[r],:] · Eᵀ) */
static int cpu_lm_head(void *ctx, float *logits, const void *x, const g4_step_dev *s, const g4_weight *E,
                       float softcap, g4_error *err) {
    (void)ctx;
    size_t n = (size_t)s->n_rows * E->shape[0];
    for (int r = 0; r < s->n_rows; r++)
        if (s->rows[r] < 0 || s->rows[r] >= s->n_tokens) return g4_fail(err, "lm_head: row %d out of range", s->rows[r]);
    if (rows_times_wt(logits, x, s->rows, s->n_rows, E, err)) return -1;
    if (softcap > 0)
        for (size_t i = 0; i < n; i++) logits[i] = softcap * tanhf(logits[i] / softcap);
    return 0;
}

/* --- memory ------------------------------------------------------------------------------ */

static void *cpu_alloc(void *ctx, size_t bytes) {
    (void)ctx;
    return calloc(1, bytes ? bytes : 1);
}
static void cpu_free(void *ctx, void *p) {
    (void)ctx;
    free(p);
}
static int cpu_copy(void *ctx, void *dst, const void *src, size_t bytes, g4_error *err) {
    (void)ctx, (void)err;
    if (bytes) memmove(dst, src, bytes);
    return 0;
}
static int cpu_sync(void *ctx, g4_error *err) {
    (void)ctx, (void)err;
    return 0;
}
/* Weights stay in the mapping; ops convert rows on the fly. */
static int cpu_load_weight(void *ctx, g4_weight *w, g4_error *err) {
    (void)ctx;
    if (w->dtype != G4_DT_BF16 && w->dtype != G4_DT_F16 && w->dtype != G4_DT_F32)
        return g4_fail(err, "tensor %s: dtype %s is not a weight dtype", w->name ? w->name : "?", g4_dtype_name(w->dtype));
    w->data = (void *)w->host;
    w->data_dtype = w->dtype;
    return 0;
}
static void cpu_unload_weight(void *ctx, g4_weight *w) {
    (void)ctx;
    if (w->data != w->host) free(w->data); /* dummy weights own their buffer; mapped ones alias */
    w->data = NULL;
}

/* Dummy weights: a bf16 buffer of the seeded values (base/dummy.h), owned by the weight. */
static int cpu_load_dummy_weight(void *ctx, g4_weight *w, uint64_t seed, float mean, float amp, g4_error *err) {
    (void)ctx;
    size_t n = 1;
    for (int i = 0; i < w->ndim; i++) n *= (size_t)w->shape[i];
    uint16_t *b = malloc(n * sizeof *b);
    if (!b) return g4_fail(err, "dummy weight %s: cannot allocate %zu bytes", w->name ? w->name : "?", n * 2);
    for (size_t i = 0; i < n; i++) b[i] = g4_f32_to_bf16(mean + amp * g4_dummy_u(seed, i));
    w->data = b;
    w->data_dtype = G4_DT_BF16;
    return 0;
}

const g4_backend_ops g4_cpu_ops = {
    .api_version = G4_BACKEND_API_VERSION,
    .name = "cpu",
    .act_dtype = G4_DT_F32,
    .kv_dtype = G4_DT_F32,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .upload = cpu_copy,
    .download = cpu_copy,
    .sync = cpu_sync,
    .load_weight = cpu_load_weight,
    .unload_weight = cpu_unload_weight,
    .embed = cpu_embed,
    .rmsnorm = cpu_rmsnorm,
    .add_rmsnorm = cpu_add_rmsnorm,
    .add = cpu_add,
    .scale = cpu_scale,
    .matmul = cpu_matmul,
    .geglu = cpu_geglu,
    .qk_norm_rope_cache = g4_cpu_qk_norm_rope_cache,
    .attention = g4_cpu_attention,
    .moe_route = g4_cpu_moe_route,
    .moe_experts = g4_cpu_moe_experts,
    .lm_head = cpu_lm_head,
    .load_dummy_weight = cpu_load_dummy_weight,
};
