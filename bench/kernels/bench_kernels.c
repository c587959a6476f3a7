/* bench_kernels.c — timings of the CUDA backend's hot ops at real Gemma 4 shapes, with the
 * device's own ceilings measured in the same run, printed as one JSON object on stdout:
 *   copy_gbs           device-to-device copy bandwidth (read + write bytes / s), 1 GiB
 *   cublas_bf16_tflops backend matmul (cuBLASLt) at M = N = K = 8192
 *   prefill_attention  TFLOP/s, one sequence prefilled from 0: sliding d256 (32q/16kv, W=1024)
 *                      and global d512 (32q/4kv, k_eq_v) at 4K and 16K tokens;
 *                      FLOPs = 4·d·heads·Σ_t keys(t)
 *   decode_attention   GB/s of KV bytes read, batch 1 and 8, contexts 2K and 32K
 *   moe_layer          26B-A4B router + experts at M = 1, 8, 64, 512: µs, GB/s of the
 *                      distinct experts' weights touched, TFLOP/s
 * Inputs are dummy bf16 values made on the GPU (cuda/dummy_weights.h). Each timing is the
 * mean of `reps` runs after one warm-up. Not a test: nothing is compared here. */
#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_backend.h"
#include "dummy_weights.h"

#define DIE(...)                                   \
    do {                                           \
        fprintf(stderr, "bench_kernels: ");        \
        fprintf(stderr, __VA_ARGS__);              \
        fputc('\n', stderr);                       \
        exit(1);                                   \
    } while (0)
#define CK(call)                                                                   \
    do {                                                                           \
        cudaError_t e_ = (call);                                                   \
        if (e_ != cudaSuccess) DIE("%s:%d: %s: %s", __FILE__, __LINE__, #call, cudaGetErrorString(e_)); \
    } while (0)
#define OK(call)                                                                   \
    do {                                                                           \
        if ((call) != 0) DIE("%s:%d: %s: %s", __FILE__, __LINE__, #call, err.msg); \
    } while (0)

static g4_backend *be;
static cudaStream_t stream;
static g4_error err;
static uint64_t seed_ctr = 1000;

/* A device buffer of n random bf16 values (through a throwaway g4_weight). */
static void *dummy(size_t n, float mean, float amp) {
    g4_weight w;
    memset(&w, 0, sizeof w);
    w.name = "bench";
    w.ndim = 1;
    w.shape[0] = (int64_t)n;
    OK(g4_cuda_dummy_weight(be, &w, seed_ctr++, mean, amp, &err));
    return w.data;
}

static void dummy_weight(g4_weight *w, const char *name, int ndim, int64_t a, int64_t b, int64_t c, float mean,
                         float amp) {
    memset(w, 0, sizeof *w);
    w->name = name;
    w->dtype = G4_DT_BF16;
    w->ndim = ndim;
    w->shape[0] = a;
    w->shape[1] = b;
    w->shape[2] = c;
    OK(g4_cuda_dummy_weight(be, w, seed_ctr++, mean, amp, &err));
}

static void *dev_copy(const void *src, size_t bytes) {
    void *d = be->ops->alloc(be->ctx, bytes);
    if (!d) DIE("alloc %zu bytes", bytes);
    OK(be->ops->upload(be->ctx, d, src, bytes, &err));
    return d;
}

typedef void (*bench_fn)(void *arg);

/* Mean ms of fn over reps runs after one warm-up, timed with events on the backend stream. */
static double time_ms(bench_fn fn, void *arg, int reps) {
    cudaEvent_t a, b;
    CK(cudaEventCreate(&a));
    CK(cudaEventCreate(&b));
    fn(arg);
    OK(be->ops->sync(be->ctx, &err));
    CK(cudaEventRecord(a, stream));
    for (int i = 0; i < reps; i++) fn(arg);
    CK(cudaEventRecord(b, stream));
    CK(cudaEventSynchronize(b));
    float ms = 0;
    CK(cudaEventElapsedTime(&ms, a, b));
    CK(cudaEventDestroy(a));
    CK(cudaEventDestroy(b));
    return ms / reps;
}

/* --- copy bandwidth and cuBLAS ------------------------------------------------------------- */
typedef struct { void *dst, *src; size_t bytes; } copy_arg;
static void run_copy(void *p) {
    copy_arg *c = p;
    CK(cudaMemcpyAsync(c->dst, c->src, c->bytes, cudaMemcpyDeviceToDevice, stream));
}

typedef struct { void *y, *x; g4_weight W; int M; } mm_arg;
static void run_mm(void *p) {
    mm_arg *m = p;
    OK(be->ops->matmul(be->ctx, m->y, m->x, &m->W, m->M, &err));
}

/* --- attention --------------------------------------------------------------------------- */
typedef struct {
    void *out, *q;
    g4_weight kn;
    g4_attn_geom g;
    g4_kv_layer kv;
    g4_step_dev s;
} att_arg;
static void run_att(void *p) {
    att_arg *a = p;
    OK(be->ops->attention(be->ctx, a->out, a->q, &a->kn, &a->g, &a->kv, &a->s, &err));
}

/* Sets up n_seqs sequences of ctx tokens each, with T_per queries at the last positions, the
 * blocks of each sequence laid out consecutively (block tables are identity-like).
 * Returns the ms per call; *flops and *bytes get the work done. */
static double bench_attention(int global, int n_seqs, int ctx, int T_per, double *flops, double *bytes) {
    const int B = 16, nq = 32, d = global ? 512 : 256, nkv = global ? 4 : 16, W = global ? 0 : 1024;
    att_arg a;
    memset(&a, 0, sizeof a);
    a.g = (g4_attn_geom){0, nq, nkv, d, W, {global ? 1e6 : 1e4, global ? 64 : 128}, global, 1e-6f};
    int max_blocks = (ctx + B - 1) / B, T = n_seqs * T_per;
    a.kv = (g4_kv_layer){NULL, n_seqs * max_blocks, B, nkv, d, global};
    a.kv.base = dummy((size_t)a.kv.n_blocks * g4_kv_block_elems(&a.kv), 0.0f, 1.0f);
    dummy_weight(&a.kn, "k_norm", 1, d, 0, 0, 1.0f, 0.3f);
    a.q = dummy((size_t)T * nq * d, 0.0f, 1.0f);
    a.out = be->ops->alloc(be->ctx, (size_t)T * nq * d * 2);
    int32_t *tab = malloc((size_t)n_seqs * max_blocks * 4), *pos = malloc((size_t)T * 4), *seq = malloc((size_t)T * 4);
    *flops = 0;
    *bytes = 0;
    for (int s = 0; s < n_seqs; s++) {
        for (int b = 0; b < max_blocks; b++) tab[s * max_blocks + b] = s * max_blocks + b;
        for (int i = 0; i < T_per; i++) {
            int p = ctx - T_per + i, keys = W && p + 1 > W ? W : p + 1;
            pos[s * T_per + i] = p;
            seq[s * T_per + i] = s;
            *flops += 4.0 * d * nq * keys;
        }
        int keys_last = W && ctx > W ? W : ctx;
        *bytes += (double)keys_last * nkv * d * 2 * (global ? 1 : 2); /* KV read once per sequence */
    }
    a.s.n_tokens = T;
    a.s.pos = dev_copy(pos, (size_t)T * 4);
    a.s.seq = dev_copy(seq, (size_t)T * 4);
    a.s.token_ids = a.s.pos;
    a.s.n_seqs = n_seqs;
    a.s.max_blocks = max_blocks;
    a.s.blocks_sliding = a.s.blocks_global = dev_copy(tab, (size_t)n_seqs * max_blocks * 4);
    a.s.max_pos = ctx - 1;
    double ms = time_ms(run_att, &a, T > 1024 ? 1 : 5);
    be->ops->free(be->ctx, a.kv.base);
    be->ops->unload_weight(be->ctx, &a.kn);
    be->ops->free(be->ctx, a.q);
    be->ops->free(be->ctx, a.out);
    be->ops->free(be->ctx, (void *)a.s.pos);
    be->ops->free(be->ctx, (void *)a.s.seq);
    be->ops->free(be->ctx, (void *)a.s.blocks_sliding);
    free(tab), free(pos), free(seq);
    return ms;
}

/* --- MoE ------------------------------------------------------------------------------------- */
typedef struct {
    void *h1, *y;
    int32_t *ids;
    float *w;
    g4_weight proj, scale, escale, gu, down;
    int M;
} moe_arg;
static void run_moe(void *p) {
    moe_arg *m = p;
    OK(be->ops->moe_route(be->ctx, m->ids, m->w, m->h1, &m->proj, &m->scale, &m->escale, m->M, 8, 1e-6f, &err));
    OK(be->ops->moe_experts(be->ctx, m->y, m->h1, m->ids, m->w, &m->gu, &m->down, m->M, 8, &err));
}

int main(void) {
    if (g4_cuda_device_count() < 1) DIE("no CUDA device");
    be = g4_backend_cuda_create(0, &err);
    if (!be) DIE("%s", err.msg);
    stream = (cudaStream_t)g4_cuda_backend_stream(be);
    struct cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    printf("{\n  \"device\": \"%s\",\n", prop.name);

    copy_arg c = {NULL, NULL, (size_t)1 << 30};
    c.src = dummy(c.bytes / 2, 0.0f, 1.0f);
    c.dst = be->ops->alloc(be->ctx, c.bytes);
    double ms = time_ms(run_copy, &c, 10);
    double copy_gbs = 2.0 * c.bytes / (ms * 1e-3) / 1e9;
    printf("  \"copy_gbs\": %.1f,\n", copy_gbs);
    be->ops->free(be->ctx, c.src);
    be->ops->free(be->ctx, c.dst);

    mm_arg m;
    m.M = 8192;
    dummy_weight(&m.W, "W", 2, 8192, 8192, 0, 0.0f, 0.02f);
    m.x = dummy((size_t)8192 * 8192, 0.0f, 1.0f);
    m.y = be->ops->alloc(be->ctx, (size_t)8192 * 8192 * 2);
    ms = time_ms(run_mm, &m, 10);
    double cublas_tflops = 2.0 * 8192.0 * 8192.0 * 8192.0 / (ms * 1e-3) / 1e12;
    printf("  \"cublas_bf16_tflops\": %.1f,\n", cublas_tflops);
    be->ops->unload_weight(be->ctx, &m.W);
    be->ops->free(be->ctx, m.x);
    be->ops->free(be->ctx, m.y);

    printf("  \"prefill_attention\": [\n");
    const int ptok[2] = {4096, 16384};
    for (int gl = 0; gl < 2; gl++)
        for (int i = 0; i < 2; i++) {
            double fl, by;
            ms = bench_attention(gl, 1, ptok[i], ptok[i], &fl, &by);
            printf("    {\"layer\": \"%s\", \"tokens\": %d, \"ms\": %.3f, \"tflops\": %.2f, \"frac_cublas\": %.3f}%s\n",
                   gl ? "global_d512" : "sliding_d256", ptok[i], ms, fl / (ms * 1e-3) / 1e12,
                   fl / (ms * 1e-3) / 1e12 / cublas_tflops, gl == 1 && i == 1 ? "" : ",");
        }
    printf("  ],\n  \"decode_attention\": [\n");
    const int dctx[2] = {2048, 32768}, dbatch[2] = {1, 8};
    for (int gl = 0; gl < 2; gl++)
        for (int i = 0; i < 2; i++)
            for (int bb = 0; bb < 2; bb++) {
                double fl, by;
                ms = bench_attention(gl, dbatch[bb], dctx[i], 1, &fl, &by);
                printf("    {\"layer\": \"%s\", \"context\": %d, \"batch\": %d, \"us\": %.1f, \"gbs\": %.1f, "
                       "\"frac_copy\": %.3f}%s\n",
                       gl ? "global_d512" : "sliding_d256", dctx[i], dbatch[bb], ms * 1e3, by / (ms * 1e-3) / 1e9,
                       by / (ms * 1e-3) / 1e9 / copy_gbs, gl == 1 && i == 1 && bb == 1 ? "" : ",");
            }

    printf("  ],\n  \"moe_layer\": [\n");
    const int E = 128, I = 704, H = 2816, Ms[4] = {1, 8, 64, 512};
    moe_arg mo;
    memset(&mo, 0, sizeof mo);
    dummy_weight(&mo.proj, "router.proj", 2, E, H, 0, 0.0f, 0.3f);
    dummy_weight(&mo.scale, "router.scale", 1, H, 0, 0, 1.0f, 0.5f);
    dummy_weight(&mo.escale, "router.per_expert_scale", 1, E, 0, 0, 1.0f, 0.5f);
    dummy_weight(&mo.gu, "experts.gate_up", 3, E, 2 * I, H, 0.0f, 0.04f);
    dummy_weight(&mo.down, "experts.down", 3, E, H, I, 0.0f, 0.06f);
    for (int i = 0; i < 4; i++) {
        mo.M = Ms[i];
        mo.h1 = dummy((size_t)mo.M * H, 0.0f, 2.0f);
        mo.y = be->ops->alloc(be->ctx, (size_t)mo.M * H * 2);
        mo.ids = be->ops->alloc(be->ctx, (size_t)mo.M * 8 * 4);
        mo.w = be->ops->alloc(be->ctx, (size_t)mo.M * 8 * 4);
        ms = time_ms(run_moe, &mo, 10);
        int32_t *ids = malloc((size_t)mo.M * 8 * 4);
        OK(be->ops->download(be->ctx, ids, mo.ids, (size_t)mo.M * 8 * 4, &err));
        int hit[128] = {0}, n_hit = 0;
        for (int j = 0; j < mo.M * 8; j++)
            if (ids[j] >= 0 && ids[j] < E && !hit[ids[j]]++) n_hit++;
        double per_expert = (2.0 * I * H + (double)H * I) * 2.0;
        double fl = 2.0 * mo.M * 8 * (2.0 * I * H + (double)H * I);
        printf("    {\"M\": %d, \"experts_hit\": %d, \"us\": %.1f, \"gbs\": %.1f, \"frac_copy\": %.3f, \"tflops\": %.2f}%s\n",
               mo.M, n_hit, ms * 1e3, n_hit * per_expert / (ms * 1e-3) / 1e9,
               n_hit * per_expert / (ms * 1e-3) / 1e9 / copy_gbs, fl / (ms * 1e-3) / 1e12, i == 3 ? "" : ",");
        free(ids);
        be->ops->free(be->ctx, mo.h1);
        be->ops->free(be->ctx, mo.y);
        be->ops->free(be->ctx, mo.ids);
        be->ops->free(be->ctx, mo.w);
    }
    printf("  ]\n}\n");
    be->ops->unload_weight(be->ctx, &mo.proj);
    be->ops->unload_weight(be->ctx, &mo.scale);
    be->ops->unload_weight(be->ctx, &mo.escale);
    be->ops->unload_weight(be->ctx, &mo.gu);
    be->ops->unload_weight(be->ctx, &mo.down);
    g4_backend_destroy(be);
    return 0;
}
