/* report.c — prints the result table and builds the result JSON of a benchmark run (report.h). */
#include "report.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void pct_name(char *out, size_t cap, double p) {
    if (p == floor(p)) snprintf(out, cap, "%d", (int)p);
    else snprintf(out, cap, "%g", p);
}

static void stat_lines(FILE *f, const g4_bench_metrics *m, const char *title, const char *name,
                       const g4_bench_stat *s) {
    fprintf(f, "%s\n", title);
    char k[64], p[32];
    snprintf(k, sizeof k, "Mean %s (ms):", name);
    fprintf(f, "%-40s %-10.2f\n", k, s->mean);
    snprintf(k, sizeof k, "Median %s (ms):", name);
    fprintf(f, "%-40s %-10.2f\n", k, s->median);
    snprintf(k, sizeof k, "Std %s (ms):", name);
    fprintf(f, "%-40s %-10.2f\n", k, s->std);
    for (int i = 0; i < m->n_pcts; i++) {
        pct_name(p, sizeof p, m->pcts[i]);
        snprintf(k, sizeof k, "P%s %s (ms):", p, name);
        fprintf(f, "%-40s %-10.2f\n", k, s->pct[i]);
    }
}

void g4_bench_print_table(FILE *f, const g4_bench_metrics *m, const g4_bench_run_info *ri) {
    fprintf(f, "%s\n", "============ Serving Benchmark Result ============");
    fprintf(f, "%-40s %-10d\n", "Successful requests:", m->completed);
    fprintf(f, "%-40s %-10d\n", "Failed requests:", m->failed);
    if (ri->max_concurrency > 0) fprintf(f, "%-40s %-10d\n", "Maximum request concurrency:", ri->max_concurrency);
    if (ri->request_rate > 0) fprintf(f, "%-40s %-10.2f\n", "Request rate configured (RPS):", ri->request_rate);
    else fprintf(f, "%-40s %-10s\n", "Request rate configured (RPS):", "inf");
    fprintf(f, "%-40s %-10.2f\n", "Benchmark duration (s):", m->duration);
    fprintf(f, "%-40s %-10ld\n", "Total input tokens:", m->total_input);
    fprintf(f, "%-40s %-10ld\n", "Total generated tokens:", m->total_output);
    fprintf(f, "%-40s %-10.2f\n", "Request throughput (req/s):", m->request_throughput);
    if (m->has_goodput) fprintf(f, "%-40s %-10.2f\n", "Request goodput (req/s):", m->request_goodput);
    fprintf(f, "%-40s %-10.2f\n", "Output token throughput (tok/s):", m->output_throughput);
    fprintf(f, "%-40s %-10.2f\n", "Peak output token throughput (tok/s):", m->max_output_tokens_per_s);
    fprintf(f, "%-40s %-10d\n", "Peak concurrent requests:", m->max_concurrent_requests);
    fprintf(f, "%-40s %-10.2f\n", "Total Token throughput (tok/s):", m->total_token_throughput);
    stat_lines(f, m, "---------------Time to First Token----------------", "TTFT", &m->ttft);
    stat_lines(f, m, "-----Time per Output Token (excl. 1st token)------", "TPOT", &m->tpot);
    stat_lines(f, m, "---------------Inter-token Latency----------------", "ITL", &m->itl);
    stat_lines(f, m, "----------------End-to-end Latency----------------", "E2EL", &m->e2el);
    fprintf(f, "%s\n", "==================================================");
}

static void add_stat(cJSON *o, const g4_bench_metrics *m, const char *name, const g4_bench_stat *s) {
    char k[64], p[32];
    snprintf(k, sizeof k, "mean_%s_ms", name);
    cJSON_AddNumberToObject(o, k, s->mean);
    snprintf(k, sizeof k, "median_%s_ms", name);
    cJSON_AddNumberToObject(o, k, s->median);
    snprintf(k, sizeof k, "std_%s_ms", name);
    cJSON_AddNumberToObject(o, k, s->std);
    for (int i = 0; i < m->n_pcts; i++) {
        pct_name(p, sizeof p, m->pcts[i]);
        snprintf(k, sizeof k, "p%s_%s_ms", p, name);
        cJSON_AddNumberToObject(o, k, s->pct[i]);
    }
}

cJSON *g4_bench_result_json(const g4_bench_metrics *m, const g4_bench_run_info *ri, const g4_bench_record *r, int n,
                            char *const *errors) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    char date[32];
    time_t now = time(NULL);
    strftime(date, sizeof date, "%Y%m%d-%H%M%S", localtime(&now));
    cJSON_AddStringToObject(o, "date", date);
    cJSON_AddStringToObject(o, "tool", "g4-bench-serve");
    cJSON_AddStringToObject(o, "backend", ri->backend);
    if (ri->base_url) cJSON_AddStringToObject(o, "base_url", ri->base_url);
    if (ri->endpoint) cJSON_AddStringToObject(o, "endpoint", ri->endpoint);
    cJSON_AddStringToObject(o, "model_id", ri->model ? ri->model : "");
    cJSON_AddStringToObject(o, "dataset", ri->dataset);
    cJSON_AddNumberToObject(o, "num_prompts", ri->num_prompts);
    cJSON_AddNumberToObject(o, "num_warmups", ri->num_warmups);
    cJSON_AddNumberToObject(o, "seed", (double)ri->seed);
    if (ri->request_rate > 0) cJSON_AddNumberToObject(o, "request_rate", ri->request_rate);
    else cJSON_AddStringToObject(o, "request_rate", "inf");
    cJSON_AddNumberToObject(o, "burstiness", ri->burstiness);
    if (ri->max_concurrency > 0) cJSON_AddNumberToObject(o, "max_concurrency", ri->max_concurrency);
    else cJSON_AddNullToObject(o, "max_concurrency");
    cJSON_AddNumberToObject(o, "duration", m->duration);
    cJSON_AddNumberToObject(o, "completed", m->completed);
    cJSON_AddNumberToObject(o, "failed", m->failed);
    cJSON_AddNumberToObject(o, "total_input_tokens", (double)m->total_input);
    cJSON_AddNumberToObject(o, "total_output_tokens", (double)m->total_output);
    cJSON_AddNumberToObject(o, "request_throughput", m->request_throughput);
    if (m->has_goodput) cJSON_AddNumberToObject(o, "request_goodput", m->request_goodput);
    else cJSON_AddNullToObject(o, "request_goodput");
    cJSON_AddNumberToObject(o, "output_throughput", m->output_throughput);
    cJSON_AddNumberToObject(o, "total_token_throughput", m->total_token_throughput);
    cJSON_AddNumberToObject(o, "max_output_tokens_per_s", m->max_output_tokens_per_s);
    cJSON_AddNumberToObject(o, "max_concurrent_requests", m->max_concurrent_requests);
    add_stat(o, m, "ttft", &m->ttft);
    add_stat(o, m, "tpot", &m->tpot);
    add_stat(o, m, "itl", &m->itl);
    add_stat(o, m, "e2el", &m->e2el);
    cJSON *in = cJSON_AddArrayToObject(o, "input_lens"), *out = cJSON_AddArrayToObject(o, "output_lens");
    cJSON *ttfts = cJSON_AddArrayToObject(o, "ttfts"), *itls = cJSON_AddArrayToObject(o, "itls");
    cJSON *errs = cJSON_AddArrayToObject(o, "errors"), *ts = cJSON_AddArrayToObject(o, "timestamps");
    for (int i = 0; i < n; i++) {
        const g4_bench_record *q = &r[i];
        cJSON_AddItemToArray(in, cJSON_CreateNumber(q->prompt_len));
        cJSON_AddItemToArray(out, cJSON_CreateNumber(q->ok ? q->output_tokens : 0));
        cJSON_AddItemToArray(ttfts, cJSON_CreateNumber(q->ok ? q->chunk_t[0] - q->t_send : 0));
        cJSON *il = cJSON_CreateArray(), *t = cJSON_CreateObject(), *ch = cJSON_CreateArray();
        for (int c = 1; q->ok && c < q->n_chunks; c++)
            cJSON_AddItemToArray(il, cJSON_CreateNumber(q->chunk_t[c] - q->chunk_t[c - 1]));
        cJSON_AddItemToArray(itls, il);
        cJSON_AddItemToArray(errs, cJSON_CreateString(errors && errors[i] ? errors[i] : ""));
        cJSON_AddBoolToObject(t, "ok", q->ok);
        cJSON_AddNumberToObject(t, "send", q->t_send);
        for (int c = 0; c < q->n_chunks; c++) cJSON_AddItemToArray(ch, cJSON_CreateNumber(q->chunk_t[c]));
        cJSON_AddItemToObject(t, "chunks", ch);
        cJSON_AddNumberToObject(t, "end", q->t_end);
        cJSON_AddItemToArray(ts, t);
    }
    return o;
}

int g4_bench_write_json(const char *path, const cJSON *obj, g4_error *err) {
    char *s = cJSON_PrintUnformatted(obj);
    if (!s) return g4_fail(err, "result JSON: out of memory");
    FILE *f = fopen(path, "w");
    if (!f) {
        free(s);
        return g4_fail(err, "--result-file: cannot write '%s'", path);
    }
    int ok = fputs(s, f) >= 0 && fputc('\n', f) != EOF;
    ok &= fclose(f) == 0;
    free(s);
    return ok ? 0 : g4_fail(err, "--result-file: write to '%s' failed", path);
}
