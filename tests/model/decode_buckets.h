/* decode_buckets.h — bucketed decode steps and the one-upload step, checked on any backend
 * (tests/model/test_decode_buckets.c on the CPU, tests/gpu/test_gpu_buckets.c on CUDA and the
 * emulated CUDA target).
 *
 * Two models of the same tiny checkpoint on one backend run the same steps (one runner makes
 * them; its step function runs each step on both):
 *   A, the subject: decode steps padded to their batch bucket (stage_step in gemma4.c) and, on a
 *     backend with graphs, recorded per bucket and replayed;
 *   B, the reference: opts.no_graphs, nothing padded — the plain eager step.
 * Nine sequences with prompts of 33..41 tokens (prefilled one sequence a step), then decode
 * steps: two sweeps of batches 9..1 (each bucket's steps run eagerly, then recorded, then
 * replayed), then batches 1, 3, 5, 7 (replayed), each step once through g4_model_forward and
 * once through g4_model_forward_sample (greedy and seeded rows, a penalty, logprobs; prefill
 * steps only through the first). Checked per step:
 *   - A's logits, sampled tokens and logprob records equal B's bit for bit;
 *   - every KV pool block the engine may own (ids < opts.n_blocks_*) holds the same bytes in A
 *     and B: the pad tokens wrote none of them, the real tokens wrote the same; A's pad block
 *     must change at least once (the pads' writes went there: the check can fail);
 *   - each call made exactly one host-to-device upload (backend upload_count).
 * At the end, on a backend with graphs: every step position stays in one position bound, so A
 * records at most 2 × 5 graphs (buckets 1, 2, 4, 8 and the cap 12, with and without sampling)
 * where graphs keyed by exact T would take 2 × 9, none failed to record (on the emulated target:
 * the captures were legal), and it replayed them. */
#ifndef G4_TESTS_DECODE_BUCKETS_H
#define G4_TESTS_DECODE_BUCKETS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/backend.h"
#include "check.h"
#include "model/gemma4.h"
#include "model/runner.h"
#include "model/testmodel.h"

#define DB_SEQS 9
#define DB_MAX_SEQS 12 /* buckets 1, 2, 4, 8, then the cap 12 */
#define DB_BUCKETS 5
#define DB_VOCAB 2048  /* no tokenizer involved: a small LM head keeps the emulated run short */

typedef struct db_ctx {
    g4_model *a, *b;
    float *lb;            /* B's logits */
    unsigned char *pa, *pb, *pad_prev; /* pool bytes of A and B, A's pad blocks at the last step */
    int steps, pad_changed, uploads_bad;
    long sampled_rows;
} db_ctx;

static inline uint64_t db_uploads(g4_model *m) { return m->be->ops->upload_count(m->be->ctx); }

/* A sample parameter block for the step's rows: odd rows greedy, even rows T = 0.8, top-k 40,
 * seeded by the row's token; row 0 has a repetition penalty on two tokens; every third row asks
 * for 3 top logprobs. Returns its size; *n_lp = the logprob slots. */
static inline size_t db_params(g4_sample_params **out, const g4_step *st, int V, int *n_lp) {
    int R = st->n_rows, n_pen = 2;
    size_t bytes = g4_sample_params_bytes(R, n_pen);
    g4_sample_params *p = calloc(1, bytes);
    if (!p) return 0;
    *p = (g4_sample_params){.n_rows = R, .n_pen = n_pen, .vocab = V, .mask_words = (V + 31) / 32};
    g4_sample_row_params *rows = g4_sample_rows(p);
    *n_lp = 0;
    for (int r = 0; r < R; r++) {
        int t = st->rows[r];
        rows[r] = (g4_sample_row_params){.temperature = r % 2 ? 0.0f : 0.8f,
                                         .top_p = 1.0f,
                                         .repetition_penalty = r == 0 ? 1.3f : 1.0f,
                                         .top_k = 40,
                                         .n_logprobs = r % 3 == 0 ? 3 : -1,
                                         .seed = 1000 + (uint64_t)st->token_ids[t],
                                         .step = (uint64_t)st->pos[t],
                                         .pen_first = 0,
                                         .n_pen = r == 0 ? n_pen : 0,
                                         .lp_slot = r % 3 == 0 ? (*n_lp)++ : 0};
    }
    g4_sample_penalty *pen = g4_sample_pens(p);
    pen[0] = (g4_sample_penalty){5, 1};
    pen[1] = (g4_sample_penalty){7, 0};
    *out = p;
    return bytes;
}

/* Copies every pool of m into out (ids < n_blocks_* first, then the pad block); returns bytes. */
static inline size_t db_pools(g4_model *m, unsigned char *out, size_t *pad_off, g4_error *err) {
    const g4_backend_ops *ops = m->be->ops;
    size_t at = 0, es = g4_dtype_size(ops->kv_dtype);
    for (int l = 0; l < m->cfg.n_layers; l++) {
        const g4_kv_layer *kv = &m->kv[l];
        size_t bytes = (size_t)kv->n_blocks * g4_kv_block_elems(kv) * es;
        if (ops->download(m->be->ctx, out + at, kv->base, bytes, err)) return 0;
        at += bytes;
    }
    if (pad_off) *pad_off = at;
    return at;
}

/* Compares the engine-visible blocks of every pool of A and B; notes whether A's pad blocks moved. */
static inline int db_check_pools(db_ctx *c, g4_error *err) {
    size_t off_a = 0, off_b = 0;
    size_t na = db_pools(c->a, c->pa, &off_a, err), nb = db_pools(c->b, c->pb, &off_b, err);
    if (!na || !nb || na != nb) return g4_fail(err, "pool download failed or pools differ in size");
    size_t at = 0, es = g4_dtype_size(c->a->be->ops->kv_dtype);
    int same = 1, pad_moved = 0;
    for (int l = 0; l < c->a->cfg.n_layers; l++) {
        const g4_kv_layer *kv = &c->a->kv[l];
        size_t blk = g4_kv_block_elems(kv) * es, real = (size_t)(kv->n_blocks - 1) * blk;
        if (memcmp(c->pa + at, c->pb + at, real) != 0) {
            same = 0;
            for (size_t i = 0; i < real; i++)
                if (c->pa[at + i] != c->pb[at + i]) {
                    fprintf(stderr, "layer %d: pool byte %zu (block %zu) differs\n", l, i, i / blk);
                    break;
                }
        }
        if (memcmp(c->pa + at + real, c->pad_prev + at + real, blk) != 0) pad_moved = 1;
        at += real + blk;
    }
    memcpy(c->pad_prev, c->pa, at);
    c->pad_changed |= pad_moved;
    CHECK(same, "step %d: a KV block below n_blocks differs between the padded and the plain step", c->steps);
    return 0;
}

/* The records of the rows that asked: equal in what the op writes (the top list's used part). */
static inline int db_same_logprobs(const g4_sample_logprobs *a, const g4_sample_logprobs *b, int n) {
    for (int i = 0; i < n; i++) {
        if (memcmp(&a[i].logprob, &b[i].logprob, sizeof(float)) || a[i].n_top != b[i].n_top) return 0;
        int k = a[i].n_top < 0 || a[i].n_top > G4_SAMPLE_MAX_TOP ? 0 : a[i].n_top;
        if (memcmp(a[i].top_ids, b[i].top_ids, (size_t)k * 4) ||
            memcmp(a[i].top_logprobs, b[i].top_logprobs, (size_t)k * 4))
            return 0;
    }
    return 1;
}

/* The runner's step function: the step on A and on B, compared. */
static inline int db_step(void *user, const g4_step *st, float *logits, g4_error *err) {
    db_ctx *c = user;
    int V = c->a->shard.vocab_local, R = st->n_rows;
    /* A and B share the backend, so its upload count is read between their calls */
    uint64_t u0 = db_uploads(c->a), u1 = 0, u2 = 0;
    if (g4_model_forward(c->a, st, logits, err) || ((u1 = db_uploads(c->a)), g4_model_forward(c->b, st, c->lb, err)))
        return -1;
    u2 = db_uploads(c->b);
    int upload_ok = u1 - u0 == 1 && u2 - u1 == 1;
    CHECK(!memcmp(logits, c->lb, (size_t)R * V * sizeof(float)), "step %d (T=%d, seqs %d): logits differ", c->steps,
          st->n_tokens, st->n_seqs);
    if (R && st->n_tokens == st->n_seqs) { /* decode steps (a prefill step is never padded) */
        g4_sample_params *p = NULL;
        int n_lp = 0;
        size_t pb = db_params(&p, st, V, &n_lp);
        int32_t *ta = calloc((size_t)R, 4), *tb = calloc((size_t)R, 4);
        g4_sample_logprobs *la = calloc((size_t)R, sizeof *la), *lb = calloc((size_t)R, sizeof *lb);
        int rc = !pb || !ta || !tb || !la || !lb ? g4_fail(err, "out of memory") : 0;
        u0 = db_uploads(c->a);
        if (!rc) rc = g4_model_forward_sample(c->a, st, p, pb, ta, la, n_lp, err);
        u1 = db_uploads(c->a);
        if (!rc) rc = g4_model_forward_sample(c->b, st, p, pb, tb, lb, n_lp, err);
        if (!rc) {
            upload_ok &= u1 - u0 == 1 && db_uploads(c->b) - u1 == 1;
            CHECK(!memcmp(ta, tb, (size_t)R * 4), "step %d (T=%d): sampled tokens differ", c->steps, st->n_tokens);
            CHECK(db_same_logprobs(la, lb, n_lp), "step %d (T=%d): logprob records differ", c->steps, st->n_tokens);
            for (int r = 0; r < R; r++) CHECK(ta[r] >= 0 && ta[r] < V, "token %d out of range", ta[r]);
            c->sampled_rows += R;
        }
        free(p), free(ta), free(tb), free(la), free(lb);
        if (rc) return -1;
    }
    c->uploads_bad += !upload_ok;
    CHECK(upload_ok, "step %d (T=%d): not one upload per call", c->steps, st->n_tokens);
    int rc = db_check_pools(c, err);
    c->steps++;
    return rc;
}

/* Runs the whole check on `be` for the test model `kind`. */
static inline void db_run(g4_backend *be, const char *kind) {
    g4_error err = {{0}};
    g4_config cfg;
    char dir[256];
    snprintf(dir, sizeof dir, "/tmp/g4_test_buckets_%s_%d", kind, (int)getpid());
    REQUIRE_VOID(!g4_testmodel_config(&cfg, kind, &err), "%s", err.msg);
    cfg.vocab = DB_VOCAB;
    REQUIRE_VOID(!g4_testmodel_write(&cfg, 777, dir, &err), "%s", err.msg);
    g4_model_opts o;
    g4_model_opts_default(&o);
    o.max_step_tokens = 48, o.max_seqs = DB_MAX_SEQS, o.block_size = 4, o.max_model_len = 64;
    g4_model_opts oa = o, ob = o;
    oa.pad_decode = 1; /* pads even without graphs (the CPU backend) */
    ob.no_graphs = 1;
    db_ctx c = {0};
    g4_runner *r = NULL;
    int ok = !g4_model_open(&c.a, dir, be, &oa, &err) && !g4_model_open(&c.b, dir, be, &ob, &err);
    CHECK(ok, "open: %s", err.msg);
    if (ok) {
        size_t pool = 0, es = g4_dtype_size(be->ops->kv_dtype);
        for (int l = 0; l < cfg.n_layers; l++)
            pool += (size_t)c.a->kv[l].n_blocks * g4_kv_block_elems(&c.a->kv[l]) * es;
        c.lb = malloc((size_t)DB_MAX_SEQS * DB_VOCAB * sizeof(float));
        c.pa = malloc(pool), c.pb = malloc(pool), c.pad_prev = calloc(1, pool);
        ok = c.lb && c.pa && c.pb && c.pad_prev && db_pools(c.a, c.pad_prev, NULL, &err) &&
             (r = g4_runner_create(c.a, &err));
        CHECK(ok, "setup: %s", err.msg);
    }
    float *logits = malloc((size_t)DB_MAX_SEQS * DB_VOCAB * sizeof(float));
    if (ok && logits) {
        g4_runner_set_step_fn(r, db_step, &c);
        int seq[DB_SEQS], rc = 0;
        int32_t prompt[48];
        for (int s = 0; s < DB_SEQS && !rc; s++) { /* prompts of 33..41 tokens: positions 33..58, one bound (64) */
            if ((seq[s] = g4_runner_seq_open(r, &err)) < 0) rc = -1;
            int n = 33 + s;
            for (int i = 0; i < n; i++) prompt[i] = 3 + (int32_t)((s * 131 + i * 17) % (DB_VOCAB - 3));
            g4_runner_chunk ch = {seq[s], n, prompt, 0};
            if (!rc) rc = g4_runner_step(r, &ch, 1, logits, &err);
        }
        /* batches 9..1 twice (largest first: the backend's scratch buffers grow to their size once,
         * and a growth would re-record every graph), then 1, 3, 5, 7 again; each batch starts at a
         * rotating sequence so positions vary inside it */
        int plan[18 + 4], n_plan = 0;
        for (int k = 0; k < 2; k++)
            for (int b = 9; b >= 1; b--) plan[n_plan++] = b;
        for (int b = 1; b <= 7; b += 2) plan[n_plan++] = b;
        int32_t ids[DB_SEQS];
        for (int i = 0; i < n_plan && !rc; i++) {
            g4_runner_chunk ch[DB_SEQS];
            for (int j = 0; j < plan[i]; j++) {
                int s = (i + j) % DB_SEQS;
                ids[j] = 3 + (int32_t)((i * 29 + s * 7) % (DB_VOCAB - 3));
                ch[j] = (g4_runner_chunk){seq[s], 1, &ids[j], 0};
            }
            rc = g4_runner_step(r, ch, plan[i], logits, &err);
        }
        CHECK(!rc, "%s: step failed: %s", kind, err.msg);
        g4_model_graph_stats ga, gb;
        g4_model_graph_stats_get(c.a, &ga);
        g4_model_graph_stats_get(c.b, &gb);
        int graphs = g4_backend_supports(be, G4_OP_GRAPH, G4_DT_F32);
        printf("%s on %s: %d steps (%ld sampled rows) bitwise equal to the plain steps; one upload per call%s; pad "
               "block %s; graphs recorded %ld (batch sizes 1..9; exact-T keys would record 18), replays %ld, not "
               "recordable %ld\n",
               kind, be->ops->name, c.steps, c.sampled_rows, c.uploads_bad ? " NOT always" : "",
               c.pad_changed ? "written by the pads" : "never written", ga.recorded, ga.replays, ga.record_failures);
        CHECK(c.pad_changed, "the pad tokens never wrote the pad block: were the steps padded at all?");
        CHECK(gb.recorded == 0 && gb.replays == 0, "no_graphs recorded graphs");
        if (graphs) {
            CHECK(ga.recorded <= 2 * DB_BUCKETS && ga.recorded >= 2 * 3, "%ld graphs recorded, expected 6..%d",
                  ga.recorded, 2 * DB_BUCKETS);
            CHECK(ga.record_failures == 0 && ga.replays > 0, "%ld not recordable, %ld replays", ga.record_failures,
                  ga.replays);
        } else {
            CHECK(ga.recorded == 0, "a backend without graphs recorded %ld", ga.recorded);
        }
    }
    free(logits);
    g4_runner_free(r);
    g4_model_close(c.a);
    g4_model_close(c.b);
    free(c.lb), free(c.pa), free(c.pb), free(c.pad_prev);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

#endif
