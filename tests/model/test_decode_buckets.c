/* test_decode_buckets.c — bucketed (padded) decode steps equal the plain steps bit for bit, the
 * pads write no engine-visible KV block, and a step is one upload: decode_buckets.h on the CPU
 * backend (no graphs: opts.pad_decode pads the steps). The same checks run on CUDA and the
 * emulated CUDA target in tests/gpu/test_gpu_buckets.c, with graphs.
 *
 * Then: a decode step is padded only when a graph will record or replay it. The CPU backend
 * wrapped to claim graphs whose every recording fails (graph_end: "an op synchronised", as the
 * CUDA backend's simple MoE path does) runs model A with graphs on (default options) and B with
 * no_graphs. Five sequences are prefilled, then decode steps of 3, 3, 3, 3, 5, 5, 5 tokens (keys
 * bucket 4 and bucket 8, one position bound). Each key's first step is padded (the warm-up before
 * recording), its second too (the recording, which fails), the later ones must not be: A's pad
 * blocks are poisoned before each step and a pad token's cache write overwrites the poison, so
 * "padded" is read from the KV pool, independently of the model's own count (which must agree).
 * A's logits equal B's bit for bit on every step.
 *
 * Last: a step with image runs is one upload too (the soft tokens travel in the step's staging
 * buffer; before, each run was one more blocking upload). That their rows arrive right is
 * test_image_step's (image rows equal to the tokens' own embeddings give the text logits). */
#include <math.h>

#include "decode_buckets.h"

/* --- the CPU backend with graphs that never record (file-static: the ops see only the CPU ctx) */
static const g4_backend_ops *ng_cpu;
static g4_backend_ops ng_ops;
static int ng_supports(void *ctx, g4_op op, g4_dtype dt) {
    return op == G4_OP_GRAPH ? 1 : ng_cpu->supports(ctx, op, dt);
}
static int ng_begin(void *ctx, g4_error *err) {
    (void)ctx, (void)err;
    return 0;
}
static int ng_end(void *ctx, void **graph, g4_error *err) {
    (void)ctx;
    *graph = NULL;
    return g4_fail(err, "test graphs: an op synchronised (nothing is ever recorded)");
}
static int ng_launch(void *ctx, void *graph, g4_error *err) {
    (void)ctx, (void)graph;
    return g4_fail(err, "test graphs: no graph exists to launch");
}
static void ng_free(void *ctx, void *graph) { (void)ctx, (void)graph; }

#define NG_SEQS 5
#define NG_STEPS 12 /* 5 prefills, 7 decode steps */

typedef struct ng_ctx {
    g4_model *a, *b;
    float *lb;
    unsigned char *pad; /* one pad block's bytes */
    int steps, padded[NG_STEPS];
} ng_ctx;

/* Fills (poison) or compares with the poison (check: *written = some byte differs) every layer's
 * pad block of m: the pool's last block (plan_kv in gemma4.c). */
static int ng_pad_blocks(ng_ctx *c, int check, int *written, g4_error *err) {
    const g4_backend_ops *ops = c->a->be->ops;
    size_t es = g4_dtype_size(ops->kv_dtype);
    for (int l = 0; l < c->a->cfg.n_layers; l++) {
        const g4_kv_layer *kv = &c->a->kv[l];
        size_t blk = g4_kv_block_elems(kv) * es;
        char *at = (char *)kv->base + (size_t)(kv->n_blocks - 1) * blk;
        if (!check) {
            memset(c->pad, 0x5a, blk);
            if (ops->upload(c->a->be->ctx, at, c->pad, blk, err)) return -1;
            continue;
        }
        if (ops->download(c->a->be->ctx, c->pad, at, blk, err)) return -1;
        for (size_t i = 0; i < blk; i++) *written |= c->pad[i] != 0x5a;
    }
    return 0;
}

static int ng_step(void *user, const g4_step *st, float *logits, g4_error *err) {
    ng_ctx *c = user;
    int written = 0, V = c->a->shard.vocab_local;
    if (c->steps >= NG_STEPS) return g4_fail(err, "more steps than planned");
    if (ng_pad_blocks(c, 0, NULL, err) || g4_model_forward(c->a, st, logits, err) ||
        ng_pad_blocks(c, 1, &written, err) || g4_model_forward(c->b, st, c->lb, err))
        return -1;
    CHECK(!memcmp(logits, c->lb, (size_t)st->n_rows * V * sizeof(float)), "step %d (T=%d): logits differ", c->steps,
          st->n_tokens);
    c->padded[c->steps++] = written;
    return 0;
}

static void pad_only_for_graphs(void) {
    g4_error err = {{0}};
    g4_backend *cpu = g4_backend_cpu_create(&err);
    REQUIRE_VOID(cpu, "cpu backend: %s", err.msg);
    ng_cpu = cpu->ops;
    ng_ops = *cpu->ops;
    ng_ops.supports = ng_supports, ng_ops.graph_begin = ng_begin, ng_ops.graph_end = ng_end;
    ng_ops.graph_launch = ng_launch, ng_ops.graph_free = ng_free;
    g4_backend be = {&ng_ops, cpu->ctx, NULL};
    g4_config cfg;
    char dir[256];
    snprintf(dir, sizeof dir, "/tmp/g4_test_buckets_nograph_%d", (int)getpid());
    REQUIRE_VOID(!g4_testmodel_config(&cfg, "tiny-dense", &err), "%s", err.msg);
    cfg.vocab = DB_VOCAB;
    REQUIRE_VOID(!g4_testmodel_write(&cfg, 778, dir, &err), "%s", err.msg);
    g4_model_opts oa;
    g4_model_opts_default(&oa);
    oa.max_step_tokens = 48, oa.max_seqs = 8, oa.block_size = 4, oa.max_model_len = 64;
    g4_model_opts ob = oa;
    ob.no_graphs = 1;
    ng_ctx c = {0};
    g4_runner *r = NULL;
    float *logits = malloc((size_t)8 * DB_VOCAB * sizeof(float));
    c.lb = malloc((size_t)8 * DB_VOCAB * sizeof(float));
    int ok = logits && c.lb && !g4_model_open(&c.a, dir, &be, &oa, &err) && !g4_model_open(&c.b, dir, &be, &ob, &err);
    if (ok) {
        size_t most = 0;
        for (int l = 0; l < c.a->cfg.n_layers; l++)
            if (g4_kv_block_elems(&c.a->kv[l]) > most) most = g4_kv_block_elems(&c.a->kv[l]);
        c.pad = malloc(most * g4_dtype_size(be.ops->kv_dtype));
        ok = c.pad && (r = g4_runner_create(c.a, &err));
    }
    CHECK(ok, "setup: %s", err.msg);
    int rc = !ok, seq[NG_SEQS];
    int32_t prompt[32], ids[NG_SEQS];
    if (!rc) g4_runner_set_step_fn(r, ng_step, &c);
    for (int s = 0; s < NG_SEQS && !rc; s++) { /* prompts of 20..24 tokens: every position < 32, one bound */
        if ((seq[s] = g4_runner_seq_open(r, &err)) < 0) rc = -1;
        for (int i = 0; i < 20 + s; i++) prompt[i] = 3 + (int32_t)((s * 131 + i * 17) % (DB_VOCAB - 3));
        g4_runner_chunk ch = {seq[s], 20 + s, prompt, 0};
        if (!rc) rc = g4_runner_step(r, &ch, 1, logits, &err);
    }
    static const int plan[7] = {3, 3, 3, 3, 5, 5, 5};
    static const int expect[NG_STEPS] = {0, 0, 0, 0, 0, 1, 1, 0, 0, 1, 1, 0};
    for (int i = 0; i < 7 && !rc; i++) {
        g4_runner_chunk ch[NG_SEQS];
        for (int j = 0; j < plan[i]; j++) {
            ids[j] = 3 + (int32_t)((i * 29 + j * 7) % (DB_VOCAB - 3));
            ch[j] = (g4_runner_chunk){seq[j], 1, &ids[j], 0};
        }
        rc = g4_runner_step(r, ch, plan[i], logits, &err);
    }
    CHECK(!rc && c.steps == NG_STEPS, "steps: %s (%d run)", err.msg, c.steps);
    if (!rc && c.steps == NG_STEPS) {
        g4_model_graph_stats ga;
        g4_model_graph_stats_get(c.a, &ga);
        int seen = 0;
        printf("graphs that never record: steps padded (from the pad blocks):");
        for (int i = 0; i < NG_STEPS; i++) printf(" %d", c.padded[i]), seen += c.padded[i];
        printf("; model: padded %ld, recorded %ld, not recordable %ld\n", ga.padded, ga.recorded, ga.record_failures);
        CHECK(!memcmp(c.padded, expect, sizeof expect),
              "padded steps differ from 0 0 0 0 0 1 1 0 0 1 1 0: an unrecordable key's steps must run unpadded");
        CHECK(ga.padded == seen && ga.recorded == 0 && ga.record_failures == 2,
              "model stats: padded %ld (pools say %d), recorded %ld, not recordable %ld (expected 2)", ga.padded, seen,
              ga.recorded, ga.record_failures);
    }
    g4_runner_free(r);
    g4_model_close(c.a);
    g4_model_close(c.b);
    free(logits), free(c.lb), free(c.pad);
    g4_backend_destroy(cpu);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

static void image_step_one_upload(void) {
    g4_error err = {{0}};
    g4_backend *be = g4_backend_cpu_create(&err);
    REQUIRE_VOID(be, "cpu backend: %s", err.msg);
    g4_config cfg;
    char dir[256];
    snprintf(dir, sizeof dir, "/tmp/g4_test_buckets_image_%d", (int)getpid());
    REQUIRE_VOID(!g4_testmodel_config(&cfg, "tiny-dense", &err), "%s", err.msg);
    cfg.vocab = DB_VOCAB;
    REQUIRE_VOID(!g4_testmodel_write(&cfg, 779, dir, &err), "%s", err.msg);
    g4_model_opts o;
    g4_model_opts_default(&o);
    o.max_step_tokens = 48, o.max_seqs = 4, o.block_size = 4, o.max_model_len = 64;
    g4_model *m = NULL;
    g4_runner *r = NULL;
    int H = cfg.hidden;
    float *rows = malloc((size_t)11 * H * sizeof(float)), *logits = malloc((size_t)2 * DB_VOCAB * sizeof(float));
    int ok = rows && logits && !g4_model_open(&m, dir, be, &o, &err) && (r = g4_runner_create(m, &err));
    CHECK(ok, "setup: %s", err.msg);
    if (ok) {
        for (int i = 0; i < 11 * H; i++) rows[i] = (float)((i * 37) % 101) / 101.0f - 0.5f;
        int32_t ids[24];
        for (int i = 0; i < 24; i++) ids[i] = 3 + i * 11;
        int s0 = g4_runner_seq_open(r, &err), s1 = g4_runner_seq_open(r, &err);
        g4_runner_chunk ch[2] = {{s0, 12, ids, 0}, {s1, 12, ids + 12, 0}};
        g4_step_image im[2] = {{2, 5, rows}, {15, 6, rows + (size_t)5 * H}}; /* a run in each sequence */
        uint64_t u0 = be->ops->upload_count(be->ctx);
        ok = s0 >= 0 && s1 >= 0 && !g4_runner_step_images(r, ch, 2, im, 2, logits, &err);
        uint64_t ups = be->ops->upload_count(be->ctx) - u0;
        CHECK(ok, "image step: %s", err.msg);
        int finite = 1;
        for (int i = 0; ok && i < 2 * DB_VOCAB; i++) finite &= isfinite(logits[i]);
        printf("a step with 2 image runs (11 soft tokens): %llu upload(s)\n", (unsigned long long)ups);
        CHECK(ok && ups == 1 && finite, "image step: %llu uploads (expected 1), logits finite %d",
              (unsigned long long)ups, finite);
    }
    g4_runner_free(r);
    g4_model_close(m);
    g4_backend_destroy(be);
    free(rows), free(logits);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

int main(void) {
    g4_error err = {{0}};
    g4_backend *be = g4_backend_cpu_create(&err);
    REQUIRE(be, "cpu backend: %s", err.msg);
    db_run(be, "tiny-dense");
    db_run(be, "tiny-moe");
    g4_backend_destroy(be);
    pad_only_for_graphs();
    image_step_one_upload();
    return check_summary();
}
