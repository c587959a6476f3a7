/* driver.h — the ways g4-bench-serve sends its load: over the OpenAI HTTP API (driver_http.c,
 * libcurl, streaming SSE), over g4serve's native gRPC Generate (driver_grpc.c, built only with
 * the gRPC C core and protobuf-c: G4_BENCH_GRPC) or straight into the engine in-process
 * (driver_offline.c). All send
 * request i of the dataset at send_at[i] seconds after the start (or later, when max_concurrency
 * requests are already in flight) and fill rec[i] with timestamps on one monotonic clock whose
 * zero is the benchmark start. */
#ifndef G4_BENCH_DRIVER_H
#define G4_BENCH_DRIVER_H

#include <stdbool.h>

#include "base/error.h"
#include "dataset.h"
#include "engine/engine.h"
#include "metrics.h"

/* Seconds on CLOCK_MONOTONIC. */
double g4_bench_now(void);

typedef struct g4_bench_load {
    const g4_bench_dataset *ds;
    int n;                    /* requests: ds->items[first .. first + n) */
    int first;
    const double *send_at;    /* [n] s from start, non-decreasing */
    int max_concurrency;      /* 0 = unlimited */
    double temperature;
    /* outputs, [n] each; chunk_t arrays are malloc'd (free with g4_bench_records_free) */
    g4_bench_record *rec;
    char **errors;            /* malloc'd message per failed request, else NULL */
    double duration;          /* start → last completion, s */
} g4_bench_load;

void g4_bench_records_free(g4_bench_load *l);

typedef struct g4_http_target {
    const char *base_url;     /* http://127.0.0.1:8000 */
    const char *endpoint;     /* /v1/completions or /v1/chat/completions */
    bool chat;
    const char *model;        /* "model" field; NULL = omitted */
    const char *api_key;      /* NULL = no Authorization header */
    double timeout_s;         /* per request; 0 = none */
    const g4_tokenizer *tok;  /* decodes token-id prompts for chat; may be NULL */
} g4_http_target;

int g4_drive_http(const g4_http_target *t, g4_bench_load *l, g4_error *err);

typedef struct g4_grpc_target {
    const char *target;       /* host:port (gRPC target string) */
    const char *model;        /* GenerateRequest.model; NULL = the served model */
    double timeout_s;         /* per request (call deadline); 0 = none */
} g4_grpc_target;

int g4_drive_grpc(const g4_grpc_target *t, g4_bench_load *l, g4_error *err);

int g4_drive_engine(g4_engine *e, g4_bench_load *l, g4_error *err);

#endif
