/* report.h — the benchmark's outputs: vLLM's "Serving Benchmark Result" table on a stream and its
 * result JSON (same key names: completed, request_throughput, mean_ttft_ms, p99_itl_ms, ttfts,
 * itls, ...), plus g4serve's per-request timestamps so every figure can be recomputed. */
#ifndef G4_BENCH_REPORT_H
#define G4_BENCH_REPORT_H

#include <cjson/cJSON.h>
#include <stdio.h>

#include "metrics.h"

typedef struct g4_bench_run_info {
    const char *backend;     /* "openai", "openai-chat", "offline" */
    const char *base_url;    /* NULL offline */
    const char *endpoint;
    const char *model;       /* served model name or directory */
    const char *dataset;     /* "random", "sharegpt" */
    double request_rate;     /* ≤ 0 = inf */
    double burstiness;
    int max_concurrency;     /* 0 = unlimited */
    int num_prompts, num_warmups;
    unsigned long long seed;
} g4_bench_run_info;

void g4_bench_print_table(FILE *f, const g4_bench_metrics *m, const g4_bench_run_info *ri);

/* The result object (caller frees with cJSON_Delete); errors[i] may be NULL. NULL when out of memory. */
cJSON *g4_bench_result_json(const g4_bench_metrics *m, const g4_bench_run_info *ri, const g4_bench_record *r, int n,
                            char *const *errors);

/* Writes obj as JSON to path. */
int g4_bench_write_json(const char *path, const cJSON *obj, g4_error *err);

#endif
