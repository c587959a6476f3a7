/* arrival.c — seeded xoshiro256** generator, gamma sampling (Marsaglia–Tsang) and vLLM's
 * rescaled gamma arrival schedule (arrival.h). */
#include "base/rng.h"
#include "arrival.h"

#include <math.h>

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void g4_rng_seed(g4_rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) r->s[i] = g4_splitmix64(&seed); /* splitmix64 expands the seed */
}

uint64_t g4_rng_next(g4_rng *r) {
    uint64_t *s = r->s, out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

double g4_rng_uniform(g4_rng *r) { return (double)(g4_rng_next(r) >> 11) * 0x1.0p-53; }

long g4_rng_range(g4_rng *r, long lo, long hi) {
    if (hi <= lo) return lo;
    return lo + (long)(g4_rng_next(r) % (uint64_t)(hi - lo + 1));
}

double g4_rng_normal(g4_rng *r) {
    double u = g4_rng_uniform(r), v = g4_rng_uniform(r);
    return sqrt(-2.0 * log(1.0 - u)) * cos(6.283185307179586 * v);
}

double g4_rng_gamma(g4_rng *r, double shape, double scale) {
    if (shape < 1.0) { /* boost: Γ(a) = Γ(a + 1) · U^(1/a) */
        double u = g4_rng_uniform(r);
        return g4_rng_gamma(r, shape + 1.0, scale) * pow(1.0 - u, 1.0 / shape);
    }
    double d = shape - 1.0 / 3.0, c = 1.0 / sqrt(9.0 * d);
    for (;;) {
        double x = g4_rng_normal(r), v = 1.0 + c * x;
        if (v <= 0) continue;
        v = v * v * v;
        double u = g4_rng_uniform(r);
        if (log(1.0 - u) < 0.5 * x * x + d - d * v + d * log(v)) return d * v * scale;
    }
}

void g4_arrival_schedule(double *t, int n, double rate, double burstiness, g4_rng *rng) {
    if (n <= 0) return;
    if (!(rate > 0) || isinf(rate)) {
        for (int i = 0; i < n; i++) t[i] = 0;
        return;
    }
    double theta = 1.0 / (rate * burstiness), acc = 0;
    for (int i = 0; i < n; i++) t[i] = acc += g4_rng_gamma(rng, burstiness, theta);
    if (t[n - 1] > 0) {
        double f = ((double)n / rate) / t[n - 1];
        for (int i = 0; i < n; i++) t[i] *= f;
    }
}
