/* server_impl.h - private state shared by server.c (routing, static endpoints) and generate.c
 * (generation jobs: engine callbacks, SSE, final JSON). Not a public interface. */
#ifndef G4_SERVER_HTTP_SERVER_IMPL_H
#define G4_SERVER_HTTP_SERVER_IMPL_H

#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "media/vision_input.h"
#include "server/http/http_server.h"
#include "server/http/oai_request.h"
#include "server/metrics/metrics.h"
#include "base/strbuf.h"

typedef struct g4_job g4_job;

struct g4_http_server {
    g4_http_config cfg;
    struct MHD_Daemon *daemon;
    int port;
    _Atomic(g4_engine *) engine;   /* NULL until attach */
    const g4_tokenizer *tok;       /* set together with engine */
    g4_so_cache *so_cache;         /* compiled structured-output constraints (made at attach) */
    atomic_bool ready;
    atomic_bool draining;          /* shutting down: no new work (503 + Retry-After), readiness 503 */
    int max_model_len, max_running;
    g4_sampling defaults;          /* sampling of a request that sets none (engine opts) */
    g4_metrics *metrics;           /* cfg.metrics, or the server's own */
    bool own_metrics;
    long created;                  /* unix seconds, for /v1/models */
    atomic_ullong next_id;         /* response ids */
    atomic_size_t body_bytes;      /* request-body bytes held by all connections (cfg.body_budget_bytes) */

    pthread_mutex_t jobs_mu;       /* guards jobs and stopping */
    g4_job *jobs;                  /* live jobs (keep-alive, timeouts, shutdown) */
    bool stopping;
    pthread_cond_t ticker_cv;
    pthread_t ticker;              /* keep-alive and timeout thread */
    bool ticker_started;
};

/* Per-connection state (MHD's con_cls). */
typedef struct g4_conn {
    g4_strbuf body;
    bool too_big;
    bool over_budget;              /* the server's body budget was spent while reading this one */
    size_t budgeted;               /* bytes of s->body_bytes this connection holds */
    double t_arrival;              /* monotonic seconds, when its headers were complete */
    g4_job *job;                   /* a generation in flight, NULL otherwise */
} g4_conn;

double g4_now(void); /* monotonic seconds */

/* Queues an OpenAI error object with e->status. */
enum MHD_Result g4_http_send_error(struct MHD_Connection *c, const g4_http_error *e);
/* Queues a JSON body (takes nothing; copies json). */
enum MHD_Result g4_http_send_json(struct MHD_Connection *c, int status, const char *json);

/* --- generate.c ---------------------------------------------------------------------- */

/* Parses, validates, tokenizes and submits a chat or completions request, then either queues
 * an error / suspends the connection (non-streaming) or queues the SSE response. */
enum MHD_Result g4_generate_start(g4_http_server *s, struct MHD_Connection *c, g4_conn *cn, g4_oai_kind kind);
/* A chat request's images and video frames (media/vision_input.h), with their engine items once
 * the prompt is built, until submit has copied them. */
typedef g4_vision_input g4_http_images;
void g4_http_images_free(g4_http_images *im);

/* A validated request's prompt ids (completions: its prompt number `prompt`): token ids as given, a raw completions prompt (special tokens
 * split, one BOS), or the rendered chat template with each image's run (its images go into *im,
 * which the caller frees; a request with images on a server without a vision tower is a 400). *parse_flags gets G4_PARSE_START_IN_REASONING
 * when the prompt opens the thought channel. /tokenize uses it too, so it sees what chat sees. */
int g4_http_build_prompt(g4_http_server *s, const g4_oai_request *r, int prompt, g4_tokens *ids, unsigned *parse_flags,
                         g4_http_images *im, g4_http_error *e);
/* Called again when a suspended non-streaming connection is resumed. */
enum MHD_Result g4_generate_resume(g4_http_server *s, struct MHD_Connection *c, g4_conn *cn);
/* The connection ended (ok = completed normally): a hang-up cancels the engine requests. */
void g4_generate_conn_closed(g4_http_server *s, g4_conn *cn, bool ok);
/* Ticker work: keep-alive comments and request timeouts for every live job. */
void g4_generate_tick(g4_http_server *s, double now);
/* Shutdown: cancel every job's engine requests and resume suspended connections. */
void g4_generate_cancel_all(g4_http_server *s);

#endif
