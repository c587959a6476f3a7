/* metrics.h - the server's Prometheus metrics: request counters, latency and size histograms.
 *
 * One g4_metrics per process, made by the composition root (main.c) and fed by both protocols:
 * HTTP generations (http/generate.c) and gRPC ones (native Generate, KServe ModelInfer /
 * ModelStreamInfer: grpc/grpc_gen.c); /metrics on the HTTP port renders it. Requests report here
 * once, when they finish (g4_metrics_request_done, any thread); the engine's
 * live numbers (running, waiting, KV blocks, prefix cache) are read at scrape time and passed to
 * g4_metrics_render. Every family is written twice, under vLLM's `vllm:` names and NIM's plain
 * names, plus a few `g4_` ones (KV blocks per pool), all with a model_name label, in the
 * Prometheus text format 0.0.4. Histogram buckets are vLLM's, so existing dashboards work: every
 * name vLLM's Grafana dashboard queries is here (request phases: queue, prefill, decode,
 * inference; per-request parameters n and max_tokens; iteration sizes; cache_config_info).
 * Not here: the /metrics endpoint (http/server.c). Thread-safe (one mutex). The recording
 * functions accept m = NULL (nothing is recorded). */
#ifndef G4_SERVER_METRICS_H
#define G4_SERVER_METRICS_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/engine.h"
#include "base/strbuf.h"

typedef struct g4_metrics g4_metrics;

/* One finished engine request (one choice). */
typedef struct g4_request_record {
    g4_finish_reason finish;
    int prompt_tokens, generation_tokens, cached_tokens;
    double queue_s;     /* submit → first token (includes prefill), < 0 when no token came */
    double ttft_s;      /* arrival of the request (HTTP or gRPC) → first token, < 0 when no token came */
    double e2e_s;       /* arrival → last event */
    double sched_wait_s;/* submit → its first engine step (g4_event.queue_s): vLLM's queue time;
                           0 when the caller does not pass it (prefill then includes the wait) */
} g4_request_record;

/* max_model_len sizes the token-count buckets. NULL when out of memory. */
g4_metrics *g4_metrics_create(const char *model_name, int max_model_len);
void g4_metrics_free(g4_metrics *m);
/* Re-buckets the token-count histograms for the real model length (call before traffic). */
void g4_metrics_set_max_len(g4_metrics *m, int max_model_len);

void g4_metrics_request_done(g4_metrics *m, const g4_request_record *r);
/* One request's parameters once all its choices are done (vLLM counts a prompt with its n
 * choices as one request): n, max_tokens, and the most tokens any of its choices generated. */
void g4_metrics_request_params(g4_metrics *m, int n, int max_tokens, int max_generated);

/* The KV cache configuration, rendered as vllm:cache_config_info (a gauge of 1 with the values
 * as labels). Call once the engine exists. */
typedef struct g4_cache_info {
    int block_size;
    int n_blocks_global, n_blocks_sliding;
    int sliding_window;
    bool prefix_caching;
} g4_cache_info;
void g4_metrics_set_cache_info(g4_metrics *m, const g4_cache_info *ci);

/* Speculative decoding's counters (vLLM's spec_decode_* families, from g4_engine_stats) are
 * rendered only when speculation is configured, as vLLM does: positions = the proposal length
 * k (1..G4_SPEC_MAX_TOKENS), 0 = not configured. Call once the engine exists. */
void g4_metrics_set_spec_positions(g4_metrics *m, int positions);

/* A request refused before it reached the engine, as an HTTP status (4xx/5xx; gRPC maps its
 * status codes onto these: grpc_gen.c). */
void g4_metrics_request_rejected(g4_metrics *m, int status);

/* Appends the exposition text. st is NULL while no engine exists (gauges then read 0);
 * max_running is the configured concurrency limit (num_request_max). Returns 0 or -1 (OOM). */
int g4_metrics_render(g4_metrics *m, const g4_engine_stats *st, int max_running, g4_strbuf *out);

#endif
