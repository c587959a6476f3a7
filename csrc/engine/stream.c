/* stream.c — the owned-event queue (see stream.h). A singly linked FIFO under a mutex and a
 * condition variable; a sink's last event is allocated when the sink is made, so pushing it
 * needs no memory. */
#include "engine/stream.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct g4_stream {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    g4_stream_event *head, *tail;
    uint64_t finished, lost;
};

g4_stream *g4_stream_create(void) {
    g4_stream *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    if (pthread_mutex_init(&s->mu, NULL)) {
        free(s);
        return NULL;
    }
    if (pthread_cond_init(&s->cv, NULL)) {
        pthread_mutex_destroy(&s->mu);
        free(s);
        return NULL;
    }
    return s;
}

void g4_stream_event_clear(g4_stream_event *e) {
    free(e->text);
    free(e->stop_string);
    free(e->error);
    free(e->prompt_lp);
    free(e->top_ids);
    memset(e, 0, sizeof *e);
}

void g4_stream_event_free(g4_stream_event *e) {
    if (!e) return;
    g4_stream_event_clear(e);
    free(e);
}

void g4_stream_free(g4_stream *s) {
    if (!s) return;
    for (g4_stream_event *e = s->head, *next; e; e = next) {
        next = e->next;
        g4_stream_event_free(e);
    }
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
}

/* An owned copy of t (NULL for NULL); NULL with *lost set when it cannot be allocated. */
static char *copy_text(const char *t, bool *lost) {
    if (!t) return NULL;
    size_t n = strlen(t) + 1;
    char *c = g4_stream_alloc(G4_STREAM_ALLOC_TEXT, n);
    if (!c) {
        *lost = true;
        return NULL;
    }
    memcpy(c, t, n);
    return c;
}

static const char lost_error[] = "out of memory (the error message was lost)";

/* Points the copy's ev at its own storage (an error message that could not be copied reads
 * lost_error). */
static void fix_pointers(g4_stream_event *e) {
    e->ev.text = e->text;
    e->ev.stop_string = e->stop_string;
    e->ev.error = e->error ? e->error : e->ev.error ? lost_error : NULL;
    e->ev.top_ids = e->ev.n_top ? e->top_ids : NULL;
    e->ev.top_logprobs = e->ev.n_top ? e->top_logprobs : NULL;
    e->ev.prompt_lp = e->prompt_lp;
    if (!e->prompt_lp) e->ev.n_prompt_lp = 0;
}

/* ev's top lists into one owned block (ids, then logprobs); n_top 0 when it has none or on out
 * of memory (*lost). */
static void copy_top(g4_stream_event *e, const g4_event *ev, bool *lost) {
    int n = ev->top_ids && ev->top_logprobs && ev->n_top > 0 ? ev->n_top : 0;
    e->ev.n_top = 0;
    if (!n) return;
    void *block = g4_stream_alloc(G4_STREAM_ALLOC_TEXT, (size_t)n * (sizeof *e->top_ids + sizeof *e->top_logprobs));
    if (!block) {
        *lost = true;
        return;
    }
    e->top_ids = block;
    e->top_logprobs = (float *)(e->top_ids + n);
    memcpy(e->top_ids, ev->top_ids, (size_t)n * sizeof *e->top_ids);
    memcpy(e->top_logprobs, ev->top_logprobs, (size_t)n * sizeof *e->top_logprobs);
    e->ev.n_top = n;
}

/* Fills e (zeroed) with an owned copy of ev. A last event keeps its finish whatever fails: its
 * lost text or top logprobs are flagged and a missing error message becomes a fixed one. Returns
 * false when a token event lost its text or top logprobs (the caller drops it: a token without
 * them would be wrong). */
static bool copy_event(g4_stream_event *e, const g4_event *ev, void *tag) {
    bool lost = false, other_lost = false;
    e->tag = tag;
    e->ev = *ev;
    e->text = copy_text(ev->text, &lost);
    e->stop_string = copy_text(ev->stop_string, &other_lost);
    e->error = copy_text(ev->error, &other_lost);
    copy_top(e, ev, &lost);
    if (ev->n_prompt_lp > 0 && ev->prompt_lp) {
        size_t n = (size_t)ev->n_prompt_lp * sizeof *ev->prompt_lp;
        if ((e->prompt_lp = g4_stream_alloc(G4_STREAM_ALLOC_TEXT, n))) memcpy(e->prompt_lp, ev->prompt_lp, n);
        else other_lost = true;
    }
    e->lost = lost;
    fix_pointers(e);
    return ev->finish != G4_FINISH_NONE || !(lost || other_lost);
}

/* Appends e (NULL: an event lost) under the lock and wakes a waiting pop. */
static void enqueue(g4_stream *s, g4_stream_event *e, bool last) {
    pthread_mutex_lock(&s->mu);
    if (last) s->finished++;
    if (!e) {
        s->lost++;
    } else {
        if (s->tail) s->tail->next = e;
        else s->head = e;
        s->tail = e;
        pthread_cond_signal(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
}

/* Copies ev into storage (NULL: allocate one) and queues it; false when it was lost. */
static bool push(g4_stream *s, g4_stream_event *storage, const g4_event *ev, void *tag) {
    bool last = ev->finish != G4_FINISH_NONE;
    g4_stream_event *e = storage ? storage : g4_stream_alloc(G4_STREAM_ALLOC_EVENT, sizeof *e);
    if (e && !copy_event(e, ev, tag)) {
        g4_stream_event_free(e);
        e = NULL;
    }
    enqueue(s, e, last);
    return e != NULL;
}

void g4_stream_on_event(void *user, const g4_event *ev) { push(user, NULL, ev, NULL); }

int g4_stream_sink_init(g4_stream_sink *k, g4_stream *s, void *tag) {
    k->stream = s;
    k->tag = tag;
    k->last = g4_stream_alloc(G4_STREAM_ALLOC_LAST, sizeof *k->last);
    return k->last ? 0 : -1;
}

void g4_stream_sink_release(g4_stream_sink *k) {
    free(k->last);
    k->last = NULL;
}

bool g4_stream_sink_push(g4_stream_sink *k, const g4_event *ev) {
    g4_stream_event *storage = NULL;
    if (ev->finish != G4_FINISH_NONE) {
        storage = k->last;
        k->last = NULL;
    }
    return push(k->stream, storage, ev, k->tag);
}

void g4_stream_sink_on_event(void *user, const g4_event *ev) { g4_stream_sink_push(user, ev); }

int g4_stream_pop(g4_stream *s, g4_stream_event *out, int timeout_ms) {
    struct timespec until;
    if (timeout_ms >= 0) {
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += timeout_ms / 1000;
        until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
    }
    pthread_mutex_lock(&s->mu);
    while (!s->head) {
        int rc = timeout_ms < 0 ? pthread_cond_wait(&s->cv, &s->mu) : pthread_cond_timedwait(&s->cv, &s->mu, &until);
        if (rc == ETIMEDOUT && !s->head) {
            pthread_mutex_unlock(&s->mu);
            return 0;
        }
    }
    g4_stream_event *e = s->head;
    s->head = e->next;
    if (!s->head) s->tail = NULL;
    pthread_mutex_unlock(&s->mu);
    *out = *e;
    out->next = NULL;
    fix_pointers(out);
    free(e);
    return 1;
}

g4_stream_event *g4_stream_take(g4_stream *s) {
    pthread_mutex_lock(&s->mu);
    g4_stream_event *e = s->head;
    s->head = s->tail = NULL;
    pthread_mutex_unlock(&s->mu);
    return e;
}

uint64_t g4_stream_finished(g4_stream *s) {
    pthread_mutex_lock(&s->mu);
    uint64_t n = s->finished;
    pthread_mutex_unlock(&s->mu);
    return n;
}

uint64_t g4_stream_lost(g4_stream *s) {
    pthread_mutex_lock(&s->mu);
    uint64_t n = s->lost;
    pthread_mutex_unlock(&s->mu);
    return n;
}
