/* test_tp.c — tensor parallelism on the CPU backend (thread all-reduce): the tiny dense and MoE
 * models split over t = 2 and t = 4 ranks give the same greedy tokens as t = 1, and logits
 * within fp32 reduction-order tolerance, for a batched prefill of three prompts followed by
 * batched decode. t = 4 replicates the single global KV head and splits the two sliding KV
 * heads' query groups. Also: a geometry that does not divide is refused naming the field. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/backend.h"
#include "check.h"
#include "model/runner.h"
#include "model/shard.h"
#include "model/testmodel.h"
#include "parallel/tp.h"

#define NSEQ 3
#define NDEC 8
static const int plen[NSEQ] = {9, 23, 30};

/* Runs prefill + decode; fills logits of the prefill rows and the generated tokens. */
static int run(g4_model *m, g4_step_fn fn, void *ctx, int32_t **prompt, float *prefill, int32_t gen[NSEQ][NDEC]) {
    g4_error err = {{0}};
    g4_runner *r = g4_runner_create(m, &err);
    if (!r) return -1;
    if (fn) g4_runner_set_step_fn(r, fn, ctx);
    int V = m->full_cfg.vocab, q[NSEQ];
    g4_runner_chunk cs[NSEQ];
    for (int s = 0; s < NSEQ; s++) {
        q[s] = g4_runner_seq_open(r, &err);
        cs[s] = (g4_runner_chunk){q[s], plen[s], prompt[s], 1};
    }
    int rc = g4_runner_step(r, cs, NSEQ, prefill, &err);
    CHECK(rc == 0, "prefill: %s", err.msg);
    float *row = malloc(sizeof(float) * NSEQ * V);
    int32_t next[NSEQ];
    for (int s = 0, off = 0; s < NSEQ; off += plen[s], s++)
        next[s] = g4_argmax(prefill + (size_t)(off + plen[s] - 1) * V, V);
    for (int i = 0; i < NDEC && rc == 0; i++) {
        for (int s = 0; s < NSEQ; s++) {
            gen[s][i] = next[s];
            cs[s] = (g4_runner_chunk){q[s], 1, &next[s], 0};
        }
        rc = g4_runner_step(r, cs, NSEQ, row, &err);
        CHECK(rc == 0, "decode: %s", err.msg);
        for (int s = 0; s < NSEQ; s++) next[s] = g4_argmax(row + (size_t)s * V, V);
    }
    free(row);
    g4_runner_free(r);
    return rc;
}

static void test_model(const char *kind, const char *dir) {
    g4_error err = {{0}};
    g4_config cfg;
    if (g4_testmodel_config(&cfg, kind, &err) || (cfg.vocab = 4096, 0) || g4_testmodel_write(&cfg, 11, dir, &err)) {
        CHECK(0, "%s", err.msg);
        return;
    }
    g4_model_opts o;
    g4_model_opts_default(&o);
    o.max_seqs = 4, o.max_step_tokens = 96, o.max_model_len = 96;
    int32_t *prompt[NSEQ];
    unsigned seed = 5;
    int total = 0;
    for (int s = 0; s < NSEQ; s++) {
        prompt[s] = malloc(sizeof(int32_t) * plen[s]);
        for (int i = 0; i < plen[s]; i++) prompt[s][i] = 3 + (int32_t)((seed = seed * 1664525u + 1013904223u) % 4000u);
        total += plen[s];
    }
    size_t nlog = (size_t)total * cfg.vocab;
    float *ref = malloc(nlog * sizeof(float)), *got = malloc(nlog * sizeof(float));
    int32_t gen1[NSEQ][NDEC], gent[NSEQ][NDEC];

    g4_backend *be = g4_backend_cpu_create(&err);
    g4_model *m = NULL;
    if (g4_model_open(&m, dir, be, &o, &err)) {
        CHECK(0, "open: %s", err.msg);
        return;
    }
    run(m, NULL, NULL, prompt, ref, gen1);
    g4_model_close(m);
    g4_backend_destroy(be);

    for (int t = 2; t <= 4; t *= 2) {
        g4_tp *tp = g4_tp_open(dir, "cpu", NULL, t, &o, &err);
        CHECK(tp != NULL, "%s t=%d: %s", kind, t, err.msg);
        if (!tp) continue;
        CHECK(g4_tp_model(tp, t - 1)->cfg.n_heads == cfg.n_heads / t, "local heads");
        run(g4_tp_model(tp, 0), g4_tp_step, tp, prompt, got, gent);
        double md = 0, mx = 1e-30;
        for (size_t i = 0; i < nlog; i++) {
            double d = got[i] > ref[i] ? got[i] - ref[i] : ref[i] - got[i];
            if (d > md) md = d;
            if ((ref[i] < 0 ? -ref[i] : ref[i]) > mx) mx = ref[i] < 0 ? -ref[i] : ref[i];
        }
        printf("%s t=%d: prefill logits rel diff %.3g vs t=1\n", kind, t, md / mx);
        CHECK(md / mx < 1e-4, "%s t=%d logits rel diff %g", kind, t, md / mx); /* fp32 sums in another order */
        CHECK(!memcmp(gen1, gent, sizeof gen1), "%s t=%d: greedy tokens differ from t=1", kind, t);
        g4_tp_close(tp);
    }
    /* t = 3 does not divide 4 query heads */
    g4_tp *bad = g4_tp_open(dir, "cpu", NULL, 3, &o, &err);
    CHECK(bad == NULL && strstr(err.msg, "num_attention_heads"), "t=3 refused: %s", err.msg);
    for (int s = 0; s < NSEQ; s++) free(prompt[s]);
    free(ref), free(got);
}

int main(void) {
    char dir[] = "/tmp/g4-test-tp-XXXXXX", sub[512];
    REQUIRE(mkdtemp(dir) != NULL, "mkdtemp");
    snprintf(sub, sizeof sub, "%s/dense", dir);
    test_model("tiny-dense", sub);
    snprintf(sub, sizeof sub, "%s/moe", dir);
    test_model("tiny-moe", sub);
    /* the real geometries split as docs/architecture.md ("Tensor parallelism") says */
    g4_config c = {0};
    c.n_heads = 32, c.n_kv_heads = 16, c.n_global_kv_heads = 4, c.intermediate = 21504, c.vocab = 262144;
    g4_error err = {{0}};
    for (int t = 1; t <= 8; t *= 2) CHECK(g4_shard_check(&c, t, &err) == 0, "31B t=%d: %s", t, err.msg);
    c.n_heads = 16, c.n_kv_heads = 8, c.n_global_kv_heads = 2, c.intermediate = 2112, c.moe = 1,
    c.moe_intermediate = 704;
    for (int t = 1; t <= 8; t *= 2) CHECK(g4_shard_check(&c, t, &err) == 0, "26B t=%d: %s", t, err.msg);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0, "cleanup");
    return check_summary();
}
