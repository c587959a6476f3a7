/* stream.h — a blocking event queue for simple consumers (tests, the offline tool, a gRPC
 * handler thread): pass g4_stream_on_event as a request's on_event and the stream as its user;
 * another thread pops copies of the events in order. One stream may serve many requests (events
 * carry their id). Thread-safe; the engine thread only pushes, never blocks on a full queue.
 * Not here: the engine's own event delivery (engine.c). */
#ifndef G4_ENGINE_STREAM_H
#define G4_ENGINE_STREAM_H

#include <stdint.h>

#include "engine/engine.h"

/* An owned copy of a g4_event: `ev`'s pointers point into this struct's own storage. */
typedef struct g4_stream_event {
    g4_event ev;
    char *text;              /* owned copy of ev.text (NULL when the event had none) */
    char *stop_string;       /* owned */
    char *error;             /* owned */
    int32_t top_ids[G4_MAX_TOP_LOGPROBS];
    float top_logprobs[G4_MAX_TOP_LOGPROBS];
} g4_stream_event;

typedef struct g4_stream g4_stream;

g4_stream *g4_stream_create(void);
/* Frees the stream and any events not popped. No request may still deliver to it. */
void g4_stream_free(g4_stream *s);

/* The g4_event_fn: user is the g4_stream. On out of memory the event is counted as lost. */
void g4_stream_on_event(void *user, const g4_event *ev);

/* Pops the oldest event into *out (release it with g4_stream_event_clear). Waits up to timeout_ms
 * (< 0: forever). Returns 1 with an event, 0 on timeout. */
int g4_stream_pop(g4_stream *s, g4_stream_event *out, int timeout_ms);
void g4_stream_event_clear(g4_stream_event *e);

/* Requests whose last event has been pushed, and events lost to out-of-memory. */
uint64_t g4_stream_finished(g4_stream *s);
uint64_t g4_stream_lost(g4_stream *s);

#endif
