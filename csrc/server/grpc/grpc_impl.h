/* grpc_impl.h - private state of the gRPC server: the server, one call's state machine, the
 * method table, and the engine bridge (g4_gen). Not a public interface.
 *
 * Threading and locks (never take them in another order):
 *   c->mu       the call's state; held while a completion-queue thread handles one of its tags.
 *               Engine calls (submit, cancel) may be made under it.
 *   c->events   the call's engine-event queue (engine/stream.h, its own lock); the engine
 *               thread's callback takes only that and then batch_mu, never c->mu, so the
 *               engine can never wait on a CQ thread.
 *   c->batch_mu leaf lock around every grpc_call_start_batch (grpc.h: batches on one call
 *               must be synchronized; wake-ups come from other threads).
 *   srv->mu     server lists (calls, watchers, request-id registry); taken before c->batch_mu.
 * A call is freed when its last reference goes: one per batch in flight, one per engine
 * request still running. */
#ifndef G4_SERVER_GRPC_GRPC_IMPL_H
#define G4_SERVER_GRPC_GRPC_IMPL_H

#include <grpc/grpc.h>
#include <protobuf-c/protobuf-c.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "engine/stream.h"
#include "server/grpc/grpc_server.h"
#include "base/strbuf.h"
#include "server/structured/structured.h"

typedef struct g4_gcall g4_gcall;
typedef struct g4_gen g4_gen;

typedef enum {
    G4_TAG_NEW,        /* grpc_server_request_call completed */
    G4_TAG_RECV,       /* RECV_MESSAGE (the first one also carries SEND_INITIAL_METADATA) */
    G4_TAG_SEND,       /* SEND_MESSAGE */
    G4_TAG_STATUS,     /* SEND_STATUS_FROM_SERVER (maybe with the last message) */
    G4_TAG_CLOSE,      /* RECV_CLOSE_ON_SERVER: the call is over */
    G4_TAG_WAKE,       /* empty batch posted from another thread */
} g4_tag_kind;

/* ThreadSanitizer cannot see the completion queue's synchronisation (the system libgrpc is not
 * instrumented; tests/tsan.supp): a tag is released when it is handed to gRPC and acquired when a
 * completion-queue thread gets it back, the happens-before edge the queue provides. */
#if defined(__SANITIZE_THREAD__)
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#define G4_GTAG_RELEASE(tag) __tsan_release(tag)
#define G4_GTAG_ACQUIRE(tag) __tsan_acquire(tag)
#else
#define G4_GTAG_RELEASE(tag) ((void)(tag))
#define G4_GTAG_ACQUIRE(tag) ((void)(tag))
#endif

typedef struct g4_gtag {
    g4_gcall *call;
    g4_tag_kind kind;
} g4_gtag;

typedef enum { G4_RPC_UNARY, G4_RPC_SERVER_STREAM, G4_RPC_BIDI } g4_rpc_kind;

/* One method. Every callback runs on a CQ thread with c->mu held, except on_free. */
typedef struct g4_grpc_method {
    const char *path;                                   /* "/pkg.Service/Method" */
    g4_rpc_kind kind;
    bool open;                                          /* needs no API key (health) */
    /* The request's message type: a NUL in any of its string fields is refused (INVALID_ARGUMENT
     * naming the field) before on_message sees the bytes (pb_text.h). NULL = not checked. */
    const ProtobufCMessageDescriptor *request;
    /* A request message (bytes valid during the call). Unary/server-stream: exactly once. */
    void (*on_message)(g4_gcall *c, const uint8_t *data, size_t len);
    /* Bidi: the client half-closed its side. */
    void (*on_half_close)(g4_gcall *c);
    /* Woken (engine events, readiness) or the last send completed: produce what is due. */
    void (*pump)(g4_gcall *c);
    /* Stop the call's engine requests; their last events still come, so the method ends the
     * call as it would at a finish (the client cancelled, a deadline, a failed write: once,
     * with the call marked cancelled; a drain that ran out of time: with the call intact). */
    void (*on_cancel)(g4_gcall *c);
    /* Free service state: no lock held, no reference left. */
    void (*on_free)(g4_gcall *c);
} g4_grpc_method;

/* Request-id registry entry (native Generate ids, for Abort). */
typedef struct g4_rid {
    struct g4_rid *next;
    char *rid;
    uint64_t eid;            /* 0 until the engine accepted the request */
    bool abort_requested;    /* Abort arrived before eid was known */
} g4_rid;

struct g4_grpc_server {
    g4_grpc_config cfg;
    char *served_name, *model_path, *host, *api_key;
    grpc_server *server;
    grpc_completion_queue *cq;
    pthread_t threads[16];
    int n_threads;
    int port;
    _Atomic(bool) attached, ready, stopping;
    _Atomic(bool) draining;             /* no new generations; health NOT_SERVING */
    _Atomic(double) last_stall_scan;    /* monotonic s of the last cancel_stalled scan */
    g4_grpc_model model;                /* valid once attached */
    g4_so_cache *so_cache;              /* structured output (made at attach, with a tokenizer) */

    pthread_mutex_t mu;
    pthread_cond_t cv;                  /* n_calls reaches 0, shutdown tag seen */
    int n_calls;                        /* accepted calls not yet freed */
    int n_watchers;                     /* of those, Health Watch streams */
    g4_gcall *calls;                    /* accepted calls not yet freed (linked by anext) */
    bool shutdown_done;
    g4_gcall *watchers;                 /* Health Watch calls (linked by wnext) */
    g4_rid *rids;
};

struct g4_gcall {
    g4_grpc_server *srv;
    const g4_grpc_method *m;
    grpc_call *call;
    grpc_call_details details;
    grpc_metadata_array md;
    g4_gtag t_new, t_recv, t_send, t_status, t_close, t_wake;
    atomic_int refs;
    bool accepted;                      /* counted in srv->n_calls */

    pthread_mutex_t mu;
    grpc_byte_buffer *recv_bb;
    int close_cancelled;                /* RECV_CLOSE_ON_SERVER out parameter */
    bool closed, cancelled, cancel_handled, half_closed;
    bool send_busy;
    double t_send_start;                /* monotonic s when the send in flight started */
    bool stalled;                       /* cancelled by the stall rule */
    bool status_queued, status_started;
    grpc_status_code status;
    char status_msg[512];

    pthread_mutex_t batch_mu;
    bool wake_pending;                  /* under batch_mu */

    g4_stream *events;                  /* engine events of the call's requests; made by the
                                           first g4_gen_new */

    g4_gcall *anext, *aprev;            /* srv->calls links (accepted calls) */
    g4_gcall *wnext;                    /* srv->watchers link */
    bool watching;
    void *svc;                          /* the method's state */
};

/* --- call helpers (grpc_call.c) ---------------------------------------------------------- */

g4_gcall *g4_gcall_new(g4_grpc_server *s);
void g4_gcall_ref(g4_gcall *c);
/* A reference unless the last one is already gone (srv->calls walks, under srv->mu). */
bool g4_gcall_ref_if_alive(g4_gcall *c);
/* A request_call completed: count c and list it in srv->calls. */
void g4_gcall_accept(g4_gcall *c);
void g4_gcall_unref(g4_gcall *c);
/* Starts a batch under batch_mu, taking a reference for its tag. 0, or -1 (call error). */
int g4_gcall_batch(g4_gcall *c, const grpc_op *ops, size_t n, g4_gtag *tag);
/* Thread-safe: posts one WAKE tag unless one is already pending. */
void g4_gcall_wake(g4_gcall *c);
/* True when nothing more may be sent (status queued or the call was cancelled/closed). */
bool g4_gcall_over(const g4_gcall *c);
/* Packs msg and starts SEND_MESSAGE. Requires !send_busy. -1 when the call is over / OOM. */
int g4_gcall_send(g4_gcall *c, const ProtobufCMessage *msg);
/* Unary answer: message + OK status in one batch. */
void g4_gcall_reply(g4_gcall *c, const ProtobufCMessage *msg);
/* Ends the call with a status (sent after the message in flight, if any). Once; later calls
 * are ignored. */
void g4_gcall_finish(g4_gcall *c, grpc_status_code code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Posts the next RECV_MESSAGE (bidi). */
void g4_gcall_recv_next(g4_gcall *c);
/* A request_call completed with a call: dispatch it (the CQ loop). */
void g4_gcall_start(g4_gcall *c);
/* Handles one completed tag (the CQ loop). */
void g4_gcall_on_tag(g4_gtag *t, bool ok);

/* --- server helpers (grpc_server.c) ------------------------------------------------------- */

bool g4_grpc_ready(g4_grpc_server *s);         /* attached and ready */
double g4_gnow(void);                          /* monotonic seconds */
bool g4_grpc_draining(g4_grpc_server *s);      /* SIGTERM came: finish what runs, start nothing */
const g4_grpc_method *g4_grpc_find_method(const char *path, size_t len);
void g4_grpc_watch_add(g4_grpc_server *s, g4_gcall *c);
void g4_grpc_watch_remove(g4_grpc_server *s, g4_gcall *c);
/* A fresh request id: "g4-" and 128 random bits in hex (unguessable, so Abort by id is a
 * capability only its caller holds). -1 when the kernel gives no randomness. */
int g4_grpc_new_rid(char *out, size_t cap);
/* Request-id registry: add fails (-1) when the id is in use. */
int g4_grpc_rid_add(g4_grpc_server *s, const char *rid);
/* Sets the engine id; returns true when an Abort came in the meantime (caller cancels). */
bool g4_grpc_rid_bind(g4_grpc_server *s, const char *rid, uint64_t eid);
void g4_grpc_rid_remove(g4_grpc_server *s, const char *rid);
/* Aborts by id: true when found. */
bool g4_grpc_rid_abort(g4_grpc_server *s, const char *rid);
/* Checks the request's model name ("" = served). */
bool g4_grpc_model_matches(g4_grpc_server *s, const char *name);

/* --- engine bridge (grpc_gen.c) ------------------------------------------------------------- */

typedef struct g4_lp_entry {
    int32_t token;
    float logprob;
    int n_top;
    int32_t top_ids[G4_MAX_TOP_LOGPROBS];
    float top_logprobs[G4_MAX_TOP_LOGPROBS];
} g4_lp_entry;

/* One engine request bound to a call. Owned by the method's state; accumulates what the
 * engine produced and the method has not sent yet. */
struct g4_gen {
    g4_gcall *call;
    g4_gen *next;                       /* the method's list */
    uint64_t eid;                       /* engine id, 0 when never submitted */
    bool running;                       /* submitted and final event not yet collected */
    bool finished;                      /* final event collected (or failed before submit) */
    bool final_sent;                    /* the method sent its last message for it */
    /* not yet sent */
    int32_t *ids;
    int n_ids, cap_ids;
    g4_strbuf text;
    g4_lp_entry *lp;
    int n_lp, cap_lp;
    bool want_logprobs;
    unsigned detok_flags;               /* G4_DETOK_*: how the engine renders its text */
    /* on the final event */
    g4_finish_reason finish;
    int prompt_tokens, completion_tokens, cached_tokens;
    int spec_draft_tokens, spec_accepted_tokens; /* speculative decoding's proposals, accepted */
    int32_t stop_token;
    char *stop_string;
    char *error;
    g4_stream_sink sink;                /* into call->events; the last event preallocated, so it is
                                           never lost */
    void *svc;                          /* per-request method state */
    void (*svc_free)(void *);
    /* metrics (monotonic seconds): arrival = g4_gen_new; t_first is the engine thread's */
    double t_arrival, t_submit, t_first;
    int max_tokens;                     /* the request's, as submitted (defaults resolved) */
};

/* Allocates a gen for call c (detok_flags: G4_DETOK_* for its engine request). NULL on OOM. */
g4_gen *g4_gen_new(g4_gcall *c, unsigned detok_flags);
/* Submits p (on_event/user are filled here). On failure returns -1 with the gRPC status in
 * *code and a message in err; the gen stays unsubmitted. */
int g4_gen_submit(g4_gen *g, g4_request_params *p, grpc_status_code *code, g4_error *err);
/* The call's client for fair admission (g4_client_key): its x-g4-client-id metadata when the
 * operator trusts it, else the peer's IP address without the port (as HTTP names its peers). */
uint64_t g4_gcall_client(const g4_gcall *c);
/* Moves the call's queued engine events into their gens (CQ thread, c->mu held). */
void g4_gen_collect(g4_gcall *c);
/* Asks the engine to stop g (its final event still comes). */
void g4_gen_cancel(g4_gen *g);
/* Clears what was sent (ids, text, logprobs). */
void g4_gen_clear_output(g4_gen *g);
void g4_gen_free(g4_gen *g);
const char *g4_finish_name(g4_finish_reason f);

/* --- shared request helpers (grpc_gen.c) -------------------------------------------------- */

/* Maps an engine submit code to a gRPC status. */
grpc_status_code g4_grpc_status_for(int engine_code);
/* Counts a generation request refused before the engine (status ≠ OK) in the server's metrics. */
void g4_grpc_count_refusal(g4_grpc_server *s, grpc_status_code code);
/* Fills p->stop defaults / checks prompt length: max_tokens 0 -> default, capped. */
int g4_grpc_check_lengths(g4_grpc_server *s, g4_request_params *p, g4_error *err);

/* 0 when every string field of m (recursively) is valid UTF-8; else -1 naming the field. */
int g4_grpc_check_utf8(const ProtobufCMessage *m, g4_error *err);

/* The method tables of each service. */
extern const g4_grpc_method g4_health_methods[];
extern const g4_grpc_method g4_native_methods[];
extern const g4_grpc_method g4_kserve_methods[];
extern const g4_grpc_method g4_reflection_methods[];

#endif
