/* test_cpu_sample.c — the CPU sample op (backend/cpu/cpu_sample.c) against the engine's former
 * host sampler (engine/sampling.c g4_sample_row, the reference): the same tokens and bit-identical
 * logprobs / top-n over a grid of temperatures (0 = greedy), top-k (0, 1, 5, 50, 3000), top-p
 * (1, 0.9, 0.5, 0.01), min-p, penalties, logprob requests, masks (the reference sees masked
 * logits as −inf), logits with many exact ties, and many seeds / steps; several rows per call in
 * shuffled order (batch composition must not matter). Also prints µs per row of both at
 * V = 262,144 (not asserted). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/cpu/cpu_backend.h"
#include "base/rng.h"
#include "engine/sampling.h"
#include "check.h"

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static double unif(uint64_t *st) { return (double)(g4_splitmix64(st) >> 11) * (1.0 / 9007199254740992.0); }
static float gauss(uint64_t *st) {
    double u = unif(st) + 1e-12, v = unif(st);
    return (float)(sqrt(-2 * log(u)) * cos(6.283185307179586 * v));
}

/* kind 0: gaussian × 3; 1: integers in [-4, 4] (massive exact ties); 2: gaussian × 12 (peaked) */
static void make_logits(float *x, int V, int kind, uint64_t seed) {
    uint64_t st = seed;
    for (int i = 0; i < V; i++) {
        float g = gauss(&st);
        x[i] = kind == 0 ? 3 * g : kind == 1 ? (float)((int)(g * 2.5f)) : 12 * g;
    }
}

typedef struct casep {
    g4_sampling sp;
    int mask_kind;      /* 0 none, 1 half the vocabulary, 2 only 7 tokens allowed */
} casep;

typedef struct rowdata {
    float *logits;      /* [V] original */
    uint32_t *mask;     /* [W] */
    int32_t hist[64];   /* prompt 40 + output up to 24 */
    int n_prompt, n_output;
    uint64_t seed;
    casep c;
} rowdata;

static long n_rows_checked, n_greedy, n_sampled, n_lp, n_masked;

/* Distinct tokens of prompt ∪ output with output counts, as the engine builds them. */
static int penalties(const rowdata *d, g4_sample_penalty *pen) {
    int n = 0;
    for (int i = 0; i < d->n_prompt + d->n_output; i++) {
        int32_t t = d->hist[i];
        int j = 0;
        while (j < n && pen[j].token != t) j++;
        if (j == n) pen[n++] = (g4_sample_penalty){t, 0};
        if (i >= d->n_prompt) pen[j].count++;
    }
    return n;
}

/* Runs rows through the op in order perm[] and compares each with g4_sample_row. */
static void check_batch(g4_cpu_sample_scratch *scr, g4_sampler *ref, rowdata *rows, int nr, const int *perm, int V) {
    int W = (V + 31) / 32, n_pen = 0;
    g4_sample_params *p = malloc(g4_sample_params_bytes(nr, nr * 64));
    float *lg = malloc((size_t)nr * V * sizeof *lg);
    uint32_t *mask = calloc((size_t)nr * W, sizeof *mask);
    float *refl = malloc((size_t)V * sizeof *refl);
    int32_t tok[16];
    g4_sample_logprobs lp[16];
    p->n_rows = nr, p->vocab = V, p->mask_words = W;
    g4_sample_row_params *R = g4_sample_rows(p);
    g4_sample_penalty pens[16 * 64];
    int n_lps = 0;
    for (int k = 0; k < nr; k++) {
        rowdata *d = &rows[perm[k]];
        const g4_sampling *sp = &d->c.sp;
        int np = penalties(d, pens + n_pen);
        R[k] = g4_sampling_row(sp, d->seed, (uint64_t)d->n_output);
        R[k].pen_first = n_pen;
        R[k].n_pen = np;
        R[k].lp_slot = sp->logprobs >= 0 ? n_lps++ : -1;
        R[k].flags = d->c.mask_kind ? G4_SAMPLE_MASKED : 0;
        n_pen += np;
        memcpy(lg + (size_t)k * V, d->logits, (size_t)V * sizeof *lg);
        if (d->c.mask_kind) memcpy(mask + (size_t)k * W, d->mask, (size_t)W * sizeof *mask);
    }
    p->n_pen = n_pen;
    memcpy(g4_sample_pens(p), pens, (size_t)n_pen * sizeof *pens);
    g4_sample_args a =
        {.logits = lg, .ld = V, .vocab = V, .max_rows = nr, .params = p, .mask = mask, .tokens = tok, .logprobs = lp};
    g4_error err = {{0}};
    CHECK(g4_cpu_sample_host(scr, &a, &err) == 0, "sample: %s", err.msg);
    for (int k = 0; k < nr; k++) {
        rowdata *d = &rows[perm[k]];
        memcpy(refl, d->logits, (size_t)V * sizeof *refl);
        if (d->c.mask_kind)
            for (int i = 0; i < V; i++)
                if (!(d->mask[i / 32] >> (i % 32) & 1u)) refl[i] = -INFINITY;
        g4_sample_history h = {d->hist, d->n_prompt, d->hist + d->n_prompt, d->n_output};
        g4_sample_result r;
        g4_sample_row(ref, refl, &d->c.sp, d->seed, &h, &r);
        const g4_sampling *sp = &d->c.sp;
        n_rows_checked++;
        n_greedy += sp->temperature <= 0;
        n_sampled += sp->temperature > 0;
        n_masked += d->c.mask_kind != 0;
        CHECK(tok[k] == r.token,
              "V %d T %.2f k %d p %.2f minp %.2f rp %.2f pp %.2f fp %.2f mask %d seed %llu: token %d, ref %d", V,
              sp->temperature, sp->top_k, sp->top_p, sp->min_p, sp->repetition_penalty, sp->presence_penalty,
              sp->frequency_penalty, d->c.mask_kind, (unsigned long long)d->seed, tok[k], r.token);
        if (d->c.mask_kind && tok[k] >= 0)
            CHECK(d->mask[tok[k] / 32] >> (tok[k] % 32) & 1u, "masked token %d drawn", tok[k]);
        if (sp->logprobs >= 0) {
            n_lp++;
            const g4_sample_logprobs *l = &lp[R[k].lp_slot];
            CHECK(!memcmp(&l->logprob, &r.logprob, sizeof(float)), "logprob %.9g ref %.9g (T %.2f)", l->logprob,
                  r.logprob, sp->temperature);
            CHECK(l->n_top == r.n_top, "n_top %d ref %d", l->n_top, r.n_top);
            for (int j = 0; j < r.n_top && j < l->n_top; j++)
                CHECK(l->top_ids[j] == r.top_ids[j] && !memcmp(&l->top_logprobs[j], &r.top_logprobs[j], sizeof(float)),
                      "top %d: %d %.9g ref %d %.9g", j, l->top_ids[j], l->top_logprobs[j], r.top_ids[j],
                      r.top_logprobs[j]);
        }
    }
    free(p), free(lg), free(mask), free(refl);
}

static void grid(int V, int n_logit_seeds, int stride) {
    static const float temps[] = {0, 0.7f, 1.0f, 1.6f};
    static const int topk[] = {0, 1, 5, 50, 3000};
    static const float topp[] = {1.0f, 0.9f, 0.5f, 0.01f};
    static const float minp[] = {0, 0.05f};
    static const float pen[][3] = {{1, 0, 0}, {1.3f, 0, 0}, {1, 0.5f, 0.3f}, {0.8f, -0.4f, 0.2f}};
    g4_sampler ref;
    g4_error err = {{0}};
    CHECK(g4_sampler_init(&ref, V, &err) == 0, "%s", err.msg);
    g4_cpu_sample_scratch *scr = g4_cpu_sample_scratch_create();
    int W = (V + 31) / 32;
    rowdata rows[16];
    for (int i = 0; i < 16; i++) {
        rows[i].logits = malloc((size_t)V * sizeof(float));
        rows[i].mask = malloc((size_t)W * sizeof(uint32_t));
    }
    uint64_t st = 0x5eed + (uint64_t)V;
    long combo = 0;
    int nr = 0, perm[16];
    for (int ls = 0; ls < n_logit_seeds; ls++)
        for (int ti = 0; ti < 4; ti++)
            for (int ki = 0; ki < 5; ki++)
                for (int pi = 0; pi < 4; pi++)
                    for (int mi = 0; mi < 2; mi++)
                        for (int ei = 0; ei < 4; ei++) {
                            if (combo++ % stride) continue;
                            if (temps[ti] == 0 && (ki || pi)) continue; /* filters unused when greedy */
                            rowdata *d = &rows[nr];
                            int kind = (int)(g4_splitmix64(&st) % 3);
                            make_logits(d->logits, V, kind, g4_splitmix64(&st));
                            d->c.mask_kind = (int)(g4_splitmix64(&st) % 4);
                            if (d->c.mask_kind == 3) d->c.mask_kind = 0;
                            for (int w = 0; w < W; w++)
                                d->mask[w] = d->c.mask_kind == 1 ? (uint32_t)g4_splitmix64(&st) : 0;
                            if (d->c.mask_kind == 2)
                                for (int j = 0; j < 7; j++) {
                                    int t = (int)(g4_splitmix64(&st) % (uint64_t)V);
                                    d->mask[t / 32] |= 1u << (t % 32);
                                }
                            if (d->c.mask_kind == 1) d->mask[0] |= 1u; /* at least one allowed */
                            if (V % 32) d->mask[W - 1] &= (1u << (V % 32)) - 1; /* bits past V: none */
                            d->n_prompt = 40;
                            d->n_output = (int)(g4_splitmix64(&st) % 25);
                            for (int j = 0; j < d->n_prompt + d->n_output; j++) /* repeats on purpose */
                                d->hist[j] = (int32_t)(g4_splitmix64(&st) % (uint64_t)(j % 3 ? 60 : V));
                            d->seed = g4_splitmix64(&st);
                            g4_sampling *sp = &d->c.sp;
                            g4_sampling_default(sp);
                            sp->temperature = temps[ti];
                            sp->top_k = topk[ki];
                            sp->top_p = topp[pi];
                            sp->min_p = minp[mi];
                            sp->repetition_penalty = pen[ei][0];
                            sp->presence_penalty = pen[ei][1];
                            sp->frequency_penalty = pen[ei][2];
                            sp->logprobs = (int)(g4_splitmix64(&st) % 4) == 0 ? -1 : (int)(g4_splitmix64(&st) % 21) - 1;
                            if (++nr == 16) {
                                for (int i = 0; i < 16; i++) perm[i] = i;
                                for (int i = 15; i > 0; i--) { /* batch order must not matter */
                                    int j = (int)(g4_splitmix64(&st) % (uint64_t)(i + 1)), t = perm[i];
                                    perm[i] = perm[j], perm[j] = t;
                                }
                                check_batch(scr, &ref, rows, nr, perm, V);
                                nr = 0;
                            }
                        }
    for (int i = 0; i < nr; i++) perm[i] = i;
    if (nr) check_batch(scr, &ref, rows, nr, perm, V);
    for (int i = 0; i < 16; i++) free(rows[i].logits), free(rows[i].mask);
    g4_cpu_sample_scratch_free(scr);
    g4_sampler_free(&ref);
}

/* Many seeds on one row: every draw of a seeded temperature / top-p row, steps 0..n. */
static void many_seeds(int V, int n) {
    g4_sampler ref;
    g4_error err = {{0}};
    g4_sampler_init(&ref, V, &err);
    g4_cpu_sample_scratch *scr = g4_cpu_sample_scratch_create();
    rowdata d = {0};
    d.logits = malloc((size_t)V * sizeof(float));
    d.mask = calloc((size_t)(V + 31) / 32, sizeof(uint32_t));
    make_logits(d.logits, V, 0, 77);
    d.n_prompt = 4;
    for (int j = 0; j < 4; j++) d.hist[j] = j * 7;
    static const struct {
        float t, p, mp;
        int k;
    } cfg[] = {{1.0f, 1.0f, 0, 0}, {0.8f, 0.95f, 0, 0}, {1.0f, 0.9f, 0, 40}, {0.6f, 1.0f, 0.1f, 0}};
    int perm[1] = {0};
    for (int c = 0; c < 4; c++)
        for (int i = 0; i < n; i++) {
            g4_sampling_default(&d.c.sp);
            d.c.sp.temperature = cfg[c].t, d.c.sp.top_p = cfg[c].p, d.c.sp.min_p = cfg[c].mp, d.c.sp.top_k = cfg[c].k;
            d.c.sp.logprobs = i % 8 == 0 ? 3 : -1;
            d.seed = 1000 + (uint64_t)i;
            d.n_output = i % 5;
            for (int j = 0; j < d.n_output; j++) d.hist[4 + j] = (int32_t)(i * 31 + j) % V;
            check_batch(scr, &ref, &d, 1, perm, V);
        }
    free(d.logits), free(d.mask);
    g4_cpu_sample_scratch_free(scr);
    g4_sampler_free(&ref);
}

/* µs per row at V = 262,144: the reference vs the op (logits copied in both, as the op overwrites). */
static void timing(void) {
    enum { V = 262144 };
    static const struct {
        const char *name;
        float t, p, mp;
        int k, lp;
    } cfg[] = {{"greedy", 0, 1, 0, 0, -1},
               {"T=1", 1, 1, 0, 0, -1},
               {"T=0.8 top_p=0.95", 0.8f, 0.95f, 0, 0, -1},
               {"T=1 top_k=50", 1, 1, 0, 50, -1},
               {"T=0.7 k=40 p=0.9", 0.7f, 0.9f, 0, 40, -1},
               {"T=1 min_p=0.05", 1, 1, 0.05f, 0, -1},
               {"greedy logprobs=5", 0, 1, 0, 0, 5}};
    g4_sampler ref;
    g4_error err = {{0}};
    g4_sampler_init(&ref, V, &err);
    g4_cpu_sample_scratch *scr = g4_cpu_sample_scratch_create();
    float *x = malloc(V * sizeof *x), *y = malloc(V * sizeof *y);
    make_logits(x, V, 0, 5);
    g4_sample_params *p = malloc(g4_sample_params_bytes(1, 0));
    int reps = 8;
    printf("sample µs per row at V=%d (reference g4_sample_row / op):\n", V);
    for (size_t c = 0; c < sizeof cfg / sizeof *cfg; c++) {
        g4_sampling sp;
        g4_sampling_default(&sp);
        sp.temperature = cfg[c].t, sp.top_p = cfg[c].p, sp.min_p = cfg[c].mp, sp.top_k = cfg[c].k,
        sp.logprobs = cfg[c].lp;
        g4_sample_history h = {0};
        g4_sample_result r;
        double t0 = now_s();
        for (int i = 0; i < reps; i++) {
            memcpy(y, x, V * sizeof *y);
            g4_sample_row(&ref, y, &sp, (uint64_t)i, &h, &r);
        }
        double t1 = now_s();
        *p = (g4_sample_params){.n_rows = 1, .vocab = V, .mask_words = (V + 31) / 32};
        g4_sample_rows(p)[0] = (g4_sample_row_params){.temperature = sp.temperature,
                                                      .top_p = sp.top_p,
                                                      .min_p = sp.min_p,
                                                      .repetition_penalty = 1,
                                                      .top_k = sp.top_k,
                                                      .n_logprobs = sp.logprobs,
                                                      .lp_slot = 0};
        int32_t tok;
        g4_sample_logprobs lp;
        g4_sample_args a =
            {.logits = y, .ld = V, .vocab = V, .max_rows = 1, .params = p, .tokens = &tok, .logprobs = &lp};
        double t2 = now_s();
        for (int i = 0; i < reps; i++) {
            memcpy(y, x, V * sizeof *y);
            g4_sample_rows(p)[0].seed = (uint64_t)i;
            g4_cpu_sample_host(scr, &a, &err);
        }
        double t3 = now_s();
        printf("  %-20s %8.0f / %6.0f\n", cfg[c].name, (t1 - t0) / reps * 1e6, (t3 - t2) / reps * 1e6);
    }
    free(x), free(y), free(p);
    g4_cpu_sample_scratch_free(scr);
    g4_sampler_free(&ref);
}

int main(int argc, char **argv) {
    grid(1000, 8, 1);       /* every combination, 3 logit draws each */
    grid(50000, 1, 3);      /* a third of them at a mid-size vocabulary */
    grid(262144, 1, 41);    /* a sample at the real vocabulary (large top-p sets: the radix path) */
    many_seeds(262144, argc > 1 ? atoi(argv[1]) : 64);
    printf("checked %ld rows (%ld greedy, %ld sampled, %ld with logprobs, %ld masked): tokens and logprobs identical\n",
           n_rows_checked, n_greedy, n_sampled, n_lp, n_masked);
    timing();
    return check_summary();
}
