/* metrics.c - Prometheus counters and histograms of the server, both protocols (see metrics.h).
 * Families are rendered from one set of numbers under two names (vLLM's and NIM's); counters
 * are named <name>_total in their HELP, TYPE and sample lines, as prometheus_client writes the
 * text format 0.0.4 (vLLM's /metrics), so its parser reads them as counters. */
#include "server/metrics/metrics.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_BUCKETS 32

typedef struct hist {
    int n;
    double le[MAX_BUCKETS];
    uint64_t count[MAX_BUCKETS]; /* non-cumulative; cumulated when rendered */
    uint64_t total;
    double sum;
} hist;

struct g4_metrics {
    pthread_mutex_t mu;
    char label[512];                  /* model_name="..." escaped */
    uint64_t finished[5];             /* by g4_finish_reason */
    uint64_t prompt_tokens, generation_tokens;
    uint64_t rejected_4xx, rejected_5xx, rejected_429;
    hist ttft, tpot, itl, e2e, queue, prompt_len, gen_len;
    hist req_tpot, prefill, decode, inference;   /* per request phases (vLLM v1 names) */
    hist params_n, params_max_tokens, max_gen;   /* per request (prompt group) */
    bool has_cache_info;
    g4_cache_info cache;
    int spec_positions;               /* 0: speculation off, no spec_decode families */
};

static void hist_init(hist *h, const double *le, int n) {
    memset(h, 0, sizeof *h);
    h->n = n < MAX_BUCKETS ? n : MAX_BUCKETS;
    memcpy(h->le, le, sizeof(double) * (size_t)h->n);
}

static void hist_observe(hist *h, double v, uint64_t times) {
    int b = 0;
    while (b < h->n && v > h->le[b]) b++;
    if (b < h->n) h->count[b] += times;
    h->total += times;
    h->sum += v * (double)times;
}

/* 1, 2, 5, 10, 20, 50, ... up to max (vLLM's build_1_2_5_buckets). */
static int buckets_125(double *le, double max) {
    int n = 0;
    for (double p = 1; n < MAX_BUCKETS; p *= 10) {
        static const double m[3] = {1, 2, 5};
        for (int i = 0; i < 3 && n < MAX_BUCKETS; i++) {
            if (p * m[i] > max) return n;
            le[n++] = p * m[i];
        }
    }
    return n;
}

g4_metrics *g4_metrics_create(const char *model_name, int max_model_len) {
    g4_metrics *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    pthread_mutex_init(&m->mu, NULL);
    /* Label value escaping: backslash, double quote and newline. */
    size_t o = 0;
    o += (size_t)snprintf(m->label, sizeof m->label, "model_name=\"");
    for (const char *p = model_name; *p && o + 4 < sizeof m->label; p++) {
        if (*p == '\\' || *p == '"') m->label[o++] = '\\';
        if (*p == '\n') {
            m->label[o++] = '\\';
            m->label[o++] = 'n';
            continue;
        }
        m->label[o++] = *p;
    }
    m->label[o++] = '"';
    m->label[o] = 0;
    static const double ttft[] = {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1,  0.25,  0.5,   0.75,
                                  1.0,   2.5,   5.0,  7.5,  10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0};
    static const double tpot[] = {0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2,  0.3,  0.4, 0.5,
                                  0.75, 1.0,   2.5,  5.0,   7.5, 10.0, 20.0, 40.0, 80.0};
    static const double e2e[] = {0.3,  0.5,  0.8,  1.0,  1.5,   2.0,   2.5,   5.0,   10.0,   15.0,  20.0,
                                 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0};
    hist_init(&m->ttft, ttft, (int)(sizeof ttft / sizeof ttft[0]));
    hist_init(&m->tpot, tpot, (int)(sizeof tpot / sizeof tpot[0]));
    hist_init(&m->itl, tpot, (int)(sizeof tpot / sizeof tpot[0]));
    hist_init(&m->e2e, e2e, (int)(sizeof e2e / sizeof e2e[0]));
    hist_init(&m->queue, e2e, (int)(sizeof e2e / sizeof e2e[0]));
    double le[MAX_BUCKETS];
    int n = buckets_125(le, max_model_len > 0 ? max_model_len : 4096);
    hist_init(&m->prompt_len, le, n);
    hist_init(&m->gen_len, le, n);
    hist_init(&m->req_tpot, tpot, (int)(sizeof tpot / sizeof tpot[0]));
    hist_init(&m->prefill, e2e, (int)(sizeof e2e / sizeof e2e[0]));
    hist_init(&m->decode, e2e, (int)(sizeof e2e / sizeof e2e[0]));
    hist_init(&m->inference, e2e, (int)(sizeof e2e / sizeof e2e[0]));
    static const double n_le[] = {1, 2, 5, 10, 20};
    hist_init(&m->params_n, n_le, (int)(sizeof n_le / sizeof n_le[0]));
    hist_init(&m->params_max_tokens, le, n);
    hist_init(&m->max_gen, le, n);
    return m;
}

void g4_metrics_set_max_len(g4_metrics *m, int max_model_len) {
    double le[MAX_BUCKETS];
    int n = buckets_125(le, max_model_len > 0 ? max_model_len : 4096);
    pthread_mutex_lock(&m->mu);
    hist_init(&m->prompt_len, le, n);
    hist_init(&m->gen_len, le, n);
    hist_init(&m->params_max_tokens, le, n);
    hist_init(&m->max_gen, le, n);
    pthread_mutex_unlock(&m->mu);
}

void g4_metrics_free(g4_metrics *m) {
    if (!m) return;
    pthread_mutex_destroy(&m->mu);
    free(m);
}

void g4_metrics_request_done(g4_metrics *m, const g4_request_record *r) {
    if (!m) return;
    pthread_mutex_lock(&m->mu);
    if (r->finish >= 0 && r->finish < 5) m->finished[r->finish]++;
    m->prompt_tokens += (uint64_t)(r->prompt_tokens > 0 ? r->prompt_tokens : 0);
    m->generation_tokens += (uint64_t)(r->generation_tokens > 0 ? r->generation_tokens : 0);
    if (r->finish != G4_FINISH_ERROR) {
        hist_observe(&m->prompt_len, r->prompt_tokens, 1);
        hist_observe(&m->gen_len, r->generation_tokens, 1);
        hist_observe(&m->e2e, r->e2e_s, 1);
    }
    if (r->ttft_s >= 0) {
        /* vLLM's phases: queued (submit → first step), prefill (first step → first token), decode
         * (first → last token), inference (first step → last token). */
        double wait = r->sched_wait_s > 0 && r->sched_wait_s <= r->queue_s ? r->sched_wait_s : 0;
        double prefill = r->queue_s - wait, decode = r->e2e_s - r->ttft_s;
        hist_observe(&m->ttft, r->ttft_s, 1);
        hist_observe(&m->queue, wait, 1);
        hist_observe(&m->prefill, prefill, 1);
        hist_observe(&m->decode, decode, 1);
        hist_observe(&m->inference, prefill + decode, 1);
        if (r->generation_tokens > 1) {
            double tpot = decode / (r->generation_tokens - 1);
            hist_observe(&m->tpot, tpot, 1);
            hist_observe(&m->req_tpot, tpot, 1);
            hist_observe(&m->itl, tpot, (uint64_t)(r->generation_tokens - 1));
        }
    }
    pthread_mutex_unlock(&m->mu);
}

void g4_metrics_request_params(g4_metrics *m, int n, int max_tokens, int max_generated) {
    if (!m) return;
    pthread_mutex_lock(&m->mu);
    hist_observe(&m->params_n, n, 1);
    hist_observe(&m->params_max_tokens, max_tokens, 1);
    hist_observe(&m->max_gen, max_generated, 1);
    pthread_mutex_unlock(&m->mu);
}

void g4_metrics_set_cache_info(g4_metrics *m, const g4_cache_info *ci) {
    if (!m) return;
    pthread_mutex_lock(&m->mu);
    m->cache = *ci;
    m->has_cache_info = true;
    pthread_mutex_unlock(&m->mu);
}

void g4_metrics_set_spec_positions(g4_metrics *m, int positions) {
    if (!m) return;
    pthread_mutex_lock(&m->mu);
    m->spec_positions = positions < 0 ? 0 : positions > G4_SPEC_MAX_TOKENS ? G4_SPEC_MAX_TOKENS : positions;
    pthread_mutex_unlock(&m->mu);
}

void g4_metrics_request_rejected(g4_metrics *m, int status) {
    if (!m) return;
    pthread_mutex_lock(&m->mu);
    if (status == 429) m->rejected_429++;
    else if (status >= 500) m->rejected_5xx++;
    else m->rejected_4xx++;
    pthread_mutex_unlock(&m->mu);
}

/* --- rendering ----------------------------------------------------------------------- */

static int head(g4_strbuf *o, const char *name, const char *type, const char *help) {
    return g4_strbuf_printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static int gauge(g4_strbuf *o, const g4_metrics *m, const char *name, const char *help, double v) {
    if (head(o, name, "gauge", help) < 0) return -1;
    return g4_strbuf_printf(o, "%s{%s} %.17g\n", name, m->label, v);
}

/* A counter's family head: "<name>_total" as prometheus_client writes it. */
static int counter_head(g4_strbuf *o, const char *name, const char *help) {
    char total[160];
    snprintf(total, sizeof total, "%s_total", name);
    return head(o, total, "counter", help);
}

static int counter(g4_strbuf *o, const g4_metrics *m, const char *name, const char *help, uint64_t v) {
    if (counter_head(o, name, help) < 0) return -1;
    return g4_strbuf_printf(o, "%s_total{%s} %llu\n", name, m->label, (unsigned long long)v);
}

static int histogram(g4_strbuf *o, const g4_metrics *m, const char *name, const char *help, const hist *h) {
    if (head(o, name, "histogram", help) < 0) return -1;
    uint64_t cum = 0;
    for (int b = 0; b < h->n; b++) {
        cum += h->count[b];
        if (g4_strbuf_printf(o, "%s_bucket{%s,le=\"%.17g\"} %llu\n", name, m->label, h->le[b],
                             (unsigned long long)cum) < 0)
            return -1;
    }
    return g4_strbuf_printf(o, "%s_bucket{%s,le=\"+Inf\"} %llu\n%s_count{%s} %llu\n%s_sum{%s} %.17g\n", name, m->label,
                            (unsigned long long)h->total, name, m->label, (unsigned long long)h->total, name, m->label,
                            h->sum);
}

/* Steps by size, from the engine's histogram (engine.h: step_tokens_le). */
static int iteration_tokens(g4_strbuf *o, const g4_metrics *m, const char *name, const g4_engine_stats *st) {
    static const int bounds[G4_STEP_TOKEN_BUCKETS] = G4_STEP_TOKEN_BUCKET_BOUNDS;
    hist h;
    double le[G4_STEP_TOKEN_BUCKETS];
    for (int b = 0; b < G4_STEP_TOKEN_BUCKETS; b++) le[b] = bounds[b];
    hist_init(&h, le, G4_STEP_TOKEN_BUCKETS);
    for (int b = 0; b < G4_STEP_TOKEN_BUCKETS; b++) h.count[b] = st->step_tokens_le[b];
    h.total = st->steps;
    h.sum = (double)st->step_tokens;
    return histogram(o, m, name, "Histogram of number of tokens per engine_step.", &h);
}

/* vLLM's info gauge: 1, with the KV cache configuration as labels. */
static int cache_info(g4_strbuf *o, const g4_metrics *m, const char *name) {
    const g4_cache_info *ci = &m->cache;
    if (head(o, name, "gauge", "Information of the LLMEngine CacheConfig") < 0) return -1;
    return g4_strbuf_printf(o,
                            "%s{%s,block_size=\"%d\",cache_dtype=\"auto\",enable_prefix_caching=\"%s\","
                            "num_gpu_blocks=\"%d\",num_gpu_blocks_sliding=\"%d\",sliding_window=\"%d\"} 1\n",
                            name, m->label, ci->block_size, ci->prefix_caching ? "True" : "False", ci->n_blocks_global,
                            ci->n_blocks_sliding, ci->sliding_window);
}

/* vLLM's speculative decoding counters (its SpecDecodingProm): proposals, proposed and accepted
 * tokens, and accepted tokens by position in the proposal (label position = 0..k−1). */
static int spec_decode(g4_strbuf *o, const g4_metrics *m, const g4_engine_stats *st) {
    int rc = counter(o, m, "vllm:spec_decode_num_drafts", "Number of spec decoding drafts.", st->spec_drafts);
    rc |= counter(o, m, "vllm:spec_decode_num_draft_tokens", "Number of draft tokens.", st->spec_draft_tokens);
    rc |= counter(o, m, "vllm:spec_decode_num_accepted_tokens", "Number of accepted tokens.", st->spec_accepted_tokens);
    const char *name = "vllm:spec_decode_num_accepted_tokens_per_pos";
    rc |= counter_head(o, name, "Accepted tokens per draft position.");
    for (int i = 0; i < m->spec_positions && rc == 0; i++)
        rc |= g4_strbuf_printf(o, "%s_total{%s,position=\"%d\"} %llu\n", name, m->label, i,
                               (unsigned long long)st->spec_accepted_per_pos[i]);
    return rc;
}

static const char *const reason_names[5] = {"none", "stop", "length", "abort", "error"};

static int by_reason(g4_strbuf *o, const g4_metrics *m, const char *name, const char *help, const uint64_t *v,
                     int first, int last) {
    if (counter_head(o, name, help) < 0) return -1;
    for (int r = first; r <= last; r++)
        if (g4_strbuf_printf(o, "%s_total{%s,finished_reason=\"%s\"} %llu\n", name, m->label, reason_names[r],
                             (unsigned long long)v[r]) < 0)
            return -1;
    return 0;
}

int g4_metrics_render(g4_metrics *m, const g4_engine_stats *st, int max_running, g4_strbuf *out) {
    g4_engine_stats zero;
    if (!st) {
        memset(&zero, 0, sizeof zero);
        st = &zero;
    }
    int used = st->blocks_sliding_used + st->blocks_global_used;
    int total = st->blocks_sliding_total + st->blocks_global_total;
    double kv = total > 0 ? (double)used / total : 0.0;
    pthread_mutex_lock(&m->mu);
    g4_metrics c = *m; /* snapshot, rendered without the lock held */
    pthread_mutex_unlock(&m->mu);
    uint64_t failure = c.finished[G4_FINISH_ERROR] + c.rejected_4xx + c.rejected_5xx + c.rejected_429;
    int rc = 0;
    for (int fam = 0; fam < 2 && rc == 0; fam++) {
        const char *p = fam == 0 ? "vllm:" : "";
        char n[128];
#define NAME(x) (snprintf(n, sizeof n, "%s%s", p, x), n)
        rc |= gauge(out, &c, NAME("num_requests_running"), "Requests in model execution batches.", st->running);
        rc |= gauge(out, &c, NAME("num_requests_waiting"), "Requests waiting to be processed.", st->waiting);
        rc |= gauge(out, &c, NAME("gpu_cache_usage_perc"), "KV-cache usage. 1 means 100 percent usage.", kv);
        if (fam == 0)
            rc |= gauge(out, &c, NAME("kv_cache_usage_perc"), "KV-cache usage. 1 means 100 percent usage.", kv);
        else rc |= gauge(out, &c, NAME("num_request_max"), "Max number of concurrently running requests.", max_running);
        rc |= counter(out, &c, NAME("prompt_tokens"), "Number of prefill tokens processed.", c.prompt_tokens);
        rc |=
            counter(out, &c, NAME("generation_tokens"), "Number of generation tokens processed.", c.generation_tokens);
        rc |= by_reason(out, &c, NAME("request_success"), "Count of successfully processed requests.", c.finished,
                        G4_FINISH_STOP, fam == 0 ? G4_FINISH_ABORT : G4_FINISH_LENGTH);
        rc |= histogram(out, &c, NAME("time_to_first_token_seconds"), "Histogram of time to first token in seconds.",
                        &c.ttft);
        rc |= histogram(out, &c, NAME("time_per_output_token_seconds"),
                        "Histogram of time per output token in seconds.", &c.tpot);
        rc |= histogram(out, &c, NAME("e2e_request_latency_seconds"),
                        "Histogram of end to end request latency in seconds.", &c.e2e);
        rc |= histogram(out, &c, NAME("request_prompt_tokens"), "Number of prefill tokens processed.", &c.prompt_len);
        rc |=
            histogram(out, &c, NAME("request_generation_tokens"), "Number of generation tokens processed.", &c.gen_len);
        if (fam == 0) {
            rc |= histogram(out, &c, NAME("inter_token_latency_seconds"),
                            "Histogram of inter-token latency in seconds.", &c.itl);
            rc |= histogram(out, &c, NAME("request_queue_time_seconds"),
                            "Histogram of time spent in WAITING phase for request.", &c.queue);
            rc |= counter(out, &c, NAME("prefix_cache_queries"), "Prefix cache queries, in prompt tokens.",
                          st->prefix_query_tokens);
            rc |= counter(out, &c, NAME("prefix_cache_hits"), "Prefix cache hits, in prompt tokens.",
                          st->prefix_hit_tokens);
            rc |= counter(out, &c, NAME("num_preemptions"), "Cumulative number of preemptions.", st->preemptions);
            rc |= histogram(out, &c, NAME("request_time_per_output_token_seconds"),
                            "Histogram of time_per_output_token_seconds per request.", &c.req_tpot);
            rc |= histogram(out, &c, NAME("request_prefill_time_seconds"),
                            "Histogram of time spent in PREFILL phase for request.", &c.prefill);
            rc |= histogram(out, &c, NAME("request_decode_time_seconds"),
                            "Histogram of time spent in DECODE phase for request.", &c.decode);
            rc |= histogram(out, &c, NAME("request_inference_time_seconds"),
                            "Histogram of time spent in RUNNING phase for request.", &c.inference);
            rc |= histogram(out, &c, NAME("request_params_n"), "Histogram of the n request parameter.", &c.params_n);
            rc |= histogram(out, &c, NAME("request_params_max_tokens"),
                            "Histogram of the max_tokens request parameter.", &c.params_max_tokens);
            rc |= histogram(out, &c, NAME("request_max_num_generation_tokens"),
                            "Histogram of maximum number of requested generation tokens.", &c.max_gen);
            rc |= iteration_tokens(out, &c, NAME("iteration_tokens_total"), st);
            if (c.has_cache_info) rc |= cache_info(out, &c, NAME("cache_config_info"));
            if (c.spec_positions > 0) rc |= spec_decode(out, &c, st);
        } else {
            rc |= counter(out, &c, NAME("request_failure"), "Count of failed requests (errors and refusals).", failure);
            rc |= by_reason(out, &c, NAME("request_finish"), "Count of finished requests by finish reason.", c.finished,
                            G4_FINISH_STOP, G4_FINISH_ERROR);
        }
#undef NAME
    }
    if (rc == 0) {
        rc |= head(out, "g4_kv_blocks_used", "gauge", "KV blocks in use by running requests, per pool.");
        rc |= g4_strbuf_printf(out,
                               "g4_kv_blocks_used{%s,pool=\"sliding\"} %d\ng4_kv_blocks_used{%s,pool=\"global\"} %d\n",
                               c.label, st->blocks_sliding_used, c.label, st->blocks_global_used);
        rc |= head(out, "g4_kv_blocks_total", "gauge", "KV blocks in each pool.");
        rc |=
            g4_strbuf_printf(out,
                             "g4_kv_blocks_total{%s,pool=\"sliding\"} %d\ng4_kv_blocks_total{%s,pool=\"global\"} %d\n",
                             c.label, st->blocks_sliding_total, c.label, st->blocks_global_total);
        rc |= gauge(out, &c, "g4_kv_blocks_cached", "Free KV blocks kept for the prefix cache.", st->blocks_cached);
        rc |= counter(out, &c, "g4_http_rejected", "Requests refused before reaching the engine (4xx/5xx).",
                      c.rejected_4xx + c.rejected_5xx + c.rejected_429);
    }
    return rc ? -1 : 0;
}
