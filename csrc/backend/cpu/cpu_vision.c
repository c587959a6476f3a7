/* cpu_vision.c — the vision tower's three ops on the CPU reference backend: 2-D RoPE, the
 * bidirectional encoder attention over one image's patches, and the 3 × 3 pooler with
 * standardisation (contracts in backend.h). Plain f32 loops, OpenMP over rows / heads.
 * bf16 mode (the CUDA twins in cuda/vision.cu): inputs rounded on read, outputs rounded once;
 * angles, scores, softmax, P·V and the pooled sums stay f32.
 * Not here: the tower's order of ops (model/vision.c). */
#include <math.h>
#include <stdlib.h>

#include "backend/cpu/cpu_internal.h"

/* One rotate-half block of m channels at position p: pairs (i, i + m/2), θ_i = p·theta^(−2i/m). */
static void rope_half(float *x, int m, double theta, int p) {
    g4_rope r = {.theta = theta, .rotated_pairs = m / 2};
    g4_cpu_rope(x, m, &r, p);
}

int g4_cpu_rope_2d(void *ctx, void *xv, const int32_t *pos, int T, int n_heads, int head_dim, float theta,
                   g4_error *err) {
    if (head_dim <= 0 || head_dim % 4) return g4_fail(err, "rope_2d: head_dim %d is not a multiple of 4", head_dim);
    int bf = g4_cpu_is_bf16(ctx), m = head_dim / 2;
    float *x = xv;
#pragma omp parallel for schedule(static) if ((long)T * n_heads * head_dim > G4_CPU_PAR_MIN_WORK)
    for (int t = 0; t < T; t++)
        for (int h = 0; h < n_heads; h++) {
            float *xh = x + ((size_t)t * n_heads + h) * head_dim;
            if (bf) g4_cpu_round_bf16(xh, (size_t)head_dim);
            rope_half(xh, m, theta, pos[2 * t]);
            rope_half(xh + m, m, theta, pos[2 * t + 1]);
            if (bf) g4_cpu_round_bf16(xh, (size_t)head_dim);
        }
    return 0;
}

int g4_cpu_encoder_attention(void *ctx, void *outv, const void *qv, const void *kv, const void *vv, int T, int n_heads,
                             int n_kv_heads, int head_dim, float scale, g4_error *err) {
    if (T < 1 || n_heads < 1 || n_kv_heads < 1 || n_heads % n_kv_heads || head_dim < 1)
        return g4_fail(err, "encoder_attention: T=%d heads=%d kv_heads=%d d=%d", T, n_heads, n_kv_heads, head_dim);
    int bf = g4_cpu_is_bf16(ctx), d = head_dim, group = n_heads / n_kv_heads;
    size_t nq = (size_t)T * n_heads * d, nk = (size_t)T * n_kv_heads * d;
    float *qr = bf ? g4_cpu_rounded_copy(qv, nq) : NULL, *kr = bf ? g4_cpu_rounded_copy(kv, nk) : NULL;
    float *vr = bf ? g4_cpu_rounded_copy(vv, nk) : NULL;
    if (bf && (!qr || !kr || !vr)) {
        free(qr), free(kr), free(vr);
        return g4_fail(err, "encoder_attention: out of memory");
    }
    const float *q = bf ? qr : qv, *k = bf ? kr : kv, *v = bf ? vr : vv;
    float *out = outv;
    int failed = 0;
#pragma omp parallel if ((long)T * T * n_heads * d > G4_CPU_PAR_MIN_WORK)
    {
        float *p = malloc((size_t)T * sizeof *p), *acc = malloc((size_t)d * sizeof *acc);
        if (!p || !acc) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(static)
        for (long th = 0; th < (long)T * n_heads; th++) {
            if (!p || !acc) continue;
            int t = (int)(th / n_heads), h = (int)(th % n_heads), g = h / group;
            const float *qh = q + ((size_t)t * n_heads + h) * d;
            float mx = -INFINITY;
            for (int j = 0; j < T; j++) {
                p[j] = scale * g4_cpu_dot(qh, k + ((size_t)j * n_kv_heads + g) * d, d);
                if (p[j] > mx) mx = p[j];
            }
            float sum = 0;
            for (int i = 0; i < d; i++) acc[i] = 0;
            for (int j = 0; j < T; j++) {
                float e = expf(p[j] - mx);
                sum += e;
                const float *vj = v + ((size_t)j * n_kv_heads + g) * d;
                for (int i = 0; i < d; i++) acc[i] += e * vj[i];
            }
            float *o = out + ((size_t)t * n_heads + h) * d;
            for (int i = 0; i < d; i++) o[i] = bf ? g4_round_bf16(acc[i] / sum) : acc[i] / sum;
        }
        free(p);
        free(acc);
    }
    free(qr), free(kr), free(vr);
    return failed ? g4_fail(err, "encoder_attention: out of memory") : 0;
}

int g4_cpu_vision_pool(void *ctx, void *yv, const void *xv, int ph, int pw, int n, int k, float mult,
                       const g4_weight *bias, const g4_weight *scale, g4_error *err) {
    if (k < 1 || ph < k || pw < k || ph % k || pw % k || n < 1)
        return g4_fail(err, "vision_pool: grid %d × %d, width %d, kernel %d", ph, pw, n, k);
    int bf = g4_cpu_is_bf16(ctx), oh = ph / k, ow = pw / k;
    float *b = bias ? malloc((size_t)n * sizeof *b) : NULL, *s = scale ? malloc((size_t)n * sizeof *s) : NULL;
    float *xr = bf ? g4_cpu_rounded_copy(xv, (size_t)ph * pw * n) : NULL;
    if ((bias && !b) || (scale && !s) || (bf && !xr)) {
        free(b), free(s), free(xr);
        return g4_fail(err, "vision_pool: out of memory");
    }
    if (b) g4_cpu_weight_f32(bias, 0, n, b);
    if (s) g4_cpu_weight_f32(scale, 0, n, s);
    const float *x = bf ? xr : xv;
    float *y = yv, inv = 1.0f / (float)(k * k);
#pragma omp parallel for schedule(static) if ((long)ph * pw * n > G4_CPU_PAR_MIN_WORK)
    for (int o = 0; o < oh * ow; o++) {
        int r0 = (o / ow) * k, c0 = (o % ow) * k;
        for (int i = 0; i < n; i++) {
            float sum = 0;
            for (int dr = 0; dr < k; dr++)
                for (int dc = 0; dc < k; dc++) sum += x[((size_t)(r0 + dr) * pw + c0 + dc) * n + i];
            float val = sum * inv * mult;
            if (b) val -= b[i];
            if (s) val *= s[i];
            y[(size_t)o * n + i] = bf ? g4_round_bf16(val) : val;
        }
    }
    free(b), free(s), free(xr);
    return 0;
}
