/* driver_offline.c — sends the benchmark load straight into an in-process engine (no HTTP): the
 * same schedule and concurrency cap as the HTTP driver, timestamps taken in the engine's event
 * callback (each event carrying a token is a chunk; the end is the last token; output tokens from
 * the final event's usage). Measures the engine without the front-end. Not here: loading the
 * model or creating the engine (main.c, through server/stack.h). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "driver.h"

typedef struct shared {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done, running;
    double t0, last_end;
} shared;

typedef struct slot {
    shared *sh;
    g4_bench_record *rec;
    char **error;
    int cap;
} slot;

static void on_event(void *user, const g4_event *ev) {
    slot *s = user;
    g4_bench_record *r = s->rec;
    double t = g4_bench_now() - s->sh->t0;
    if (ev->n_tokens > 0) {
        if (r->n_chunks == s->cap) {
            int cap = s->cap ? 2 * s->cap : 64;
            double *p = realloc(r->chunk_t, sizeof *p * (size_t)cap);
            if (p) {
                r->chunk_t = p;
                s->cap = cap;
            }
        }
        if (r->n_chunks < s->cap) r->chunk_t[r->n_chunks++] = t;
        r->t_end = t;
    }
    if (ev->finish == G4_FINISH_NONE) return;
    r->output_tokens = ev->completion_tokens;
    r->ok = (ev->finish == G4_FINISH_LENGTH || ev->finish == G4_FINISH_STOP) && r->n_chunks > 0;
    if (!r->ok) {
        const char *why = ev->finish == G4_FINISH_ERROR && ev->error ? ev->error
                          : ev->finish == G4_FINISH_ABORT            ? "aborted"
                                                                     : "no token";
        *s->error = strdup(why);
    }
    pthread_mutex_lock(&s->sh->mu);
    s->sh->done++;
    s->sh->running--;
    s->sh->last_end = t;
    pthread_cond_broadcast(&s->sh->cv);
    pthread_mutex_unlock(&s->sh->mu);
}

static void abs_deadline(struct timespec *ts, double t0, double at) {
    /* CLOCK_REALTIME deadline for pthread_cond_timedwait from a monotonic offset */
    double wait = at - (g4_bench_now() - t0);
    if (wait < 0) wait = 0;
    clock_gettime(CLOCK_REALTIME, ts);
    long ns = ts->tv_nsec + (long)((wait - (long)wait) * 1e9);
    ts->tv_sec += (time_t)wait + ns / 1000000000L;
    ts->tv_nsec = ns % 1000000000L;
}

int g4_drive_engine(g4_engine *e, g4_bench_load *l, g4_error *err) {
    int n = l->n, rc = 0;
    slot *sl = calloc((size_t)n, sizeof *sl);
    l->rec = calloc((size_t)n, sizeof *l->rec);
    l->errors = calloc((size_t)n, sizeof *l->errors);
    if (!sl || !l->rec || !l->errors) {
        free(sl);
        return g4_fail(err, "offline driver: out of memory for %d requests", n);
    }
    shared sh = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    sh.t0 = g4_bench_now();
    pthread_mutex_lock(&sh.mu);
    for (int next = 0; next < n;) {
        double now = g4_bench_now() - sh.t0;
        if (l->send_at[next] > now || (l->max_concurrency && sh.running >= l->max_concurrency)) {
            struct timespec ts;
            abs_deadline(&ts, sh.t0, l->send_at[next] > now ? l->send_at[next] : now + 1.0);
            pthread_cond_timedwait(&sh.cv, &sh.mu, &ts);
            continue;
        }
        const g4_bench_item *it = &l->ds->items[l->first + next];
        if (!it->ids) {
            rc = g4_fail(err, "offline mode needs token-id prompts (the random dataset), request %d has text", next);
            break;
        }
        slot *s = &sl[next];
        s->sh = &sh;
        s->rec = &l->rec[next];
        s->error = &l->errors[next];
        s->rec->prompt_len = it->prompt_len;
        g4_request_params p = {.prompt = it->ids, .n_prompt = it->n_ids, .on_event = on_event, .user = s};
        g4_sampling_default(&p.sampling);
        p.sampling.temperature = (float)l->temperature;
        g4_stop_rules_default(&p.stop);
        p.stop.max_tokens = it->output_len;
        p.stop.ignore_eos = true;
        sh.running++;
        s->rec->t_send = g4_bench_now() - sh.t0;
        pthread_mutex_unlock(&sh.mu); /* the engine may call back at once */
        int code = 0;
        g4_error e2 = {{0}};
        uint64_t id = g4_engine_submit(e, &p, &code, &e2);
        pthread_mutex_lock(&sh.mu);
        if (!id) {
            sh.running--;
            sh.done++;
            *s->error = strdup(e2.msg);
        }
        next++;
    }
    int submitted = n;
    if (rc) { /* count what was really submitted; wait for it */
        submitted = 0;
        for (int i = 0; i < n; i++) submitted += sl[i].sh != NULL;
    }
    while (sh.done < submitted) pthread_cond_wait(&sh.cv, &sh.mu);
    l->duration = sh.last_end > 0 ? sh.last_end : g4_bench_now() - sh.t0;
    pthread_mutex_unlock(&sh.mu);
    free(sl);
    return rc;
}
