/* test_golden.c — the CPU forward pass against Hugging Face transformers' Gemma 4, through the
 * committed golden data of tests/golden/<case>/ (made by make_golden.py; no Python here).
 *
 * For each case directory (default: tests/golden/dense and tests/golden/moe, or the ones named on
 * the command line) the model is opened on the CPU backend and run three ways through the
 * runner (model/runner.h):
 *   (a) alone    each prompt alone, one prefill step, logits for every token
 *   (b) batched  all prompts in ONE step (sequences of different lengths packed together)
 *   (c) chunked  all prompts at once, prefilled in chunks of 5 or 7 tokens (chunks straddle the
 *                sliding window of 8 and the KV blocks), then 32 greedy decode steps; a step mixes
 *                one sequence's prefill chunk with other sequences' decode tokens
 * Every prefill logit row is compared with golden `prompt.<i>.logits` (transformers in float32):
 *   max|Δlogit| / max|logit| <= 1e-4 per prompt and mode (printed), and the greedy tokens of (c)
 * must equal `prompt.<i>.greedy` exactly. After each mode every sequence is closed and both KV
 * pools must be empty again (no leaked blocks).
 *
 * Not here: the loader tests (tests/model) and the CUDA backend (tests/gpu). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "base/error.h"
#include "check.h"
#include "model/gemma4.h"
#include "model/runner.h"
#include "model/safetensors.h"

#define BAR 1e-4
#define MAX_PROMPTS 16
#define MAX_GREEDY 64

/* One golden prompt, copied out of golden.safetensors (the mapping may be unaligned). */
typedef struct prompt {
    int n;              /* prompt tokens */
    int32_t *ids;       /* [n] */
    float *logits;      /* [n, V] golden prefill logits (after soft-cap) */
    float max_abs;      /* max |golden logit| */
    int n_greedy;
    int32_t greedy[MAX_GREEDY];
} prompt;

typedef struct golden {
    int n_prompts;
    int vocab;
    prompt p[MAX_PROMPTS];
} golden;

/* ------------------------------------------------------------------------------------------ */
/* golden.safetensors                                                                         */

static const g4_st_tensor *find_tensor(g4_safetensors *st, const char *name, g4_dtype dt, int ndim, g4_error *err) {
    const g4_st_tensor *t = g4_st_find(st, name);
    if (!t) {
        g4_fail(err, "golden tensor %s: missing", name);
        return NULL;
    }
    if (t->dtype != dt || t->ndim != ndim) {
        g4_fail(err, "golden tensor %s: expected %s with %d dims, got %s with %d", name, g4_dtype_name(dt), ndim,
                g4_dtype_name(t->dtype), t->ndim);
        return NULL;
    }
    return t;
}

static void golden_free(golden *g) {
    for (int i = 0; i < g->n_prompts; i++) {
        free(g->p[i].ids);
        free(g->p[i].logits);
    }
    memset(g, 0, sizeof *g);
}

/* Reads prompt.<i>.{ids,logits,greedy} for i = 0, 1, ... until prompt.<i>.ids is absent. */
static int golden_load(golden *g, const char *dir, int vocab, g4_error *err) {
    char path[1024], name[128];
    memset(g, 0, sizeof *g);
    g->vocab = vocab;
    snprintf(path, sizeof path, "%s/golden.safetensors", dir);
    g4_safetensors *st = g4_st_open(path, err);
    if (!st) return -1;
    int rc = -1;
    for (int i = 0; i < MAX_PROMPTS; i++) {
        snprintf(name, sizeof name, "prompt.%d.ids", i);
        if (!g4_st_find(st, name)) break;
        const g4_st_tensor *ids = find_tensor(st, name, G4_DT_I32, 1, err);
        snprintf(name, sizeof name, "prompt.%d.logits", i);
        const g4_st_tensor *lg = ids ? find_tensor(st, name, G4_DT_F32, 2, err) : NULL;
        snprintf(name, sizeof name, "prompt.%d.greedy", i);
        const g4_st_tensor *gr = lg ? find_tensor(st, name, G4_DT_I32, 1, err) : NULL;
        if (!gr) goto out;
        int n = (int)ids->shape[0];
        if (lg->shape[0] != n || lg->shape[1] != vocab) {
            g4_fail(err, "prompt.%d.logits: expected [%d, %d], got [%lld, %lld]", i, n, vocab, (long long)lg->shape[0],
                    (long long)lg->shape[1]);
            goto out;
        }
        if (gr->shape[0] < 1 || gr->shape[0] > MAX_GREEDY) {
            g4_fail(err, "prompt.%d.greedy: %lld tokens, expected 1..%d", i, (long long)gr->shape[0], MAX_GREEDY);
            goto out;
        }
        prompt *p = &g->p[g->n_prompts++];
        p->n = n;
        p->n_greedy = (int)gr->shape[0];
        p->ids = malloc((size_t)n * sizeof *p->ids);
        p->logits = malloc((size_t)n * (size_t)vocab * sizeof *p->logits);
        if (!p->ids || !p->logits) {
            g4_fail(err, "out of memory reading %s", path);
            goto out;
        }
        memcpy(p->ids, ids->data, ids->nbytes);
        memcpy(p->logits, lg->data, lg->nbytes);
        memcpy(p->greedy, gr->data, gr->nbytes);
        p->max_abs = 0.f;
        for (size_t k = 0; k < (size_t)n * (size_t)vocab; k++) {
            float a = fabsf(p->logits[k]);
            if (a > p->max_abs) p->max_abs = a;
        }
    }
    if (g->n_prompts == 0) {
        g4_fail(err, "%s: no prompt.0.ids", path);
        goto out;
    }
    rc = 0;
out:
    g4_st_close(st);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* comparison                                                                                 */

/* max |got - want| over rows [row0, row0 + rows) of prompt p. got: [rows, V]. */
static double max_abs_diff(const prompt *p, int vocab, int row0, int rows, const float *got) {
    double d = 0.0;
    const float *want = p->logits + (size_t)row0 * (size_t)vocab;
    for (size_t k = 0; k < (size_t)rows * (size_t)vocab; k++) {
        double e = fabs((double)got[k] - (double)want[k]);
        if (!(e <= d)) d = e; /* NaN propagates as a failure */
    }
    return d;
}

static void report(const char *cas, const char *mode, int i, const prompt *p, double maxdiff) {
    double ratio = maxdiff / (double)p->max_abs;
    printf("%-6s %-8s prompt %d (n=%2d): max|dlogit|/max|logit| = %.3e\n", cas, mode, i, p->n, ratio);
    CHECK(ratio <= BAR, "%s %s prompt %d: ratio %.3e > %.0e", cas, mode, i, ratio, BAR);
}

static void check_no_blocks(g4_runner *r, const char *cas, const char *mode) {
    int s = -1, g = -1;
    g4_runner_blocks_used(r, &s, &g);
    CHECK(s == 0 && g == 0, "%s %s: blocks still in use after closing every sequence: sliding %d, global %d", cas, mode,
          s, g);
}

/* ------------------------------------------------------------------------------------------ */
/* the three modes                                                                            */

/* (a) each prompt alone, one prefill step. */
static int mode_alone(g4_runner *r, const golden *g, const char *cas, float *logits, g4_error *err) {
    for (int i = 0; i < g->n_prompts; i++) {
        const prompt *p = &g->p[i];
        int seq = g4_runner_seq_open(r, err);
        if (seq < 0) return -1;
        g4_runner_chunk c = {.seq = seq, .n = p->n, .ids = p->ids, .all_logits = 1};
        if (g4_runner_step(r, &c, 1, logits, err)) return -1;
        CHECK(g4_runner_seq_len(r, seq) == p->n, "%s alone prompt %d: seq_len %d, expected %d", cas, i,
              g4_runner_seq_len(r, seq), p->n);
        report(cas, "alone", i, p, max_abs_diff(p, g->vocab, 0, p->n, logits));
        g4_runner_seq_close(r, seq);
    }
    check_no_blocks(r, cas, "alone");
    return 0;
}

/* (b) every prompt in one step. */
static int mode_batched(g4_runner *r, const golden *g, const char *cas, float *logits, g4_error *err) {
    g4_runner_chunk c[MAX_PROMPTS];
    for (int i = 0; i < g->n_prompts; i++) {
        int seq = g4_runner_seq_open(r, err);
        if (seq < 0) return -1;
        c[i] = (g4_runner_chunk){.seq = seq, .n = g->p[i].n, .ids = g->p[i].ids, .all_logits = 1};
    }
    if (g4_runner_step(r, c, g->n_prompts, logits, err)) return -1;
    size_t row = 0;
    for (int i = 0; i < g->n_prompts; i++) {
        const prompt *p = &g->p[i];
        report(cas, "batched", i, p, max_abs_diff(p, g->vocab, 0, p->n, logits + row * (size_t)g->vocab));
        row += (size_t)p->n;
        g4_runner_seq_close(r, c[i].seq);
    }
    check_no_blocks(r, cas, "batched");
    return 0;
}

/* (c) chunked prefill (chunk 5 for even prompts, 7 for odd ones) interleaved with greedy decode:
 * each step carries, for every unfinished sequence, either its next prefill chunk or its last
 * greedy token. */
static int mode_chunked(g4_runner *r, const golden *g, const char *cas, float *logits, g4_error *err) {
    int seq[MAX_PROMPTS], done[MAX_PROMPTS], gen[MAX_PROMPTS];
    int32_t out[MAX_PROMPTS][MAX_GREEDY];
    double diff[MAX_PROMPTS];
    for (int i = 0; i < g->n_prompts; i++) {
        seq[i] = g4_runner_seq_open(r, err);
        if (seq[i] < 0) return -1;
        done[i] = 0; /* prompt tokens fed */
        gen[i] = 0;  /* greedy tokens produced */
        diff[i] = 0.0;
    }
    for (int steps = 0;; steps++) {
        g4_runner_chunk c[MAX_PROMPTS];
        int who[MAX_PROMPTS], nc = 0;
        for (int i = 0; i < g->n_prompts; i++) {
            const prompt *p = &g->p[i];
            if (done[i] < p->n) {
                int chunk = (i % 2 == 0) ? 5 : 7;
                if (chunk > p->n - done[i]) chunk = p->n - done[i];
                c[nc] = (g4_runner_chunk){.seq = seq[i], .n = chunk, .ids = p->ids + done[i], .all_logits = 1};
            } else if (gen[i] < p->n_greedy) {
                /* the last generated token goes in; the logits of its row give the next one */
                c[nc] = (g4_runner_chunk){.seq = seq[i], .n = 1, .ids = &out[i][gen[i] - 1], .all_logits = 0};
            } else {
                continue;
            }
            who[nc++] = i;
        }
        if (nc == 0) break;
        if (steps > 1000) return g4_fail(err, "chunked mode does not terminate");
        if (g4_runner_step(r, c, nc, logits, err)) return -1;
        size_t row = 0;
        for (int k = 0; k < nc; k++) {
            int i = who[k];
            const prompt *p = &g->p[i];
            const float *rows = logits + row * (size_t)g->vocab;
            int nrows = c[k].all_logits ? c[k].n : 1;
            if (done[i] < p->n) {
                double d = max_abs_diff(p, g->vocab, done[i], c[k].n, rows);
                if (!(d <= diff[i])) diff[i] = d;
                done[i] += c[k].n;
            }
            if (done[i] == p->n) {
                /* prompt complete: the last row of this chunk (or the decode row) is next-token */
                const float *last = rows + (size_t)(nrows - 1) * (size_t)g->vocab;
                if (gen[i] < p->n_greedy) out[i][gen[i]++] = g4_argmax(last, g->vocab);
            }
            row += (size_t)nrows;
        }
    }
    for (int i = 0; i < g->n_prompts; i++) {
        const prompt *p = &g->p[i];
        report(cas, "chunked", i, p, diff[i]);
        int first_bad = -1;
        for (int t = 0; t < p->n_greedy; t++) {
            if (out[i][t] != p->greedy[t]) {
                first_bad = t;
                break;
            }
        }
        printf("%-6s %-8s prompt %d: %d greedy tokens %s\n", cas, "decode", i, p->n_greedy,
               first_bad < 0 ? "identical" : "DIFFER");
        CHECK(first_bad < 0, "%s greedy prompt %d: token %d is %d, expected %d", cas, i, first_bad,
              first_bad < 0 ? 0 : out[i][first_bad], first_bad < 0 ? 0 : p->greedy[first_bad]);
        CHECK(g4_runner_seq_len(r, seq[i]) == p->n + p->n_greedy - 1, "%s prompt %d: seq_len %d, expected %d", cas, i,
              g4_runner_seq_len(r, seq[i]), p->n + p->n_greedy - 1);
        g4_runner_seq_close(r, seq[i]);
    }
    check_no_blocks(r, cas, "chunked");
    return 0;
}

/* ------------------------------------------------------------------------------------------ */

/* Opens dir with the given KV block size, runs the modes, closes. */
static int run_case(const char *dir, const char *cas, int block_size, int modes, g4_error *err) {
    g4_backend *be = g4_backend_cpu_create(err);
    if (!be) return -1;
    g4_model_opts opts;
    g4_model_opts_default(&opts);
    opts.block_size = block_size;
    opts.max_seqs = MAX_PROMPTS;
    opts.max_model_len = 256;
    g4_model *m = NULL;
    g4_runner *r = NULL;
    golden g = {0};
    float *logits = NULL;
    int rc = -1;
    if (g4_model_open(&m, dir, be, &opts, err)) goto out;
    if (golden_load(&g, dir, m->cfg.vocab, err)) goto out;
    int total = 0;
    for (int i = 0; i < g.n_prompts; i++) total += g.p[i].n;
    if (total > m->opts.max_step_tokens) {
        g4_fail(err, "%s: %d prompt tokens do not fit one step (max_step_tokens %d)", dir, total,
                m->opts.max_step_tokens);
        goto out;
    }
    logits = malloc((size_t)total * (size_t)m->cfg.vocab * sizeof *logits);
    r = g4_runner_create(m, err);
    if (!logits || !r) {
        if (!logits) g4_fail(err, "out of memory");
        goto out;
    }
    printf("%s: %s, H=%d, V=%d, %d layers, KV block size %d, %d prompts\n", cas, m->cfg.moe ? "MoE" : "dense",
           m->cfg.hidden, m->cfg.vocab, m->cfg.n_layers, m->opts.block_size, g.n_prompts);
    if ((modes & 1) && mode_alone(r, &g, cas, logits, err)) goto out;
    if ((modes & 2) && mode_batched(r, &g, cas, logits, err)) goto out;
    if ((modes & 4) && mode_chunked(r, &g, cas, logits, err)) goto out;
    rc = 0;
out:
    if (rc) g4_fail_prefix(err, "%s", cas);
    if (r) g4_runner_free(r);
    free(logits);
    golden_free(&g);
    if (m) g4_model_close(m);
    g4_backend_destroy(be);
    return rc;
}

static const char *base_name(const char *dir) {
    const char *s = strrchr(dir, '/');
    return s && s[1] ? s + 1 : dir;
}

int main(int argc, char **argv) {
    static const char *defaults[] = {"tests/golden/dense", "tests/golden/moe"};
    const char **dirs = argc > 1 ? (const char **)(argv + 1) : defaults;
    int n_dirs = argc > 1 ? argc - 1 : 2;
    for (int d = 0; d < n_dirs; d++) {
        g4_error err = {{0}};
        const char *cas = base_name(dirs[d]);
        /* Default block size (16) for all modes; then block size 4 for the chunked mode, so
         * chunks and decode steps cross block boundaries and sliding blocks are recycled. */
        int rc = run_case(dirs[d], cas, 16, 1 | 2 | 4, &err);
        CHECK(rc == 0, "%s", err.msg);
        if (rc == 0) {
            rc = run_case(dirs[d], cas, 4, 4, &err);
            CHECK(rc == 0, "%s (block size 4): %s", cas, err.msg);
        }
    }
    return check_summary();
}
