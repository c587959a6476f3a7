/* http_server.h - the OpenAI-compatible HTTP API (NIM-style) over libmicrohttpd.
 *
 * Endpoints: POST /v1/chat/completions, POST /v1/completions, POST /invocations, GET /v1/models,
 * GET /v1/health/live, GET /v1/health/ready, GET /v1/metrics and /metrics, GET /v1/version,
 * GET /version, GET /tokenizer_info, POST /tokenize, POST /detokenize. Reference: docs/api-http.md.
 *
 * Life cycle: start (the port is open and /v1/health/live answers 200 at once), attach the
 * engine and tokenizer when the model is loaded, set_ready after warm-up (/v1/health/ready
 * turns 200; generation endpoints answer 503 before), on SIGTERM drain / in_flight /
 * cancel_all (main.c's drain: docs/operations.md), stop. One internal polling thread (epoll)
 * serves every connection; streaming responses suspend their connection and the engine thread
 * resumes it when events arrive. Not here: flag parsing and model loading (main.c). */
#ifndef G4_SERVER_HTTP_HTTP_SERVER_H
#define G4_SERVER_HTTP_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>

#include "base/error.h"
#include "engine/engine.h"
#include "media/media_source.h"
#include "server/metrics/metrics.h"
#include "text/tokenizer.h"

#define G4_HTTP_MAX_NAMES 8

typedef struct g4_http_config {
    const char *host;              /* listen address, "0.0.0.0" (default) or e.g. "127.0.0.1" */
    int port;                      /* 0 = pick a free port (see g4_http_server_port) */
    const char *served_names[G4_HTTP_MAX_NAMES]; /* model names the API answers to; [0] is reported */
    int n_served_names;
    size_t max_body_bytes;         /* request bodies above this get 413 */
    int connection_timeout_s;      /* idle connection timeout (0 = none); suspended connections
                                      (a non-streaming request waiting for the engine) never idle */
    int n_threads;                 /* MHD polling threads: a big request (parse, render, tokenize)
                                      stalls only the connections of its thread */
    int max_connections;           /* open connections at most (0 = from the open-file limit) */
    int max_connections_per_ip;    /* 0 = no per-address cap (behind a gateway every client has its
                                      address) */
    double read_timeout_s;         /* a request's headers + body must arrive within this (0 = none):
                                      a slow sender (slowloris) is disconnected */
    double stall_timeout_s;        /* a stream whose client reads nothing for this long is cancelled
                                      (0 = never; needs keepalive_s > 0 to tell) */
    size_t max_json_values;        /* JSON values (objects, arrays, elements) in a body: a memory budget
                                      for the parsed tree; above it 413 */
    size_t body_budget_bytes;      /* request bodies held at once, all connections together; above it
                                      503 + Retry-After */
    double keepalive_s;            /* SSE comment after this long without data (0 = never) */
    double request_timeout_s;      /* a generation running longer is cancelled (0 = never) */
    bool reasoning_content;        /* also emit `reasoning_content` (older clients) */
    bool log_requests;             /* one log line per request (NIM_DISABLE_LOG_REQUESTS=0) */
    int default_completion_max_tokens; /* /v1/completions without max_tokens (vLLM: 16) */
    bool trust_client_id;          /* fair admission names a request's client by its x-g4-client-id
                                      header (G4_CLIENT_ID_HEADER; set by a gateway the operator
                                      trusts); false: by the peer's IP address */
    const char *api_key;           /* NULL/"" = open; else every API route wants
                                      "Authorization: Bearer <key>" (401 otherwise) */
    bool protect_metrics;          /* with api_key: /metrics and /v1/metrics want it too */
    /* Images (chat image_url parts). Without a vision tower every image part is a 400. */
    int vision_grid;               /* the largest patch-grid side the served model's vision tower
                                      takes (its position table); 0: no vision tower */
    g4_media_policy media;         /* where image bytes may come from; media.max_bytes also bounds them */
    int64_t max_image_pixels;      /* decoded width × height (0 = no limit) */
    int image_budget;              /* soft tokens per image without mm_processor_kwargs (280) */
    g4_metrics *metrics;           /* what /metrics renders, shared with the gRPC server (borrowed;
                                      must outlive the server); NULL = the server makes its own */
} g4_http_config;

void g4_http_config_default(g4_http_config *c);

typedef struct g4_http_server g4_http_server;

/* Opens the listening socket and starts serving. NULL with err on failure (port in use, ...). */
g4_http_server *g4_http_server_start(const g4_http_config *c, g4_error *err);

/* The bound port (useful with port 0). */
int g4_http_server_port(const g4_http_server *s);

/* Whether image parts are served: the vision tower's largest patch-grid side, 0 for none;
 * before attach. */
void g4_http_server_set_vision(g4_http_server *s, int vision_grid);

/* Hands over the engine and tokenizer (not owned; both must outlive the server). eo gives the
 * limits the API enforces and reports (max_model_len, max_running). Call once, before ready. */
void g4_http_server_attach(g4_http_server *s, g4_engine *e, const g4_tokenizer *tok, const g4_engine_opts *eo);

void g4_http_server_set_ready(g4_http_server *s, bool ready);

/* Drain, step 1: readiness turns 503 and every route that starts work (generation, tokenize)
 * answers 503 with Retry-After; what is in flight runs on. Health, models, metrics still answer. */
void g4_http_server_drain(g4_http_server *s);

/* Generation jobs not yet finished and written (streams and non-streaming answers). */
int g4_http_server_in_flight(g4_http_server *s);

/* Drain, step 2 (grace period over): cancels every in-flight generation; each stream still ends
 * cleanly (finish_reason "abort", then [DONE]), each non-streaming request gets its answer. */
void g4_http_server_cancel_all(g4_http_server *s);

/* Stops accepting, cancels what is in flight, closes every connection, frees s. The engine
 * must still exist (in-flight requests are cancelled through it). */
void g4_http_server_stop(g4_http_server *s);

#endif
