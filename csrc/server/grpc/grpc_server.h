/* grpc_server.h - g4serve's gRPC face on the gRPC C core: the native g4serve.v1.G4Serve API,
 * the KServe v2 / Triton inference.GRPCInferenceService subset and grpc.health.v1.Health.
 *
 * Life cycle (mirrors http_server.h, so main.c drives both the same way): start (the port is
 * open; Health answers NOT_SERVING, ServerLive true, generation UNAVAILABLE), attach the engine
 * and tokenizer once the model is loaded, set_ready (Health turns SERVING, Watch streams are
 * told), on SIGTERM drain / in_flight / cancel_all (main.c's drain: docs/operations.md), stop
 * (refuses new calls, waits briefly, cancels what is left). Completion-queue threads only
 * move bytes and call state; model work happens on the engine thread. Protocols and examples:
 * docs/api-grpc.md. Not here: flag parsing (main.c) and model loading (stack.c). */
#ifndef G4_SERVER_GRPC_GRPC_SERVER_H
#define G4_SERVER_GRPC_GRPC_SERVER_H

#include <stdbool.h>
#include <stddef.h>

#include "base/error.h"
#include "engine/engine.h"
#include "media/image.h"
#include "model/config.h"
#include "server/metrics/metrics.h"
#include "text/tokenizer.h"

typedef struct g4_grpc_config {
    const char *host;             /* listen address: "0.0.0.0" (default), "127.0.0.1", "[::]" */
    int port;                     /* 8001 by default; 0 = pick a free port (g4_grpc_server_port) */
    int n_threads;                /* completion-queue threads (default 2) */
    size_t max_recv_bytes;        /* largest request message (default 64 MiB) */
    double drain_timeout_s;       /* stop: wait this long for in-flight calls before cancelling */
    const char *api_key;          /* NULL/"" = open; else every method but grpc.health.v1 wants
                                     metadata "authorization: Bearer <key>" (UNAUTHENTICATED) */
    bool trust_client_id;         /* fair admission names a call's client by its x-g4-client-id
                                     metadata; false: by the peer's IP address */
    const char *served_name;      /* model name the APIs answer to (required) */
    const char *model_path;       /* reported by ModelInfo */
    int default_max_tokens;       /* Generate / KServe without max_tokens (default 16) */
    double stall_timeout_s;       /* a call whose client takes no message for this long (its flow-
                                     control window stays full) is cancelled: RESOURCE_EXHAUSTED,
                                     its generations aborted (default 60; 0 = never) */
} g4_grpc_config;

void g4_grpc_config_default(g4_grpc_config *c);

/* What the server needs from the loaded model; all pointers are borrowed and must outlive the
 * server (the engine too: stop cancels in-flight requests through it). */
typedef struct g4_grpc_model {
    g4_engine *engine;
    const g4_tokenizer *tok;
    g4_config cfg;                /* the checkpoint's geometry (full, not per TP rank) */
    g4_engine_opts eo;            /* limits the API enforces and reports */
    int tp_size;
    g4_metrics *metrics;          /* where generations are counted (the HTTP server's /metrics);
                                     NULL = not counted */
    bool vision;                  /* the model has a vision tower: chat images are read */
    g4_image_limits image_limits; /* each image's bytes and decoded pixels */
} g4_grpc_model;

typedef struct g4_grpc_server g4_grpc_server;

/* Binds the port and starts the threads. NULL with err on failure (port in use, bad config). */
g4_grpc_server *g4_grpc_server_start(const g4_grpc_config *c, g4_error *err);

/* The bound port (useful with port 0). */
int g4_grpc_server_port(const g4_grpc_server *s);

/* Hands over the model (copied; pointers inside borrowed). Call once, before set_ready. */
void g4_grpc_server_attach(g4_grpc_server *s, const g4_grpc_model *m);

/* Readiness for Health, ServerReady, ModelReady; generation answers UNAVAILABLE while false. */
void g4_grpc_server_set_ready(g4_grpc_server *s, bool ready);

/* Drain, step 1: Health turns NOT_SERVING (Watch streams are told), new generations (Generate,
 * ModelInfer, ModelStreamInfer) get UNAVAILABLE; running calls go on. */
void g4_grpc_server_drain(g4_grpc_server *s);

/* Calls in flight, Health Watch streams not counted. */
int g4_grpc_server_in_flight(g4_grpc_server *s);

/* Drain, step 2 (grace period over): stops every call's engine requests; each stream still ends
 * as at a finish (last message with finish reason "abort", then status OK). */
void g4_grpc_server_cancel_all(g4_grpc_server *s);

/* Clean shutdown: refuses new calls, ends Health Watch streams, lets running calls finish for
 * up to drain_timeout_s, cancels the rest (aborting their engine requests), waits until every
 * call is released, then frees s. */
void g4_grpc_server_stop(g4_grpc_server *s);

#endif
