/* engine.c — the engine's API and its loop thread (see engine.h).
 *
 * Front-end threads put requests and cancellations on two queues under `mu` and signal `wake`.
 * The loop takes both queues at the top of each iteration, hands new requests to the scheduler,
 * applies cancellations, runs one step (schedule → executor → commit → sample/stop/events) and
 * publishes its stats under `mu`. Events are delivered on the loop thread with no lock held.
 * Not here: batching policy (scheduler.c), per-token output (output.c), request checks
 * (request_check.c). */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/rng.h"
#include "engine/engine_impl.h"
#include "engine/mm.h"
#include "engine/spec.h"

#define G4_TEXT_SCRATCH (64 * 1024)

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static uint64_t mix64(uint64_t x) { return g4_mix64(x + G4_SPLITMIX_GAMMA); }

/* Grows *arr (elements of size sz) to hold at least n; 0 or −1. */
static int reserve(void **arr, int *cap, int n, size_t sz) {
    if (n <= *cap) return 0;
    int c = *cap ? *cap : 16;
    while (c < n) c *= 2;
    void *p = realloc(*arr, (size_t)c * sz);
    if (!p) return -1;
    *arr = p;
    *cap = c;
    return 0;
}

/* --- the loop ----------------------------------------------------------------------------------- */

/* Scheduler-owned sequences (running then waiting), for cancellation and shutdown. */
static g4_seq *find_seq(g4_engine *e, uint64_t id) {
    g4_scheduler *s = &e->sched;
    for (int i = 0; i < s->n_running; i++)
        if (s->running[i]->id == id) return s->running[i];
    for (int i = 0; i < s->n_waiting; i++)
        if (s->waiting[i]->id == id) return s->waiting[i];
    return NULL;
}

static void publish(g4_engine *e);

/* The step-size histogram (vLLM's iteration_tokens_total). */
static void record_step_tokens(g4_engine *e, int n) {
    static const int le[G4_STEP_TOKEN_BUCKETS] = G4_STEP_TOKEN_BUCKET_BOUNDS;
    int b = 0;
    while (b < G4_STEP_TOKEN_BUCKETS && n > le[b]) b++;
    if (b < G4_STEP_TOKEN_BUCKETS) e->st.step_tokens_le[b]++;
}

static void run_step(g4_engine *e) {
    double t0 = now_s();
    g4_scheduler *s = &e->sched;
    g4_spec_propose(&e->o.spec, s);
    int n = g4_sched_next(s);
    /* the queue length submit checks must not stay stale while the step runs */
    pthread_mutex_lock(&e->mu);
    publish(e);
    pthread_mutex_unlock(&e->mu);
    if (!n) {
        /* nothing fits although nothing runs: only possible if a request slipped past the
         * admission check; fail it rather than spin */
        if (!s->n_running && s->n_waiting)
            g4_engine_finish(e, s->waiting[0], G4_FINISH_ERROR, "request does not fit in the KV pools");
        e->st.sched_seconds += now_s() - t0;
        return;
    }
    g4_step st;
    g4_sched_step_view(s, &st);
    for (int b = 0; b < s->n_batch; b++)
        if (s->batch[b]->t_scheduled == 0) s->batch[b]->t_scheduled = t0;
    record_step_tokens(e, n);
    g4_error err = {{0}};
    /* rows sampled on the backend when the executor can: only ids (and asked-for logprobs)
     * return; logit processors and prompt logprobs need the host logits */
    int on_device = e->ex.step_sample != NULL && s->n_plp_rows == 0, n_lp = 0, rc = 0;
    if (e->has_draft) { /* the draft model computes the step's positions and makes the proposals */
        double td = now_s();
        rc = g4_spec_draft_run(&e->draft, s, &err);
        e->st.model_seconds += now_s() - td;
        t0 += now_s() - td; /* not engine time */
    }
    for (int r = 0; r < s->n_rows && on_device; r++)
        if (g4_seq_host_sampled(s->batch[s->row_batch[r]])) on_device = 0;
    if (!rc && !on_device && s->n_rows > e->logits_rows) {
        float *l = realloc(e->logits, (size_t)s->n_rows * (size_t)e->ex.vocab * sizeof *l);
        if (!l) {
            rc = -1;
            g4_fail(&err, "engine: out of memory for %d logit rows", s->n_rows);
        } else {
            e->logits = l;
            e->logits_rows = s->n_rows;
        }
    }
    if (!rc && on_device) {
        double ts = now_s();
        for (int r = 0; r < s->n_rows; r++) e->row_seqs[r] = s->batch[s->row_batch[r]];
        rc = g4_engine_sample_params(e, e->row_seqs, s->row_draft, s->n_rows, &n_lp, &err);
        e->st.sample_seconds += now_s() - ts;
    }
    double t1 = now_s();
    if (!rc) rc = g4_engine_mm_step(e, &st, &err); /* image runs: soft tokens cached or encoded now */
    if (!rc)
        rc = on_device ? e->ex.step_sample(e->ex.ctx, &st, e->sample_params, e->sample_params_bytes, e->sampled,
                                           e->sampled_lp, n_lp, &err)
                       : e->ex.step(e->ex.ctx, &st, e->logits, &err);
    g4_engine_mm_step_done(e);
    double t2 = now_s();
    e->st.model_seconds += t2 - t1;
    e->st.steps++;
    e->st.step_tokens += (uint64_t)n;
    if (rc) {
        /* the step's KV writes are undefined: end every sequence that was in it */
        int nb = s->n_batch;
        g4_seq **batch = malloc((size_t)nb * sizeof *batch);
        if (batch) memcpy(batch, s->batch, (size_t)nb * sizeof *batch);
        for (int b = 0; batch && b < nb; b++) g4_engine_finish(e, batch[b], G4_FINISH_ERROR, err.msg);
        free(batch);
        e->st.sched_seconds += (t1 - t0) + (now_s() - t2);
        return;
    }
    g4_sched_commit(s);
    /* rows in batch order; emitting may retire sequences but the batch array stays valid */
    int V = e->ex.vocab;
    for (int r = 0; r < s->n_rows; r++) {
        g4_seq *q = s->batch[s->row_batch[r]];
        if (s->row_plp[r] > 0) { /* a run of q's prompt-logprob rows: one event */
            int n = 0, b = s->row_batch[r];
            for (; r < s->n_rows && s->row_batch[r] == b && s->row_plp[r] > 0; r++, n++) {
                int pos = s->row_plp[r];
                g4_prompt_logprob_row(e->logits + (size_t)r * V, V, q->tokens[pos], q->plp_top, &e->plp[n]);
                e->plp[n].pos = pos;
            }
            r--;
            q->plp_next = e->plp[n - 1].pos + 1;
            if (!q->cancelled) {
                g4_event ev = {.id = q->id,
                               .stop_token = -1,
                               .n_prompt_lp = n,
                               .prompt_lp = e->plp,
                               .text = e->has_detok ? "" : NULL};
                q->on_event(q->user, &ev);
            }
            continue;
        }
        if (q->n_draft) { /* a speculating sequence: its 1 + n_draft verification rows */
            int r0 = r;
            r += q->n_draft;
            if (q->cancelled) g4_engine_finish(e, q, G4_FINISH_ABORT, NULL);
            else g4_engine_emit_verified(e, q, r0, on_device);
        } else if (q->cancelled) {
            g4_engine_finish(e, q, G4_FINISH_ABORT, NULL);
        } else if (on_device) {
            g4_sample_result res;
            int slot = q->sampling.logprobs >= 0 ? g4_sample_rows(e->sample_params)[r].lp_slot : -1;
            g4_engine_result(&res, e->sampled[r], slot >= 0 ? &e->sampled_lp[slot] : NULL);
            g4_engine_emit_token(e, q, &res);
        } else {
            g4_engine_emit_row(e, q, e->logits + (size_t)r * V);
        }
    }
    e->st.sched_seconds += (t1 - t0) + (now_s() - t2);
}

static void publish(g4_engine *e) {
    g4_engine_stats *p = &e->st;
    p->running = e->sched.n_running;
    p->waiting = e->sched.n_waiting;
    p->blocks_sliding_used = g4_kv_pool_used(&e->kv.pool[G4_POOL_SLIDING]);
    p->blocks_global_used = g4_kv_pool_used(&e->kv.pool[G4_POOL_GLOBAL]);
    p->blocks_sliding_total = e->kv.pool[G4_POOL_SLIDING].n_blocks;
    p->blocks_global_total = e->kv.pool[G4_POOL_GLOBAL].n_blocks;
    p->blocks_cached = e->kv.pool[G4_POOL_SLIDING].n_lru + e->kv.pool[G4_POOL_GLOBAL].n_lru;
    p->prefix_hit_tokens = e->pc.hit_tokens;
    p->prefix_query_tokens = e->pc.query_tokens;
    p->preemptions = e->sched.preemptions;
    e->pub = *p;
    e->n_queued = e->sched.n_waiting; /* submit adds n_pending */
}

static void *loop(void *arg) {
    g4_engine *e = arg;
    pthread_mutex_lock(&e->mu);
    for (;;) {
        bool has_work = e->sched.n_running || e->sched.n_waiting;
        if (!e->n_pending && !e->n_cancels && !has_work && !e->stopping) {
            e->busy = false;
            publish(e);
            pthread_cond_broadcast(&e->idle);
            pthread_cond_wait(&e->wake, &e->mu);
            continue;
        }
        if (e->stopping) break;
        e->busy = true;
        /* take both queues (swap with the loop's own arrays) */
        int n_new = e->n_pending, n_cancel = e->n_cancels;
        g4_seq **tmp = e->pending;
        e->pending = e->intake;
        e->intake = tmp;
        int ctmp = e->cap_pending;
        e->cap_pending = e->cap_intake;
        e->cap_intake = ctmp;
        uint64_t *ctmp2 = e->cancels;
        e->cancels = e->cancel_ids;
        e->cancel_ids = ctmp2;
        ctmp = e->cap_cancels;
        e->cap_cancels = e->cap_cancel;
        e->cap_cancel = ctmp;
        e->n_pending = e->n_cancels = 0;
        e->n_queued = e->sched.n_waiting + n_new;
        pthread_mutex_unlock(&e->mu);

        for (int i = 0; i < n_new; i++) {
            g4_seq *q = e->intake[i];
            if (e->has_detok && !(q->detok = e->detok.open(e->detok.ctx, q->detok_flags))) {
                g4_engine_finish(e, q, G4_FINISH_ERROR, "detokenizer: cannot open a stream");
                continue;
            }
            if (g4_sched_add(&e->sched, q)) g4_engine_finish(e, q, G4_FINISH_ERROR, "engine: out of memory");
        }
        for (int i = 0; i < n_cancel; i++) {
            g4_seq *q = find_seq(e, e->cancel_ids[i]);
            if (q) g4_engine_finish(e, q, G4_FINISH_ABORT, NULL);
        }
        if (e->sched.n_running || e->sched.n_waiting) run_step(e);

        pthread_mutex_lock(&e->mu);
        publish(e);
    }
    /* stopping: everything still held or queued ends with ABORT */
    int n_new = e->n_pending;
    e->n_pending = 0;
    pthread_mutex_unlock(&e->mu);
    for (int i = 0; i < n_new; i++) g4_engine_finish(e, e->pending[i], G4_FINISH_ABORT, NULL);
    while (e->sched.n_running) g4_engine_finish(e, e->sched.running[e->sched.n_running - 1], G4_FINISH_ABORT, NULL);
    while (e->sched.n_waiting) g4_engine_finish(e, e->sched.waiting[e->sched.n_waiting - 1], G4_FINISH_ABORT, NULL);
    pthread_mutex_lock(&e->mu);
    e->busy = false;
    publish(e);
    pthread_cond_broadcast(&e->idle);
    pthread_mutex_unlock(&e->mu);
    return NULL;
}

/* --- API ------------------------------------------------------------------------------------------ */

static void engine_free(g4_engine *e) {
    g4_sched_free(&e->sched);
    g4_enc_cache_free(&e->mm_cache);
    free(e->mm_step);
    g4_prefix_cache_free(&e->pc);
    g4_kvcache_free(&e->kv);
    g4_sampler_free(&e->sampler);
    g4_spec_draft_free(&e->draft);
    g4_cpu_sample_scratch_free(e->sample_scratch);
    free(e->sample_params);
    free(e->sampled);
    free(e->sampled_lp);
    free(e->row_seqs);
    free(e->logits);
    free(e->allowed_mask);
    free(e->constraint_mask);
    free(e->plp);
    free(e->text);
    free(e->pending);
    free(e->intake);
    free(e->cancels);
    free(e->cancel_ids);
    free(e);
}

g4_engine *g4_engine_create(const g4_engine_opts *o, const g4_executor *ex, const g4_detok_iface *detok,
                            g4_error *err) {
    if (!o || !ex || !ex->step || ex->vocab < 1) {
        g4_fail(err, "engine: options and an executor with a step function and vocab ≥ 1 are required");
        return NULL;
    }
    if (o->max_running < 1 || o->max_waiting < 0 || o->max_model_len < 1 || o->step_token_budget < 1 ||
        o->block_size < 1 || o->sliding_window < 1 || o->n_eos < 0 || o->n_eos > G4_MAX_EOS) {
        g4_fail(err,
                "engine: max_running %d, max_model_len %d, step_token_budget %d, block_size %d, sliding_window %d "
                "must be ≥ 1, max_waiting %d ≥ 0, n_eos %d ≤ %d",
                o->max_running, o->max_model_len, o->step_token_budget, o->block_size, o->sliding_window,
                o->max_waiting, o->n_eos, G4_MAX_EOS);
        return NULL;
    }
    if (ex->encode && ex->hidden < 1) {
        g4_fail(err, "engine: an executor with an encode hook needs its hidden size");
        return NULL;
    }
    if (g4_spec_check(&o->spec, o->spec_draft, ex->vocab, err)) return NULL;
    if (detok && (!detok->open || !detok->push)) {
        g4_fail(err, "engine: a detokenizer needs open and push");
        return NULL;
    }
    g4_engine *e = calloc(1, sizeof *e);
    if (!e) {
        g4_fail(err, "engine: out of memory");
        return NULL;
    }
    e->o = *o;
    if (!e->o.max_blocks_per_seq) e->o.max_blocks_per_seq = (o->max_model_len + o->block_size - 1) / o->block_size;
    if ((long long)e->o.max_blocks_per_seq * o->block_size < o->max_model_len) {
        g4_fail(err, "engine: max_blocks_per_seq %d × block_size %d is below max_model_len %d", e->o.max_blocks_per_seq,
                o->block_size, o->max_model_len);
        free(e);
        return NULL;
    }
    for (int i = 0; i < o->n_eos; i++) e->eos[i] = o->eos_ids[i];
    e->o.eos_ids = e->eos;
    e->has_draft = o->spec.method == G4_SPEC_DRAFT;
    e->o.spec_draft = NULL; /* copied into e->draft */
    e->ex = *ex;
    e->o.vision = ex->encode != NULL; /* images go by the executor's tower, whatever o said */
    g4_enc_cache_init(&e->mm_cache, o->mm_cache_bytes ? o->mm_cache_bytes : G4_MM_CACHE_DEFAULT);
    if (detok) {
        e->detok = *detok;
        e->has_detok = true;
    }
    e->seed_base = o->seed ? o->seed : mix64((uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)e);
    e->text_cap = G4_TEXT_SCRATCH;
    e->text = malloc(e->text_cap);
    /* rows sampled on the backend: one per sequence, or one per token with speculation */
    size_t dev_rows = (size_t)(o->max_running > o->step_token_budget ? o->max_running : o->step_token_budget);
    e->logits = malloc((size_t)o->max_running * ex->vocab * sizeof *e->logits);
    e->sampled = malloc(dev_rows * sizeof *e->sampled);
    e->sampled_lp = malloc(dev_rows * sizeof *e->sampled_lp);
    e->row_seqs = malloc(dev_rows * sizeof *e->row_seqs);
    e->logits_rows = o->max_running;
    e->allowed_mask = malloc((size_t)((ex->vocab + 31) / 32) * sizeof *e->allowed_mask);
    e->constraint_mask = malloc((size_t)((ex->vocab + 31) / 32) * sizeof *e->constraint_mask);
    e->plp = malloc(G4_SCHED_LP_ROWS * sizeof *e->plp);
    if (!e->text || !e->logits || !e->sampled || !e->sampled_lp || !e->row_seqs || !e->allowed_mask ||
        !e->constraint_mask || !e->plp) {
        g4_fail(err, "engine: out of memory for %d logit rows of %d", o->max_running, ex->vocab);
        engine_free(e);
        return NULL;
    }
    if (g4_kvcache_init(&e->kv, o->n_blocks_sliding, o->n_blocks_global, o->block_size, o->sliding_window,
                        o->max_running, e->o.max_blocks_per_seq, err) ||
        g4_prefix_cache_init(&e->pc, &e->kv, o->prefix_cache, err) ||
        g4_sched_init(&e->sched, &e->kv, &e->pc, o->max_running, o->max_running_per_client, o->step_token_budget,
                      err) ||
        g4_sampler_init(&e->sampler, ex->vocab, err) || !(e->sample_scratch = g4_cpu_sample_scratch_create()) ||
        (o->spec.method == G4_SPEC_DRAFT &&
         g4_spec_draft_init(&e->draft, o->spec_draft, o->step_token_budget, o->max_running, err))) {
        if (!e->sample_scratch) g4_fail(err, "engine: out of memory for the sampler");
        engine_free(e);
        return NULL;
    }
    if (pthread_mutex_init(&e->mu, NULL) || pthread_cond_init(&e->wake, NULL) || pthread_cond_init(&e->idle, NULL)) {
        g4_fail(err, "engine: cannot create the loop's mutex / condition variables");
        engine_free(e);
        return NULL;
    }
    publish(e);
    if (pthread_create(&e->thread, NULL, loop, e)) {
        g4_fail(err, "engine: cannot start the loop thread");
        pthread_mutex_destroy(&e->mu);
        pthread_cond_destroy(&e->wake);
        pthread_cond_destroy(&e->idle);
        engine_free(e);
        return NULL;
    }
    return e;
}

void g4_engine_destroy(g4_engine *e) {
    if (!e) return;
    pthread_mutex_lock(&e->mu);
    e->stopping = true;
    pthread_cond_signal(&e->wake);
    pthread_mutex_unlock(&e->mu);
    pthread_join(e->thread, NULL);
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->wake);
    pthread_cond_destroy(&e->idle);
    engine_free(e);
}

uint64_t g4_engine_submit(g4_engine *e, const g4_request_params *p, int *code, g4_error *err) {
    int dummy;
    if (!code) code = &dummy;
    *code = 0;
    if (!p) {
        *code = G4_ERR_INVALID;
        g4_fail(err, "request: NULL parameters");
        return 0;
    }
    int rc = g4_engine_check_request(&e->o, e->ex.vocab, e->has_detok, p, err);
    if (rc) {
        if (p->constraint) p->constraint_fn->free(p->constraint); /* the engine owns it */
        *code = rc;
        return 0;
    }
    g4_seq *q = g4_seq_create(p, e->o.block_size, e->eos, e->o.n_eos, err);
    if (!q) {
        *code = G4_ERR_INVALID;
        return 0;
    }
    q->t_submit = now_s();
    q->client = p->client;
    pthread_mutex_lock(&e->mu);
    const char *why = NULL;
    if (e->stopping) {
        why = "engine: stopped";
        *code = G4_ERR_STOPPED;
    } else if (!p->continuation && e->n_queued + e->n_pending >= e->o.max_waiting) {
        why = "engine: the waiting queue is full";
        *code = G4_ERR_QUEUE_FULL;
    } else if (reserve((void **)&e->pending, &e->cap_pending, e->n_pending + 1, sizeof *e->pending)) {
        why = "engine: out of memory";
        *code = G4_ERR_INVALID;
    }
    if (why) {
        pthread_mutex_unlock(&e->mu);
        g4_seq_free(q);
        g4_fail(err, "%s (max_waiting %d)", why, e->o.max_waiting);
        return 0;
    }
    q->id = ++e->next_id;
    q->arrival = q->id;
    q->seed = p->sampling.has_seed ? p->sampling.seed : mix64(e->seed_base ^ mix64(q->id));
    e->pending[e->n_pending++] = q;
    uint64_t id = q->id;
    pthread_cond_signal(&e->wake);
    pthread_mutex_unlock(&e->mu);
    return id;
}

void g4_engine_cancel(g4_engine *e, uint64_t id) {
    pthread_mutex_lock(&e->mu);
    if (!e->stopping && id && id <= e->next_id &&
        !reserve((void **)&e->cancels, &e->cap_cancels, e->n_cancels + 1, sizeof *e->cancels)) {
        e->cancels[e->n_cancels++] = id;
        pthread_cond_signal(&e->wake);
    }
    pthread_mutex_unlock(&e->mu);
}

int g4_engine_eos_ids(const g4_engine *e, const int32_t **ids) {
    *ids = e->eos;
    return e->o.n_eos;
}

const g4_detok_iface *g4_engine_detok(const g4_engine *e) { return e->has_detok ? &e->detok : NULL; }

int g4_engine_check(const g4_engine *e, const g4_request_params *p, g4_error *err) {
    return g4_engine_check_request(&e->o, e->ex.vocab, e->has_detok, p, err);
}

void g4_engine_stats_get(g4_engine *e, g4_engine_stats *s) {
    pthread_mutex_lock(&e->mu);
    *s = e->pub;
    pthread_mutex_unlock(&e->mu);
}

void g4_engine_wait_idle(g4_engine *e) {
    pthread_mutex_lock(&e->mu);
    while (e->n_pending || e->n_cancels || e->busy) pthread_cond_wait(&e->idle, &e->mu);
    pthread_mutex_unlock(&e->mu);
}
