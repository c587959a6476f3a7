/* test_engine_spec.c — speculative decoding (n-gram proposals) in the engine on the tiny random
 * checkpoints (CPU backend), always against the same requests served with speculation off:
 *   greedy        64 concurrent requests of mixed kinds (random, repeated phrases, a small
 *                 alphabet, shared prefixes), chunked prefill (budget 64), stop strings and
 *                 stop ids placed on accepted proposals that had more after them in their step,
 *                 max_tokens cut there, served twice (the second time from the prefix cache):
 *                 tokens, finish reasons and text identical; the stops did land inside accepted
 *                 runs (steps are numbered by a wrapped executor), max_tokens never does
 *   seeded        temperature / top-k / top-p sampling with repetition, presence and frequency
 *                 penalties, logprobs, and logit_bias on some requests (host-sampled steps):
 *                 tokens and logprobs identical (the draw is keyed by the output index)
 *   starved       pools far too small: preemptions happen, outputs identical
 *   cancel        half the requests cancelled while proposals are being accepted
 *   draft model   the target as its own draft (every verified proposal accepted) and another
 *                 checkpoint as the draft, greedy and seeded, with chunked prefill and prefix hits
 *   switch-off    disable_by_batch_size = 1: nothing proposed; the draft method without a draft
 *                 executor and bad ranges are refused
 *   policy        the proposal length for given acceptance rates, the default switch-off limit,
 *                 the counters one verification adds
 * Every run ends with every KV block free; the counters are consistent (accepted ≤ proposed,
 * per-position counts non-increasing and summing to the accepted count, the requests' own totals
 * summing to the engine's) and not vacuous (proposals made and accepted). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/backend.h"
#include "check.h"
#include "engine/engine.h"
#include "engine/spec.h"
#include "engine/spec_draft.h"
#include "engine_test_util.h"
#include "model/gemma4.h"
#include "model/testmodel.h"
#include "tiny_model.h"

#define N_REQ 64
#define MAX_PROMPT 96
#define VOCAB 4096 /* a small vocabulary: faster steps, and outputs that repeat */

typedef struct req {
    int32_t prompt[MAX_PROMPT];
    int n_prompt, max_tokens, min_tokens;
    g4_sampling sp;
    char stop_str[32];       /* "" = none */
    int32_t stop_id;         /* −1 = none */
    g4_logit_bias bias[2];
    int n_bias;
    rec r;
    uint64_t tok_step[REC_MAX_TOKENS]; /* the step each event came from */
    int n_steps;             /* distinct steps with an event */
} req;

/* The executor, wrapped to number the steps: events are delivered on the engine thread after
 * their step, so an event knows which step it came from. Tokens of one request from one step
 * are proposals accepted in it, and the token after them. */
static g4_executor g_inner;
static uint64_t g_step;

static int counted_step(void *ctx, const g4_step *st, float *logits, g4_error *err) {
    g_step++;
    return g_inner.step(ctx, st, logits, err);
}
static int counted_step_sample(void *ctx, const g4_step *st, const g4_sample_params *p, size_t bytes, int32_t *tokens,
                               g4_sample_logprobs *lp, int n_lp, g4_error *err) {
    g_step++;
    return g_inner.step_sample(ctx, st, p, bytes, tokens, lp, n_lp, err);
}

static void on_event(void *user, const g4_event *ev) {
    req *q = user;
    if (q->r.n_events < REC_MAX_TOKENS) q->tok_step[q->r.n_events] = g_step;
    if (!q->r.n_events || q->tok_step[q->r.n_events - 1] != g_step) q->n_steps++;
    rec_on_event(&q->r, ev);
}

/* Whether the request ended on a proposal that was accepted (more would have followed in its
 * step). Every step's events are the step's accepted proposals and one more token, except that
 * the last step may end on an accepted proposal: accepted − Σ(events per step − 1) = 1 then. */
static bool ended_in_run(const req *q) { return q->r.spec_accepted - (q->r.n_events - q->n_steps) == 1; }

static uint64_t g_weight_seed = 11; /* of the checkpoint open_model writes */

static g4_model *open_model(const char *kind, const char *dir, g4_backend *be, int n_s, int n_g, int max_seqs) {
    tiny_model_opts t = {kind, g_weight_seed, VOCAB, max_seqs, 160, n_s, n_g};
    g4_error err = {{0}};
    g4_model *m = tiny_model_open(&t, dir, be, &err);
    CHECK(m, "%s: %s", kind, err.msg);
    return m;
}

typedef struct run_opts {
    bool spec, prefix;
    int budget;              /* 0 = the model's */
    int disable_by_batch_size;
    int passes;              /* the batch served this many times in a row on one engine */
    g4_model *draft;         /* the draft model (method G4_SPEC_DRAFT), NULL = n-gram */
} run_opts;

/* Serves reqs (all submitted together) `passes` times; records the last pass in reqs[i].r. */
static void serve(g4_model *m, const run_opts *ro, req *reqs, int n, g4_engine_stats *st) {
    g4_engine_opts o;
    g4_engine_opts_from_model(&o, m);
    o.prefix_cache = ro->prefix;
    o.seed = 99;
    if (ro->budget) o.step_token_budget = ro->budget;
    if (ro->spec)
        o.spec = (g4_spec_config){.method = G4_SPEC_NGRAM,
                                  .num_speculative_tokens = 4,
                                  .prompt_lookup_min = 1,
                                  .prompt_lookup_max = 3,
                                  .disable_by_batch_size = ro->disable_by_batch_size};
    g4_executor ex, dex;
    if (ro->draft) {
        g4_error derr = {{0}};
        CHECK(g4_spec_draft_check(m, ro->draft, &derr) == 0, "draft check: %s", derr.msg);
        g4_executor_local(&dex, ro->draft);
        o.spec.method = G4_SPEC_DRAFT;
        o.spec_draft = &dex;
    }
    g4_executor_local(&g_inner, m);
    ex = g_inner;
    ex.step = counted_step;
    if (ex.step_sample) ex.step_sample = counted_step_sample;
    g4_detok_iface dt = fake_detok();
    g4_error err = {{0}};
    g4_engine *e = g4_engine_create(&o, &ex, &dt, &err);
    CHECK(e != NULL, "engine: %s", err.msg);
    if (!e) return;
    for (int pass = 0; pass < (ro->passes ? ro->passes : 1); pass++) {
        for (int i = 0; i < n; i++) {
            req *q = &reqs[i];
            memset(&q->r, 0, sizeof q->r);
            q->n_steps = 0;
            const char *ss[1] = {q->stop_str};
            g4_request_params p = {.prompt = q->prompt,
                                   .n_prompt = q->n_prompt,
                                   .sampling = q->sp,
                                   .logit_bias = q->bias,
                                   .n_logit_bias = q->n_bias,
                                   .on_event = on_event,
                                   .user = q};
            g4_stop_rules_default(&p.stop);
            p.stop.max_tokens = q->max_tokens;
            p.stop.min_tokens = q->min_tokens;
            if (q->stop_str[0]) p.stop.stop_strings = ss, p.stop.n_stop_strings = 1;
            if (q->stop_id >= 0) p.stop.stop_ids = &q->stop_id, p.stop.n_stop_ids = 1;
            int code = 0;
            CHECK(g4_engine_submit(e, &p, &code, &err) != 0, "submit: %s", err.msg);
        }
        g4_engine_wait_idle(e);
    }
    g4_engine_stats_get(e, st);
    CHECK(st->blocks_sliding_used == 0 && st->blocks_global_used == 0, "blocks still used: %d sliding, %d global",
          st->blocks_sliding_used, st->blocks_global_used);
    g4_engine_destroy(e);
}

/* Counters: consistent with each other and with the requests' last events (last pass only when
 * passes = 1). Returns the accepted tokens. */
static uint64_t check_counters(const g4_engine_stats *st, const req *reqs, int n, bool per_request, const char *what) {
    CHECK(st->spec_accepted_tokens <= st->spec_draft_tokens, "%s: accepted %llu > proposed %llu", what,
          (unsigned long long)st->spec_accepted_tokens, (unsigned long long)st->spec_draft_tokens);
    CHECK(st->spec_draft_tokens <= (uint64_t)G4_SPEC_MAX_TOKENS * st->spec_drafts, "%s: tokens per proposal", what);
    uint64_t sum = 0;
    for (int i = 0; i < G4_SPEC_MAX_TOKENS; i++) {
        sum += st->spec_accepted_per_pos[i];
        CHECK(i == 0 ? st->spec_accepted_per_pos[0] <= st->spec_drafts
                     : st->spec_accepted_per_pos[i] <= st->spec_accepted_per_pos[i - 1],
              "%s: accepted at position %d grows", what, i);
    }
    CHECK(sum == st->spec_accepted_tokens, "%s: per-position sum %llu ≠ accepted %llu", what, (unsigned long long)sum,
          (unsigned long long)st->spec_accepted_tokens);
    if (per_request) {
        uint64_t d = 0, a = 0;
        for (int i = 0; i < n; i++) {
            d += (uint64_t)reqs[i].r.spec_draft, a += (uint64_t)reqs[i].r.spec_accepted;
            CHECK(reqs[i].r.spec_accepted <= reqs[i].r.spec_draft, "%s: request %d accepted > proposed", what, i);
            CHECK(reqs[i].r.spec_accepted < reqs[i].r.n_events, "%s: request %d accepted more than it output", what, i);
        }
        CHECK(d == st->spec_draft_tokens && a == st->spec_accepted_tokens,
              "%s: requests' totals %llu / %llu ≠ engine's %llu / %llu", what, (unsigned long long)d,
              (unsigned long long)a, (unsigned long long)st->spec_draft_tokens,
              (unsigned long long)st->spec_accepted_tokens);
    }
    printf("%s: %llu proposals, %llu tokens proposed, %llu accepted (per position:", what,
           (unsigned long long)st->spec_drafts, (unsigned long long)st->spec_draft_tokens,
           (unsigned long long)st->spec_accepted_tokens);
    for (int i = 0; i < 4; i++) printf(" %llu", (unsigned long long)st->spec_accepted_per_pos[i]);
    printf("), %llu steps, %llu preemptions, %llu prefix-hit tokens\n", (unsigned long long)st->steps,
           (unsigned long long)st->preemptions, (unsigned long long)st->prefix_hit_tokens);
    return st->spec_accepted_tokens;
}

/* Same tokens, logprobs, finish, stop and text as the reference. */
static void compare(const rec *ref, const req *reqs, int n, const char *what) {
    int same = 0;
    for (int i = 0; i < n; i++) {
        const rec *a = &ref[i], *b = &reqs[i].r;
        int ok = a->n == b->n && a->finish == b->finish && a->n_finish == 1 && b->n_finish == 1 &&
                 a->stop_token == b->stop_token && !strcmp(a->stop_string, b->stop_string) &&
                 !memcmp(a->toks, b->toks, (size_t)a->n * sizeof *a->toks) &&
                 !memcmp(a->logprob, b->logprob, (size_t)a->n * sizeof *a->logprob) && !strcmp(a->text, b->text) &&
                 a->completion_tokens == b->completion_tokens;
        same += ok;
        if (!ok)
            fprintf(stderr, "%s request %d: off %d tokens (finish %d), on %d (finish %d)\n", what, i, a->n, a->finish,
                    b->n, b->finish);
    }
    printf("%s: %d/%d requests identical with speculation on and off\n", what, same, n);
    CHECK(same == n, "%s: %d of %d requests differ", what, n - same, n);
}

/* Mixed prompts: random; a phrase repeated; a small alphabet; a shared 40-token prefix. */
static void make_reqs(req *reqs, int n, uint64_t seed, bool sample) {
    int32_t shared[40];
    for (int j = 0; j < 40; j++) shared[j] = rng_int(&seed, 2, VOCAB - 1);
    for (int i = 0; i < n; i++) {
        req *q = &reqs[i];
        memset(q, 0, sizeof *q);
        q->n_prompt = rng_int(&seed, 6, 80);
        int32_t phrase[8], n_phrase = rng_int(&seed, 2, 8), alpha[3];
        for (int j = 0; j < 8; j++) phrase[j] = rng_int(&seed, 2, VOCAB - 1);
        for (int j = 0; j < 3; j++) alpha[j] = rng_int(&seed, 2, VOCAB - 1);
        for (int j = 0; j < q->n_prompt; j++) {
            switch (i % 4) {
            case 0: q->prompt[j] = rng_int(&seed, 2, VOCAB - 1); break;
            case 1: q->prompt[j] = phrase[j % n_phrase]; break;
            case 2: q->prompt[j] = alpha[rng_int(&seed, 0, 2)]; break;
            default: q->prompt[j] = j < 40 ? shared[j] : phrase[j % n_phrase]; break;
            }
        }
        q->max_tokens = rng_int(&seed, 1, 60);
        q->stop_id = -1;
        g4_sampling_default(&q->sp);
        q->sp.logprobs = i % 3 ? -1 : 2;
        if (sample) {
            q->sp.temperature = i % 2 ? 0.4f : 1.0f;
            q->sp.top_k = i % 5 ? 40 : 0;
            q->sp.top_p = 0.9f;
            q->sp.has_seed = i % 7 != 0; /* the others are seeded by the engine's seed and their id */
            q->sp.seed = rng_next(&seed);
            if (i % 3 == 1) q->sp.repetition_penalty = 1.2f;
            if (i % 5 == 2) q->sp.presence_penalty = 0.3f, q->sp.frequency_penalty = 0.2f;
            if (i % 4 == 3) {
                q->bias[0] = (g4_logit_bias){.token = q->prompt[0], .bias = 2.0f};
                q->bias[1] = (g4_logit_bias){.token = 5, .bias = -1.0f};
                q->n_bias = 2;
            }
        }
    }
}

static bool seen_before(const req *q, int m) {
    for (int j = 0; j < m; j++)
        if (q->r.toks[j] == q->r.toks[m]) return true;
    return false;
}

/* The first output token m ≥ 2 that was an accepted proposal with more tokens after it in its
 * step (and, with fresh, whose token did not come earlier in the output), else −1. */
static int first_in_run(const req *q, bool fresh) {
    for (int m = 2; m + 1 < q->r.n; m++)
        if (q->tok_step[m] == q->tok_step[m + 1] && !(fresh && seen_before(q, m))) return m;
    return -1;
}

/* Requests whose stop id could be placed on a fresh token inside an accepted run (place_stops). */
static int g_fresh_stop_ids;

/* Stop rules placed on a run with speculation: on every fourth request (stop strings and stop
 * ids in turn) at an output token m inside an accepted run, else at token 5; max_tokens cut
 * there on a few others. A stop string gets min_tokens m, so earlier occurrences do not count
 * (token m is the first that may stop: vLLM's count). A stop id is masked from sampling until
 * min_tokens, which would change an output that had it earlier: it goes on a token that is new
 * to the output (min_tokens 0) where there is one in a run (n-gram proposals mostly repeat
 * earlier output), else on the first token of a run with min_tokens m. */
static void place_stops(req *reqs, int n) {
    g_fresh_stop_ids = 0;
    for (int i = 0; i < n; i++) {
        req *q = &reqs[i];
        if (i % 4 != 1 && i % 8 != 6) continue;
        bool id_rule = i % 8 == 5;
        int m = id_rule ? first_in_run(q, true) : -1;
        bool fresh = m >= 0;
        if (m < 0) m = first_in_run(q, false);
        if (m < 0) m = 5;
        if (m >= q->r.n) continue;
        if (i % 8 == 6) {
            q->max_tokens = m + 1;
            continue;
        }
        q->min_tokens = fresh ? 0 : m;
        g_fresh_stop_ids += fresh;
        if (i % 8 == 1) snprintf(q->stop_str, sizeof q->stop_str, "<%d>", q->r.toks[m]);
        else q->stop_id = q->r.toks[m];
    }
}

static void test_greedy(const char *dir) {
    g4_error err = {{0}};
    g4_backend *be = g4_backend_cpu_create(&err);
    g4_model *m = open_model("tiny-dense", dir, be, 0, 0, N_REQ);
    if (!m) return;
    req *reqs = calloc(N_REQ, sizeof *reqs);
    rec *ref = calloc(N_REQ, sizeof *ref);
    make_reqs(reqs, N_REQ, 4, false);
    g4_engine_stats st;
    run_opts on = {.spec = true, .prefix = false, .budget = 64, .disable_by_batch_size = 1000, .passes = 1};
    serve(m, &on, reqs, N_REQ, &st); /* the outputs to place stop rules on */
    place_stops(reqs, N_REQ);
    run_opts off = {.prefix = true, .budget = 64, .passes = 1};
    serve(m, &off, reqs, N_REQ, &st);
    int stopped = 0;
    for (int i = 0; i < N_REQ; i++) ref[i] = reqs[i].r, stopped += ref[i].finish == G4_FINISH_STOP;
    CHECK(st.spec_drafts == 0, "proposals with speculation off");
    CHECK(stopped >= 8, "only %d requests stopped on a stop rule", stopped);
    for (int pass = 0; pass < 2; pass++) {
        /* twice on one engine (the second time from the prefix cache), and without the cache */
        on.prefix = pass == 0, on.passes = pass == 0 ? 2 : 1;
        const char *what = pass == 0 ? "greedy (second pass, prefix cache)" : "greedy (no prefix cache)";
        serve(m, &on, reqs, N_REQ, &st);
        compare(ref, reqs, N_REQ, what);
        CHECK(pass == 1 || st.prefix_hit_tokens > 0, "no prefix hits");
        uint64_t acc = check_counters(&st, reqs, N_REQ, pass == 1, what);
        CHECK(acc > 0 && st.spec_draft_tokens > acc, "%s: proposals accepted %llu of %llu: vacuous", what,
              (unsigned long long)acc, (unsigned long long)st.spec_draft_tokens);
        int in_run_[4] = {0}, *in_run = in_run_ + 1, cut = 0; /* (eos), stop string, stop id, max_tokens */
        for (int i = 0; i < N_REQ; i++) {
            const req *q = &reqs[i];
            if (ended_in_run(q))
                in_run[q->r.finish == G4_FINISH_LENGTH ? 2 : q->stop_str[0] ? 0 : q->stop_id >= 0 ? 1 : -1]++;
            int k = q->r.n_events;
            cut += q->r.finish == G4_FINISH_LENGTH && k > 1 && q->tok_step[k - 1] == q->tok_step[k - 2];
        }
        printf("%s: ended on an accepted proposal with more after it: %d by a stop string, %d by a stop id (%d "
               "placed on a new token in a run), %d by max_tokens; %d reached max_tokens in a step with accepted "
               "proposals\n",
               what, in_run[0], in_run[1], g_fresh_stop_ids, in_run[2], cut);
        CHECK(in_run[0] > 0 && (in_run[1] > 0 || !g_fresh_stop_ids),
              "%s: no stop string / stop id inside an accepted run", what);
        /* proposals stop at the cap, so max_tokens falls on the token after them, never inside */
        CHECK(in_run[2] == 0 && cut > 0, "%s: max_tokens: %d inside a run, %d after one", what, in_run[2], cut);
    }
    free(ref);
    free(reqs);
    g4_model_close(m);
    g4_backend_destroy(be);
}

static void test_seeded(const char *dir) {
    g4_error err = {{0}};
    g4_backend *be = g4_backend_cpu_create(&err);
    g4_model *m = open_model("tiny-moe", dir, be, 0, 0, N_REQ);
    if (!m) return;
    req *reqs = calloc(N_REQ, sizeof *reqs);
    rec *ref = calloc(N_REQ, sizeof *ref);
    /* without logit_bias every row is sampled on the backend (all rows of a step at once); with
     * it, steps holding a biased request sample host logits (row by row, after the emission) */
    for (int host = 0; host < 2; host++) {
        make_reqs(reqs, N_REQ, 5, true);
        for (int i = 0; i < N_REQ && !host; i++) reqs[i].n_bias = 0;
        g4_engine_stats st;
        run_opts off = {.prefix = true, .budget = 96};
        serve(m, &off, reqs, N_REQ, &st);
        for (int i = 0; i < N_REQ; i++) ref[i] = reqs[i].r;
        run_opts on = {.spec = true, .prefix = true, .budget = 96, .disable_by_batch_size = 1000};
        serve(m, &on, reqs, N_REQ, &st);
        const char *what = host ? "seeded, penalties, logit_bias (host rows)" : "seeded, penalties (backend rows)";
        compare(ref, reqs, N_REQ, what);
        uint64_t acc = check_counters(&st, reqs, N_REQ, true, what);
        CHECK(acc > 0, "%s: nothing accepted", what);
    }
    free(ref);
    free(reqs);
    g4_model_close(m);
    g4_backend_destroy(be);
}

static void test_starved(const char *dir) {
    g4_error err = {{0}};
    g4_backend *be = g4_backend_cpu_create(&err);
    /* as test_engine_model's starved case: 12 requests of 32 + 24 tokens in 12 + 16 blocks of 16 */
    g4_model *m = open_model("tiny-dense", dir, be, 12, 16, 16);
    if (!m) return;
    enum { N = 12 };
    req *reqs = calloc(N, sizeof *reqs);
    rec *ref = calloc(N, sizeof *ref);
    make_reqs(reqs, N, 9, false);
    for (int i = 0; i < N; i++) {
        req *q = &reqs[i];
        for (int j = q->n_prompt; j < 32; j++) q->prompt[j] = q->prompt[j % q->n_prompt];
        q->n_prompt = 32, q->max_tokens = 24;
    }
    g4_engine_stats st;
    run_opts off = {.prefix = false};
    serve(m, &off, reqs, N, &st);
    for (int i = 0; i < N; i++) ref[i] = reqs[i].r;
    run_opts on = {.spec = true, .prefix = false, .disable_by_batch_size = 1000};
    serve(m, &on, reqs, N, &st);
    compare(ref, reqs, N, "starved memory");
    CHECK(st.preemptions > 0, "no preemption with a starved pool");
    uint64_t acc = check_counters(&st, reqs, N, true, "starved");
    CHECK(acc > 0, "starved: nothing accepted");
    free(ref);
    free(reqs);
    g4_model_close(m);
    g4_backend_destroy(be);
}

/* Cancellation while requests speculate: half are cancelled once proposals are being accepted;
 * they end with ABORT, the others run to their end, and every block is free afterwards. */
static void test_cancel(const char *dir) {
    g4_error err = {{0}};
    g4_backend *be = g4_backend_cpu_create(&err);
    g4_model *m = open_model("tiny-dense", dir, be, 0, 0, 16);
    if (!m) return;
    enum { N = 16 };
    req *reqs = calloc(N, sizeof *reqs);
    make_reqs(reqs, N, 12, false);
    g4_engine_opts o;
    g4_engine_opts_from_model(&o, m);
    o.prefix_cache = true;
    o.spec = (g4_spec_config){.method = G4_SPEC_NGRAM,
                              .num_speculative_tokens = 4,
                              .prompt_lookup_min = 1,
                              .prompt_lookup_max = 3};
    g4_executor ex;
    g4_executor_local(&ex, m);
    g4_engine *e = g4_engine_create(&o, &ex, NULL, &err);
    CHECK(e != NULL, "engine: %s", err.msg);
    if (!e) return;
    uint64_t ids[N];
    for (int i = 0; i < N; i++) {
        req *q = &reqs[i];
        q->max_tokens = 60;
        g4_request_params p = {.prompt = q->prompt,
                               .n_prompt = q->n_prompt,
                               .sampling = q->sp,
                               .on_event = on_event,
                               .user = q};
        g4_stop_rules_default(&p.stop);
        p.stop.max_tokens = q->max_tokens;
        p.stop.ignore_eos = true;
        int code = 0;
        ids[i] = g4_engine_submit(e, &p, &code, &err);
        CHECK(ids[i] != 0, "submit: %s", err.msg);
    }
    g4_engine_stats st;
    for (int t = 0; t < 20000; t++) { /* up to 20 s for the first accepted proposal */
        g4_engine_stats_get(e, &st);
        if (st.spec_accepted_tokens > 0 || !st.running) break;
        usleep(1000);
    }
    for (int i = 0; i < N; i += 2) g4_engine_cancel(e, ids[i]);
    g4_engine_wait_idle(e);
    g4_engine_stats_get(e, &st);
    int aborted = 0, complete = 0;
    for (int i = 0; i < N; i++) {
        aborted += reqs[i].r.finish == G4_FINISH_ABORT;
        complete += reqs[i].r.finish == G4_FINISH_LENGTH && reqs[i].r.n == 60;
        CHECK(reqs[i].r.n_finish == 1, "request %d: %d last events", i, reqs[i].r.n_finish);
    }
    printf("cancel: %d aborted, %d complete, %llu accepted when cancelled\n", aborted, complete,
           (unsigned long long)st.spec_accepted_tokens);
    CHECK(aborted > 0 && complete >= N / 2 && aborted + complete == N, "cancel: %d aborted, %d complete", aborted,
          complete);
    CHECK(st.blocks_sliding_used == 0 && st.blocks_global_used == 0, "cancel: blocks left %d %d",
          st.blocks_sliding_used, st.blocks_global_used);
    g4_engine_destroy(e);
    free(reqs);
    g4_model_close(m);
    g4_backend_destroy(be);
}

/* The draft-model method: the target itself as its own draft (its own KV bytes) must have every
 * proposal that was verified accepted — which holds only if the draft's KV follows the target's
 * positions exactly — and a different checkpoint as the draft gives partial acceptance; outputs
 * equal speculation off in both cases, greedy and seeded, with chunked prefill and prefix hits. */
static void test_draft(const char *dir, const char *other) {
    g4_error err = {{0}};
    g4_backend *be = g4_backend_cpu_create(&err);
    g4_model *m = open_model("tiny-dense", dir, be, 0, 0, 32);
    g4_model *same = open_model("tiny-dense", dir, be, 0, 0, 32);
    g_weight_seed = 12;
    g4_model *diff = open_model("tiny-dense", other, be, 0, 0, 32);
    g_weight_seed = 11;
    if (!m || !same || !diff) return;
    enum { N = 16 }; /* small: a draft pass is a model step of its own */
    req *reqs = calloc(N, sizeof *reqs);
    rec *ref = calloc(N, sizeof *ref);
    for (int sample = 0; sample < 2; sample++) {
        make_reqs(reqs, N, 21, sample);
        for (int i = 0; i < N; i++) reqs[i].n_bias = 0;
        g4_engine_stats st;
        run_opts off = {.prefix = true, .budget = 64};
        serve(m, &off, reqs, N, &st);
        for (int i = 0; i < N; i++) ref[i] = reqs[i].r;
        for (int d = 0; d < 2; d++) {
            char what[96];
            snprintf(what, sizeof what, "draft model (%s, %s)", d ? "another checkpoint" : "the target itself",
                     sample ? "seeded sampling" : "greedy");
            run_opts on = {.spec = true,
                           .prefix = true,
                           .budget = 64,
                           .disable_by_batch_size = 1000,
                           .passes = sample ? 1 : 2, /* sampled: unseeded requests take their seed from their id */
                           .draft = d ? diff : same};
            serve(m, &on, reqs, N, &st);
            compare(ref, reqs, N, what);
            check_counters(&st, reqs, N, false, what);
            CHECK(st.spec_accepted_tokens > 0, "%s: nothing accepted", what);
            /* a verified proposal is rejected only where the draft disagrees with the target */
            uint64_t rejected = st.spec_drafts - st.spec_accepted_per_pos[0];
            if (!d && !sample)
                CHECK(rejected == 0, "%s: %llu proposals rejected at their first token", what,
                      (unsigned long long)rejected);
            if (d && !sample) CHECK(rejected > 0, "%s: another checkpoint agrees everywhere", what);
        }
        if (sample) continue;
        /* Stop ids inside accepted runs: the target drafting for itself accepts long runs of
         * tokens new to the output (n-gram runs repeat earlier output, test_greedy), so stop ids
         * placed there end the output inside a run, as without speculation. */
        run_opts on = {.spec = true, .prefix = true, .budget = 64, .disable_by_batch_size = 1000, .draft = same};
        serve(m, &on, reqs, N, &st); /* the runs to place the stops on */
        place_stops(reqs, N);
        serve(m, &off, reqs, N, &st);
        for (int i = 0; i < N; i++) ref[i] = reqs[i].r;
        serve(m, &on, reqs, N, &st);
        compare(ref, reqs, N, "draft model with stop rules");
        int ids_in_run = 0;
        for (int i = 0; i < N; i++)
            ids_in_run += reqs[i].stop_id >= 0 && reqs[i].r.finish == G4_FINISH_STOP && ended_in_run(&reqs[i]);
        printf("draft model with stop rules: %d stop ids placed on new tokens in runs, %d ended inside a run\n",
               g_fresh_stop_ids, ids_in_run);
        CHECK(g_fresh_stop_ids > 0 && ids_in_run > 0, "draft model: no stop id inside an accepted run (%d placed)",
              g_fresh_stop_ids);
    }
    free(ref);
    free(reqs);
    g4_model_close(diff);
    g4_model_close(same);
    g4_model_close(m);
    g4_backend_destroy(be);
}

/* The policy's formulas (spec.h) against direct values. */
static void test_policy(void) {
    g4_seq q = {0};
    CHECK(g4_spec_seq_len(&q, 4) == 4, "no verification yet: k");
    float alpha[] = {0.0f, 0.5f, 2.0f / 3.0f, 0.8f, 0.95f};
    int want[] = {1, 2, 3, 5, 8};
    for (int i = 0; i < 5; i++) {
        q.spec_tries = 30.0f, q.spec_hits = alpha[i] * 30.0f + 1e-4f;
        CHECK(g4_spec_seq_len(&q, 8) == want[i], "alpha %.2f: %d proposals, want %d", alpha[i], g4_spec_seq_len(&q, 8),
              want[i]);
    }
    g4_spec_config c = {.method = G4_SPEC_NGRAM, .num_speculative_tokens = 4};
    CHECK(g4_spec_batch_limit(&c) == 256 / 5 + 1, "default limit %d", g4_spec_batch_limit(&c));
    c.disable_by_batch_size = 7;
    CHECK(g4_spec_batch_limit(&c) == 7, "explicit limit");
    g4_engine_stats st = {0};
    q = (g4_seq){0};
    g4_spec_record(&st, &q, 4, 2); /* 2 accepted, the third rejected: 3 verified */
    g4_spec_record(&st, NULL, 3, 3);
    CHECK(st.spec_drafts == 2 && st.spec_draft_tokens == 7 && st.spec_accepted_tokens == 5, "record: totals");
    CHECK(st.spec_accepted_per_pos[0] == 2 && st.spec_accepted_per_pos[1] == 2 && st.spec_accepted_per_pos[2] == 1 &&
              st.spec_accepted_per_pos[3] == 0,
          "record: per position");
    CHECK(q.spec_hits == 2.0f && q.spec_tries == 3.0f, "record: estimate %g / %g", q.spec_hits, q.spec_tries);
}

static void test_switch_off(const char *dir) {
    g4_error err = {{0}};
    g4_backend *be = g4_backend_cpu_create(&err);
    g4_model *m = open_model("tiny-dense", dir, be, 0, 0, 8);
    if (!m) return;
    enum { N = 8 };
    req *reqs = calloc(N, sizeof *reqs);
    make_reqs(reqs, N, 4, false);
    g4_engine_stats st;
    run_opts on = {.spec = true, .disable_by_batch_size = 1};
    serve(m, &on, reqs, N, &st);
    CHECK(st.spec_drafts == 0 && st.output_tokens > 0, "disable_by_batch_size 1: %llu proposals",
          (unsigned long long)st.spec_drafts);
    for (int i = 0; i < N; i++) CHECK(reqs[i].r.spec_draft == 0, "request %d: proposals reported", i);
    /* the draft method is refused until it is built; a bad range is refused */
    g4_engine_opts o;
    g4_engine_opts_from_model(&o, m);
    g4_executor ex;
    g4_executor_local(&ex, m);
    o.spec = (g4_spec_config){.method = G4_SPEC_DRAFT, .num_speculative_tokens = 4, .draft_model = dir};
    CHECK(g4_engine_create(&o, &ex, NULL, &err) == NULL && strstr(err.msg, "draft"), "draft method: %s", err.msg);
    o.spec = (g4_spec_config){.method = G4_SPEC_NGRAM,
                              .num_speculative_tokens = G4_SPEC_MAX_TOKENS + 1,
                              .prompt_lookup_min = 1,
                              .prompt_lookup_max = 2};
    CHECK(g4_engine_create(&o, &ex, NULL, &err) == NULL && strstr(err.msg, "num_speculative_tokens"), "k: %s", err.msg);
    o.spec.num_speculative_tokens = 2, o.spec.prompt_lookup_min = 3;
    CHECK(g4_engine_create(&o, &ex, NULL, &err) == NULL && strstr(err.msg, "prompt_lookup_min"), "n: %s", err.msg);
    free(reqs);
    g4_model_close(m);
    g4_backend_destroy(be);
}

/* "draft" as the argument: the draft-model cases only (ctest's test_engine_spec_draft), else
 * everything else — two ctest entries that can run in parallel. */
int main(int argc, char **argv) {
    bool draft = argc > 1 && !strcmp(argv[1], "draft");
    char dir[] = "/tmp/g4-test-engine-spec-XXXXXX";
    REQUIRE(mkdtemp(dir) != NULL, "mkdtemp");
    char dense[512], moe[512], other[512];
    snprintf(dense, sizeof dense, "%s/dense", dir);
    snprintf(moe, sizeof moe, "%s/moe", dir);
    snprintf(other, sizeof other, "%s/dense2", dir);
    if (draft) {
        test_draft(dense, other);
    } else {
        test_policy();
        test_greedy(dense);
        test_seeded(moe);
        test_starved(dense);
        test_cancel(dense);
        test_switch_off(dense);
    }
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0, "cleanup");
    return check_summary();
}
