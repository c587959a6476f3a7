/* cpu_ops.c — the row-wise ops of the CPU reference backend: embedding, norms, residual
 * add, layer scalar, matmul, GeGLU, LM head. Plain fp32 loops, OpenMP over rows/columns.
 * Attention lives in cpu_attention.c, the MoE ops in cpu_moe.c, the vision tower's ops in
 * cpu_vision.c.
 *
 * bf16 mode (cpu_backend.h): where each op rounds to bf16, mirroring the CUDA kernel named.
 * "on read" = the op's activation inputs are rounded first (a no-op for values this mode wrote
 * itself; it makes f32 inputs from a harness or a tensor-parallel all-reduce bf16, as the CUDA
 * backend's bf16 buffers and NCCL's bf16 sum are). Everything not listed stays f32.
 *
 *   op                  CUDA twin                what is rounded to bf16
 *   embed               embed.cu                 x = bf16(E[id] × scale) | bf16(image soft-token row)
 *   rmsnorm             norm.cu                  x on read; y = bf16(x·inv·w)
 *   add_rmsnorm         norm.cu                  h, x on read; r = bf16(RMSNorm_w(x)); h = bf16(h + r)
 *   add_rmsnorm_norm    norm.cu                  add_rmsnorm, scale, rmsnorm in turn (their points)
 *   add                 norm.cu                  a, b on read; y = bf16(a + b)
 *   scale               norm.cu                  h on read; h = bf16(h × λ)
 *   matmul              gemm.cu (cuBLASLt)       x on read; y = bf16(x·Wᵀ), f32 accumulate
 *   geglu               activation.cu            gate, up on read; y = bf16(gelu_tanh(gate) · up)
 *   qk_norm_rope_cache  rope_cache.cu            q, k, v on read; n = bf16(RMSNorm_w(·)) before
 *                                                RoPE; q = bf16(RoPE(n)), cache K = bf16(RoPE(n)),
 *                                                cache V = bf16(RMSNorm_∅(v)), U = bf16(RMSNorm_∅(k))
 *   attention           attention.cu (simple)    q on read (the cache already holds bf16 values);
 *                                                K = RoPE(U ⊙ k_norm) formed in f32, scores,
 *                                                softmax, P·V in f32; out = bf16(Σ p·V / Σ p)
 *   moe_route           moe_route.cu             h1 on read; router f32; ids, weights f32
 *   moe_experts         moe_experts.cu (simple)  x on read; gate and up GEMM outputs bf16;
 *                                                act = bf16(gelu_tanh(gate) · up); down outputs
 *                                                f32 (not rounded); y = bf16(Σ_j w_j · down_j)
 *   lm_head             lm_head.cu               x on read; logits and softcap f32
 *   rope_2d             vision.cu                x on read; x = bf16(RoPE₂(x)), angles f32
 *   encoder_attention   vision.cu                q, k, v on read; scores, softmax, P·V f32;
 *                                                out = bf16(Σ p·V / Σ p)
 *   vision_pool         vision.cu                x on read; sums f32; y = bf16((m·Σ/k² − b) ⊙ s)
 *   load_weight         cuda_backend.cu          F32 / F16 weights → bf16 once at load
 *
 * Not modelled (the CUDA backend's defaults do not take these paths): attention_flash.cu
 * (attention path fast|auto; rounds K-from-U and P to fp16 before its mma), moe_decode.cu
 * (MoE path fast; keeps gate/up in f32 before the GeGLU), NCCL sums over t > 2 ranks (one
 * rounding per ring hop). Differences that remain by design: f32 summation order (cuBLASLt,
 * block reductions; this file sums squares for RMSNorm in double), rsqrtf / sincosf / exp2
 * inverse frequencies against libm. g4_cpu_opts.sum_order = 1 measures how much the first of
 * these moves a result. */
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

float *g4_cpu_rounded_copy(const void *x, size_t n) {
    float *c = malloc((n ? n : 1) * sizeof *c);
    if (!c) return NULL;
    const float *xf = x;
    for (size_t i = 0; i < n; i++) c[i] = g4_round_bf16(xf[i]);
    return c;
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

float g4_cpu_dot_ord(const float *a, const float *b, int n, int order) {
    float s = 0;
    switch (order) {
    case 1: /* serial from the last element */
        for (int i = n - 1; i >= 0; i--) s += a[i] * b[i];
        return s;
    case 2: /* serial from the first */
        for (int i = 0; i < n; i++) s += a[i] * b[i];
        return s;
    case 3: { /* 32 lanes (a warp's strided partials), lanes summed by halving like a shuffle tree */
        float acc[32] = {0};
        for (int i = 0; i < n; i++) acc[i & 31] += a[i] * b[i];
        for (int w = 16; w > 0; w >>= 1)
            for (int l = 0; l < w; l++) acc[l] += acc[l + w];
        return acc[0];
    }
    default: return g4_cpu_dot(a, b, n);
    }
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

/* x[t,:] = E[ids[t],:] × scale, or the image soft-token row embed_rows[embed_row[t],:] (unscaled) */
static int cpu_embed(void *ctx, void *x, const g4_step_dev *s, const g4_weight *E, float scale, g4_error *err) {
    float *out = x;
    int64_t V = E->shape[0], H = E->shape[1];
    for (int t = 0; t < s->n_tokens; t++) {
        if (s->embed_row && s->embed_row[t] >= 0) {
            memcpy(out + (size_t)t * H, s->embed_rows + (size_t)s->embed_row[t] * H, (size_t)H * sizeof *out);
            if (g4_cpu_is_bf16(ctx)) g4_cpu_round_bf16(out + (size_t)t * H, (size_t)H);
            continue;
        }
        int id = s->token_ids[t];
        if (id < 0 || id >= V) return g4_fail(err, "embed: token id %d out of range [0, %lld)", id, (long long)V);
        g4_cpu_weight_f32(E, (int64_t)id * H, H, out + (size_t)t * H);
        for (int64_t i = 0; i < H; i++) out[(size_t)t * H + i] *= scale;
        if (g4_cpu_is_bf16(ctx)) g4_cpu_round_bf16(out + (size_t)t * H, (size_t)H);
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
    int bf = g4_cpu_is_bf16(ctx);
    size_t total = (size_t)rows * (n > 0 ? n : 0);
    float *wf = norm_weight_f32(w, n), *xr = bf ? g4_cpu_rounded_copy(x, total) : NULL;
    if ((w && !wf) || (bf && !xr)) {
        free(wf);
        free(xr);
        return g4_fail(err, "rmsnorm: out of memory");
    }
    const float *xin = bf ? xr : x;
#pragma omp parallel for schedule(static) if ((long)rows * n > G4_CPU_PAR_MIN_WORK)
    for (int r = 0; r < rows; r++) g4_cpu_rmsnorm_row((float *)y + (size_t)r * n, xin + (size_t)r * n, wf, n, eps);
    if (bf) g4_cpu_round_bf16(y, total);
    free(xr);
    free(wf);
    return 0;
}

/* h[r,:] += RMSNorm_w(x[r,:]) */
static int cpu_add_rmsnorm(void *ctx, void *h, const void *x, const g4_weight *w, int rows, int n, float eps,
                           g4_error *err) {
    int bf = g4_cpu_is_bf16(ctx);
    size_t total = (size_t)rows * (n > 0 ? n : 0);
    float *wf = norm_weight_f32(w, n);
    float *tmp = malloc((total ? total : 1) * sizeof *tmp), *xr = bf ? g4_cpu_rounded_copy(x, total) : NULL;
    if ((w && !wf) || !tmp || (bf && !xr)) {
        free(wf);
        free(tmp);
        free(xr);
        return g4_fail(err, "add_rmsnorm: out of memory");
    }
    const float *xin = bf ? xr : x;
#pragma omp parallel for schedule(static) if ((long)rows * n > G4_CPU_PAR_MIN_WORK)
    for (int r = 0; r < rows; r++) {
        float *t = tmp + (size_t)r * n, *hr = (float *)h + (size_t)r * n;
        g4_cpu_rmsnorm_row(t, xin + (size_t)r * n, wf, n, eps);
        if (bf) /* the branch is rounded before the add, then the sum (norm.cu) */
            for (int i = 0; i < n; i++) hr[i] = g4_round_bf16(g4_round_bf16(hr[i]) + g4_round_bf16(t[i]));
        else
            for (int i = 0; i < n; i++) hr[i] += t[i];
    }
    free(xr);
    free(tmp);
    free(wf);
    return 0;
}

static int cpu_add(void *ctx, void *y, const void *a, const void *b, size_t n, g4_error *err) {
    (void)err;
    const float *af = a, *bf = b;
    float *yf = y;
    if (g4_cpu_is_bf16(ctx))
        for (size_t i = 0; i < n; i++) yf[i] = g4_round_bf16(g4_round_bf16(af[i]) + g4_round_bf16(bf[i]));
    else
        for (size_t i = 0; i < n; i++) yf[i] = af[i] + bf[i];
    return 0;
}

static int cpu_scale(void *ctx, void *h, const g4_weight *lambda, size_t n, g4_error *err) {
    (void)err;
    float l, *hf = h;
    g4_cpu_weight_f32(lambda, 0, 1, &l);
    if (g4_cpu_is_bf16(ctx))
        for (size_t i = 0; i < n; i++) hf[i] = g4_round_bf16(g4_round_bf16(hf[i]) * l);
    else
        for (size_t i = 0; i < n; i++) hf[i] *= l;
    return 0;
}

/* The three ops it stands for, in turn: the oracle of norm.cu's fused kernel. */
static int cpu_add_rmsnorm_norm(void *ctx, void *h, const void *x, const g4_weight *w, const g4_weight *lambda, void *y,
                                const g4_weight *w_next, int rows, int n, float eps, g4_error *err) {
    if (cpu_add_rmsnorm(ctx, h, x, w, rows, n, eps, err)) return -1;
    if (lambda && cpu_scale(ctx, h, lambda, (size_t)rows * (n > 0 ? n : 0), err)) return -1;
    return y ? cpu_rmsnorm(ctx, y, h, w_next, rows, n, eps, err) : 0;
}

/* y[m,:] = x[rows[m],:] · Wᵀ for m < M (rows NULL = m itself), W [N,K]: each W row is converted
 * once and used for all M rows; dots in summation order `order`. Shared by matmul and the LM head. */
static int rows_times_wt(float *y, const float *x, const int32_t *rows, int M, const g4_weight *W, int order,
                         g4_error *err) {
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
            for (int m = 0; m < M; m++)
                y[(size_t)m * N + n] = g4_cpu_dot_ord(x + (size_t)(rows ? rows[m] : m) * K, row, K, order);
        }
        free(row);
    }
    return failed ? g4_fail(err, "matmul %s: out of memory", W->name ? W->name : "?") : 0;
}

/* y[M,N] = x[M,K] · Wᵀ, W [N,K] */
static int cpu_matmul(void *ctx, void *y, const void *x, const g4_weight *W, int M, g4_error *err) {
    if (W->ndim != 2) return g4_fail(err, "matmul: weight %s is not 2-D", W->name ? W->name : "?");
    if (!g4_cpu_is_bf16(ctx)) return rows_times_wt(y, x, NULL, M, W, g4_cpu_order(ctx), err);
    size_t nx = (size_t)(M > 0 ? M : 0) * (size_t)W->shape[1], ny = (size_t)(M > 0 ? M : 0) * (size_t)W->shape[0];
    float *xr = g4_cpu_rounded_copy(x, nx);
    if (!xr) return g4_fail(err, "matmul %s: out of memory", W->name ? W->name : "?");
    int rc = rows_times_wt(y, xr, NULL, M, W, g4_cpu_order(ctx), err);
    free(xr);
    if (rc == 0) g4_cpu_round_bf16(y, ny);
    return rc;
}

/* y[r,i] = gelu_tanh(gu[r,i]) · gu[r,n+i] */
static int cpu_geglu(void *ctx, void *y, const void *gu, int rows, int n, g4_error *err) {
    if (rows < 0 || n < 0) return g4_fail(err, "geglu: bad shape rows=%d n=%d", rows, n);
    int bf = g4_cpu_is_bf16(ctx);
    for (int r = 0; r < rows; r++) {
        const float *gf = (const float *)gu + (size_t)r * 2 * n, *uf = gf + n;
        float *yf = (float *)y + (size_t)r * n;
        if (bf)
            for (int i = 0; i < n; i++)
                yf[i] = g4_round_bf16(g4_cpu_gelu_tanh(g4_round_bf16(gf[i])) * g4_round_bf16(uf[i]));
        else
            for (int i = 0; i < n; i++) yf[i] = g4_cpu_gelu_tanh(gf[i]) * uf[i];
    }
    return 0;
}

/* logits[r,:] = softcap(x[rows[r],:] · Eᵀ) */
static int cpu_lm_head(void *ctx, float *logits, const void *x, const g4_step_dev *s, const g4_weight *E, float softcap,
                       g4_error *err) {
    size_t n = (size_t)s->n_rows * E->shape[0];
    for (int r = 0; r < s->n_rows; r++)
        if (s->rows[r] < 0 || s->rows[r] >= s->n_tokens)
            return g4_fail(err, "lm_head: row %d out of range", s->rows[r]);
    float *xr = NULL;
    if (g4_cpu_is_bf16(ctx) && !(xr = g4_cpu_rounded_copy(x, (size_t)s->n_tokens * E->shape[1])))
        return g4_fail(err, "lm_head: out of memory");
    int rc = rows_times_wt(logits, xr ? xr : x, s->rows, s->n_rows, E, g4_cpu_order(ctx), err);
    free(xr);
    if (rc) return -1;
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
/* upload and upload_async: a copy at the call (host memory is "dev" memory here), counted when
 * the backend has a ctx (a NULL ctx is the defaults, with nothing to count into). */
static int cpu_upload(void *ctx, void *dst, const void *src, size_t bytes, g4_error *err) {
    if (ctx) ((g4_cpu_ctx *)ctx)->uploads++;
    return cpu_copy(ctx, dst, src, bytes, err);
}
static uint64_t cpu_upload_count(void *ctx) { return ctx ? ((const g4_cpu_ctx *)ctx)->uploads : 0; }
static int cpu_sync(void *ctx, g4_error *err) {
    (void)ctx, (void)err;
    return 0;
}
/* Weights stay in the mapping; ops convert rows on the fly. bf16 mode: F32 / F16 weights become
 * an owned bf16 copy (round-to-nearest-even through f32, as the CUDA backend's upload does). */
static int cpu_load_weight(void *ctx, g4_weight *w, g4_error *err) {
    if (w->dtype != G4_DT_BF16 && w->dtype != G4_DT_F16 && w->dtype != G4_DT_F32)
        return g4_fail(err, "tensor %s: dtype %s is not a weight dtype", w->name ? w->name : "?",
                       g4_dtype_name(w->dtype));
    if (g4_cpu_is_bf16(ctx) && w->dtype != G4_DT_BF16) {
        size_t n = 1;
        for (int i = 0; i < w->ndim; i++) n *= (size_t)w->shape[i];
        uint16_t *b = malloc((n ? n : 1) * sizeof *b);
        if (!b)
            return g4_fail(err, "tensor %s: cannot allocate its bf16 copy (%zu bytes)", w->name ? w->name : "?", n * 2);
        for (size_t i = 0; i < n; i++) {
            float f;
            if (w->dtype == G4_DT_F32) memcpy(&f, (const char *)w->host + i * 4, 4);
            else {
                uint16_t hv;
                memcpy(&hv, (const char *)w->host + i * 2, 2);
                f = g4_f16_to_f32(hv);
            }
            b[i] = g4_f32_to_bf16(f);
        }
        w->data = b;
        w->data_dtype = G4_DT_BF16;
        return 0;
    }
    w->data = (void *)w->host;
    w->data_dtype = w->dtype;
    return 0;
}
static void cpu_unload_weight(void *ctx, g4_weight *w) {
    (void)ctx;
    if (w->data != w->host) free(w->data); /* dummy weights and bf16 copies own their buffer; mapped ones alias */
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

/* Every op but graphs; weights stored as bf16, f16 or f32 (cpu_load_weight). */
static int cpu_supports(void *ctx, g4_op op, g4_dtype dt) {
    (void)ctx;
    if (op == G4_OP_LOAD_WEIGHT) return dt == G4_DT_BF16 || dt == G4_DT_F16 || dt == G4_DT_F32;
    return op >= 0 && op < G4_OP_COUNT && op != G4_OP_GRAPH && op != G4_OP_LAUNCH_COUNT;
}

const g4_backend_ops g4_cpu_ops = {
    .api_version = G4_BACKEND_API_VERSION,
    .name = "cpu",
    .act_dtype = G4_DT_F32,
    .kv_dtype = G4_DT_F32,
    .supports = cpu_supports,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .upload = cpu_upload,
    .download = cpu_copy,
    .sync = cpu_sync,
    .staging_alloc = cpu_alloc,
    .staging_free = cpu_free,
    .upload_async = cpu_upload,
    .upload_count = cpu_upload_count,
    .load_weight = cpu_load_weight,
    .unload_weight = cpu_unload_weight,
    .embed = cpu_embed,
    .rmsnorm = cpu_rmsnorm,
    .add_rmsnorm = cpu_add_rmsnorm,
    .add_rmsnorm_norm = cpu_add_rmsnorm_norm,
    .add = cpu_add,
    .scale = cpu_scale,
    .matmul = cpu_matmul,
    .geglu = cpu_geglu,
    .qk_norm_rope_cache = g4_cpu_qk_norm_rope_cache,
    .attention = g4_cpu_attention,
    .moe_route = g4_cpu_moe_route,
    .moe_experts = g4_cpu_moe_experts,
    .lm_head = cpu_lm_head,
    .sample = g4_cpu_sample,
    .load_dummy_weight = cpu_load_dummy_weight,
    .rope_2d = g4_cpu_rope_2d,
    .encoder_attention = g4_cpu_encoder_attention,
    .vision_pool = g4_cpu_vision_pool,
};
