/* test_sampling.c — the host sampler against direct formulas on random rows:
 * greedy (lowest id on ties), each filter alone (top-k, top-p, min-p: the kept set equals the one
 * computed by sorting), temperature (empirical frequencies vs softmax(z/T)), penalties (the
 * processed logits seen through logprobs), logprobs vs log_softmax, seeded reproducibility and
 * the counter-based generator's independence from call order. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "engine/sampling.h"
#include "engine_test_util.h"

#define V 1000

static int cmp_desc(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

/* Tokens that can be drawn: sample with many seeds and collect. */
static void drawn_set(g4_sampler *s, const float *z, const g4_sampling *sp, uint8_t *seen, int draws) {
    memset(seen, 0, V);
    g4_sample_history h = {0};
    for (int i = 0; i < draws; i++) {
        g4_sample_result r;
        g4_sample_row(s, z, sp, (uint64_t)i * 7919 + 1, &h, &r);
        seen[r.token] = 1;
    }
}

int main(void) {
    g4_error err = {{0}};
    g4_sampler s;
    REQUIRE(g4_sampler_init(&s, V, &err) == 0, "%s", err.msg);
    float *z = malloc(V * sizeof *z), *sorted = malloc(V * sizeof *sorted);
    uint8_t *seen = malloc(V);
    uint64_t rs = 3;
    for (int i = 0; i < V; i++) z[i] = (float)(rng_next(&rs) % 100000) / 10000.0f - 5.0f;
    g4_sample_history h0 = {0};
    g4_sample_result r;

    /* greedy: argmax, lowest id on ties */
    g4_sampling sp;
    g4_sampling_default(&sp);
    int best = 0;
    for (int i = 1; i < V; i++)
        if (z[i] > z[best]) best = i;
    g4_sample_row(&s, z, &sp, 1, &h0, &r);
    CHECK(r.token == best, "greedy %d vs %d", r.token, best);
    float zt[V];
    memcpy(zt, z, sizeof zt);
    zt[10] = zt[500] = 100.0f;
    g4_sample_row(&s, zt, &sp, 1, &h0, &r);
    CHECK(r.token == 10, "tie → lower id, got %d", r.token);

    /* logprobs vs log_softmax */
    sp.logprobs = 5;
    g4_sample_row(&s, z, &sp, 1, &h0, &r);
    double mx = z[best], sum = 0;
    for (int i = 0; i < V; i++) sum += exp(z[i] - mx);
    double lse = mx + log(sum);
    CHECK(fabs(r.logprob - (z[best] - lse)) < 1e-4, "logprob %g vs %g", r.logprob, z[best] - lse);
    memcpy(sorted, z, V * sizeof *z);
    qsort(sorted, V, sizeof *sorted, cmp_desc);
    CHECK(r.n_top == 5, "n_top %d", r.n_top);
    for (int k = 0; k < r.n_top; k++)
        CHECK(z[r.top_ids[k]] == sorted[k] && fabs(r.top_logprobs[k] - (sorted[k] - lse)) < 1e-4, "top %d", k);

    /* top-k alone: drawn set ⊆ the k largest, and with a flat-ish temperature covers them */
    g4_sampling_default(&sp);
    sp.temperature = 5.0f;
    sp.top_k = 7;
    drawn_set(&s, z, &sp, seen, 3000);
    int n_seen = 0, bad = 0;
    for (int i = 0; i < V; i++) {
        n_seen += seen[i];
        bad += seen[i] && z[i] < sorted[6];
    }
    CHECK(bad == 0 && n_seen == 7, "top-k: %d drawn, %d outside the top 7", n_seen, bad);

    /* top-p alone: kept = smallest prefix (by p) with mass ≥ top_p at temperature T */
    g4_sampling_default(&sp);
    sp.temperature = 0.7f;
    sp.top_p = 0.5f;
    double tot = 0, cum = 0;
    for (int i = 0; i < V; i++) tot += exp((sorted[i] - sorted[0]) / 0.7);
    int keep = 0;
    while (cum < 0.5 * tot - 1e-9) cum += exp((sorted[keep++] - sorted[0]) / 0.7);
    drawn_set(&s, z, &sp, seen, 20000);
    n_seen = 0, bad = 0;
    for (int i = 0; i < V; i++) {
        n_seen += seen[i];
        bad += seen[i] && z[i] < sorted[keep - 1];
    }
    CHECK(bad == 0 && n_seen == keep, "top-p: %d drawn vs %d kept, %d outside", n_seen, keep, bad);

    /* min-p alone: kept = p ≥ min_p · p_max */
    g4_sampling_default(&sp);
    sp.temperature = 1.5f;
    sp.min_p = 0.3f;
    int want = 0;
    for (int i = 0; i < V; i++) want += exp((z[i] - sorted[0]) / 1.5) >= 0.3;
    drawn_set(&s, z, &sp, seen, 20000);
    n_seen = 0, bad = 0;
    for (int i = 0; i < V; i++) {
        n_seen += seen[i];
        bad += seen[i] && exp((z[i] - sorted[0]) / 1.5) < 0.3;
    }
    CHECK(bad == 0 && n_seen == want, "min-p: %d drawn vs %d kept, %d outside", n_seen, want, bad);

    /* temperature: frequencies on a 4-token row match softmax(z / T) */
    {
        g4_sampler s4;
        g4_sampler_init(&s4, 4, &err);
        float z4[4] = {1.0f, 0.5f, -0.25f, 0.0f};
        g4_sampling_default(&sp);
        sp.temperature = 0.7f;
        int cnt[4] = {0};
        enum { N = 40000 };
        for (int i = 0; i < N; i++) {
            g4_sample_history h = {.n_output = i};
            g4_sample_row(&s4, z4, &sp, 12345, &h, &r);
            cnt[r.token]++;
        }
        double zs = 0;
        for (int i = 0; i < 4; i++) zs += exp(z4[i] / 0.7);
        double worst = 0;
        for (int i = 0; i < 4; i++) {
            double d = fabs(cnt[i] / (double)N - exp(z4[i] / 0.7) / zs);
            if (d > worst) worst = d;
        }
        CHECK(worst < 0.01, "temperature frequencies off by %g", worst);
        g4_sampler_free(&s4);
    }

    /* penalties: processed logits through logprobs (greedy, top-N of everything) */
    {
        g4_sampler s8;
        g4_sampler_init(&s8, 8, &err);
        float z8[8] = {2.0f, -1.0f, 0.5f, 1.5f, -0.5f, 0.25f, 3.0f, -2.0f};
        int32_t prompt[2] = {1, 2}, out[4] = {3, 3, 6, 1};
        g4_sampling_default(&sp);
        sp.repetition_penalty = 2.0f;
        sp.presence_penalty = 0.5f;
        sp.frequency_penalty = 0.25f;
        sp.logprobs = 8;
        g4_sample_history h = {prompt, 2, out, 4};
        g4_sample_row(&s8, z8, &sp, 1, &h, &r);
        float e8[8];
        memcpy(e8, z8, sizeof e8);
        int seen_t[8] = {0}, counts[8] = {0};
        for (int i = 0; i < 2; i++) seen_t[prompt[i]] = 1;
        for (int i = 0; i < 4; i++) seen_t[out[i]] = 1, counts[out[i]]++;
        for (int i = 0; i < 8; i++) {
            if (seen_t[i]) e8[i] = e8[i] > 0 ? e8[i] / 2.0f : e8[i] * 2.0f;
            if (counts[i]) e8[i] -= 0.5f + 0.25f * counts[i];
        }
        double m8 = -1e30, s8sum = 0;
        int b8 = 0;
        for (int i = 0; i < 8; i++)
            if (e8[i] > m8) m8 = e8[i], b8 = i;
        for (int i = 0; i < 8; i++) s8sum += exp(e8[i] - m8);
        CHECK(r.token == b8, "penalised greedy %d vs %d", r.token, b8);
        int okp = r.n_top == 8;
        for (int k = 0; k < r.n_top; k++) okp &= fabs(r.top_logprobs[k] - (e8[r.top_ids[k]] - m8 - log(s8sum))) < 1e-5;
        CHECK(okp, "penalised logprobs differ from the formula");
        g4_sampler_free(&s8);
    }

    /* seeded reproducibility: same (seed, index) same token whatever came before; seeds differ */
    g4_sampling_default(&sp);
    sp.temperature = 1.0f;
    sp.top_k = 50;
    g4_sample_history h5 = {.n_output = 5};
    g4_sample_result a, b;
    g4_sample_row(&s, z, &sp, 42, &h5, &a);
    for (int i = 0; i < 10; i++) g4_sample_row(&s, z, &sp, 1000 + i, &h0, &b);
    g4_sample_row(&s, z, &sp, 42, &h5, &b);
    CHECK(a.token == b.token, "seeded draw not reproducible");
    int differ = 0;
    for (int i = 0; i < 20; i++) {
        g4_sample_row(&s, z, &sp, 42 + (uint64_t)i, &h5, &b);
        differ += b.token != a.token;
    }
    CHECK(differ > 5, "different seeds gave the same token %d times of 20", 20 - differ);
    double mean = 0;
    for (int i = 0; i < 10000; i++) mean += g4_sample_uniform(9, (uint64_t)i);
    CHECK(fabs(mean / 10000 - 0.5) < 0.02, "uniform mean %g", mean / 10000);

    g4_sampler_free(&s);
    free(z), free(sorted), free(seen);
    return check_summary();
}
