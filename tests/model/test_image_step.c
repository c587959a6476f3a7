/* test_image_step.c — image soft-token runs in a step (gemma4.h g4_step_image), on the tiny random
 * dense checkpoint (CPU backend), through the runner:
 *   embedding  runs of one token whose rows are the tokens' own scaled embeddings E[id] × bf16(√H)
 *              give exactly the text-only logits (a run of one is causal; the row replaces the
 *              lookup and is not scaled again)
 *   mask       a run of 12 with those same rows differs from the text-only forward (the run's
 *              tokens see the later ones on sliding layers), and two sequences in one step, one
 *              with the run and one without, give each its own result (batched == alone)
 *   refused    a run past the step, a run across two sequences, two runs sharing a token, a run
 *              without rows: each fails naming what is wrong, and the next valid step still runs */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "base/bf16.h"
#include "check.h"
#include "model/gemma4.h"
#include "model/runner.h"
#include "model/testmodel.h"

#define DIR "/tmp/g4_test_image_step"
#define N 24

static int run1(g4_runner *r, const int32_t *ids, int n, const g4_step_image *im, int n_im, float *logits,
                g4_error *err) {
    int seq = g4_runner_seq_open(r, err);
    if (seq < 0) return -1;
    g4_runner_chunk c = {.seq = seq, .n = n, .ids = ids, .all_logits = 1};
    int rc = g4_runner_step_images(r, &c, 1, im, n_im, logits, err);
    g4_runner_seq_close(r, seq);
    return rc;
}

static double max_diff(const float *a, const float *b, size_t n) {
    double d = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - b[i]);
        if (!(e <= d)) d = e;
    }
    return d;
}

int main(void) {
    g4_error err = {{0}};
    g4_config cfg;
    REQUIRE(g4_testmodel_config(&cfg, "tiny-dense", &err) == 0 && g4_testmodel_write(&cfg, 31, DIR, &err) == 0, "%s",
            err.msg);
    g4_backend *be = g4_backend_cpu_create(&err);
    REQUIRE(be, "%s", err.msg);
    g4_model_opts o;
    g4_model_opts_default(&o);
    o.max_seqs = 4;
    o.max_model_len = 64;
    g4_model *m = NULL;
    REQUIRE(g4_model_open(&m, DIR, be, &o, &err) == 0, "%s", err.msg);
    g4_runner *r = g4_runner_create(m, &err);
    REQUIRE(r, "%s", err.msg);
    int H = m->cfg.hidden, V = m->cfg.vocab;
    REQUIRE(m->w.embed.dtype == G4_DT_BF16, "tiny embedding stored as %s", g4_dtype_name(m->w.embed.dtype));
    int32_t ids[N];
    for (int i = 0; i < N; i++) ids[i] = 100 + 37 * i;
    /* rows[k] = E[ids[k]] × bf16(√H), as the embed op makes them */
    float *rows = malloc((size_t)N * H * sizeof *rows), *text = malloc((size_t)2 * N * V * sizeof *text),
          *got = malloc((size_t)2 * N * V * sizeof *got);
    REQUIRE(rows && text && got, "out of memory");
    const uint16_t *E = m->w.embed.host;
    for (int k = 0; k < N; k++)
        for (int j = 0; j < H; j++)
            rows[(size_t)k * H + j] = g4_bf16_to_f32(E[(size_t)ids[k] * H + j]) * m->embed_scale;

    REQUIRE(run1(r, ids, N, NULL, 0, text, &err) == 0, "text step: %s", err.msg);
    /* runs of one token each at 4..15 */
    g4_step_image ones[12];
    for (int k = 0; k < 12; k++) ones[k] = (g4_step_image){.first = 4 + k, .n = 1, .embed = rows + (size_t)(4 + k) * H};
    REQUIRE(run1(r, ids, N, ones, 12, got, &err) == 0, "runs of one: %s", err.msg);
    double d1 = max_diff(got, text, (size_t)N * V);
    printf("runs of one token with the tokens' own embeddings: max |dlogit| = %.3g (must be 0)\n", d1);
    CHECK(d1 == 0, "runs of one differ from the text forward by %g", d1);

    /* one run of 12 at 4..15: bidirectional on sliding layers */
    g4_step_image run = {.first = 4, .n = 12, .embed = rows + (size_t)4 * H};
    REQUIRE(run1(r, ids, N, &run, 1, got, &err) == 0, "run of 12: %s", err.msg);
    double before = max_diff(got, text, (size_t)4 * V), inside = max_diff(got + (size_t)4 * V, text + (size_t)4 * V, V);
    printf("run of 12: rows before it move %.3g (must be 0), its first row moves %.3g (must be > 1e-3)\n", before,
           inside);
    CHECK(before == 0, "tokens before the run changed by %g", before);
    CHECK(inside > 1e-3, "the run's first token does not see the later ones: %g", inside);
    memcpy(text + (size_t)N * V, got, (size_t)N * V * sizeof *got); /* the run's result, alone */

    /* batched: seq A text only, seq B with the run */
    int a = g4_runner_seq_open(r, &err), b = g4_runner_seq_open(r, &err);
    g4_runner_chunk cs[2] = {{.seq = a, .n = N, .ids = ids, .all_logits = 1},
                             {.seq = b, .n = N, .ids = ids, .all_logits = 1}};
    g4_step_image brun = {.first = N + 4, .n = 12, .embed = rows + (size_t)4 * H};
    float *alone_text = malloc((size_t)N * V * sizeof *alone_text);
    REQUIRE(alone_text && run1(r, ids, N, NULL, 0, alone_text, &err) == 0, "text again: %s", err.msg);
    REQUIRE(g4_runner_step_images(r, cs, 2, &brun, 1, got, &err) == 0, "batched: %s", err.msg);
    double da = max_diff(got, alone_text, (size_t)N * V),
           db = max_diff(got + (size_t)N * V, text + (size_t)N * V, (size_t)N * V);
    printf("batched: text sequence %.3g, image sequence %.3g from alone (each ≤ 1e-5)\n", da, db);
    CHECK(da <= 1e-5 && db <= 1e-5, "batched differs from alone: %g / %g", da, db);
    g4_runner_seq_close(r, a);
    g4_runner_seq_close(r, b);

    /* refusals */
    struct {
        const char *what, *msg;
        g4_step_image im[2];
        int n_im, two_seqs;
    } bad[] = {
        {"past the step", "image 0 has tokens", {{.first = 20, .n = 8, .embed = rows}}, 1, 0},
        {"across sequences", "not the next position", {{.first = N - 2, .n = 4, .embed = rows}}, 1, 1},
        {"overlapping",
         "in two images",
         {{.first = 2, .n = 4, .embed = rows}, {.first = 5, .n = 2, .embed = rows}},
         2,
         0},
        {"no rows", "image 0 has tokens", {{.first = 2, .n = 4, .embed = NULL}}, 1, 0},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int s0 = g4_runner_seq_open(r, &err), s1 = g4_runner_seq_open(r, &err);
        g4_runner_chunk c2[2] = {{.seq = s0, .n = N, .ids = ids, .all_logits = 1},
                                 {.seq = s1, .n = N, .ids = ids, .all_logits = 1}};
        g4_error e = {{0}};
        int rc = g4_runner_step_images(r, c2, bad[i].two_seqs ? 2 : 1, bad[i].im, bad[i].n_im, got, &e);
        CHECK(rc != 0 && strstr(e.msg, bad[i].msg), "%s: rc %d, message '%s' (expected '%s')", bad[i].what, rc, e.msg,
              bad[i].msg);
        CHECK(g4_runner_seq_len(r, s0) == 0, "%s: a refused step advanced the sequence", bad[i].what);
        g4_runner_seq_close(r, s0);
        g4_runner_seq_close(r, s1);
    }
    REQUIRE(run1(r, ids, N, &run, 1, got, &err) == 0, "a valid step after the refusals: %s", err.msg);
    CHECK(max_diff(got, text + (size_t)N * V, (size_t)N * V) == 0, "the valid step after refusals differs");
    int us = -1, ug = -1;
    g4_runner_blocks_used(r, &us, &ug);
    CHECK(us == 0 && ug == 0, "blocks still in use: %d / %d", us, ug);
    free(rows), free(text), free(got), free(alone_text);
    g4_runner_free(r);
    g4_model_close(m);
    g4_backend_destroy(be);
    return check_summary();
}
