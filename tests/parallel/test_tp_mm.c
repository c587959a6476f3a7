/* test_tp_mm.c — images under tensor parallelism on the CPU backend, on the golden tiny multimodal
 * checkpoint of tests/golden/vision/ (golden_mm.h): a t = 2 and t = 4 group against one rank.
 *   encode   the group's executor encodes both golden images (rank 0's replica of the tower):
 *            soft tokens equal to the single model's tower within 1e-5 (max|Δ| / max|x|)
 *   forward  the whole prompt (text + image 0 + text + image 1 + text) in one step, each side fed
 *            its own tower's soft tokens: every logit row within 1e-4 of t = 1 (test_tp.c's
 *            bar: fp32 sums in another order), and within 1e-4 of transformers' logits
 *   engine   the golden request through a serving engine over the group's executor (its encode
 *            hook, the image runs in the packed steps): greedy tokens identical to t = 1 and to
 *            transformers' continuation, chosen-token logprobs within 1e-3 of t = 1, two encoder
 *            runs; the same request again is a prefix hit over both images with no new encode.
 *   tower    only rank 0 holds the vision tower: every other rank has none (g4_model_vision NULL)
 *            and exactly the tower's bytes fewer weights than rank 0, the tower's bytes being what
 *            a single model opened with no_vision (its tower tensors recognised, skipped) lacks.
 * Skipped (77) when tests/golden/vision/ is absent. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../golden/golden_mm.h"
#include "backend/backend.h"
#include "check.h"
#include "engine/engine.h"
#include "model/runner.h"
#include "model/vision.h"
#include "parallel/tp.h"

#define BAR 1e-4

static void model_opts(g4_model_opts *o) {
    g4_model_opts_default(o);
    o->block_size = 16;
    o->max_seqs = 8;
    o->max_model_len = 256;
}

/* max |a − b| / max |b| over n values. */
static double rel_diff(const float *a, const float *b, size_t n) {
    double d = 0, m = 1e-30;
    for (size_t i = 0; i < n; i++) {
        if (!(fabs((double)a[i] - b[i]) <= d)) d = fabs((double)a[i] - b[i]);
        if (fabs((double)b[i]) > m) m = fabs((double)b[i]);
    }
    return d / m;
}

/* Each golden image through ex's encode hook into soft[i] (replacing the golden soft tokens). */
static int encode_all(const g4_executor *ex, golden *g, float **soft) {
    g4_error err = {{0}};
    for (int i = 0; i < g->n_images; i++) {
        const image *im = &g->im[i];
        g4_mm_item it = {.pos = im->pos, .n_tokens = im->n, .patches = im->patches, .ph = im->ph, .pw = im->pw};
        soft[i] = malloc((size_t)im->n * g->hidden * sizeof(float));
        if (!soft[i] || ex->encode(ex->ctx, &it, soft[i], &err)) {
            CHECK(0, "encode image %d: %s", i, err.msg);
            return -1;
        }
    }
    return 0;
}

/* The whole prompt in one step with the soft tokens `soft`; logits [n, V]. */
static int forward(g4_model *m, g4_step_fn fn, void *ctx, golden *g, float **soft, float *logits) {
    g4_error err = {{0}};
    g4_runner *r = g4_runner_create(m, &err);
    if (!r) {
        CHECK(0, "runner: %s", err.msg);
        return -1;
    }
    if (fn) g4_runner_set_step_fn(r, fn, ctx);
    float *golden_soft[MAX_IMAGES];
    for (int i = 0; i < g->n_images; i++) golden_soft[i] = g->im[i].soft, g->im[i].soft = soft[i];
    g4_step_image img[MAX_IMAGES];
    int ni = chunk_images(g, 0, g->n, 0, 0, img);
    for (int i = 0; i < g->n_images; i++) g->im[i].soft = golden_soft[i];
    int seq = g4_runner_seq_open(r, &err);
    g4_runner_chunk c = {.seq = seq, .n = g->n, .ids = g->ids, .all_logits = 1};
    int rc = g4_runner_step_images(r, &c, 1, img, ni, logits, &err);
    CHECK(rc == 0, "step: %s", err.msg);
    g4_runner_seq_close(r, seq);
    g4_runner_free(r);
    return rc;
}

/* The golden request twice through an engine over ex (the executor's own tower); encoder runs. */
static uint64_t serve(const g4_executor *ex, const g4_model *m, const golden *g, rec *first, rec *again) {
    g4_error err = {{0}};
    g4_engine_opts o;
    g4_engine_opts_from_model(&o, m);
    g4_engine *e = g4_engine_create(&o, ex, NULL, &err);
    if (!e) {
        CHECK(0, "engine: %s", err.msg);
        return 0;
    }
    g4_mm_item mm[MAX_IMAGES];
    for (int i = 0; i < g->n_images; i++)
        mm[i] = (g4_mm_item){.pos = g->im[i].pos,
                             .n_tokens = g->im[i].n,
                             .hash = {(uint64_t)i + 1, 0x5eed},
                             .patches = g->im[i].patches,
                             .ph = g->im[i].ph,
                             .pw = g->im[i].pw};
    rec *out[2] = {first, again};
    for (int k = 0; k < 2; k++) {
        memset(out[k], 0, sizeof *out[k]);
        g4_request_params p =
            {.prompt = g->ids, .n_prompt = g->n, .mm = mm, .n_mm = g->n_images, .on_event = on_event, .user = out[k]};
        g4_sampling_default(&p.sampling);
        p.sampling.logprobs = 0;
        g4_stop_rules_default(&p.stop);
        p.stop.max_tokens = g->n_greedy;
        p.stop.ignore_eos = true;
        int code = 0;
        CHECK(g4_engine_submit(e, &p, &code, &err) != 0, "submit: %s", err.msg);
        g4_engine_wait_idle(e);
        CHECK(out[k]->finish == G4_FINISH_LENGTH, "request %d finished with %d (%s)", k, out[k]->finish, out[k]->error);
    }
    g4_engine_stats st;
    g4_engine_stats_get(e, &st);
    g4_engine_destroy(e);
    return st.mm_encoded;
}

static int same_tokens(const rec *a, const int32_t *want, int n) {
    return a->n == n && !memcmp(a->toks, want, sizeof(int32_t) * (size_t)n);
}

int main(void) {
    if (access(GOLDEN_MM_DIR "/golden.safetensors", R_OK) != 0) {
        printf("SKIP: %s/golden.safetensors is absent (made by tests/golden/make_golden_vision.py)\n", GOLDEN_MM_DIR);
        return 77;
    }
    g4_error err = {{0}};
    g4_model_opts o;
    model_opts(&o);
    g4_backend *be = g4_backend_cpu_create(&err);
    g4_model *m = NULL;
    REQUIRE(be && g4_model_open(&m, GOLDEN_MM_DIR, be, &o, &err) == 0, "open: %s", err.msg);
    if (!g4_model_vision(m)) {
        printf("SKIP: the golden checkpoint has no vision tower in this build\n");
        return 77;
    }
    golden g;
    REQUIRE(golden_load(&g, m->cfg.vocab, m->cfg.hidden, &err) == 0, "%s", err.msg);
    size_t nlog = (size_t)g.n * g.vocab;
    float *ref = malloc(nlog * sizeof(float)), *got = malloc(nlog * sizeof(float));
    REQUIRE(ref && got, "out of memory");

    /* t = 1: the model's own tower, its forward and its engine */
    g4_executor ex;
    g4_executor_local(&ex, m);
    float *soft1[MAX_IMAGES] = {0};
    REQUIRE(encode_all(&ex, &g, soft1) == 0, "t=1 encode");
    REQUIRE(forward(m, NULL, NULL, &g, soft1, ref) == 0, "t=1 forward");
    double e1 = rel_diff(ref, g.logits, nlog);
    printf("t=1 forward on its own tower: max|dlogit|/max|logit| = %.3e vs transformers\n", e1);
    CHECK(e1 <= BAR, "t=1 vs transformers: %.3e", e1);
    rec r1, r1again;
    serve(&ex, m, &g, &r1, &r1again);
    CHECK(same_tokens(&r1, g.greedy, g.n_greedy), "t=1 engine: greedy differs from transformers");
    /* the tower's bytes: the same checkpoint opened without it */
    g4_model_opts onv = o;
    onv.no_vision = 1;
    g4_model *mnv = NULL;
    REQUIRE(g4_model_open(&mnv, GOLDEN_MM_DIR, be, &onv, &err) == 0, "open with no_vision: %s", err.msg);
    CHECK(g4_model_vision(mnv) == NULL, "no_vision: the model still has a tower");
    CHECK(mnv->image_steps, "no_vision: the model no longer takes image steps");
    size_t tower = m->weight_bytes - mnv->weight_bytes;
    CHECK(mnv->weight_bytes < m->weight_bytes, "no_vision: %zu weight bytes, with the tower %zu", mnv->weight_bytes,
          m->weight_bytes);
    printf("t=1: %zu weight bytes, %zu of them the vision tower\n", m->weight_bytes, tower);
    g4_model_close(mnv);
    g4_model_close(m);
    g4_backend_destroy(be);

    for (int t = 2; t <= 4; t *= 2) {
        g4_tp *tp = g4_tp_open(GOLDEN_MM_DIR, "cpu", NULL, t, &o, &err);
        CHECK(tp != NULL, "t=%d: %s", t, err.msg);
        if (!tp) continue;
        size_t w0 = g4_tp_model(tp, 0)->weight_bytes;
        CHECK(g4_model_vision(g4_tp_model(tp, 0)) != NULL, "t=%d: rank 0 has no tower", t);
        for (int r = 1; r < t; r++) {
            g4_model *mr = g4_tp_model(tp, r);
            CHECK(g4_model_vision(mr) == NULL, "t=%d: rank %d holds a vision tower", t, r);
            CHECK(mr->weight_bytes + tower == w0, "t=%d: rank %d has %zu weight bytes, rank 0 %zu, the tower %zu", t, r,
                  mr->weight_bytes, w0, tower);
        }
        printf("t=%d: rank 0 %zu weight bytes, ranks 1..%d %zu each: %zu bytes of tower saved\n", t, w0, t - 1,
               g4_tp_model(tp, t - 1)->weight_bytes, (size_t)(t - 1) * tower);
        g4_executor tex;
        g4_executor_tp(&tex, tp);
        CHECK(tex.encode != NULL && tex.hidden == g.hidden, "t=%d executor: encode hook %p, hidden %d", t,
              (void *)tex.encode, tex.hidden);
        float *soft[MAX_IMAGES] = {0};
        if (tex.encode && encode_all(&tex, &g, soft) == 0) {
            for (int i = 0; i < g.n_images; i++) {
                double d = rel_diff(soft[i], soft1[i], (size_t)g.im[i].n * g.hidden);
                printf("t=%d encode image %d (%d soft tokens): max|d|/max|x| = %.3e vs t=1\n", t, i, g.im[i].n, d);
                CHECK(d <= 1e-5, "t=%d image %d soft tokens differ from t=1: %.3e", t, i, d);
            }
            if (forward(g4_tp_model(tp, 0), g4_tp_step, tp, &g, soft, got) == 0) {
                double d = rel_diff(got, ref, nlog), dg = rel_diff(got, g.logits, nlog);
                printf("t=%d forward: max|dlogit|/max|logit| = %.3e vs t=1, %.3e vs transformers\n", t, d, dg);
                CHECK(d < BAR, "t=%d logits vs t=1: %.3e", t, d);
                CHECK(dg <= BAR, "t=%d logits vs transformers: %.3e", t, dg);
            }
        }
        for (int i = 0; i < g.n_images; i++) free(soft[i]);
        if (t == 2 && tex.encode) {
            rec r, again;
            uint64_t encoded = serve(&tex, g4_tp_model(tp, 0), &g, &r, &again);
            double worst = 0;
            for (int k = 0; k < r.n && k < r1.n; k++)
                if (fabs(r.lp[k] - r1.lp[k]) > worst) worst = fabs(r.lp[k] - r1.lp[k]);
            int same = same_tokens(&r, r1.toks, r1.n) && same_tokens(&r, g.greedy, g.n_greedy);
            printf("t=%d engine: %d greedy tokens %s, worst |d logprob| %.3g, %llu encoder runs, then a prefix hit "
                   "of %d tokens, greedy %s\n",
                   t, r.n, same ? "identical" : "DIFFER", worst, (unsigned long long)encoded, again.cached,
                   same_tokens(&again, g.greedy, g.n_greedy) ? "identical" : "DIFFERS");
            CHECK(same, "t=%d engine: greedy tokens differ from t=1 / transformers", t);
            CHECK(worst < 1e-3, "t=%d engine: logprob diff %g", t, worst);
            CHECK(encoded == 2, "t=%d engine: %llu encoder runs for 2 images", t, (unsigned long long)encoded);
            CHECK(again.cached > g.im[1].pos + g.im[1].n, "t=%d: prefix hit of %d tokens misses image 1", t,
                  again.cached);
            CHECK(same_tokens(&again, g.greedy, g.n_greedy), "t=%d: greedy after the prefix hit differs", t);
        }
        g4_tp_close(tp);
    }
    for (int i = 0; i < g.n_images; i++) free(soft1[i]);
    free(ref), free(got);
    golden_free(&g);
    return check_summary();
}
