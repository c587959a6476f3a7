/* gpu_harness.h — shared helpers of the GPU tests: the CPU (oracle) and CUDA backends side by
 * side, identical random inputs on both, and the comparison rule.
 *
 * Inputs are drawn as floats and rounded to bf16 first, so both backends start from the same
 * values (the CPU backend keeps f32 activations, the CUDA backend bf16). Weights are one host
 * bf16 buffer handed to both backends' load_weight.
 *
 * Comparison rule (documented bound): max_i |gpu_i − ref_i| ≤ tol · max_i |ref_i|. The CUDA
 * backend rounds every activation to bf16 (relative step 2^-8, rounding error ≤ 2^-9 of the
 * value) and may round one or two intermediates the CPU keeps in f32 (a norm output before
 * RoPE, a GeGLU input); its fp32 sums differ from the CPU's only in order (≤ K·2^-24
 * relative). Two to three bf16 roundings of values ≤ max|ref| stay below 3·2^-9 ≈ 0.6 %, so
 * ops compare at tol = 1e-2. Attention is compared on identical bf16 inputs (q and cache), so
 * the same bound holds; see test_gpu_attention.c. This is not a test library. */
#ifndef G4_TESTS_GPU_HARNESS_H
#define G4_TESTS_GPU_HARNESS_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "base/bf16.h"
#include "check.h"
#include "cuda_backend.h"

#define GH_TOL 1e-2f

typedef struct gh_pair {
    g4_backend *cpu, *gpu;
} gh_pair;

/* 0 ok, 77 no GPU (caller returns it), 1 failure (message printed). The CUDA backend is created
 * with options o (NULL = defaults: the default kernel paths). */
static inline int gh_open_with(gh_pair *p, const g4_backend_options *o) {
    g4_error err = {{0}};
    memset(p, 0, sizeof *p);
    if (g4_cuda_device_count() < 1) return CHECK_SKIP_CODE;
    p->cpu = g4_backend_cpu_create(&err);
    if (p->cpu) p->gpu = g4_backend_cuda_create(o, &err);
    if (!p->cpu || !p->gpu) {
        fprintf(stderr, "backend create: %s\n", err.msg);
        return 1;
    }
    return 0;
}

static inline int gh_open(gh_pair *p) { return gh_open_with(p, NULL); }

static inline void gh_close(gh_pair *p) {
    if (p->gpu) g4_backend_destroy(p->gpu);
    if (p->cpu) g4_backend_destroy(p->cpu);
}

/* Deterministic uniform in [-1, 1) (xorshift64*). */
static inline float gh_rand(uint64_t *s) {
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    uint64_t z = *s * 0x2545f4914f6cdd1dull;
    return (float)(z >> 40) * (2.0f / 16777216.0f) - 1.0f;
}

/* perm[0..n) = a seeded random permutation of 0..n−1 (Fisher–Yates): shuffled physical KV blocks. */
static inline void gh_shuffled_ids(int *perm, int n, uint64_t *rs) {
    for (int i = 0; i < n; i++) perm[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)((gh_rand(rs) * 0.5f + 0.5f) * (float)(i + 1)) % (i + 1);
        int tmp = perm[i];
        perm[i] = perm[j];
        perm[j] = tmp;
    }
}

/* x[i] = bf16(mean + amp·u) */
static inline void gh_fill(float *x, size_t n, uint64_t seed, float mean, float amp) {
    uint64_t s = seed * 0x9e3779b97f4a7c15ull + 1;
    for (size_t i = 0; i < n; i++) x[i] = g4_round_bf16(mean + amp * gh_rand(&s));
}

/* One weight known to both backends (same host bf16 bytes). */
typedef struct gh_weight {
    uint16_t *host;
    g4_weight cpu, gpu;
} gh_weight;

static inline int gh_weight_make(gh_pair *p, gh_weight *w, const char *name, int ndim, const int64_t *shape,
                                 uint64_t seed, float mean, float amp) {
    g4_error err = {{0}};
    memset(w, 0, sizeof *w);
    size_t n = 1;
    for (int d = 0; d < ndim; d++) n *= (size_t)shape[d];
    w->host = (uint16_t *)malloc(n * 2);
    if (!w->host) return -1;
    uint64_t s = seed * 0x9e3779b97f4a7c15ull + 7;
    for (size_t i = 0; i < n; i++) w->host[i] = g4_f32_to_bf16(mean + amp * gh_rand(&s));
    g4_weight base = {0};
    base.name = name;
    base.dtype = G4_DT_BF16;
    base.ndim = ndim;
    for (int d = 0; d < ndim; d++) base.shape[d] = shape[d];
    base.host = w->host;
    w->cpu = base;
    w->gpu = base;
    if (p->cpu->ops->load_weight(p->cpu->ctx, &w->cpu, &err) || p->gpu->ops->load_weight(p->gpu->ctx, &w->gpu, &err)) {
        fprintf(stderr, "load_weight %s: %s\n", name, err.msg);
        return -1;
    }
    return 0;
}

/* src (a weight loaded on one backend) loaded again on backend be, e.g. a second CUDA backend
 * created with other kernel paths: dst shares src's host bytes and gets its own device data. */
static inline int gh_weight_load_on(g4_backend *be, g4_weight *dst, const g4_weight *src) {
    g4_error err = {{0}};
    *dst = *src;
    dst->data = NULL;
    if (be->ops->load_weight(be->ctx, dst, &err)) {
        fprintf(stderr, "load_weight %s on backend %s: %s\n", src->name, be->ops->name, err.msg);
        return -1;
    }
    return 0;
}

/* One attention layer kind of a test (31B / 26B-A4B sliding or global geometry). */
typedef struct gh_attn_case {
    const char *name;
    int d, nq, nkv, window, k_eq_v;
    g4_rope rope;
} gh_attn_case;

static inline void gh_weight_free(gh_pair *p, gh_weight *w) {
    if (w->cpu.data) p->cpu->ops->unload_weight(p->cpu->ctx, &w->cpu);
    if (w->gpu.data) p->gpu->ops->unload_weight(p->gpu->ctx, &w->gpu);
    free(w->host);
    memset(w, 0, sizeof *w);
}

static inline size_t gh_dt_size(g4_dtype dt) { return dt == G4_DT_F32 || dt == G4_DT_I32 ? 4 : 2; }

/* Uploads n floats as elements of dtype dt (BF16 rounds, F32 copies). */
static inline int gh_upload_as(g4_backend *b, void *dev, const float *x, size_t n, g4_dtype dt) {
    g4_error err = {{0}};
    void *tmp = malloc(n * gh_dt_size(dt) + 1);
    if (!tmp) return -1;
    if (dt == G4_DT_F32) {
        memcpy(tmp, x, n * 4);
    } else {
        for (size_t i = 0; i < n; i++) ((uint16_t *)tmp)[i] = g4_f32_to_bf16(x[i]);
    }
    int rc = b->ops->upload(b->ctx, dev, tmp, n * gh_dt_size(dt), &err);
    if (rc) fprintf(stderr, "upload: %s\n", err.msg);
    free(tmp);
    return rc;
}

static inline int gh_download_as(g4_backend *b, float *x, const void *dev, size_t n, g4_dtype dt) {
    g4_error err = {{0}};
    void *tmp = malloc(n * gh_dt_size(dt) + 1);
    if (!tmp) return -1;
    int rc = b->ops->download(b->ctx, tmp, dev, n * gh_dt_size(dt), &err);
    if (rc) fprintf(stderr, "download: %s\n", err.msg);
    for (size_t i = 0; !rc && i < n; i++)
        x[i] = dt == G4_DT_F32 ? ((float *)tmp)[i] : g4_bf16_to_f32(((uint16_t *)tmp)[i]);
    free(tmp);
    return rc;
}

/* A buffer of n elements of dtype dt on backend b, optionally filled from x. */
static inline void *gh_alloc_as(g4_backend *b, size_t n, g4_dtype dt, const float *x) {
    void *d = b->ops->alloc(b->ctx, n * gh_dt_size(dt) + 16);
    if (d && x && gh_upload_as(b, d, x, n, dt)) {
        b->ops->free(b->ctx, d);
        return NULL;
    }
    return d;
}

/* Activation buffers (act_dtype of each backend). */
static inline void *gh_act(g4_backend *b, size_t n, const float *x) { return gh_alloc_as(b, n, b->ops->act_dtype, x); }
static inline int gh_get_act(g4_backend *b, float *x, const void *dev, size_t n) {
    return gh_download_as(b, x, dev, n, b->ops->act_dtype);
}

/* int32 / f32 buffers (same on both backends). */
static inline void *gh_bytes(g4_backend *b, const void *src, size_t bytes) {
    g4_error err = {{0}};
    void *d = b->ops->alloc(b->ctx, bytes + 16);
    if (d && src && b->ops->upload(b->ctx, d, src, bytes, &err)) {
        fprintf(stderr, "upload: %s\n", err.msg);
        b->ops->free(b->ctx, d);
        return NULL;
    }
    return d;
}

/* The comparison rule above. Prints max errors; returns 1 when within tol. */
static inline int gh_close_enough(const char *what, const float *got, const float *ref, size_t n, float tol) {
    double max_ref = 0, max_err = 0;
    size_t worst = 0, n_nan = 0;
    for (size_t i = 0; i < n; i++) {
        if (fabs(ref[i]) > max_ref) max_ref = fabs(ref[i]);
        if (isnan(got[i]) || isnan(ref[i])) n_nan++;
        double e = fabs((double)got[i] - ref[i]);
        if (e > max_err) {
            max_err = e;
            worst = i;
        }
    }
    int ok = n_nan == 0 && max_err <= tol * max_ref && max_ref > 0;
    printf("%-44s n=%-10zu max|ref|=%-10.4g max|err|=%-10.4g (%.3g%% of max, bound %.3g%%)%s\n", what, n, max_ref,
           max_err, max_ref > 0 ? 100.0 * max_err / max_ref : 0.0, 100.0 * tol, ok ? "" : "  <-- FAIL");
    if (!ok && n)
        printf("  worst at %zu: gpu %.6g ref %.6g; nan %zu\n", worst, (double)got[worst], (double)ref[worst], n_nan);
    return ok;
}

/* The step's index arrays on one backend (host arrays → dev copies). */
typedef struct gh_step {
    g4_step_dev s;
    void *bufs[6];
} gh_step;

static inline int gh_step_make(g4_backend *b, gh_step *st, int T, const int32_t *ids, const int32_t *pos,
                               const int32_t *seq, int n_seqs, int max_blocks, const int32_t *bs, const int32_t *bg,
                               int n_rows, const int32_t *rows) {
    memset(st, 0, sizeof *st);
    size_t tb = (size_t)n_seqs * max_blocks * 4;
    int32_t zero = 0;
    st->bufs[0] = gh_bytes(b, ids ? (const void *)ids : (const void *)pos, (size_t)T * 4);
    st->bufs[1] = gh_bytes(b, pos, (size_t)T * 4);
    st->bufs[2] = gh_bytes(b, seq, (size_t)T * 4);
    st->bufs[3] = gh_bytes(b, bs ? (const void *)bs : (const void *)&zero, bs ? tb : 4);
    st->bufs[4] = gh_bytes(b, bg ? (const void *)bg : (const void *)&zero, bg ? tb : 4);
    st->bufs[5] = gh_bytes(b, rows ? (const void *)rows : (const void *)&zero, rows ? (size_t)n_rows * 4 : 4);
    for (int i = 0; i < 6; i++)
        if (!st->bufs[i]) return -1;
    st->s.n_tokens = T;
    st->s.token_ids = (const int32_t *)st->bufs[0];
    st->s.pos = (const int32_t *)st->bufs[1];
    st->s.seq = (const int32_t *)st->bufs[2];
    st->s.n_seqs = n_seqs;
    st->s.max_blocks = max_blocks;
    st->s.blocks_sliding = (const int32_t *)st->bufs[3];
    st->s.blocks_global = (const int32_t *)st->bufs[4];
    st->s.n_rows = n_rows;
    st->s.rows = (const int32_t *)st->bufs[5];
    st->s.max_pos = 0;
    for (int t = 0; t < T; t++)
        if (pos[t] > st->s.max_pos) st->s.max_pos = pos[t];
    return 0;
}

static inline void gh_step_free(g4_backend *b, gh_step *st) {
    for (int i = 0; i < 6; i++) b->ops->free(b->ctx, st->bufs[i]);
    memset(st, 0, sizeof *st);
}

#endif
