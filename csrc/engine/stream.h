/* stream.h — the one owned-event queue: every front-end that takes engine events off the engine
 * thread (HTTP jobs, gRPC calls, tests, the offline tool) copies them here and reads the copies
 * on its own thread, in order.
 *
 * A g4_stream_event is an owned copy of a g4_event (its pointers point into its own storage).
 * A g4_stream is a FIFO of them under a mutex: the engine thread pushes (never blocks on a full
 * queue), consumers pop one (waiting, g4_stream_pop) or take everything queued (g4_stream_take).
 * One stream may serve many requests; events carry their id and their sink's tag.
 *
 * Out of memory: a request pushes through its g4_stream_sink, which allocates the request's last
 * event up front, so the last event (finish reason, usage) always arrives — a stream can always
 * end. A token event that cannot be copied is counted in g4_stream_lost; a last event whose text
 * or top logprobs cannot be copied arrives with lost set. g4_stream_on_event (no sink) may lose any
 * event.
 * Not here: the engine's own event delivery (engine.c, output.c). */
#ifndef G4_ENGINE_STREAM_H
#define G4_ENGINE_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"

/* An owned copy of a g4_event: `ev`'s pointers point into this struct's own storage. */
typedef struct g4_stream_event {
    struct g4_stream_event *next; /* queue link (g4_stream_take's list) */
    void *tag;                    /* the sink's tag (NULL through g4_stream_on_event) */
    g4_event ev;
    char *text;                   /* owned copy of ev.text (NULL when the event had none) */
    char *stop_string;            /* owned */
    char *error;                  /* owned */
    bool lost;                    /* the event had text or top logprobs that could not be copied (out
                                     of memory): ev.text is NULL, ev.n_top 0 */
    g4_prompt_logprob *prompt_lp; /* owned copy of ev.prompt_lp (NULL when none) */
    int32_t *top_ids;             /* owned copy of ev's n_top ids and logprobs (one allocation, */
    float *top_logprobs;          /* freed through top_ids); NULL when none */
} g4_stream_event;

typedef struct g4_stream g4_stream;

g4_stream *g4_stream_create(void);
/* Frees the stream and any events not popped. No request may still deliver to it. */
void g4_stream_free(g4_stream *s);

/* The g4_event_fn without a sink: user is the g4_stream. On out of memory the event is lost
 * (counted). Tests and tools; servers push through a sink. */
void g4_stream_on_event(void *user, const g4_event *ev);

/* Pops the oldest event into *out (release it with g4_stream_event_clear). Waits up to timeout_ms
 * (< 0: forever). Returns 1 with an event, 0 on timeout. */
int g4_stream_pop(g4_stream *s, g4_stream_event *out, int timeout_ms);
void g4_stream_event_clear(g4_stream_event *e);

/* Takes every queued event without waiting: a list in arrival order linked by `next` (NULL when
 * none). Free each with g4_stream_event_free. */
g4_stream_event *g4_stream_take(g4_stream *s);
void g4_stream_event_free(g4_stream_event *e);

/* Requests whose last event has been pushed, and events lost to out-of-memory. */
uint64_t g4_stream_finished(g4_stream *s);
uint64_t g4_stream_lost(g4_stream *s);

/* --- per-request sink ----------------------------------------------------------------------- */

/* One request's way into a stream, with its last event allocated up front. */
typedef struct g4_stream_sink {
    g4_stream *stream;
    void *tag;                    /* copied into every event (the consumer's per-request state) */
    g4_stream_event *last;        /* preallocated; NULL once pushed */
} g4_stream_sink;

/* 0, or −1 when the last event cannot be allocated (the request should not be submitted). */
int g4_stream_sink_init(g4_stream_sink *k, g4_stream *s, void *tag);
/* Frees the preallocated last event if it was never pushed (a request never submitted). */
void g4_stream_sink_release(g4_stream_sink *k);
/* Copies ev into the stream (any thread). Returns true when the event was queued: always for the
 * last event (finish ≠ NONE), false for a token event lost to out of memory. */
bool g4_stream_sink_push(g4_stream_sink *k, const g4_event *ev);
/* The g4_event_fn: user is the g4_stream_sink. */
void g4_stream_sink_on_event(void *user, const g4_event *ev);

/* --- allocation seam --------------------------------------------------------------------------- */

typedef enum {
    G4_STREAM_ALLOC_LAST,         /* a sink's preallocated last event (at init, before submit) */
    G4_STREAM_ALLOC_EVENT,        /* a token event's copy (engine thread) */
    G4_STREAM_ALLOC_TEXT,         /* an event's strings and lists (engine thread) */
} g4_stream_alloc_kind;

/* Every allocation of this file: zero-filled, released with free(); stream_alloc.c is calloc. A link seam for fault
 * injection: a test executable that defines its own g4_stream_alloc replaces it (the object
 * with the default is then not linked), e.g. to fail every engine-thread allocation. */
void *g4_stream_alloc(g4_stream_alloc_kind kind, size_t bytes);

#endif
