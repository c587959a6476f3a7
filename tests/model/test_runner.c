/* test_runner.c — the forward pass through the runner on tiny random dense and MoE checkpoints.
 *
 * The same prompts must give the same logits and greedy tokens whether each sequence runs
 * alone in one prefill step, all sequences share one step, or prompts are fed in chunks that
 * straddle the sliding window (16 tokens here) followed by batched decode. Also checks that
 * sliding-pool blocks are returned once they leave the window, that all blocks come back when
 * sequences close, and that bad steps fail without changing anything. The vocabulary is cut to
 * 4096 (no tokenizer is involved) so the LM head does not dominate the run time under ASan. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/backend.h"
#include "check.h"
#include "model/gemma4.h"
#include "model/runner.h"
#include "model/testmodel.h"

#define NSEQ 4
#define NDEC 10
static const int plen[NSEQ] = {5, 17, 33, 40};

/* Scratch logits for steps that must fail before writing anything. */
static float *row_buf_dummy(void) {
    static float buf[262144];
    return buf;
}

static double max_rel(const float *a, const float *b, size_t n) {
    double md = 0, mb = 1e-30;
    for (size_t i = 0; i < n; i++) {
        double d = a[i] - b[i];
        if (d < 0) d = -d;
        if (d > md) md = d;
        if ((b[i] < 0 ? -b[i] : b[i]) > mb) mb = b[i] < 0 ? -b[i] : b[i];
    }
    return md / mb;
}

/* Sliding blocks a sequence of L cached tokens still needs: the next query reads keys
 * [L − W + 1, L], so blocks ⌊max(0, L − W + 1)/B⌋ .. ⌈L/B⌉ − 1 are live. */
static int live_sliding(int L, int W, int B) {
    int first = L - W + 1 > 0 ? L - W + 1 : 0;
    return (L + B - 1) / B - first / B;
}

static void run_model(const char *kind, const char *dir) {
    g4_error err = {{0}};
    g4_config cfg;
    if (g4_testmodel_config(&cfg, kind, &err) || (cfg.vocab = 4096, 0) || g4_testmodel_write(&cfg, 7, dir, &err)) {
        CHECK(0, "write %s: %s", kind, err.msg);
        return;
    }
    g4_backend *be = g4_backend_cpu_create(&err);
    g4_model_opts o;
    g4_model_opts_default(&o);
    o.max_seqs = 8;
    o.max_step_tokens = 128;
    o.max_model_len = 128;
    g4_model *m = NULL;
    if (g4_model_open(&m, dir, be, &o, &err)) {
        CHECK(0, "open %s: %s", kind, err.msg);
        g4_backend_destroy(be);
        return;
    }
    g4_runner *r = g4_runner_create(m, &err);
    CHECK(r != NULL, "%s", err.msg);
    int V = m->cfg.vocab;
    int32_t *prompt[NSEQ];
    unsigned seed = 99;
    int total = 0;
    for (int s = 0; s < NSEQ; s++) {
        prompt[s] = malloc(sizeof(int32_t) * plen[s]);
        for (int i = 0; i < plen[s]; i++)
            prompt[s][i] = 3 + (int32_t)((seed = seed * 1103515245u + 12345u) % (unsigned)(V - 3));
        total += plen[s];
    }
    float *alone = malloc(sizeof(float) * total * V), *batched = malloc(sizeof(float) * total * V);
    float *row = malloc(sizeof(float) * NSEQ * V);
    int32_t gen_alone[NSEQ][NDEC], gen_batched[NSEQ][NDEC];

    /* A: each sequence alone, full prefill with all logits, then greedy decode */
    for (int s = 0, off = 0; s < NSEQ; off += plen[s], s++) {
        int q = g4_runner_seq_open(r, &err);
        g4_runner_chunk c = {q, plen[s], prompt[s], 1};
        CHECK(g4_runner_step(r, &c, 1, alone + (size_t)off * V, &err) == 0, "%s", err.msg);
        int32_t next = g4_argmax(alone + (size_t)(off + plen[s] - 1) * V, V);
        for (int i = 0; i < NDEC; i++) {
            gen_alone[s][i] = next;
            c = (g4_runner_chunk){q, 1, &next, 0};
            CHECK(g4_runner_step(r, &c, 1, row, &err) == 0, "%s", err.msg);
            next = g4_argmax(row, V);
        }
        g4_runner_seq_close(r, q);
    }
    int distinct = 0;
    for (int i = 1; i < NDEC; i++) distinct += gen_alone[3][i] != gen_alone[3][0];
    CHECK(distinct > 0, "%s: greedy output is one repeated token", kind);

    /* B: all sequences in one step */
    int q[NSEQ];
    g4_runner_chunk cs[NSEQ];
    for (int s = 0; s < NSEQ; s++) {
        q[s] = g4_runner_seq_open(r, &err);
        cs[s] = (g4_runner_chunk){q[s], plen[s], prompt[s], 1};
    }
    CHECK(g4_runner_step(r, cs, NSEQ, batched, &err) == 0, "%s", err.msg);
    double e = max_rel(batched, alone, (size_t)total * V);
    printf("%s: batched vs alone prefill logits rel diff %.3g\n", kind, e);
    CHECK(e < 1e-5, "%s batched prefill rel diff %g", kind, e);
    for (int s = 0; s < NSEQ; s++) g4_runner_seq_close(r, q[s]);

    /* C: chunks of 7 tokens (straddling the 16-token window), then batched decode */
    for (int s = 0; s < NSEQ; s++) q[s] = g4_runner_seq_open(r, &err);
    int done[NSEQ] = {0};
    double worst = 0;
    for (int more = 1; more;) {
        int n = 0;
        more = 0;
        for (int s = 0; s < NSEQ; s++) {
            if (done[s] == plen[s]) continue;
            int c = plen[s] - done[s] < 7 ? plen[s] - done[s] : 7;
            cs[n++] = (g4_runner_chunk){q[s], c, prompt[s] + done[s], 1};
        }
        if (!n) break;
        CHECK(g4_runner_step(r, cs, n, batched, &err) == 0, "%s", err.msg);
        for (int i = 0, rowi = 0; i < n; i++) {
            int s = 0;
            while (q[s] != cs[i].seq) s++;
            int off = 0;
            for (int k = 0; k < s; k++) off += plen[k];
            double ei = max_rel(batched + (size_t)rowi * V, alone + (size_t)(off + done[s]) * V, (size_t)cs[i].n * V);
            if (ei > worst) worst = ei;
            rowi += cs[i].n;
            done[s] += cs[i].n;
            more |= done[s] < plen[s];
        }
    }
    printf("%s: chunked vs alone prefill logits rel diff %.3g\n", kind, worst);
    CHECK(worst < 1e-5, "%s chunked prefill rel diff %g", kind, worst);
    int32_t next[NSEQ];
    for (int s = 0, off = 0; s < NSEQ; off += plen[s], s++)
        next[s] = g4_argmax(alone + (size_t)(off + plen[s] - 1) * V, V);
    for (int i = 0; i < NDEC; i++) {
        for (int s = 0; s < NSEQ; s++) {
            gen_batched[s][i] = next[s];
            cs[s] = (g4_runner_chunk){q[s], 1, &next[s], 0};
        }
        CHECK(g4_runner_step(r, cs, NSEQ, row, &err) == 0, "%s", err.msg);
        for (int s = 0; s < NSEQ; s++) next[s] = g4_argmax(row + (size_t)s * V, V);
        /* decode walks sequence 3 across L = 47, where block 1 (keys 16..31) leaves the window */
        int want_s = 0, got_s, got_g;
        for (int s = 0; s < NSEQ; s++) want_s += live_sliding(plen[s] + i + 1, m->cfg.sliding_window, o.block_size);
        g4_runner_blocks_used(r, &got_s, &got_g);
        CHECK(got_s == want_s, "%s decode %d: %d sliding blocks held (expected %d)", kind, i, got_s, want_s);
    }
    CHECK(!memcmp(gen_alone, gen_batched, sizeof gen_alone), "%s: batched greedy tokens differ from alone", kind);

    /* sliding blocks: after L tokens the next query needs keys [L − W + 1, L]; a sequence keeps
     * blocks ⌊(L − W + 1)/B⌋ .. ⌈L/B⌉ − 1. W = B = 16, L = 15, 27, 43, 50 → 1 + 2 + 2 + 2 = 7
     * (10 if nothing were ever released, 6 if one block too many were). */
    int used_s, used_g;
    g4_runner_blocks_used(r, &used_s, &used_g);
    CHECK(m->cfg.sliding_window == 16 && o.block_size == 16, "%s: test geometry changed", kind);
    CHECK(used_s == 7, "%s: %d sliding blocks held by %d sequences (expected 7)", kind, used_s, NSEQ);
    int want_g = 0;
    for (int s = 0; s < NSEQ; s++) want_g += (plen[s] + NDEC + 15) / 16;
    CHECK(used_g == want_g, "%s: %d global blocks (expected %d)", kind, used_g, want_g);

    /* bad steps fail and change nothing */
    int32_t ids[200] = {0};
    g4_runner_chunk big = {q[0], 120, ids, 0};
    CHECK(g4_runner_step(r, &big, 1, row, &err) != 0 && strstr(err.msg, "model length"), "too long: %s", err.msg);
    g4_runner_chunk twice[2] = {{q[1], 1, ids, 0}, {q[1], 1, ids, 0}};
    CHECK(g4_runner_step(r, twice, 2, row, &err) != 0 && strstr(err.msg, "twice"), "dup seq: %s", err.msg);
    int32_t bad_id = V;
    g4_runner_chunk badtok = {q[2], 1, &bad_id, 0};
    CHECK(g4_runner_step(r, &badtok, 1, row, &err) != 0 && strstr(err.msg, "out of range"), "bad id: %s", err.msg);
    /* a hand-built step with a block-table entry outside the pool, a missing own block, or a
     * logit row outside the step is refused before any backend reads through it */
    {
        int nb = m->max_blocks_per_seq;
        int32_t *bs = calloc((size_t)nb, sizeof *bs), *bg = calloc((size_t)nb, sizeof *bg);
        int32_t id = 5, pos = 0, sq = 0, row = 0;
        g4_step st = {.n_tokens = 1,
                      .token_ids = &id,
                      .pos = &pos,
                      .seq = &sq,
                      .n_seqs = 1,
                      .blocks_sliding = bs,
                      .blocks_global = bg,
                      .n_rows = 1,
                      .rows = &row};
        bs[3] = m->opts.n_blocks_sliding;
        CHECK(g4_model_forward(m, &st, row_buf_dummy(), &err) != 0 && strstr(err.msg, "sliding block table"),
              "table entry outside the pool: %s", err.msg);
        bs[3] = 0, bg[0] = -1;
        CHECK(g4_model_forward(m, &st, row_buf_dummy(), &err) != 0 && strstr(err.msg, "no global-pool block"),
              "missing own block: %s", err.msg);
        bg[0] = 0, row = 1;
        CHECK(g4_model_forward(m, &st, row_buf_dummy(), &err) != 0 && strstr(err.msg, "logit row"),
              "row outside the step: %s", err.msg);
        free(bs), free(bg);
    }
    int after_s, after_g;
    g4_runner_blocks_used(r, &after_s, &after_g);
    CHECK(after_s == used_s && after_g == used_g, "%s: failed steps leaked blocks (%d/%d → %d/%d)", kind, used_s,
          used_g, after_s, after_g);
    CHECK(g4_runner_seq_len(r, q[2]) == plen[2] + NDEC, "failed step changed the length");

    for (int s = 0; s < NSEQ; s++) g4_runner_seq_close(r, q[s]);
    g4_runner_blocks_used(r, &used_s, &used_g);
    CHECK(used_s == 0 && used_g == 0, "%s: %d/%d blocks still used after close", kind, used_s, used_g);

    for (int s = 0; s < NSEQ; s++) free(prompt[s]);
    free(alone), free(batched), free(row);
    g4_runner_free(r);
    g4_model_close(m);
    g4_backend_destroy(be);
}

int main(void) {
    char dir[] = "/tmp/g4-test-runner-XXXXXX";
    REQUIRE(mkdtemp(dir) != NULL, "mkdtemp");
    char sub[512];
    snprintf(sub, sizeof sub, "%s/dense", dir);
    run_model("tiny-dense", sub);
    snprintf(sub, sizeof sub, "%s/moe", dir);
    run_model("tiny-moe", sub);

    g4_error err = {{0}};
    g4_backend *be = g4_backend_cpu_create(&err);
    g4_model *m = NULL;
    CHECK(g4_model_open(&m, "/nonexistent/model", be, NULL, &err) != 0 && strstr(err.msg, "/nonexistent/model"),
          "missing dir: %s", err.msg);
    g4_backend_destroy(be);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0, "cleanup");
    return check_summary();
}
