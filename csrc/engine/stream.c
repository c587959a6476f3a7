/* stream.c — blocking queue of owned event copies (see stream.h). A singly linked FIFO under a
 * mutex and condition variable. */
#include "engine/stream.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct node {
    struct node *next;
    g4_stream_event e;
} node;

struct g4_stream {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    node *head, *tail;
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
    memset(e, 0, sizeof *e);
}

void g4_stream_free(g4_stream *s) {
    if (!s) return;
    for (node *n = s->head, *next; n; n = next) {
        next = n->next;
        g4_stream_event_clear(&n->e);
        free(n);
    }
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
}

static char *dup_str(const char *t, int *bad) {
    if (!t) return NULL;
    char *c = strdup(t);
    if (!c) *bad = 1;
    return c;
}

/* Points the copy's ev at its own storage. */
static void fix_pointers(g4_stream_event *e) {
    e->ev.text = e->text;
    e->ev.stop_string = e->stop_string;
    e->ev.error = e->error;
    e->ev.top_ids = e->ev.n_top ? e->top_ids : NULL;
    e->ev.top_logprobs = e->ev.n_top ? e->top_logprobs : NULL;
}

void g4_stream_on_event(void *user, const g4_event *ev) {
    g4_stream *s = user;
    node *n = calloc(1, sizeof *n);
    int bad = !n;
    if (n) {
        n->e.ev = *ev;
        n->e.text = dup_str(ev->text, &bad);
        n->e.stop_string = dup_str(ev->stop_string, &bad);
        n->e.error = dup_str(ev->error, &bad);
        int k = ev->n_top < G4_MAX_TOP_LOGPROBS ? ev->n_top : G4_MAX_TOP_LOGPROBS;
        n->e.ev.n_top = k > 0 ? k : 0;
        if (k > 0) {
            memcpy(n->e.top_ids, ev->top_ids, (size_t)k * sizeof *ev->top_ids);
            memcpy(n->e.top_logprobs, ev->top_logprobs, (size_t)k * sizeof *ev->top_logprobs);
        }
    }
    pthread_mutex_lock(&s->mu);
    if (ev->finish != G4_FINISH_NONE) s->finished++;
    if (bad) {
        s->lost++;
        if (n) g4_stream_event_clear(&n->e);
        free(n);
    } else {
        if (s->tail) s->tail->next = n;
        else s->head = n;
        s->tail = n;
        pthread_cond_signal(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
}

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
    node *n = s->head;
    s->head = n->next;
    if (!s->head) s->tail = NULL;
    pthread_mutex_unlock(&s->mu);
    *out = n->e;
    fix_pointers(out);
    free(n);
    return 1;
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
