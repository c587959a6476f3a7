/* spec_reject.c — the speculative rejection sampler (spec_reject.h). */
#include "engine/spec_reject.h"

#include <stddef.h>

#include "base/rng.h"

double g4_spec_uniform(uint64_t *rng) { return (double)(g4_splitmix64(rng) >> 11) * 0x1.0p-53; }

/* The mass one id has in the row being sampled: p itself (q = NULL, skip < 0), the point-mass
 * residual p without `skip` (q = NULL), or the residual max(0, p − q). */
static double mass(const float *p, const float *q, int32_t skip, int i) {
    if (q) return p[i] > q[i] ? (double)p[i] - (double)q[i] : 0.0;
    return i == skip || !(p[i] > 0) ? 0.0 : (double)p[i];
}

static int32_t pick(const float *p, const float *q, int32_t skip, int vocab, double u) {
    double total = 0;
    for (int i = 0; i < vocab; i++) total += mass(p, q, skip, i);
    if (!(total > 0)) return -1;
    double target = u * total, cum = 0;
    int32_t last = -1;
    for (int i = 0; i < vocab; i++) {
        double m = mass(p, q, skip, i);
        if (m <= 0) continue;
        cum += m;
        last = i;
        if (cum > target) return i;
    }
    return last; /* u · total ≥ the summed mass by rounding */
}

int32_t g4_spec_pick(const float *row, int vocab, double u) { return pick(row, NULL, -1, vocab, u); }

g4_spec_verdict g4_spec_reject(const g4_spec_rows *r, uint64_t *rng) {
    const int V = r->vocab;
    for (int i = 0; i < r->k; i++) {
        const float *p = r->p + (size_t)i * V, *q = r->q ? r->q + (size_t)i * V : NULL;
        int32_t d = r->draft[i];
        double pd = p[d], qd = q ? q[d] : 1.0;
        double u = g4_spec_uniform(rng);
        /* u < min(1, p/q) ⇔ u·q < p for u < 1; q = 0 accepts whenever p > 0 */
        if (u * qd < pd) continue;
        double v = g4_spec_uniform(rng);
        int32_t t = pick(p, q, d, V, v);
        if (t < 0) t = g4_spec_pick(p, V, v); /* no residual mass: only through rounding */
        return (g4_spec_verdict){.n_accepted = i, .token = t};
    }
    return (g4_spec_verdict){.n_accepted = r->k,
                             .token = g4_spec_pick(r->p + (size_t)r->k * V, V, g4_spec_uniform(rng))};
}
