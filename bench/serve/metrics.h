/* metrics.h — serving-benchmark metrics from recorded per-request timestamps, defined exactly as
 * vLLM's `vllm bench serve` defines them (docs/benchmarks.md; performance-anchors.md §6).
 *
 *   TTFT  = first chunk − send                       (per request)
 *   TPOT  = (E2EL − TTFT) / (output tokens − 1)      (per request; requests with ≤ 1 token left out)
 *   ITL   = every gap between successive chunks, pooled over all requests
 *   E2EL  = end − send                               (per request)
 *   request / output / total-token throughput = completed, Σ output, Σ(input + output) per wall second
 *   goodput = completed requests meeting every given SLO per wall second (a request with ≤ 1 output
 *             token counts TPOT 0 against the SLO)
 *   peak output tok/s = most chunks in one 1-second bucket from the first send; peak concurrent
 *             requests = most successful requests active in one such bucket.
 * Statistics: mean, median, population std (numpy's np.std) and linear-interpolated percentiles
 * (np.percentile's default), all in milliseconds; an empty sample reports 0 for everything, as
 * vLLM's `np.mean(x or 0)` does. Pure math: no clock, no I/O (the drivers record, report.c prints). */
#ifndef G4_BENCH_METRICS_H
#define G4_BENCH_METRICS_H

#include <stdbool.h>

#include "base/error.h"

#define G4_BENCH_MAX_PCT 16

/* One request as the client saw it. Times are seconds on one monotonic clock. */
typedef struct g4_bench_record {
    bool ok;              /* completed with at least one chunk */
    int prompt_len;       /* input tokens counted in total_input (the dataset's prompt length) */
    int output_tokens;    /* usage.completion_tokens (else the chunk count) */
    double t_send;        /* request handed to the transport */
    double t_end;         /* last chunk (vLLM's most_recent_timestamp): E2EL = t_end − t_send */
    int n_chunks;         /* chunks that carried choices (≥ 1 when ok) */
    double *chunk_t;      /* [n_chunks] arrival time of each; chunk_t[0] is the first token */
} g4_bench_record;

typedef struct g4_bench_stat {
    int n;                          /* samples */
    double mean, median, std;       /* ms */
    double pct[G4_BENCH_MAX_PCT];   /* ms, at g4_bench_metrics.pcts[i] */
} g4_bench_stat;

/* Service-level objectives for goodput; a metric is used only when its has_ flag is set. */
typedef struct g4_bench_slo {
    bool has_ttft, has_tpot, has_e2el;
    double ttft_ms, tpot_ms, e2el_ms;
} g4_bench_slo;

typedef struct g4_bench_metrics {
    int completed, failed;
    long total_input, total_output;
    double duration;                 /* s, wall time of the benchmark */
    double request_throughput;       /* req/s */
    double request_goodput;          /* req/s; 0 unless has_goodput */
    bool has_goodput;
    int good_completed;
    double output_throughput;        /* tok/s */
    double total_token_throughput;   /* tok/s */
    double max_output_tokens_per_s;  /* peak chunks in a 1-s bucket */
    int max_concurrent_requests;
    int n_pcts;
    double pcts[G4_BENCH_MAX_PCT];   /* the percentiles reported, e.g. {90, 99} */
    g4_bench_stat ttft, tpot, itl, e2el;
} g4_bench_metrics;

/* Linear-interpolated percentile p ∈ [0, 100] of sorted[0..n) (numpy "linear"); 0 when n == 0. */
double g4_bench_percentile(const double *sorted, int n, double p);

/* Fills st from the samples x[0..n) in seconds (reordered in place). */
void g4_bench_stat_compute(double *x, int n, const double *pcts, int n_pcts, g4_bench_stat *st);

/* Computes every metric over records r[0..n) and a benchmark wall time `duration` (s).
 * slo may be NULL (no goodput). Returns 0, or −1 (bad arguments, out of memory). */
int g4_bench_metrics_compute(const g4_bench_record *r, int n, double duration, const g4_bench_slo *slo,
                             const double *pcts, int n_pcts, g4_bench_metrics *m, g4_error *err);

/* Parses "ttft:500 tpot:50 e2el:10000" (vLLM's --goodput KEY:ms pairs, space- or comma-separated). */
int g4_bench_slo_parse(const char *s, g4_bench_slo *slo, g4_error *err);

/* Parses "90,99" or "50,90,99.9" into pcts (each in (0, 100]); returns the count or −1. */
int g4_bench_pcts_parse(const char *s, double *pcts, int cap, g4_error *err);

#endif
