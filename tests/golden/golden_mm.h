/* golden_mm.h — the multimodal golden of tests/golden/vision/ (made by make_golden_vision.py)
 * loaded into memory: the prompt (text + image 0 + text + image 1 + text), each image's run of
 * placeholders, golden soft tokens and tower input patches, transformers' float32 logits with and
 * without the image mask, and its greedy continuation.
 * Not here: what a test does with it (test_golden_mm.c, tests/parallel/test_tp_mm.c). */
#ifndef G4_TESTS_GOLDEN_GOLDEN_MM_H
#define G4_TESTS_GOLDEN_GOLDEN_MM_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "engine/engine.h"
#include "check.h"
#include "model/gemma4.h"
#include "model/safetensors.h"

#define GOLDEN_MM_DIR "tests/golden/vision"
#define MAX_IMAGES 4
#define MAX_GREEDY 32

typedef struct image {
    int pos, n;                 /* its run of placeholders in the prompt */
    float *soft;                /* [n, H] */
    float *patches;             /* [ph × pw, 768] */
    int ph, pw;
} image;

typedef struct golden {
    int n, vocab, hidden;
    int32_t *ids;               /* [n] */
    float *logits, *causal;     /* [n, V] */
    float max_abs, max_abs_causal;
    int n_greedy;
    int32_t greedy[MAX_GREEDY];
    int n_images;
    image im[MAX_IMAGES];
} golden;

/* One engine request's record of a golden run: its greedy tokens and their logprobs, the
 * cached prompt tokens and how it ended (on_event fills it; the request's user pointer). */
typedef struct rec {
    int32_t toks[MAX_GREEDY];
    float lp[MAX_GREEDY];
    int n, cached;
    g4_finish_reason finish;
    char error[256];
} rec;

static inline void on_event(void *user, const g4_event *ev) {
    rec *r = user;
    if (ev->n_tokens == 1 && r->n < MAX_GREEDY) r->toks[r->n] = ev->token, r->lp[r->n++] = ev->logprob;
    if (ev->finish != G4_FINISH_NONE) {
        r->finish = ev->finish;
        r->cached = ev->cached_tokens;
        if (ev->error) snprintf(r->error, sizeof r->error, "%s", ev->error);
    }
}

static inline float *copy_f32(g4_safetensors *st, const char *name, int ndim, const int64_t *shape, g4_error *err) {
    const g4_st_tensor *t = g4_st_find(st, name);
    if (!t || t->dtype != G4_DT_F32 || t->ndim != ndim) {
        g4_fail(err, "golden %s: missing or not F32 with %d dims", name, ndim);
        return NULL;
    }
    for (int i = 0; i < ndim; i++)
        if (shape[i] >= 0 && t->shape[i] != shape[i]) {
            g4_fail(err, "golden %s: dim %d is %lld, expected %lld", name, i, (long long)t->shape[i],
                    (long long)shape[i]);
            return NULL;
        }
    float *p = malloc(t->nbytes);
    if (!p) g4_fail(err, "out of memory for %s", name);
    else memcpy(p, t->data, t->nbytes);
    return p;
}

static inline float max_abs_of(const float *x, size_t n) {
    float m = 0;
    for (size_t i = 0; i < n; i++) m = fabsf(x[i]) > m ? fabsf(x[i]) : m;
    return m;
}

static inline void golden_free(golden *g) {
    free(g->ids);
    free(g->logits);
    free(g->causal);
    for (int i = 0; i < g->n_images; i++) free(g->im[i].soft), free(g->im[i].patches);
}

static inline int golden_load(golden *g, int vocab, int hidden, g4_error *err) {
    memset(g, 0, sizeof *g);
    g->vocab = vocab, g->hidden = hidden;
    g4_safetensors *st = g4_st_open(GOLDEN_MM_DIR "/golden.safetensors", err);
    if (!st) return -1;
    int rc = -1;
    const g4_st_tensor *ids = g4_st_find(st, "prompt.ids"), *tt = g4_st_find(st, "prompt.mm_token_type_ids"),
                       *gr = g4_st_find(st, "prompt.greedy");
    if (!ids || !tt || !gr || ids->dtype != G4_DT_I32 || tt->dtype != G4_DT_I32 || gr->dtype != G4_DT_I32 ||
        tt->shape[0] != ids->shape[0] || gr->shape[0] > MAX_GREEDY) {
        g4_fail(err, "golden prompt.ids / mm_token_type_ids / greedy missing or malformed");
        goto out;
    }
    g->n = (int)ids->shape[0];
    g->n_greedy = (int)gr->shape[0];
    memcpy(g->greedy, gr->data, gr->nbytes);
    g->ids = malloc(ids->nbytes);
    if (!g->ids) goto out;
    memcpy(g->ids, ids->data, ids->nbytes);
    int64_t lshape[2] = {g->n, vocab};
    if (!(g->logits = copy_f32(st, "prompt.logits", 2, lshape, err)) ||
        !(g->causal = copy_f32(st, "prompt.causal_logits", 2, lshape, err)))
        goto out;
    g->max_abs = max_abs_of(g->logits, (size_t)g->n * vocab);
    g->max_abs_causal = max_abs_of(g->causal, (size_t)g->n * vocab);
    /* image runs: maximal runs of mm_token_type_ids == 1, in order = image index */
    int32_t type[1024];
    if (g->n > 1024) {
        g4_fail(err, "golden prompt of %d tokens", g->n);
        goto out;
    }
    memcpy(type, tt->data, tt->nbytes);
    for (int t = 0; t < g->n; t++) {
        if (type[t] != 1 || (t > 0 && type[t - 1] == 1)) continue;
        if (g->n_images == MAX_IMAGES) {
            g4_fail(err, "more than %d image runs", MAX_IMAGES);
            goto out;
        }
        image *im = &g->im[g->n_images];
        im->pos = t;
        while (t + im->n < g->n && type[t + im->n] == 1) im->n++;
        char name[64];
        int64_t sshape[2] = {im->n, hidden};
        snprintf(name, sizeof name, "image.%d.soft", g->n_images);
        if (!(im->soft = copy_f32(st, name, 2, sshape, err))) goto out;
        snprintf(name, sizeof name, "image.%d.grid", g->n_images);
        const g4_st_tensor *grid = g4_st_find(st, name);
        if (!grid || grid->dtype != G4_DT_I32 || grid->shape[0] != 2) {
            g4_fail(err, "golden %s missing", name);
            goto out;
        }
        int32_t hw[2];
        memcpy(hw, grid->data, sizeof hw);
        im->ph = hw[0], im->pw = hw[1];
        int64_t pshape[2] = {(int64_t)im->ph * im->pw, 768};
        snprintf(name, sizeof name, "image.%d.patches", g->n_images);
        if (!(im->patches = copy_f32(st, name, 2, pshape, err))) goto out;
        g->n_images++;
    }
    CHECK(g->n_images == 2, "golden has %d image runs, expected 2", g->n_images);
    rc = 0;
out:
    g4_st_close(st);
    return rc;
}

/* The image runs that intersect prompt tokens [from, to), as step runs of a chunk starting at
 * step token t0; `single` makes every soft token its own run (a causal forward). */
static inline int chunk_images(const golden *g, int from, int to, int t0, int single, g4_step_image *out) {
    int n = 0;
    for (int i = 0; i < g->n_images; i++) {
        const image *im = &g->im[i];
        int a = im->pos > from ? im->pos : from, b = im->pos + im->n < to ? im->pos + im->n : to;
        for (int p = a; p < b; p += single ? 1 : b - a)
            out[n++] = (g4_step_image){.first = t0 + p - from,
                                       .n = single ? 1 : b - a,
                                       .embed = im->soft + (size_t)(p - im->pos) * g->hidden};
    }
    return n;
}

#endif
