/* tp.c — the tensor-parallel group (see tp.h): worker threads, job broadcast, logit gather.
 *
 * Each worker owns a backend and a model rank and waits on a condition variable for the next
 * job generation: a step (every rank runs its slice) or an image encode (rank 0 alone runs the
 * vision tower, which no other rank loads; the others only report). A step validated identically
 * by every rank fails identically on every rank, so no rank is left alone inside a collective. */
#include "parallel/tp.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "backend/registry.h"
#include "model/vision.h"

typedef struct tp_worker {
    struct g4_tp *tp;
    int rank;
    pthread_t thread;
    g4_backend *be;
    g4_model *model;
    float *logits;              /* [cap_rows, vocab_local] */
    int cap_rows;
    int rc;
    g4_error err;
} tp_worker;

struct g4_tp {
    int size;
    g4_comm *comm;
    tp_worker *w;
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    uint64_t generation;        /* bumped per job; workers run each generation once */
    int n_done;
    int quit;
    /* the current job: a step, or (item != NULL) one image through rank 0's tower */
    const g4_step *step;
    const g4_mm_item *item;
    float *soft;                /* the encode's out: f32 [item->n_tokens, H] */
    /* opening */
    const char *dir;
    const g4_backend_kind *kind; /* every rank's backend kind; it also made comm */
    g4_backend_options backend_opts;
    g4_model_opts opts;
};

/* Logit buffers are grown by g4_tp_step before the step starts: a rank that failed alone here
 * would leave the others waiting inside an all-reduce. The tower has no collectives, so rank 0
 * encodes alone, on its own thread (the one its backend was created on). */
static void run_rank(tp_worker *w) {
    const g4_tp *tp = w->tp;
    if (tp->item)
        w->rc = w->rank ? 0
                        : g4_vision_encode(g4_model_vision(w->model), tp->item->patches, tp->item->ph, tp->item->pw,
                                           tp->soft, &w->err);
    else w->rc = g4_model_forward(w->model, tp->step, w->logits, &w->err);
}

static void *worker_main(void *arg) {
    tp_worker *w = arg;
    g4_tp *tp = w->tp;
    /* open this rank's slice on the worker's own thread */
    g4_model_opts o = tp->opts;
    o.tp_rank = w->rank, o.tp_size = tp->size, o.comm = tp->comm;
    o.no_vision = o.no_vision || w->rank != 0; /* only rank 0 encodes (run_rank): the others skip the tower */
    g4_backend_options bo = tp->backend_opts;
    bo.device = w->rank; /* rank r runs on device r, as the kind's comm_create assumes */
    w->be = tp->kind->create(&bo, &w->err);
    w->rc = w->be ? 0 : -1;
    if (!w->rc && tp->kind->comm_join) w->rc = tp->kind->comm_join(tp->comm, w->rank, w->be, &w->err);
    if (!w->rc) w->rc = g4_model_open(&w->model, tp->dir, w->be, &o, &w->err);
    uint64_t seen = 0;
    pthread_mutex_lock(&tp->mu);
    for (;;) {
        if (++tp->n_done == tp->size) pthread_cond_signal(&tp->done);
        while (!tp->quit && tp->generation == seen) pthread_cond_wait(&tp->go, &tp->mu);
        if (tp->quit) break;
        seen = tp->generation;
        pthread_mutex_unlock(&tp->mu);
        run_rank(w);
        pthread_mutex_lock(&tp->mu);
    }
    pthread_mutex_unlock(&tp->mu);
    return NULL;
}

/* Waits until every worker has reported for the current generation. Holds mu. */
static void wait_all(g4_tp *tp) {
    while (tp->n_done < tp->size) pthread_cond_wait(&tp->done, &tp->mu);
}

static int first_error(g4_tp *tp, g4_error *err) {
    for (int r = 0; r < tp->size; r++)
        if (tp->w[r].rc) {
            if (err) *err = tp->w[r].err;
            return g4_fail_prefix(err, "tensor parallel rank %d", r);
        }
    return 0;
}

g4_tp *g4_tp_open(const char *dir, const char *backend, const g4_backend_options *backend_opts, int t,
                  const g4_model_opts *opts, g4_error *err) {
    if (t < 1 || t > 8) {
        g4_fail(err, "tensor parallel size %d: expected 1..8", t);
        return NULL;
    }
    const g4_backend_kind *kind = g4_backend_kind_find(backend, err);
    if (!kind) return NULL;
    g4_tp *tp = calloc(1, sizeof *tp);
    if (!tp || !(tp->w = calloc((size_t)t, sizeof *tp->w))) {
        free(tp);
        g4_fail(err, "tp: out of memory");
        return NULL;
    }
    tp->size = t;
    tp->dir = dir, tp->kind = kind;
    if (backend_opts) tp->backend_opts = *backend_opts;
    else g4_backend_options_default(&tp->backend_opts);
    if (opts) tp->opts = *opts;
    else g4_model_opts_default(&tp->opts);
    tp->comm = kind->comm_create(t, err);
    if (!tp->comm) {
        free(tp->w);
        free(tp);
        return NULL;
    }
    pthread_mutex_init(&tp->mu, NULL);
    pthread_cond_init(&tp->go, NULL);
    pthread_cond_init(&tp->done, NULL);
    int started = 0;
    for (; started < t; started++) {
        tp->w[started].tp = tp, tp->w[started].rank = started;
        if (pthread_create(&tp->w[started].thread, NULL, worker_main, &tp->w[started])) break;
    }
    pthread_mutex_lock(&tp->mu);
    if (started < t) { /* cannot run a partial group: stop the ones that started */
        tp->quit = 1;
        pthread_cond_broadcast(&tp->go);
        pthread_mutex_unlock(&tp->mu);
        for (int r = 0; r < started; r++) pthread_join(tp->w[r].thread, NULL);
        tp->size = started;
        g4_fail(err, "tp: cannot start worker thread %d", started);
        g4_tp_close(tp);
        return NULL;
    }
    wait_all(tp);
    pthread_mutex_unlock(&tp->mu);
    if (first_error(tp, err)) {
        g4_tp_close(tp);
        return NULL;
    }
    return tp;
}

void g4_tp_close(g4_tp *tp) {
    if (!tp) return;
    pthread_mutex_lock(&tp->mu);
    int running = !tp->quit;
    tp->quit = 1;
    pthread_cond_broadcast(&tp->go);
    pthread_mutex_unlock(&tp->mu);
    for (int r = 0; running && r < tp->size; r++) pthread_join(tp->w[r].thread, NULL);
    for (int r = 0; r < tp->size; r++) {
        g4_model_close(tp->w[r].model);
        g4_backend_destroy(tp->w[r].be);
        free(tp->w[r].logits);
    }
    g4_comm_destroy(tp->comm);
    pthread_mutex_destroy(&tp->mu);
    pthread_cond_destroy(&tp->go);
    pthread_cond_destroy(&tp->done);
    free(tp->w);
    free(tp);
}

int g4_tp_size(const g4_tp *tp) { return tp->size; }
g4_model *g4_tp_model(g4_tp *tp, int rank) { return rank >= 0 && rank < tp->size ? tp->w[rank].model : NULL; }

/* Hands one job to every worker and waits until all have run it. */
static int run_job(g4_tp *tp, const g4_step *step, const g4_mm_item *item, float *soft, g4_error *err) {
    pthread_mutex_lock(&tp->mu);
    tp->step = step, tp->item = item, tp->soft = soft;
    tp->n_done = 0;
    tp->generation++;
    pthread_cond_broadcast(&tp->go);
    wait_all(tp);
    pthread_mutex_unlock(&tp->mu);
    return first_error(tp, err);
}

int g4_tp_step(void *ctx, const g4_step *step, float *logits, g4_error *err) {
    g4_tp *tp = ctx;
    for (int k = 0; k < tp->size; k++) { /* workers are idle between steps */
        tp_worker *w = &tp->w[k];
        if (step->n_rows <= w->cap_rows) continue;
        float *p = realloc(w->logits, (size_t)step->n_rows * w->model->shard.vocab_local * sizeof *p);
        if (!p) return g4_fail(err, "tp rank %d: out of memory for logits of %d rows", k, step->n_rows);
        w->logits = p, w->cap_rows = step->n_rows;
    }
    if (run_job(tp, step, NULL, NULL, err)) return -1;
    /* gather: row r of rank k's [n_rows, V/t] goes to columns [k·V/t, (k+1)·V/t) */
    for (int k = 0; k < tp->size; k++) {
        const g4_model *m = tp->w[k].model;
        int Vl = m->shard.vocab_local, V = m->full_cfg.vocab;
        for (int r = 0; r < step->n_rows; r++)
            memcpy(logits + (size_t)r * V + m->shard.vocab_offset, tp->w[k].logits + (size_t)r * Vl,
                   Vl * sizeof(float));
    }
    return 0;
}

int g4_tp_encode(void *ctx, const g4_mm_item *item, float *out, g4_error *err) {
    g4_tp *tp = ctx;
    if (!g4_model_vision(tp->w[0].model)) return g4_fail(err, "tp: the model has no vision tower");
    return run_job(tp, NULL, item, out, err);
}

void g4_executor_tp(g4_executor *ex, g4_tp *tp) {
    g4_model *m0 = tp->w[0].model;
    *ex = (g4_executor){0};
    ex->ctx = tp;
    ex->n_workers = tp->size;
    ex->vocab = m0->full_cfg.vocab;
    ex->step = g4_tp_step;
    ex->step_sample = NULL; /* rank 0 gathers the vocabulary shards' logits on the host */
    /* soft tokens are host rows in the step, which every rank reads: one encode serves them all */
    ex->encode = g4_model_vision(m0) ? g4_tp_encode : NULL;
    ex->hidden = m0->full_cfg.hidden;
}
