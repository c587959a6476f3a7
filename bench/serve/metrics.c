/* metrics.c — vLLM `bench serve` metrics over recorded timestamps (definitions in metrics.h).
 * Follows vLLM's calculate_metrics step by step so both give the same numbers on the same
 * records; the test (tests/bench/test_bench_metrics.c) checks that against a Python reference. */
#include "metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double g4_bench_percentile(const double *sorted, int n, double p) {
    if (n <= 0) return 0.0;
    double rank = p / 100.0 * (double)(n - 1);
    int lo = (int)floor(rank);
    if (lo < 0) lo = 0;
    if (lo >= n - 1) return sorted[n - 1];
    double frac = rank - (double)lo;
    return sorted[lo] + (sorted[lo + 1] - sorted[lo]) * frac;
}

void g4_bench_stat_compute(double *x, int n, const double *pcts, int n_pcts, g4_bench_stat *st) {
    memset(st, 0, sizeof *st);
    st->n = n;
    if (n <= 0) return;
    double sum = 0;
    for (int i = 0; i < n; i++) sum += x[i];
    double mean = sum / n, ss = 0;
    for (int i = 0; i < n; i++) ss += (x[i] - mean) * (x[i] - mean);
    qsort(x, (size_t)n, sizeof *x, cmp_double);
    st->mean = mean * 1e3;
    st->std = sqrt(ss / n) * 1e3;
    st->median = g4_bench_percentile(x, n, 50.0) * 1e3;
    for (int i = 0; i < n_pcts && i < G4_BENCH_MAX_PCT; i++) st->pct[i] = g4_bench_percentile(x, n, pcts[i]) * 1e3;
}

/* Peak output chunks per 1-second bucket and peak concurrently active requests, as vLLM
 * computes them: buckets from the earliest send of a successful request; token times rebuilt
 * as send + TTFT + cumulative ITL. */
static int peaks(const g4_bench_record *r, int n, g4_bench_metrics *m, g4_error *err) {
    double t0 = 0, t1 = 0;
    bool any = false;
    for (int i = 0; i < n; i++) {
        if (!r[i].ok) continue;
        double lat = r[i].t_end - r[i].t_send;
        if (!any || r[i].t_send < t0) t0 = r[i].t_send;
        if (!any || r[i].t_send + lat > t1) t1 = r[i].t_send + lat;
        any = true;
    }
    if (!any) return 0;
    long nb = (long)ceil(t1 - t0) + 1;
    double *tok = calloc((size_t)nb, sizeof *tok);
    int *conc = calloc((size_t)nb, sizeof *conc);
    if (!tok || !conc) {
        free(tok);
        free(conc);
        return g4_fail(err, "metrics: out of memory for %ld one-second buckets", nb);
    }
    for (int i = 0; i < n; i++) {
        if (!r[i].ok) continue;
        const g4_bench_record *q = &r[i];
        double cur = q->t_send + (q->chunk_t[0] - q->t_send);
        for (int c = 0; c < q->n_chunks; c++) {
            if (c > 0) cur += q->chunk_t[c] - q->chunk_t[c - 1];
            long b = (long)(cur - t0);
            if (cur - t0 >= 0 && b < nb) tok[b] += 1;
        }
        long s = (long)(q->t_send - t0), e = (long)(q->t_send + (q->t_end - q->t_send) - t0);
        for (long b = s; b <= e && b < nb; b++) conc[b]++;
    }
    for (long b = 0; b < nb; b++) {
        if (tok[b] > m->max_output_tokens_per_s) m->max_output_tokens_per_s = tok[b];
        if (conc[b] > m->max_concurrent_requests) m->max_concurrent_requests = conc[b];
    }
    free(tok);
    free(conc);
    return 0;
}

int g4_bench_metrics_compute(const g4_bench_record *r, int n, double duration, const g4_bench_slo *slo,
                             const double *pcts, int n_pcts, g4_bench_metrics *m, g4_error *err) {
    memset(m, 0, sizeof *m);
    if (n < 0 || duration <= 0 || n_pcts < 0 || n_pcts > G4_BENCH_MAX_PCT)
        return g4_fail(err, "metrics: need n >= 0, duration > 0 (got %g) and at most %d percentiles", duration,
                       G4_BENCH_MAX_PCT);
    m->n_pcts = n_pcts;
    for (int i = 0; i < n_pcts; i++) m->pcts[i] = pcts[i];
    size_t n_itl = 0;
    for (int i = 0; i < n; i++) {
        if (r[i].ok && r[i].n_chunks < 1) return g4_fail(err, "metrics: request %d is marked ok but has no chunk", i);
        if (r[i].ok) n_itl += (size_t)(r[i].n_chunks - 1);
    }
    size_t nn = n > 0 ? (size_t)n : 1;
    double *ttft = malloc(nn * sizeof *ttft), *tpot = malloc(nn * sizeof *tpot);
    double *all_tpot = malloc(nn * sizeof *all_tpot), *e2el = malloc(nn * sizeof *e2el);
    double *itl = malloc((n_itl ? n_itl : 1) * sizeof *itl);
    if (!ttft || !tpot || !all_tpot || !e2el || !itl) {
        free(ttft), free(tpot), free(all_tpot), free(e2el), free(itl);
        return g4_fail(err, "metrics: out of memory for %d requests", n);
    }
    int n_tpot = 0, done = 0;
    size_t k = 0;
    for (int i = 0; i < n; i++) {
        const g4_bench_record *q = &r[i];
        if (!q->ok) {
            m->failed++;
            continue;
        }
        double t_first = q->chunk_t[0] - q->t_send, lat = q->t_end - q->t_send;
        m->total_input += q->prompt_len;
        m->total_output += q->output_tokens;
        double tp = 0;
        if (q->output_tokens > 1) {
            tp = (lat - t_first) / (double)(q->output_tokens - 1);
            tpot[n_tpot++] = tp;
        }
        all_tpot[done] = tp;
        ttft[done] = t_first;
        e2el[done] = lat;
        for (int c = 1; c < q->n_chunks; c++) itl[k++] = q->chunk_t[c] - q->chunk_t[c - 1];
        if (slo && (slo->has_ttft || slo->has_tpot || slo->has_e2el)) {
            bool good = (!slo->has_ttft || slo->ttft_ms / 1e3 >= t_first) &&
                        (!slo->has_tpot || slo->tpot_ms / 1e3 >= tp) && (!slo->has_e2el || slo->e2el_ms / 1e3 >= lat);
            m->good_completed += good;
        }
        done++;
    }
    m->completed = done;
    m->duration = duration;
    m->has_goodput = slo && (slo->has_ttft || slo->has_tpot || slo->has_e2el);
    m->request_throughput = done / duration;
    m->request_goodput = m->has_goodput ? m->good_completed / duration : 0;
    m->output_throughput = (double)m->total_output / duration;
    m->total_token_throughput = (double)(m->total_input + m->total_output) / duration;
    g4_bench_stat_compute(ttft, done, pcts, n_pcts, &m->ttft);
    g4_bench_stat_compute(tpot, n_tpot, pcts, n_pcts, &m->tpot);
    g4_bench_stat_compute(itl, (int)k, pcts, n_pcts, &m->itl);
    g4_bench_stat_compute(e2el, done, pcts, n_pcts, &m->e2el);
    free(ttft), free(tpot), free(all_tpot), free(e2el), free(itl);
    return peaks(r, n, m, err);
}

int g4_bench_slo_parse(const char *s, g4_bench_slo *slo, g4_error *err) {
    memset(slo, 0, sizeof *slo);
    const char *p = s ? s : "";
    int n = 0;
    while (*p) {
        while (*p == ' ' || *p == ',') p++;
        if (!*p) break;
        size_t klen = strcspn(p, ":");
        if (!p[klen]) return g4_fail(err, "--goodput: '%s': expected KEY:MS pairs (ttft, tpot, e2el)", p);
        char *end;
        double v = strtod(p + klen + 1, &end);
        if (end == p + klen + 1 || (*end && *end != ' ' && *end != ',') || !(v >= 0))
            return g4_fail(err, "--goodput: %.*s: expected a number of milliseconds >= 0", (int)klen, p);
        if (klen == 4 && !strncmp(p, "ttft", 4)) slo->has_ttft = true, slo->ttft_ms = v;
        else if (klen == 4 && !strncmp(p, "tpot", 4)) slo->has_tpot = true, slo->tpot_ms = v;
        else if (klen == 4 && !strncmp(p, "e2el", 4)) slo->has_e2el = true, slo->e2el_ms = v;
        else return g4_fail(err, "--goodput: unknown metric '%.*s' (expected ttft, tpot or e2el)", (int)klen, p);
        n++;
        p = end;
    }
    if (!n) return g4_fail(err, "--goodput: no KEY:MS pair given");
    return 0;
}

int g4_bench_pcts_parse(const char *s, double *pcts, int cap, g4_error *err) {
    int n = 0;
    const char *p = s ? s : "";
    while (*p) {
        char *end;
        double v = strtod(p, &end);
        if (end == p || !(v > 0 && v <= 100) || (*end && *end != ','))
            return g4_fail(err, "--metric-percentiles: '%s': expected numbers in (0, 100] separated by commas", s);
        if (n == cap) return g4_fail(err, "--metric-percentiles: at most %d values", cap);
        pcts[n++] = v;
        p = *end ? end + 1 : end;
    }
    if (!n) return g4_fail(err, "--metric-percentiles: empty list");
    return n;
}
