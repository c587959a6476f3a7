/* test_util.h — random tensors and in-memory weights for the backend op tests. */
#ifndef G4_TESTS_BACKEND_UTIL_H
#define G4_TESTS_BACKEND_UTIL_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/bf16.h"
#include "model/weights.h"

static uint64_t tu_rng = 0x1234567ull;
static inline double tu_uniform(void) { /* [-1, 1) */
    tu_rng ^= tu_rng << 13;
    tu_rng ^= tu_rng >> 7;
    tu_rng ^= tu_rng << 17;
    return (double)(tu_rng >> 11) * (2.0 / 9007199254740992.0) - 1.0;
}

static inline float *tu_randf(size_t n, double scale) {
    float *p = malloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = (float)(scale * tu_uniform());
    return p;
}

/* A bf16 weight of the given shape with values base + spread·u; host memory owned by the caller
 * (free(w.host)). f32 copy of the rounded values returned in *as_f32 if non-NULL. */
static inline g4_weight tu_weight(const char *name, int ndim, const int64_t *shape, double base, double spread,
                                  float **as_f32) {
    g4_weight w;
    memset(&w, 0, sizeof w);
    w.name = name;
    w.dtype = G4_DT_BF16;
    w.ndim = ndim;
    size_t n = 1;
    for (int i = 0; i < ndim; i++) n *= (size_t)(w.shape[i] = shape[i]);
    uint16_t *h = malloc(n * sizeof *h);
    float *f = as_f32 ? malloc(n * sizeof *f) : NULL;
    for (size_t i = 0; i < n; i++) {
        h[i] = g4_f32_to_bf16((float)(base + spread * tu_uniform()));
        if (f) f[i] = g4_bf16_to_f32(h[i]);
    }
    w.host = h;
    if (as_f32) *as_f32 = f;
    return w;
}

/* max |a − b| / max |b| */
static inline double tu_rel_err(const float *a, const double *b, size_t n) {
    double md = 0, mb = 1e-30;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (d > md || isnan(d)) md = isnan(d) ? INFINITY : d;
        if (fabs(b[i]) > mb) mb = fabs(b[i]);
    }
    return md / mb;
}

static inline void tu_rmsnorm(double *y, const double *x, const float *w, int n, double eps) {
    double ss = 0;
    for (int i = 0; i < n; i++) ss += x[i] * x[i];
    double inv = 1.0 / sqrt(ss / n + eps);
    for (int i = 0; i < n; i++) y[i] = x[i] * inv * (w ? w[i] : 1.0);
}

/* Rotate-half RoPE with inv_freq[i] = θ^(−2i/d) for i < pairs, identity beyond. */
static inline void tu_rope(double *x, int d, double theta, int pairs, int pos) {
    for (int i = 0; i < pairs; i++) {
        double a = pos * pow(theta, -2.0 * i / d), c = cos(a), s = sin(a);
        double x0 = x[i], x1 = x[i + d / 2];
        x[i] = x0 * c - x1 * s;
        x[i + d / 2] = x1 * c + x0 * s;
    }
}

static inline double tu_gelu_tanh(double z) {
    return 0.5 * z * (1 + tanh(sqrt(2 / M_PI) * (z + 0.044715 * z * z * z)));
}

#endif
