/* test_engine_mm.c — requests with images through the engine, on the tiny random dense checkpoint
 * (CPU backend) with a fake vision encoder (soft tokens drawn from the image's hash; it counts its
 * calls). The reference is the runner (model/runner.h) on a second copy of the model: the whole
 * prompt in one step with the images' runs, then greedy decode. Checked:
 *   cold        tokens and their logprobs equal the reference (|Δ| ≤ 1e-4); the encoder ran once
 *               per image
 *   prefix      the same request again: a prefix hit that reaches into the first image's run, same
 *               tokens, no new encoder run (the second image comes from the encoder cache)
 *   other image the same ids with another image (same grid, other content and hash): no hit past
 *               the image's first block, its own reference tokens
 *   small steps a budget of 32 tokens: the chunk that would end inside a run ends before it, the
 *               run goes whole into the next step; tokens equal the reference
 *   starved     6 requests over 3 image contents in pools too small for them together and an
 *               encoder cache of one byte: preemptions and re-encodes happen, every output equals
 *               its reference, every block is free at the end
 *   refused     images for an executor without a tower, a run longer than the step budget
 *               (naming it), a grid that does not give the run, overlapping runs, prompt logprobs */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "base/rng.h"
#include "check.h"
#include "engine/engine.h"
#include "engine_test_util.h"
#include "model/gemma4.h"
#include "model/runner.h"
#include "model/testmodel.h"

#define DIR "/tmp/g4_test_engine_mm"
/* REQUIRE for helpers (REQUIRE returns from main) */
#define MUST(cond, ...)                    \
    do {                                   \
        if (!(cond)) {                     \
            CHECK(0, __VA_ARGS__);         \
            exit(check_summary() ? 1 : 1); \
        }                                  \
    } while (0)
#define N_OUT 12
#define BOI 255999
#define IMG 258880
#define EOI 258882

typedef struct fake_enc {
    int hidden;
    int calls;
} fake_enc;

/* Soft token i of the image with this hash: values in [−1.5, 1.5). */
static void fake_rows(const uint64_t hash[2], int n, int H, float *out) {
    uint64_t s = hash[0] ^ g4_mix64(hash[1]);
    for (size_t k = 0; k < (size_t)n * H; k++)
        out[k] = (float)((double)(g4_splitmix64(&s) >> 11) / 9007199254740992.0 * 3.0 - 1.5);
}

static fake_enc the_enc;

/* The executor's encode hook (its ctx is the model, not read here). */
static int fake_encode(void *ctx, const g4_mm_item *item, float *out, g4_error *err) {
    (void)ctx, (void)err;
    the_enc.calls++;
    fake_rows(item->hash, item->n_tokens, the_enc.hidden, out);
    return 0;
}

typedef struct prompt {
    int32_t ids[64];
    int n;
    g4_mm_item mm[2];
    int32_t ref[N_OUT];
    float ref_lp[N_OUT];
} prompt;

/* text 5 + boi + image a (27 soft tokens, 9 × 27 patches) + eoi + text 7 + boi + image b (12, 6 × 18)
 * + eoi + text 3 = 58 tokens. Images by hash seed. */
static void make_prompt(prompt *p, uint64_t ha, uint64_t hb) {
    static float patches[9 * 27 * 768]; /* the grid's patches (zeros; the fake encoder reads the hash) */
    uint64_t s = 7;
    int n = 0;
    for (int i = 0; i < 5; i++) p->ids[n++] = 3 + (int32_t)(g4_splitmix64(&s) % 900);
    p->ids[n++] = BOI;
    p->mm[0] = (g4_mm_item){.pos = n, .n_tokens = 27, .hash = {ha, ~ha}, .patches = patches, .ph = 9, .pw = 27};
    for (int i = 0; i < 27; i++) p->ids[n++] = IMG;
    p->ids[n++] = EOI;
    for (int i = 0; i < 7; i++) p->ids[n++] = 3 + (int32_t)(g4_splitmix64(&s) % 900);
    p->ids[n++] = BOI;
    p->mm[1] = (g4_mm_item){.pos = n, .n_tokens = 12, .hash = {hb, ~hb}, .patches = patches, .ph = 6, .pw = 18};
    for (int i = 0; i < 12; i++) p->ids[n++] = IMG;
    p->ids[n++] = EOI;
    for (int i = 0; i < 3; i++) p->ids[n++] = 3 + (int32_t)(g4_splitmix64(&s) % 900);
    p->n = n;
}

static float log_softmax_at(const float *x, int n, int i) {
    double mx = x[0], sum = 0;
    for (int k = 1; k < n; k++) mx = x[k] > mx ? x[k] : mx;
    for (int k = 0; k < n; k++) sum += exp((double)x[k] - mx);
    return (float)((double)x[i] - mx - log(sum));
}

/* Reference tokens: the runner, whole prompt in one step. */
static void reference(g4_model *m, prompt *p) {
    g4_error err = {{0}};
    int H = m->cfg.hidden, V = m->cfg.vocab;
    float *soft[2], *logits = malloc((size_t)V * sizeof *logits);
    g4_step_image im[2];
    for (int i = 0; i < 2; i++) {
        soft[i] = malloc((size_t)p->mm[i].n_tokens * H * sizeof(float));
        fake_rows(p->mm[i].hash, p->mm[i].n_tokens, H, soft[i]);
        im[i] = (g4_step_image){.first = p->mm[i].pos, .n = p->mm[i].n_tokens, .embed = soft[i]};
    }
    g4_runner *r = g4_runner_create(m, &err);
    MUST(r && logits, "runner: %s", err.msg);
    int seq = g4_runner_seq_open(r, &err);
    g4_runner_chunk c = {.seq = seq, .n = p->n, .ids = p->ids, .all_logits = 0};
    MUST(g4_runner_step_images(r, &c, 1, im, 2, logits, &err) == 0, "reference prefill: %s", err.msg);
    for (int k = 0; k < N_OUT; k++) {
        p->ref[k] = g4_argmax(logits, V);
        p->ref_lp[k] = log_softmax_at(logits, V, p->ref[k]);
        c = (g4_runner_chunk){.seq = seq, .n = 1, .ids = &p->ref[k], .all_logits = 0};
        if (k + 1 < N_OUT) MUST(g4_runner_step(r, &c, 1, logits, &err) == 0, "reference decode: %s", err.msg);
    }
    g4_runner_seq_close(r, seq);
    g4_runner_free(r);
    free(soft[0]), free(soft[1]), free(logits);
}

static g4_model *open_model(g4_backend *be, int n_s, int n_g) {
    g4_error err = {{0}};
    g4_model_opts o;
    g4_model_opts_default(&o);
    o.max_seqs = 8;
    o.max_step_tokens = 256;
    o.max_model_len = 128;
    o.n_blocks_sliding = n_s;
    o.n_blocks_global = n_g;
    g4_model *m = NULL;
    CHECK(g4_model_open(&m, DIR, be, &o, &err) == 0, "open: %s", err.msg);
    return m;
}

static g4_engine *make_engine(g4_model *m, g4_executor *ex, int budget, size_t cache_bytes, int max_running) {
    g4_engine_opts o;
    g4_engine_opts_from_model(&o, m);
    o.seed = 5;
    o.max_running = max_running;
    if (budget) o.step_token_budget = budget;
    o.mm_cache_bytes = cache_bytes;
    g4_executor_local(ex, m);
    ex->step_sample = NULL; /* host sampling: logprobs from the same logits the reference reads */
    ex->encode = fake_encode;
    ex->hidden = m->cfg.hidden;
    the_enc.hidden = m->cfg.hidden;
    g4_error err = {{0}};
    g4_engine *e = g4_engine_create(&o, ex, NULL, &err);
    MUST(e != NULL, "engine: %s", err.msg);
    return e;
}

static uint64_t submit(g4_engine *e, const prompt *p, rec *r, int *code, g4_error *err) {
    memset(r, 0, sizeof *r);
    g4_request_params rp =
        {.prompt = p->ids, .n_prompt = p->n, .mm = p->mm, .n_mm = 2, .on_event = rec_on_event, .user = r};
    g4_sampling_default(&rp.sampling);
    rp.sampling.logprobs = 0;
    g4_stop_rules_default(&rp.stop);
    rp.stop.max_tokens = N_OUT;
    rp.stop.ignore_eos = true;
    return g4_engine_submit(e, &rp, code, err);
}

static void expect_ref(const char *what, const rec *r, const prompt *p) {
    int bad = -1;
    float worst = 0;
    for (int k = 0; k < N_OUT; k++) {
        if (k >= r->n || r->toks[k] != p->ref[k]) {
            if (bad < 0) bad = k;
            continue;
        }
        float d = fabsf(r->logprob[k] - p->ref_lp[k]);
        worst = d > worst ? d : worst;
    }
    printf("%-12s %d tokens %s the reference, max |Δlogprob| %.2e, cached %d\n", what, r->n,
           bad < 0 ? "equal" : "DIFFER from", worst, r->cached_tokens);
    CHECK(r->finish == G4_FINISH_LENGTH && r->n == N_OUT, "%s: finish %d after %d tokens (%s)", what, r->finish, r->n,
          r->error);
    CHECK(bad < 0, "%s: token %d is %d, expected %d", what, bad, bad < 0 ? 0 : r->toks[bad], bad < 0 ? 0 : p->ref[bad]);
    CHECK(worst <= 1e-4, "%s: logprob off by %g", what, worst);
}

static void run_one(g4_engine *e, const prompt *p, rec *r, const char *what) {
    int code = 0;
    g4_error err = {{0}};
    CHECK(submit(e, p, r, &code, &err) != 0, "%s: submit: %s", what, err.msg);
    g4_engine_wait_idle(e);
    expect_ref(what, r, p);
}

int main(void) {
    g4_error err = {{0}};
    g4_config cfg;
    REQUIRE(g4_testmodel_config(&cfg, "tiny-dense", &err) == 0 && g4_testmodel_write(&cfg, 23, DIR, &err) == 0, "%s",
            err.msg);
    g4_backend *be = g4_backend_cpu_create(&err);
    REQUIRE(be, "%s", err.msg);
    g4_model *ref_m = open_model(be, 0, 0), *m = open_model(be, 0, 0);
    REQUIRE(ref_m && m, "models");
    static prompt pa, pc, pd; /* images (A, B), (C, B), (D, A') */
    make_prompt(&pa, 101, 202);
    make_prompt(&pc, 303, 202);
    make_prompt(&pd, 404, 505);
    reference(ref_m, &pa);
    reference(ref_m, &pc);
    reference(ref_m, &pd);
    int same = 1;
    for (int k = 0; k < N_OUT; k++) same &= pa.ref[k] == pc.ref[k];
    CHECK(!same, "another image gives the same reference tokens: the test could not see images mixed up");

    /* cold, prefix, other image */
    g4_executor ex;
    g4_engine *e = make_engine(m, &ex, 0, 0, 8);
    static rec r1, r2, r3;
    run_one(e, &pa, &r1, "cold");
    g4_engine_stats st;
    g4_engine_stats_get(e, &st);
    CHECK(the_enc.calls == 2 && st.mm_encoded == 2, "cold: %d encoder calls (%llu), expected 2", the_enc.calls,
          (unsigned long long)st.mm_encoded);
    run_one(e, &pa, &r2, "prefix");
    g4_engine_stats_get(e, &st);
    CHECK(r2.cached_tokens > pa.mm[0].pos, "prefix: hit of %d tokens does not reach into the image at %d",
          r2.cached_tokens, pa.mm[0].pos);
    CHECK(the_enc.calls == 2 && st.mm_cache_hits >= 1, "prefix: %d encoder calls, %llu cache hits", the_enc.calls,
          (unsigned long long)st.mm_cache_hits);
    run_one(e, &pc, &r3, "other image");
    CHECK(r3.cached_tokens <= pc.mm[0].pos / 16 * 16, "other image: hit of %d tokens past the image's first block",
          r3.cached_tokens);
    CHECK(the_enc.calls == 3, "other image: %d encoder calls, expected 3 (image B from the cache)", the_enc.calls);
    g4_engine_destroy(e);

    /* small steps: 32 tokens */
    int calls0 = the_enc.calls;
    e = make_engine(m, &ex, 32, 0, 8);
    run_one(e, &pd, &r1, "small steps");
    g4_engine_stats_get(e, &st);
    printf("small steps: %llu steps for %d prompt tokens\n", (unsigned long long)st.steps, pd.n);
    CHECK(the_enc.calls == calls0 + 2, "small steps: %d encoder calls", the_enc.calls - calls0);
    g4_engine_destroy(e);

    /* starved pools, a one-byte encoder cache */
    g4_model_close(m);
    m = open_model(be, 14, 14);
    REQUIRE(m, "starved model");
    e = make_engine(m, &ex, 64, 1, 6);
    static rec rs[6];
    const prompt *ps[6] = {&pa, &pc, &pd, &pa, &pd, &pc};
    calls0 = the_enc.calls;
    for (int i = 0; i < 6; i++) {
        int code = 0;
        CHECK(submit(e, ps[i], &rs[i], &code, &err) != 0, "starved submit %d: %s", i, err.msg);
    }
    g4_engine_wait_idle(e);
    g4_engine_stats_get(e, &st);
    char what[32];
    for (int i = 0; i < 6; i++) {
        snprintf(what, sizeof what, "starved %d", i);
        expect_ref(what, &rs[i], ps[i]);
    }
    printf("starved: %llu preemptions, %d encoder calls for 6 requests of 2 images\n",
           (unsigned long long)st.preemptions, the_enc.calls - calls0);
    CHECK(st.preemptions > 0, "starved: no preemption");
    CHECK(the_enc.calls - calls0 >= 12, "starved: %d encoder calls with a one-byte cache", the_enc.calls - calls0);
    CHECK(st.blocks_sliding_used == 0 && st.blocks_global_used == 0, "starved: blocks in use %d / %d",
          st.blocks_sliding_used, st.blocks_global_used);

    /* refusals */
    {
        int code = 0;
        prompt bad = pa;
        uint64_t id;
        g4_engine_destroy(e);
        e = make_engine(m, &ex, 20, 0, 4); /* image a (27) > 20 */
        id = submit(e, &pa, &r1, &code, &err);
        CHECK(id == 0 && code == G4_ERR_TOO_LONG && strstr(err.msg, "step token budget of 20"),
              "run longer than the budget: code %d: %s", code, err.msg);
        g4_engine_destroy(e);
        e = make_engine(m, &ex, 0, 0, 4);
        bad.mm[1].pw = 15; /* 2 × 5 ≠ 12, and not a multiple of 3 */
        id = submit(e, &bad, &r1, &code, &err);
        CHECK(id == 0 && code == G4_ERR_INVALID && strstr(err.msg, "patch grid"), "bad grid: %s", err.msg);
        bad = pa;
        bad.mm[1].pos = pa.mm[0].pos + 20; /* overlaps image 0 */
        id = submit(e, &bad, &r1, &code, &err);
        CHECK(id == 0 && code == G4_ERR_INVALID, "overlapping runs: %s", err.msg);
        g4_request_params rp = {.prompt = pa.ids,
                                .n_prompt = pa.n,
                                .mm = pa.mm,
                                .n_mm = 2,
                                .prompt_logprobs = true,
                                .on_event = rec_on_event,
                                .user = &r1};
        g4_sampling_default(&rp.sampling);
        g4_stop_rules_default(&rp.stop);
        rp.stop.max_tokens = 4;
        id = g4_engine_submit(e, &rp, &code, &err);
        CHECK(id == 0 && code == G4_ERR_INVALID && strstr(err.msg, "prompt_logprobs"), "prompt logprobs: %s", err.msg);
        g4_engine_destroy(e);
        ex.encode = NULL; /* an executor without a tower */
        g4_engine_opts o;
        g4_engine_opts_from_model(&o, m);
        e = g4_engine_create(&o, &ex, NULL, &err);
        REQUIRE(e, "%s", err.msg);
        id = submit(e, &pa, &r1, &code, &err);
        CHECK(id == 0 && code == G4_ERR_INVALID && strstr(err.msg, "no vision tower"), "no tower: %s", err.msg);
        CHECK(g4_engine_check_request(&o, m->cfg.vocab, false,
                                      &(g4_request_params){.prompt = pa.ids,
                                                           .n_prompt = pa.n,
                                                           .mm = pa.mm,
                                                           .n_mm = 2,
                                                           .on_event = rec_on_event,
                                                           .stop = {.max_tokens = 1}},
                                      &err) == G4_ERR_INVALID,
              "check_request without a tower: %s", err.msg);
    }
    g4_engine_destroy(e);
    g4_model_close(m);
    g4_model_close(ref_m);
    g4_backend_destroy(be);
    return check_summary();
}
