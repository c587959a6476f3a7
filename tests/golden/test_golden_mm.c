/* test_golden_mm.c — the multimodal text forward pass against transformers' Gemma 4, through
 * the golden data of tests/golden/vision/ (made by make_golden_vision.py: a tiny random multimodal
 * checkpoint, two images of different aspect ratios, a prompt text + image 0 + text + image 1 +
 * text, transformers' float32 logits and greedy continuation).
 *
 * The vision tower is bypassed: the golden soft tokens (image.<i>.soft, what transformers' tower
 * and embed_vision make) go straight into the step as the image runs' input embeddings, so this
 * checks the language side alone — placeholder embeddings replaced (not scaled by √H), image runs
 * bidirectional on sliding layers only, chunked prefill that keeps a run whole:
 *   whole     the prompt in one step: every logit row within 1e-4 of prompt.logits
 *             (max|Δ| / max|logit|), and far (> 1e-2) from prompt.causal_logits
 *   causal    the same embeddings with every soft token its own run (= no bidirectional block):
 *             within 1e-4 of prompt.causal_logits (the embeddings are right on their own)
 *   chunked   chunks of 13 tokens whose boundary would cut an image run end before the run, the
 *             run going whole into the next step (longer than 13); KV block size 16 and 4; then
 *             16 greedy steps identical to prompt.greedy
 *   split     a chunk boundary inside image 0's run (each half its own run): must differ from the
 *             golden by > 1e-3, so the chunked mode above would see a split run
 * and, through the serving engine (engine.h) with an encoder hook that returns the golden soft
 * tokens by content hash: the greedy continuation with the model's step budget and with 70 tokens
 * a step (a step that would end inside image 1's run ends before it); the same request again (a
 * prefix hit of 144 tokens covering both images, same tokens, no new encoder run); image 0 under
 * an unknown hash (same placeholder ids: it must miss the prefix cache, reach the encoder, which
 * knows no such image, and fail — a hit shared across image contents would skip the encoder).
 * With the vision tower merged and present in the checkpoint, an end-to-end variant runs the
 * engine on the model's own tower from the golden patches (skipped with a message otherwise).
 * Skipped (77) when tests/golden/vision/ is absent. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/backend.h"
#include "base/error.h"
#include "check.h"
#include "engine/engine.h"
#include "model/gemma4.h"
#include "model/runner.h"
#include "model/safetensors.h"
#include "golden_mm.h"
#include "model/vision.h"

#define DIR GOLDEN_MM_DIR
#define BAR 1e-4

/* max |got − want| / max|want| over prompt rows [row0, row0 + rows). */
static double ratio(const golden *g, const float *want, float max_abs, int row0, int rows, const float *got) {
    double d = 0;
    const float *w = want + (size_t)row0 * g->vocab;
    for (size_t k = 0; k < (size_t)rows * g->vocab; k++) {
        double e = fabs((double)got[k] - (double)w[k]);
        if (!(e <= d)) d = e;
    }
    return d / max_abs;
}

static int open_model(g4_backend **be, g4_model **m, int block_size, g4_error *err) {
    *be = g4_backend_cpu_create(err);
    if (!*be) return -1;
    g4_model_opts o;
    g4_model_opts_default(&o);
    o.block_size = block_size;
    o.max_seqs = 8;
    o.max_model_len = 256;
    return g4_model_open(m, DIR, *be, &o, err);
}

/* whole / causal: the prompt in one step. */
static void mode_whole(g4_runner *r, const golden *g, int causal, float *logits) {
    g4_error err = {{0}};
    g4_step_image img[256];
    int ni = chunk_images(g, 0, g->n, 0, causal, img);
    int seq = g4_runner_seq_open(r, &err);
    g4_runner_chunk c = {.seq = seq, .n = g->n, .ids = g->ids, .all_logits = 1};
    int rc = g4_runner_step_images(r, &c, 1, img, ni, logits, &err);
    CHECK(rc == 0, "%s step: %s", causal ? "causal" : "whole", err.msg);
    if (rc == 0) {
        const float *want = causal ? g->causal : g->logits;
        double e = ratio(g, want, causal ? g->max_abs_causal : g->max_abs, 0, g->n, logits);
        printf("%-8s max|dlogit|/max|logit| = %.3e (vs transformers%s)\n", causal ? "causal" : "whole", e,
               causal ? " without the image mask" : "");
        CHECK(e <= BAR, "%s: %.3e > %.0e", causal ? "causal" : "whole", e, BAR);
        if (!causal) {
            double far = ratio(g, g->causal, g->max_abs_causal, 0, g->n, logits);
            printf("%-8s distance from the causal-mask logits = %.3e (must be > 1e-2)\n", "whole", far);
            CHECK(far > 1e-2, "the image mask changes nothing: %.3e", far);
        }
    }
    g4_runner_seq_close(r, seq);
}

/* chunked (split = 0): chunks of `size`, an image run kept whole; then greedy decode.
 * split = 1: one boundary inside image 0's run (the control). */
static void mode_chunked(g4_runner *r, const golden *g, int size, int split, int block_size, float *logits) {
    g4_error err = {{0}};
    int seq = g4_runner_seq_open(r, &err), done = 0, crossed = 0, rc = 0, last_rows = 0;
    double worst = 0;
    while (done < g->n && rc == 0) {
        int end = done + size < g->n ? done + size : g->n;
        for (int i = 0; i < g->n_images && !split; i++) {
            const image *im = &g->im[i];
            if (end > im->pos && end < im->pos + im->n) { /* would cut the run */
                crossed++;
                end = done < im->pos ? im->pos : im->pos + im->n;
            }
        }
        if (split && done < g->im[0].pos + g->im[0].n / 2 && end > g->im[0].pos + g->im[0].n / 2)
            end = g->im[0].pos + g->im[0].n / 2;
        g4_step_image img[256];
        int ni = chunk_images(g, done, end, 0, 0, img);
        g4_runner_chunk c = {.seq = seq, .n = end - done, .ids = g->ids + done, .all_logits = 1};
        rc = g4_runner_step_images(r, &c, 1, img, ni, logits, &err);
        CHECK(rc == 0, "chunked step at %d: %s", done, err.msg);
        if (rc) break;
        double e = ratio(g, g->logits, g->max_abs, done, end - done, logits);
        worst = e > worst ? e : worst;
        last_rows = end - done;
        done = end;
    }
    if (split) {
        printf("%-8s run of image 0 cut in two: max|dlogit|/max|logit| = %.3e (must be > 1e-3)\n", "split", worst);
        CHECK(worst > 1e-3, "a split image run goes unnoticed: %.3e", worst);
        g4_runner_seq_close(r, seq);
        return;
    }
    printf("%-8s chunks of %d, B=%d, %d boundaries moved off an image run: max|dlogit|/max|logit| = %.3e\n", "chunked",
           size, block_size, crossed, worst);
    CHECK(crossed > 0, "chunks of %d never met an image run", size);
    CHECK(worst <= BAR, "chunked: %.3e > %.0e", worst, BAR);
    /* greedy: the prompt's last row, then one token per step */
    int32_t out[MAX_GREEDY];
    out[0] = g4_argmax(logits + (size_t)(last_rows - 1) * g->vocab, g->vocab);
    for (int k = 1; k < g->n_greedy && rc == 0; k++) {
        g4_runner_chunk c = {.seq = seq, .n = 1, .ids = &out[k - 1], .all_logits = 0};
        rc = g4_runner_step(r, &c, 1, logits, &err);
        CHECK(rc == 0, "decode step %d: %s", k, err.msg);
        out[k] = g4_argmax(logits, g->vocab);
    }
    int bad = -1;
    for (int k = 0; k < g->n_greedy && bad < 0; k++)
        if (out[k] != g->greedy[k]) bad = k;
    printf("%-8s %d greedy tokens %s\n", "decode", g->n_greedy, bad < 0 ? "identical" : "DIFFER");
    CHECK(bad < 0, "greedy token %d is %d, expected %d", bad, bad < 0 ? 0 : out[bad], bad < 0 ? 0 : g->greedy[bad]);
    g4_runner_seq_close(r, seq);
}

/* --- through the engine ------------------------------------------------------------------ */

static golden *the_golden;

/* Image i has the hash {i + 1, 0x5eed}: the encode hook answers with the golden soft tokens. */
static int golden_encode(void *ctx, const g4_mm_item *item, float *out, g4_error *err) {
    (void)ctx;
    int i = (int)item->hash[0] - 1;
    if (i < 0 || i >= the_golden->n_images || item->n_tokens != the_golden->im[i].n)
        return g4_fail(err, "golden encoder: no image with hash %llu", (unsigned long long)item->hash[0]);
    memcpy(out, the_golden->im[i].soft, (size_t)item->n_tokens * the_golden->hidden * sizeof *out);
    return 0;
}

/* One greedy request of the golden prompt; image 0 gets hash0 (1 = its own). */
static void engine_run(g4_engine *e, const golden *g, uint64_t hash0, rec *r) {
    g4_mm_item mm[MAX_IMAGES];
    for (int i = 0; i < g->n_images; i++)
        mm[i] = (g4_mm_item){.pos = g->im[i].pos,
                             .n_tokens = g->im[i].n,
                             .hash = {i ? (uint64_t)i + 1 : hash0, 0x5eed},
                             .patches = g->im[i].patches,
                             .ph = g->im[i].ph,
                             .pw = g->im[i].pw};
    memset(r, 0, sizeof *r);
    g4_request_params p =
        {.prompt = g->ids, .n_prompt = g->n, .mm = mm, .n_mm = g->n_images, .on_event = on_event, .user = r};
    g4_sampling_default(&p.sampling);
    g4_stop_rules_default(&p.stop);
    p.stop.max_tokens = g->n_greedy;
    p.stop.ignore_eos = true;
    int code = 0;
    g4_error err = {{0}};
    CHECK(g4_engine_submit(e, &p, &code, &err) != 0, "engine submit: %s", err.msg);
    g4_engine_wait_idle(e);
}

static int same_greedy(const golden *g, const rec *r) {
    if (r->n != g->n_greedy) return 0;
    for (int k = 0; k < r->n; k++)
        if (r->toks[k] != g->greedy[k]) return 0;
    return 1;
}

/* budget 0: the model's; own_tower: the executor's encode (the model's tower from the patches). */
static void mode_engine(g4_model *m, const golden *g, int budget, int own_tower) {
    g4_executor ex;
    g4_executor_local(&ex, m);
    if (!own_tower) {
        ex.encode = golden_encode;
        ex.hidden = g->hidden;
    }
    g4_engine_opts o;
    g4_engine_opts_from_model(&o, m);
    if (budget) o.step_token_budget = budget;
    g4_error err = {{0}};
    g4_engine *e = g4_engine_create(&o, &ex, NULL, &err);
    CHECK(e != NULL, "engine: %s", err.msg);
    if (!e) return;
    const char *how = own_tower ? "engine, the model's own tower on the golden patches" : "engine";
    rec r;
    engine_run(e, g, 1, &r);
    printf("%-8s budget %d: %d greedy tokens %s (%s)\n", "engine", o.step_token_budget, r.n,
           same_greedy(g, &r) ? "identical" : "DIFFER", how);
    CHECK(r.finish == G4_FINISH_LENGTH && same_greedy(g, &r), "%s, budget %d: greedy differs (%s)", how,
          o.step_token_budget, r.error);
    if (!budget && !own_tower) {
        engine_run(e, g, 1, &r); /* the same images again: a prefix hit over them */
        printf("%-8s same request again: prefix hit of %d tokens, greedy %s\n", "engine", r.cached,
               same_greedy(g, &r) ? "identical" : "DIFFERS");
        CHECK(r.cached > g->im[0].pos + g->im[0].n, "prefix hit of %d tokens does not cover image 0", r.cached);
        CHECK(same_greedy(g, &r), "greedy after a prefix hit differs");
        g4_engine_stats st;
        g4_engine_stats_get(e, &st);
        CHECK(st.mm_encoded == 2, "%llu encoder runs for 2 images", (unsigned long long)st.mm_encoded);
        engine_run(e, g, 3, &r); /* image 0 with another content (image 1's hash space: unknown) */
        CHECK(r.finish == G4_FINISH_ERROR && strstr(r.error, "golden encoder"),
              "an unknown image reaches the encoder and fails the request: finish %d (%s)", r.finish, r.error);
    }
    g4_engine_destroy(e);
}

int main(void) {
    if (access(DIR "/golden.safetensors", R_OK) != 0) {
        printf("SKIP: %s/golden.safetensors is absent (made by tests/golden/make_golden_vision.py)\n", DIR);
        return 77;
    }
    g4_error err = {{0}};
    g4_backend *be = NULL;
    g4_model *m = NULL;
    REQUIRE(open_model(&be, &m, 16, &err) == 0, "%s", err.msg);
    golden g;
    REQUIRE(golden_load(&g, m->cfg.vocab, m->cfg.hidden, &err) == 0, "%s", err.msg);
    printf("vision golden: H=%d, V=%d, %d layers, window %d, prompt %d tokens, images of %d and %d soft tokens\n",
           m->cfg.hidden, m->cfg.vocab, m->cfg.n_layers, m->cfg.sliding_window, g.n, g.im[0].n, g.im[1].n);
    float *logits = malloc((size_t)g.n * g.vocab * sizeof *logits);
    g4_runner *r = g4_runner_create(m, &err);
    REQUIRE(logits && r, "%s", err.msg);
    mode_whole(r, &g, 0, logits);
    mode_whole(r, &g, 1, logits);
    mode_chunked(r, &g, 13, 1, 16, logits);
    mode_chunked(r, &g, 13, 0, 16, logits);
    g4_runner_free(r);
    g4_model_close(m);
    g4_backend_destroy(be);
    /* block size 4: chunks and decode steps cross blocks, sliding blocks are recycled */
    REQUIRE(open_model(&be, &m, 4, &err) == 0, "%s", err.msg);
    REQUIRE((r = g4_runner_create(m, &err)) != NULL, "%s", err.msg);
    mode_chunked(r, &g, 13, 0, 4, logits);
    g4_runner_free(r);
    g4_model_close(m);
    g4_backend_destroy(be);
    /* through the engine: the model's budget (every image in the first step), then 70 tokens a step
     * (the step that would end inside image 1's run ends before it) */
    REQUIRE(open_model(&be, &m, 16, &err) == 0, "%s", err.msg);
    the_golden = &g;
    mode_engine(m, &g, 0, 0);
    mode_engine(m, &g, 70, 0);
    if (g4_model_vision(m)) mode_engine(m, &g, 0, 1);
    else printf("SKIP engine end to end: this build's model has no vision tower (model/vision.h)\n");
    g4_model_close(m);
    g4_backend_destroy(be);
    golden_free(&g);
    free(logits);
    return check_summary();
}
