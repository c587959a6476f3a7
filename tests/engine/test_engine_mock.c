/* test_engine_mock.c — the engine on the mock model (mock_exec.h), where every output can be
 * predicted exactly from the tokens alone:
 *   soak       2,000 random requests from two submitting threads, shared prefixes, random
 *              priorities, seeded / greedy sampling, random cancellations and a small KV pool
 *              (preemptions, prefix hits, evictions): every finished request equals its
 *              reference, a cancelled one a prefix of it; afterwards every block is free
 *   limits     queue full (G4_ERR_QUEUE_FULL), too long / never fits (G4_ERR_TOO_LONG),
 *              invalid requests, cancel while waiting, priority order
 *   stop       stop strings across token boundaries through the engine and a fake detokenizer;
 *              with include_stop_str_in_output the same tokens and the text plus the string;
 *              a stop id ends the output before it, or (include) as its last token with its text
 *   prefix     a repeated prompt hits the cache (counters, usage) and gives the same tokens;
 *              the step-size histogram and the queue time of the last event
 *   processors logit_bias and allowed ids (greedy and seeded) equal the host sampler on the
 *              mock's logits with the bias added / other tokens at −inf; such a request runs
 *              on the host-logits path although the executor samples on the device
 *   lp ids     128 logprob ids (beyond the 20 top alternatives) at every position equal
 *              log_softmax of the mock's logits processed as sampling.h says (greedy; temperature
 *              and penalties; a mask: −inf), tokens unchanged; 129 refused
 *   prompt lp  prompt logprobs of every position equal log_softmax of the mock's logits (value,
 *              rank, top ids), each position once and before the first token, also when two
 *              requests share a step's 64 rows and on a prefix-cache hit; the tokens are unchanged
 *   cost       scheduler CPU time per step with 256 running sequences (printed, not asserted) */
#include <math.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "engine/engine.h"
#include "engine/sampling.h"
#include "engine_test_util.h"
#include "mock_exec.h"

#define V 512
#define BS 4
#define WIN 8
#define MAXLEN 64

static void base_opts(g4_engine_opts *o, int n_s, int n_g) {
    static const int32_t eos[2] = {1, 106};
    *o = (g4_engine_opts){.max_running = 32,
                          .max_waiting = 256,
                          .max_model_len = MAXLEN,
                          .step_token_budget = 64,
                          .block_size = BS,
                          .n_blocks_sliding = n_s,
                          .n_blocks_global = n_g,
                          .sliding_window = WIN,
                          .prefix_cache = true,
                          .eos_ids = eos,
                          .n_eos = 2,
                          .seed = 1234};
}

/* Reference output: sample max_tokens tokens from the mock's pure logits (ignore_eos). */
static int reference(const mock_exec *m, g4_sampler *smp, const int32_t *prompt, int n_prompt, const g4_sampling *sp,
                     uint64_t seed, int max_tokens, int32_t *out) {
    int32_t toks[MAXLEN];
    float *logits = malloc(V * sizeof *logits);
    memcpy(toks, prompt, (size_t)n_prompt * sizeof *toks);
    int n = n_prompt;
    for (int i = 0; i < max_tokens; i++) {
        mock_reference_logits(m, toks, n, logits);
        g4_sample_history h = {toks, n_prompt, toks + n_prompt, n - n_prompt};
        g4_sample_result r;
        g4_sample_row(smp, logits, sp, seed, &h, &r);
        out[i] = toks[n++] = r.token;
    }
    free(logits);
    return max_tokens;
}

/* --- soak ------------------------------------------------------------------------------------- */

#define SOAK_N 2000
typedef struct soak_req {
    int32_t prompt[48];
    int n_prompt, max_tokens, priority;
    g4_sampling sp;
    uint64_t id;
    rec r;
} soak_req;

typedef struct soak_ctx {
    g4_engine *e;
    soak_req *reqs;
    int from, to;
    uint64_t seed;
    int queue_full;
    int cancels;
} soak_ctx;

static void *soak_submitter(void *arg) {
    soak_ctx *c = arg;
    for (int i = c->from; i < c->to; i++) {
        soak_req *q = &c->reqs[i];
        g4_request_params p = {.prompt = q->prompt,
                               .n_prompt = q->n_prompt,
                               .sampling = q->sp,
                               .priority = q->priority,
                               .on_event = rec_on_event,
                               .user = &q->r};
        g4_stop_rules_default(&p.stop);
        p.stop.max_tokens = q->max_tokens;
        p.stop.ignore_eos = true;
        int code = 0;
        g4_error err = {{0}};
        while (!(q->id = g4_engine_submit(c->e, &p, &code, &err))) {
            if (code != G4_ERR_QUEUE_FULL) {
                fprintf(stderr, "soak submit %d: %s\n", i, err.msg);
                break;
            }
            c->queue_full++;
            usleep(200);
        }
        if (rng_int(&c->seed, 0, 9) == 0 && i > c->from) { /* cancel a recent request */
            int j = rng_int(&c->seed, i - 8 > c->from ? i - 8 : c->from, i);
            g4_engine_cancel(c->e, c->reqs[j].id);
            c->cancels++;
        }
    }
    return NULL;
}

static void test_soak(void) {
    g4_engine_opts o;
    base_opts(&o, 60, 64);
    mock_exec m;
    if (mock_exec_init(&m, V, BS, WIN, MAXLEN / BS, 60, 64, true)) {
        CHECK(0, "mock init");
        return;
    }
    g4_executor ex;
    mock_exec_bind(&m, &ex);
    g4_error err = {{0}};
    g4_engine *e = g4_engine_create(&o, &ex, NULL, &err);
    CHECK(e != NULL, "%s", err.msg);
    if (!e) return;
    soak_req *reqs = calloc(SOAK_N, sizeof *reqs);
    uint64_t seed = 42;
    int32_t shared[4][40];
    for (int k = 0; k < 4; k++)
        for (int i = 0; i < 40; i++) shared[k][i] = rng_int(&seed, 2, V - 1);
    for (int i = 0; i < SOAK_N; i++) {
        soak_req *q = &reqs[i];
        q->n_prompt = rng_int(&seed, 1, 40);
        int pre = rng_int(&seed, 0, 1) ? rng_int(&seed, 0, q->n_prompt) : 0, k = rng_int(&seed, 0, 3);
        for (int j = 0; j < q->n_prompt; j++) q->prompt[j] = j < pre ? shared[k][j] : rng_int(&seed, 0, V - 1);
        q->max_tokens = rng_int(&seed, 1, 12);
        q->priority = rng_int(&seed, 0, 2);
        g4_sampling_default(&q->sp);
        if (rng_int(&seed, 0, 1)) {
            q->sp.temperature = 0.8f;
            q->sp.top_k = 20;
            q->sp.top_p = 0.9f;
            q->sp.has_seed = true;
            q->sp.seed = rng_next(&seed);
        }
        if (rng_int(&seed, 0, 4) == 0) q->sp.repetition_penalty = 1.3f;
    }
    soak_ctx c[2] = {{e, reqs, 0, SOAK_N / 2, 7, 0, 0}, {e, reqs, SOAK_N / 2, SOAK_N, 8, 0, 0}};
    pthread_t th[2];
    for (int t = 0; t < 2; t++) pthread_create(&th[t], NULL, soak_submitter, &c[t]);
    for (int t = 0; t < 2; t++) pthread_join(th[t], NULL);
    g4_engine_wait_idle(e);
    g4_engine_stats st;
    g4_engine_stats_get(e, &st);

    g4_sampler smp;
    g4_sampler_init(&smp, V, &err);
    int bad = 0, aborted = 0, once = 0;
    int32_t ref[16];
    for (int i = 0; i < SOAK_N; i++) {
        soak_req *q = &reqs[i];
        once += q->r.n_finish == 1;
        if (q->r.finish == G4_FINISH_ABORT) aborted++;
        uint64_t s = q->sp.has_seed ? q->sp.seed : 0;
        if (!q->sp.has_seed && q->sp.temperature > 0) continue;
        reference(&m, &smp, q->prompt, q->n_prompt, &q->sp, s, q->max_tokens, ref);
        int want = q->r.finish == G4_FINISH_ABORT ? q->r.n : q->max_tokens;
        int ok =
            q->r.n == want && !memcmp(q->r.toks, ref, (size_t)want * sizeof *ref) &&
            (q->r.finish == G4_FINISH_ABORT || (q->r.finish == G4_FINISH_LENGTH && q->r.completion_tokens == want));
        if (!ok && bad++ < 3)
            fprintf(stderr, "soak request %d: %d tokens (want %d), finish %d, first %d vs %d\n", i, q->r.n, want,
                    q->r.finish, q->r.n ? q->r.toks[0] : -1, ref[0]);
    }
    g4_sampler_free(&smp);
    printf("soak: %d requests, %d aborted (%d cancel calls), %d queue-full retries, %llu preemptions, "
           "prefix hit %llu / %llu tokens, %llu steps, mock faults %ld\n",
           SOAK_N, aborted, c[0].cancels + c[1].cancels, c[0].queue_full + c[1].queue_full,
           (unsigned long long)st.preemptions, (unsigned long long)st.prefix_hit_tokens,
           (unsigned long long)st.prefix_query_tokens, (unsigned long long)st.steps, m.faults);
    CHECK(once == SOAK_N, "%d of %d requests got exactly one last event", once, SOAK_N);
    CHECK(bad == 0, "%d requests differ from their reference", bad);
    CHECK(m.faults == 0, "mock saw %ld KV faults, first: %s", m.faults, m.first_fault);
    CHECK(st.blocks_sliding_used == 0 && st.blocks_global_used == 0, "blocks still used: sliding %d global %d",
          st.blocks_sliding_used, st.blocks_global_used);
    CHECK(st.running == 0 && st.waiting == 0, "running %d waiting %d after idle", st.running, st.waiting);
    CHECK(st.preemptions > 0, "the small pool caused no preemption");
    CHECK(st.prefix_hit_tokens > 0, "no prefix-cache hits with shared prefixes");
    CHECK(aborted > 0, "no request was cancelled");
    CHECK(st.finished[G4_FINISH_ABORT] == (uint64_t)aborted, "abort count %llu vs %d",
          (unsigned long long)st.finished[G4_FINISH_ABORT], aborted);
    g4_engine_destroy(e);
    mock_exec_free(&m);
    free(reqs);
}

/* --- limits ----------------------------------------------------------------------------------- */

typedef struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int open, entered;
    g4_executor inner;
} gate;

static int gated_step(void *ctx, const g4_step *st, float *logits, g4_error *err) {
    gate *g = ctx;
    pthread_mutex_lock(&g->mu);
    g->entered++;
    pthread_cond_broadcast(&g->cv);
    while (!g->open) pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
    return g->inner.step(g->inner.ctx, st, logits, err);
}

static uint64_t submit(g4_engine *e, const int32_t *prompt, int n, int max_tokens, int priority, rec *r, int *code,
                       g4_error *err) {
    g4_request_params p = {.prompt = prompt, .n_prompt = n, .priority = priority, .on_event = rec_on_event, .user = r};
    g4_sampling_default(&p.sampling);
    g4_stop_rules_default(&p.stop);
    p.stop.max_tokens = max_tokens;
    p.stop.ignore_eos = true;
    return g4_engine_submit(e, &p, code, err);
}

static void test_limits(void) {
    g4_engine_opts o;
    base_opts(&o, 40, 40);
    o.max_running = 1;
    o.max_waiting = 2;
    mock_exec m;
    mock_exec_init(&m, V, BS, WIN, MAXLEN / BS, 40, 40, true);
    gate g = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    mock_exec_bind(&m, &g.inner);
    g4_executor ex = g.inner;
    ex.ctx = &g;
    ex.step = gated_step;
    g4_error err = {{0}};
    g4_engine *e = g4_engine_create(&o, &ex, NULL, &err);
    CHECK(e != NULL, "%s", err.msg);
    if (!e) return;
    int32_t prompt[60];
    for (int i = 0; i < 60; i++) prompt[i] = 5 + i;
    rec r[6] = {0};
    int code = 0;
    /* refused at once, no event ever */
    CHECK(!submit(e, prompt, 60, 5, 0, &r[5], &code, &err) && code == G4_ERR_TOO_LONG, "too long: code %d", code);
    CHECK(strstr(err.msg, "maximum model length") != NULL, "message: %s", err.msg);
    int32_t badp[2] = {3, V};
    CHECK(!submit(e, badp, 2, 5, 0, &r[5], &code, &err) && code == G4_ERR_INVALID, "bad id: code %d", code);
    CHECK(strstr(err.msg, "prompt[1]") != NULL, "message: %s", err.msg);
    CHECK(!submit(e, prompt, 0, 5, 0, &r[5], &code, &err) && code == G4_ERR_INVALID, "empty: code %d", code);
    g4_request_params p = {.prompt = prompt, .n_prompt = 3, .on_event = rec_on_event, .user = &r[5]};
    g4_sampling_default(&p.sampling);
    g4_stop_rules_default(&p.stop);
    const char *ss[1] = {"x"};
    p.stop.stop_strings = ss;
    p.stop.n_stop_strings = 1;
    CHECK(!g4_engine_submit(e, &p, &code, &err) && code == G4_ERR_INVALID, "stop strings w/o detok: %d", code);
    p.stop.n_stop_strings = 0;
    const int32_t far[2] = {3, V}; /* a stop id beyond the vocabulary (min_tokens masks stop ids by id) */
    p.stop.stop_ids = far;
    p.stop.n_stop_ids = 2;
    CHECK(!g4_engine_submit(e, &p, &code, &err) && code == G4_ERR_INVALID && strstr(err.msg, "stop_ids[1]"),
          "stop id %d: code %d (%s)", V, code, err.msg);
    /* first request runs and blocks inside the step; two wait; the fourth is refused */
    uint64_t id0 = submit(e, prompt, 10, 3, 0, &r[0], &code, &err);
    pthread_mutex_lock(&g.mu);
    while (!g.entered) pthread_cond_wait(&g.cv, &g.mu);
    pthread_mutex_unlock(&g.mu);
    uint64_t id1 = submit(e, prompt + 1, 10, 3, 1, &r[1], &code, &err);
    uint64_t id2 = submit(e, prompt + 2, 10, 3, 0, &r[2], &code, &err);
    uint64_t id3 = submit(e, prompt + 3, 10, 3, 0, &r[3], &code, &err);
    CHECK(id0 && id1 && id2, "submits: %llu %llu %llu", (unsigned long long)id0, (unsigned long long)id1,
          (unsigned long long)id2);
    CHECK(!id3 && code == G4_ERR_QUEUE_FULL, "queue full: id %llu code %d (%s)", (unsigned long long)id3, code,
          err.msg);
    g4_engine_cancel(e, id2);
    pthread_mutex_lock(&g.mu);
    g.open = 1;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
    g4_engine_wait_idle(e);
    CHECK(r[0].finish == G4_FINISH_LENGTH && r[0].n == 3, "r0: finish %d, %d tokens", r[0].finish, r[0].n);
    CHECK(r[1].finish == G4_FINISH_LENGTH && r[1].n == 3, "r1: finish %d, %d tokens", r[1].finish, r[1].n);
    CHECK(r[2].finish == G4_FINISH_ABORT && r[2].n == 0 && r[2].n_finish == 1, "cancelled while waiting: finish %d",
          r[2].finish);
    CHECK(r[5].n_events == 0, "a refused request got %d events", r[5].n_events);
    CHECK(r[0].prompt_tokens == 10 && r[0].completion_tokens == 3, "usage %d %d", r[0].prompt_tokens,
          r[0].completion_tokens);
    /* a request bigger than the global pool can never fit */
    g4_engine_destroy(e);
    o.n_blocks_global = 5;
    o.max_running = 4;
    e = g4_engine_create(&o, &g.inner, NULL, &err);
    CHECK(!submit(e, prompt, 20, 4, 0, &r[5], &code, &err) && code == G4_ERR_TOO_LONG && strstr(err.msg, "KV blocks"),
          "never fits: code %d (%s)", code, err.msg);
    /* priority: with one slot, lower priority value runs first among waiting requests */
    g4_engine_destroy(e);
    o.n_blocks_global = 40;
    o.max_running = 1;
    o.max_waiting = 8;
    g.open = 0;
    g.entered = 0;
    e = g4_engine_create(&o, &ex, NULL, &err);
    rec pr[4] = {0};
    submit(e, prompt, 4, 2, 5, &pr[0], &code, &err);
    pthread_mutex_lock(&g.mu);
    while (!g.entered) pthread_cond_wait(&g.cv, &g.mu);
    pthread_mutex_unlock(&g.mu);
    submit(e, prompt + 1, 4, 2, 9, &pr[1], &code, &err);
    submit(e, prompt + 2, 4, 2, 1, &pr[2], &code, &err);
    submit(e, prompt + 3, 4, 2, 1, &pr[3], &code, &err);
    pthread_mutex_lock(&g.mu);
    g.open = 1;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
    g4_engine_wait_idle(e);
    CHECK(pr[0].n == 2 && pr[1].n == 2 && pr[2].n == 2 && pr[3].n == 2, "priority requests finished");
    CHECK(pr[0].order < pr[2].order && pr[2].order < pr[3].order && pr[3].order < pr[1].order,
          "finish order by (priority, arrival): %d %d %d %d", pr[0].order, pr[1].order, pr[2].order, pr[3].order);
    g4_engine_destroy(e);
    mock_exec_free(&m);
}

/* --- stop strings through the engine ------------------------------------------------------------ */

static void test_stop_strings(void) {
    g4_engine_opts o;
    base_opts(&o, 64, 64);
    mock_exec m;
    mock_exec_init(&m, V, BS, WIN, MAXLEN / BS, 64, 64, true);
    g4_executor ex;
    mock_exec_bind(&m, &ex);
    g4_detok_iface dt = fake_detok();
    g4_error err = {{0}};
    g4_engine *e = g4_engine_create(&o, &ex, &dt, &err);
    CHECK(e != NULL, "%s", err.msg);
    if (!e) return;
    int checked = 0;
    for (int trial = 0; trial < 12; trial++) {
        int32_t prompt[8];
        for (int i = 0; i < 8; i++) prompt[i] = 2 + (trial * 37 + i * 11) % (V - 2);
        rec full = {0};
        int code;
        submit(e, prompt, 8, 12, 0, &full, &code, &err);
        g4_engine_wait_idle(e);
        char want[4096];
        fake_text(full.toks, full.n, want, sizeof want);
        CHECK(full.n == 12 && !strcmp(full.text, want), "trial %d: text \"%s\" vs \"%s\"", trial, full.text, want);
        /* a stop string from the middle of token 4's text to the middle of token 6's */
        char a[4096];
        fake_text(full.toks, 4, a, sizeof a);
        size_t start = strlen(a) - 2;
        fake_text(full.toks, 6, a, sizeof a);
        size_t end = strlen(a) - 1;
        char stop[64];
        snprintf(stop, sizeof stop, "%.*s", (int)(end - start), want + start);
        char *first = strstr(want, stop);
        size_t cut = (size_t)(first - want);
        int tok_end = 0; /* tokens up to the one completing the first match */
        for (size_t k = 0; tok_end < 12;) {
            char piece[32];
            k += (size_t)snprintf(piece, sizeof piece, "<%d>", (int)full.toks[tok_end++]);
            if (k >= cut + strlen(stop)) break;
        }
        /* held-back tokens (multiples of 7) release their text with the next token */
        while (tok_end < 12 && full.toks[tok_end - 1] % 7 == 0) tok_end++;
        for (int include = 0; include < 2; include++) {
            rec r = {0};
            g4_request_params p = {.prompt = prompt, .n_prompt = 8, .on_event = rec_on_event, .user = &r};
            g4_sampling_default(&p.sampling);
            g4_stop_rules_default(&p.stop);
            p.stop.max_tokens = 12;
            p.stop.ignore_eos = true;
            const char *ss[2] = {"never-there", stop};
            p.stop.stop_strings = ss;
            p.stop.n_stop_strings = 2;
            p.stop.include_stop_str_in_output = include;
            CHECK(g4_engine_submit(e, &p, &code, &err) != 0, "%s", err.msg);
            g4_engine_wait_idle(e);
            CHECK(r.finish == G4_FINISH_STOP && !strcmp(r.stop_string, stop), "trial %d: finish %d stop \"%s\"", trial,
                  r.finish, r.stop_string);
            size_t n_want = cut + (include ? strlen(stop) : 0); /* with include: the string too */
            CHECK(strlen(r.text) == n_want && !strncmp(r.text, want, n_want),
                  "trial %d include %d: text \"%s\", want the first %zu of \"%s\"", trial, include, r.text, n_want,
                  want);
            CHECK(r.n == tok_end && !memcmp(r.toks, full.toks, (size_t)r.n * sizeof *r.toks),
                  "trial %d include %d: %d tokens, want %d", trial, include, r.n, tok_end);
        }
        /* a stop id (token 6's, ending at its first place): not in the output, or with include
         * its last token, its text shown (also when the fake detokenizer held it back) */
        int32_t sid = full.toks[5];
        int at = 0;
        while (full.toks[at] != sid) at++;
        for (int include = 0; include < 2; include++) {
            rec r = {0};
            g4_request_params p = {.prompt = prompt, .n_prompt = 8, .on_event = rec_on_event, .user = &r};
            g4_sampling_default(&p.sampling);
            g4_stop_rules_default(&p.stop);
            p.stop.max_tokens = 12;
            p.stop.ignore_eos = true;
            p.stop.stop_ids = &sid;
            p.stop.n_stop_ids = 1;
            p.stop.include_stop_str_in_output = include;
            CHECK(g4_engine_submit(e, &p, &code, &err) != 0, "%s", err.msg);
            g4_engine_wait_idle(e);
            char w[4096];
            fake_text(full.toks, at + include, w, sizeof w);
            CHECK(r.finish == G4_FINISH_STOP && r.stop_token == sid && r.completion_tokens == at + 1,
                  "trial %d include %d: finish %d stop id %d, %d tokens", trial, include, r.finish, r.stop_token,
                  r.completion_tokens);
            CHECK(r.n == at + include && !memcmp(r.toks, full.toks, (size_t)r.n * sizeof *r.toks) && !strcmp(r.text, w),
                  "trial %d include %d: %d tokens \"%s\", want %d \"%s\"", trial, include, r.n, r.text, at + include,
                  w);
        }
        checked++;
    }
    CHECK(checked == 12, "stop trials");
    g4_engine_destroy(e);
    mock_exec_free(&m);
}

/* --- prefix cache --------------------------------------------------------------------------------- */

static void test_prefix(void) {
    g4_engine_opts o;
    base_opts(&o, 64, 64);
    mock_exec m;
    mock_exec_init(&m, V, BS, WIN, MAXLEN / BS, 64, 64, true);
    g4_executor ex;
    mock_exec_bind(&m, &ex);
    g4_error err = {{0}};
    g4_engine *e = g4_engine_create(&o, &ex, NULL, &err);
    CHECK(e != NULL, "%s", err.msg);
    if (!e) return;
    int32_t prompt[41];
    for (int i = 0; i < 41; i++) prompt[i] = 3 + i * 5;
    rec cold = {0}, hot = {0}, part = {0};
    int code;
    submit(e, prompt, 41, 8, 0, &cold, &code, &err);
    g4_engine_wait_idle(e);
    g4_engine_stats s0, s1, s2;
    g4_engine_stats_get(e, &s0);
    /* the step-size histogram: one 41-token prefill step (bucket ≤ 64), then 7 one-token decodes */
    uint64_t in_buckets = 0;
    for (int b = 0; b < G4_STEP_TOKEN_BUCKETS; b++) in_buckets += s0.step_tokens_le[b];
    CHECK(s0.step_tokens_le[0] == 7 && s0.step_tokens_le[4] == 1 && in_buckets == s0.steps && s0.steps == 8,
          "step histogram: %llu one-token steps, %llu in (32, 64], %llu of %llu steps",
          (unsigned long long)s0.step_tokens_le[0], (unsigned long long)s0.step_tokens_le[4],
          (unsigned long long)in_buckets, (unsigned long long)s0.steps);
    CHECK(cold.queue_s >= 0 && cold.queue_s < 5, "queue time %g s", cold.queue_s);
    submit(e, prompt, 41, 8, 0, &hot, &code, &err);
    g4_engine_wait_idle(e);
    g4_engine_stats_get(e, &s1);
    CHECK(cold.n == 8 && hot.n == 8 && !memcmp(cold.toks, hot.toks, sizeof cold.toks[0] * 8), "hit != cold");
    CHECK(s1.prefix_hit_tokens - s0.prefix_hit_tokens == 40, "hit %llu tokens, want 40 (41 − 1, a multiple of %d)",
          (unsigned long long)(s1.prefix_hit_tokens - s0.prefix_hit_tokens), BS);
    CHECK(hot.cached_tokens == 40 && cold.cached_tokens == 0, "usage cached %d / %d", hot.cached_tokens,
          cold.cached_tokens);
    CHECK(s1.blocks_cached > 0 && s1.blocks_global_used == 0, "cached %d used %d", s1.blocks_cached,
          s1.blocks_global_used);
    /* a longer prompt sharing 30 tokens: hit of 28 (7 blocks), same output as the reference */
    int32_t p2[35];
    memcpy(p2, prompt, 30 * sizeof *p2);
    for (int i = 30; i < 35; i++) p2[i] = 400 + i;
    submit(e, p2, 35, 6, 0, &part, &code, &err);
    g4_engine_wait_idle(e);
    g4_engine_stats_get(e, &s2);
    g4_sampler smp;
    g4_sampler_init(&smp, V, &err);
    g4_sampling sp;
    g4_sampling_default(&sp);
    int32_t ref[8];
    reference(&m, &smp, p2, 35, &sp, 0, 6, ref);
    g4_sampler_free(&smp);
    CHECK(part.n == 6 && !memcmp(part.toks, ref, 6 * sizeof *ref), "partial hit output differs");
    CHECK(s2.prefix_hit_tokens - s1.prefix_hit_tokens == 28, "partial hit %llu, want 28",
          (unsigned long long)(s2.prefix_hit_tokens - s1.prefix_hit_tokens));
    CHECK(m.faults == 0, "mock faults %ld: %s", m.faults, m.first_fault);
    g4_engine_destroy(e);
    mock_exec_free(&m);
}

/* --- logit processors ------------------------------------------------------------------------------- */

static int device_calls;
static int refuse_device_step(void *ctx, const g4_step *step, const g4_sample_params *params, size_t params_bytes,
                              int32_t *tokens, g4_sample_logprobs *logprobs, int n_logprobs, g4_error *err) {
    (void)ctx, (void)step, (void)params, (void)params_bytes, (void)tokens, (void)logprobs, (void)n_logprobs;
    device_calls++;
    return g4_fail(err, "a request with logit processors reached the device sampler");
}

/* The reference with the processors applied to the mock's pure logits. */
static void reference_processed(const mock_exec *m, g4_sampler *smp, const int32_t *prompt, int n_prompt,
                                const g4_sampling *sp, uint64_t seed, int max_tokens, const g4_logit_bias *bias,
                                int n_bias, const int32_t *allowed, int n_allowed, int32_t *out) {
    int32_t toks[MAXLEN];
    float logits[V];
    memcpy(toks, prompt, (size_t)n_prompt * sizeof *toks);
    int n = n_prompt;
    for (int i = 0; i < max_tokens; i++) {
        mock_reference_logits(m, toks, n, logits);
        for (int b = 0; b < n_bias; b++) logits[bias[b].token] += bias[b].bias;
        if (n_allowed) {
            float keep[V];
            for (int t = 0; t < V; t++) keep[t] = -INFINITY;
            for (int a = 0; a < n_allowed; a++) keep[allowed[a]] = logits[allowed[a]];
            memcpy(logits, keep, sizeof keep);
        }
        g4_sample_history h = {toks, n_prompt, toks + n_prompt, n - n_prompt};
        g4_sample_result r;
        g4_sample_row(smp, logits, sp, seed, &h, &r);
        out[i] = toks[n++] = r.token;
    }
}

/* An engine over the mock whose device sampler counts its calls and refuses: for requests that
 * must take the host-logits path. */
static g4_engine *host_path_engine(mock_exec *m, g4_executor *ex) {
    g4_engine_opts o;
    base_opts(&o, 64, 64);
    mock_exec_init(m, V, BS, WIN, MAXLEN / BS, 64, 64, true);
    mock_exec_bind(m, ex);
    ex->step_sample = refuse_device_step;
    device_calls = 0;
    g4_error err = {{0}};
    g4_engine *e = g4_engine_create(&o, ex, NULL, &err);
    CHECK(e != NULL, "%s", err.msg);
    return e;
}

static void test_processors(void) {
    mock_exec m;
    g4_executor ex;
    g4_engine *e = host_path_engine(&m, &ex); /* every request below must take the host path */
    if (!e) return;
    g4_error err = {{0}};
    g4_sampler smp;
    g4_sampler_init(&smp, V, &err);
    int32_t prompt[9] = {2, 17, 33, 5, 90, 211, 8, 44, 300};
    const g4_logit_bias bias[2] = {{77, 30.0f}, {78, -5.0f}};
    const int32_t allowed[3] = {400, 9, 123};
    struct {
        const g4_logit_bias *b;
        int nb;
        const int32_t *a;
        int na;
        float temp;
    } cases[] = {{bias, 2, NULL, 0, 0.0f},
                 {NULL, 0, allowed, 3, 0.0f},
                 {NULL, 0, allowed, 3, 0.8f},
                 {bias, 1, allowed, 3, 0.8f}};
    for (int c = 0; c < 4; c++) {
        g4_request_params p = {.prompt = prompt,
                               .n_prompt = 9,
                               .on_event = rec_on_event,
                               .logit_bias = cases[c].b,
                               .n_logit_bias = cases[c].nb,
                               .allowed_ids = cases[c].a,
                               .n_allowed_ids = cases[c].na};
        rec r = {0};
        p.user = &r;
        g4_sampling_default(&p.sampling);
        p.sampling.temperature = cases[c].temp;
        p.sampling.has_seed = true;
        p.sampling.seed = 42 + (uint64_t)c;
        p.sampling.logprobs = 2;
        g4_stop_rules_default(&p.stop);
        p.stop.max_tokens = 10;
        p.stop.ignore_eos = true;
        int code = 0;
        CHECK(g4_engine_submit(e, &p, &code, &err) > 0, "case %d submit: %s", c, err.msg);
        g4_engine_wait_idle(e);
        int32_t ref[10];
        reference_processed(&m, &smp, prompt, 9, &p.sampling, p.sampling.seed, 10, cases[c].b, cases[c].nb, cases[c].a,
                            cases[c].na, ref);
        CHECK(r.finish == G4_FINISH_LENGTH && r.n == 10, "case %d: finish %d, %d tokens (%s)", c, r.finish, r.n,
              r.error);
        CHECK(!memcmp(r.toks, ref, sizeof ref), "case %d: tokens differ from the processed reference", c);
        for (int i = 0; i < r.n && cases[c].na; i++)
            CHECK(r.toks[i] == 400 || r.toks[i] == 9 || r.toks[i] == 123, "case %d: token %d not allowed", c,
                  r.toks[i]);
        if (c == 0) CHECK(r.toks[0] == 77, "a +30 bias on 77 did not win the greedy pick (%d)", r.toks[0]);
    }
    CHECK(device_calls == 0, "the device sampler was called %d times", device_calls);
    /* out-of-vocabulary entries are refused at submit */
    g4_logit_bias bad = {V, 1.0f};
    g4_request_params p = {.prompt = prompt,
                           .n_prompt = 9,
                           .on_event = rec_on_event,
                           .logit_bias = &bad,
                           .n_logit_bias = 1};
    rec r = {0};
    p.user = &r;
    g4_sampling_default(&p.sampling);
    g4_stop_rules_default(&p.stop);
    p.stop.max_tokens = 2;
    int code = 0;
    CHECK(g4_engine_submit(e, &p, &code, &err) == 0 && code == G4_ERR_INVALID, "bad logit_bias accepted");
    CHECK(m.faults == 0, "mock faults %ld: %s", m.faults, m.first_fault);
    g4_sampler_free(&smp);
    g4_engine_destroy(e);
    mock_exec_free(&m);
}

/* --- logprob ids ------------------------------------------------------------------------------------ */

#define LPI_TOKENS 12
typedef struct lpi_rec {
    int n, n_top[LPI_TOKENS];
    int32_t toks[LPI_TOKENS], top_ids[LPI_TOKENS][G4_MAX_LOGPROB_IDS];
    float logprob[LPI_TOKENS], top_lps[LPI_TOKENS][G4_MAX_LOGPROB_IDS];
    g4_finish_reason finish;
} lpi_rec;

static void lpi_on_event(void *user, const g4_event *ev) {
    lpi_rec *r = user;
    if (ev->n_tokens == 1 && r->n < LPI_TOKENS) {
        int k = r->n++, n = ev->n_top < G4_MAX_LOGPROB_IDS ? ev->n_top : G4_MAX_LOGPROB_IDS;
        r->toks[k] = ev->token, r->logprob[k] = ev->logprob, r->n_top[k] = ev->n_top;
        memcpy(r->top_ids[k], ev->top_ids, (size_t)n * sizeof *ev->top_ids);
        memcpy(r->top_lps[k], ev->top_logprobs, (size_t)n * sizeof *ev->top_logprobs);
    }
    if (ev->finish != G4_FINISH_NONE) r->finish = ev->finish;
}

/* log_softmax (in double) of the mock's logits after toks[0..n) as sampling.h defines the
 * distribution, written out here: tokens outside `allowed` at −inf, repetition penalty on every
 * token of prompt ∪ output, presence and frequency on output counts, then ÷ temperature. */
static void lpi_reference(const mock_exec *m, const int32_t *toks, int n_prompt, int n, const g4_sampling *sp,
                          const int32_t *allowed, int n_allowed, double *out) {
    float logits[V];
    mock_reference_logits(m, toks, n, logits);
    double z[V];
    int count[V] = {0};
    bool seen[V] = {false};
    for (int i = 0; i < n; i++) seen[toks[i]] = true, count[toks[i]] += i >= n_prompt;
    for (int t = 0; t < V; t++) {
        z[t] = logits[t];
        if (seen[t] && sp->repetition_penalty != 1.0f)
            z[t] = z[t] > 0 ? z[t] / sp->repetition_penalty : z[t] * sp->repetition_penalty;
        if (count[t]) z[t] -= sp->presence_penalty + sp->frequency_penalty * count[t];
        if (sp->temperature > 0) z[t] /= sp->temperature;
    }
    if (n_allowed) {
        double keep[V];
        for (int t = 0; t < V; t++) keep[t] = -INFINITY;
        for (int a = 0; a < n_allowed; a++) keep[allowed[a]] = z[allowed[a]];
        memcpy(z, keep, sizeof keep);
    }
    double mx = -INFINITY, sum = 0;
    for (int t = 0; t < V; t++) mx = z[t] > mx ? z[t] : mx;
    for (int t = 0; t < V; t++) sum += exp(z[t] - mx);
    for (int t = 0; t < V; t++) out[t] = z[t] - mx - log(sum);
}

/* 128 logprob ids (vLLM's limit, beyond the 20 top alternatives): every output position reports
 * each id, in order, with the log_softmax of the distribution its token was drawn from (greedy;
 * temperature with all three penalties; a mask, where excluded ids are −inf); the tokens are those
 * of the same request without them; 129 ids are refused at submit. */
static void test_logprob_ids(void) {
    mock_exec m;
    g4_executor ex;
    g4_engine *e = host_path_engine(&m, &ex); /* logprob ids are computed on the host path */
    if (!e) return;
    g4_error err = {{0}};
    g4_sampler smp;
    g4_sampler_init(&smp, V, &err);
    int32_t prompt[9] = {2, 17, 33, 5, 90, 211, 8, 44, 300};
    int32_t ids[G4_MAX_LOGPROB_IDS + 1];
    for (int i = 0; i <= G4_MAX_LOGPROB_IDS; i++) ids[i] = (3 + 37 * i) % V; /* distinct: 37 is odd, V = 2^9 */
    const int32_t allowed[3] = {ids[5], ids[60], ids[127]};
    struct {
        float temp, rep, pres, freq;
        int n_allowed;
    } cases[] = {{0.0f, 1.0f, 0.0f, 0.0f, 0}, {0.7f, 1.3f, 0.4f, 0.5f, 0}, {0.0f, 1.0f, 0.0f, 0.0f, 3}};
    for (int c = 0; c < 3; c++) {
        lpi_rec *r = calloc(1, sizeof *r);
        g4_request_params p = {.prompt = prompt,
                               .n_prompt = 9,
                               .on_event = lpi_on_event,
                               .user = r,
                               .logprob_ids = ids,
                               .n_logprob_ids = G4_MAX_LOGPROB_IDS,
                               .allowed_ids = allowed,
                               .n_allowed_ids = cases[c].n_allowed};
        g4_sampling_default(&p.sampling);
        p.sampling.temperature = cases[c].temp;
        p.sampling.repetition_penalty = cases[c].rep;
        p.sampling.presence_penalty = cases[c].pres;
        p.sampling.frequency_penalty = cases[c].freq;
        p.sampling.has_seed = true;
        p.sampling.seed = 7 + (uint64_t)c;
        p.sampling.logprobs = 0;
        g4_stop_rules_default(&p.stop);
        p.stop.max_tokens = LPI_TOKENS;
        p.stop.ignore_eos = true;
        int code = 0;
        CHECK(g4_engine_submit(e, &p, &code, &err) > 0, "case %d submit: %s", c, err.msg);
        g4_engine_wait_idle(e);
        int32_t ref[LPI_TOKENS], toks[MAXLEN];
        reference_processed(&m, &smp, prompt, 9, &p.sampling, p.sampling.seed, LPI_TOKENS, NULL, 0, allowed,
                            cases[c].n_allowed, ref);
        CHECK(r->finish == G4_FINISH_LENGTH && r->n == LPI_TOKENS, "case %d: finish %d, %d tokens", c, r->finish, r->n);
        CHECK(!memcmp(r->toks, ref, sizeof ref), "case %d: tokens differ from the request without logprob ids", c);
        memcpy(toks, prompt, sizeof prompt);
        memcpy(toks + 9, r->toks, sizeof r->toks);
        int bad = 0, n_inf = 0;
        for (int k = 0; k < r->n && !bad; k++) {
            double want[V];
            lpi_reference(&m, toks, 9, 9 + k, &p.sampling, allowed, cases[c].n_allowed, want);
            bad = r->n_top[k] != G4_MAX_LOGPROB_IDS || fabs(r->logprob[k] - want[r->toks[k]]) > 1e-4;
            CHECK(!bad, "case %d position %d: %d ids, token logprob %g (want %g)", c, k, r->n_top[k], r->logprob[k],
                  want[r->toks[k]]);
            for (int i = 0; i < G4_MAX_LOGPROB_IDS && !bad; i++) {
                float got = r->top_lps[k][i];
                bad = r->top_ids[k][i] != ids[i] ||
                      (isinf(want[ids[i]]) ? got != -INFINITY : !(fabs(got - want[ids[i]]) <= 1e-4));
                n_inf += got == -INFINITY;
                CHECK(!bad, "case %d position %d: entry %d is id %d logprob %g (want id %d, %g)", c, k, i,
                      r->top_ids[k][i], got, ids[i], want[ids[i]]);
            }
        }
        CHECK(cases[c].n_allowed ? n_inf == LPI_TOKENS * (G4_MAX_LOGPROB_IDS - 3) : n_inf == 0,
              "case %d: %d masked entries", c, n_inf);
        free(r);
    }
    CHECK(device_calls == 0, "the device sampler was called %d times", device_calls);
    lpi_rec r129 = {0};
    g4_request_params p = {.prompt = prompt,
                           .n_prompt = 9,
                           .on_event = lpi_on_event,
                           .user = &r129,
                           .logprob_ids = ids,
                           .n_logprob_ids = G4_MAX_LOGPROB_IDS + 1};
    g4_sampling_default(&p.sampling);
    p.sampling.logprobs = 0;
    g4_stop_rules_default(&p.stop);
    p.stop.max_tokens = 2;
    int code = 0;
    CHECK(g4_engine_submit(e, &p, &code, &err) == 0 && code == G4_ERR_INVALID && strstr(err.msg, "128"),
          "129 logprob ids: code %d (%s)", code, err.msg);
    CHECK(m.faults == 0, "mock faults %ld: %s", m.faults, m.first_fault);
    g4_sampler_free(&smp);
    g4_engine_destroy(e);
    mock_exec_free(&m);
}

/* --- prompt logprobs -------------------------------------------------------------------------------- */

static void check_plp(const mock_exec *m, const int32_t *prompt, int n_prompt, int top, const rec *r,
                      const char *what) {
    CHECK(r->n_plp == n_prompt - 1 && !r->plp_after_token, "%s: %d prompt logprobs for %d tokens (after token %d)",
          what, r->n_plp, n_prompt, r->plp_after_token);
    float logits[V];
    int bad = 0;
    for (int i = 0; i < r->n_plp && !bad; i++) {
        const g4_prompt_logprob *p = &r->plp[i];
        int pos = i + 1;
        mock_reference_logits(m, prompt, pos, logits);
        double mx = logits[0], sum = 0;
        for (int t = 1; t < V; t++) mx = logits[t] > mx ? logits[t] : mx;
        for (int t = 0; t < V; t++) sum += exp(logits[t] - mx);
        double want = logits[prompt[pos]] - mx - log(sum);
        int rank = 1;
        for (int t = 0; t < V; t++) rank += logits[t] > logits[prompt[pos]];
        int best = 0;
        for (int t = 1; t < V; t++) best = logits[t] > logits[best] ? t : best;
        bad = p->pos != pos || p->token != prompt[pos] || fabs(p->logprob - want) > 1e-4 || p->rank != rank ||
              p->n_top != top || (top > 0 && p->top_ids[0] != best);
        CHECK(!bad, "%s: position %d: pos %d token %d logprob %g (want %g) rank %d (want %d) top %d (%d)", what, pos,
              p->pos, p->token, p->logprob, want, p->rank, rank, p->n_top ? p->top_ids[0] : -1, best);
    }
}

static void test_prompt_logprobs(void) {
    g4_engine_opts o;
    base_opts(&o, 64, 64);
    mock_exec m;
    mock_exec_init(&m, V, BS, WIN, MAXLEN / BS, 64, 64, true);
    g4_executor ex;
    mock_exec_bind(&m, &ex);
    g4_error err = {{0}};
    g4_engine *e = g4_engine_create(&o, &ex, NULL, &err);
    CHECK(e != NULL, "%s", err.msg);
    if (!e) return;
    int32_t a[40], b[44];
    for (int i = 0; i < 40; i++) a[i] = 5 + i * 7 % 500;
    for (int i = 0; i < 44; i++) b[i] = 11 + i * 13 % 480;
    rec ra = {0}, rb = {0}, ra2 = {0};
    g4_request_params p = {.on_event = rec_on_event, .prompt_logprobs = true, .prompt_logprobs_top = 3};
    g4_sampling_default(&p.sampling);
    g4_stop_rules_default(&p.stop);
    p.stop.max_tokens = 4;
    p.stop.ignore_eos = true;
    int code = 0;
    /* two at once: 39 + 43 rows > 64, so the second one's prefill is cut over two steps */
    p.prompt = a, p.n_prompt = 40, p.user = &ra;
    CHECK(g4_engine_submit(e, &p, &code, &err) > 0, "submit: %s", err.msg);
    p.prompt = b, p.n_prompt = 44, p.user = &rb;
    CHECK(g4_engine_submit(e, &p, &code, &err) > 0, "submit: %s", err.msg);
    g4_engine_wait_idle(e);
    check_plp(&m, a, 40, 3, &ra, "a");
    check_plp(&m, b, 44, 3, &rb, "b");
    /* the same prompt again: its blocks are cached, but every position is still reported */
    p.prompt = a, p.n_prompt = 40, p.user = &ra2;
    CHECK(g4_engine_submit(e, &p, &code, &err) > 0, "submit: %s", err.msg);
    g4_engine_wait_idle(e);
    check_plp(&m, a, 40, 3, &ra2, "a again");
    g4_sampler smp;
    g4_sampler_init(&smp, V, &err);
    int32_t ref[4];
    reference(&m, &smp, a, 40, &p.sampling, 0, 4, ref);
    CHECK(ra.n == 4 && !memcmp(ra.toks, ref, sizeof ref) && !memcmp(ra2.toks, ref, sizeof ref),
          "tokens after prompt logprobs differ from the reference");
    CHECK(m.faults == 0, "mock faults %ld: %s", m.faults, m.first_fault);
    g4_sampler_free(&smp);
    g4_engine_destroy(e);
    mock_exec_free(&m);
}

/* --- scheduler cost --------------------------------------------------------------------------------- */

static void test_cost(void) {
    enum { N = 256, VC = 256 };
    g4_engine_opts o;
    static const int32_t eos[1] = {1};
    o = (g4_engine_opts){.max_running = N,
                         .max_waiting = N,
                         .max_model_len = 512,
                         .step_token_budget = 2048,
                         .block_size = 16,
                         .n_blocks_sliding = N * 4,
                         .n_blocks_global = N * 32,
                         .sliding_window = 32,
                         .prefix_cache = true,
                         .eos_ids = eos,
                         .n_eos = 1,
                         .seed = 1};
    mock_exec m;
    mock_exec_init(&m, VC, 16, 32, 32, 1, 1, false);
    g4_executor ex;
    mock_exec_bind(&m, &ex);
    g4_error err = {{0}};
    g4_engine *e = g4_engine_create(&o, &ex, NULL, &err);
    CHECK(e != NULL, "%s", err.msg);
    if (!e) return;
    rec *r = calloc(N, sizeof *r);
    int32_t prompt[8];
    for (int i = 0; i < N; i++) {
        for (int j = 0; j < 8; j++) prompt[j] = 2 + (i * 8 + j) % (VC - 2);
        int code;
        submit(e, prompt, 8, 300, 0, &r[i], &code, &err);
    }
    g4_engine_wait_idle(e);
    g4_engine_stats st;
    g4_engine_stats_get(e, &st);
    int done = 0;
    for (int i = 0; i < N; i++) done += r[i].n == 300;
    CHECK(done == N, "%d of %d finished", done, N);
    double per = st.sched_seconds / (double)st.steps * 1e6, samp = st.sample_seconds / (double)st.steps * 1e6;
    printf("scheduler cost: %llu steps, %.1f µs engine CPU per step with %d running (null model, vocab %d), "
           "of which sampling %.1f µs; scheduling alone %.1f µs (goal < 100)\n",
           (unsigned long long)st.steps, per, N, VC, samp, per - samp);
    g4_engine_destroy(e);
    mock_exec_free(&m);
    free(r);
}

int main(void) {
    test_limits();
    test_stop_strings();
    test_prefix();
    test_processors();
    test_logprob_ids();
    test_prompt_logprobs();
    test_soak();
    test_cost();
    return check_summary();
}
