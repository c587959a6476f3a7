/* bench_kernels.c — timings of the CUDA backend's hot ops at real Gemma 4 shapes, with the
 * device's own ceilings measured in the same run, printed as one JSON object on stdout:
 *   copy_gbs           device-to-device copy bandwidth (read + write bytes / s), 1 GiB
 *   cublas_bf16_tflops backend matmul (cuBLASLt) at M = N = K = 8192
 *   prefill_attention  TFLOP/s, one sequence prefilled from 0: sliding d256 (32q/16kv, W=1024)
 *                      and global d512 (32q/4kv, k_eq_v) at 4K and 16K tokens;
 *                      FLOPs = 4·d·heads·Σ_t keys(t); the default path (the tiled flash kernel,
 *                      cuda/attention_flash.cu) and "simple" (attention path simple: the oracle)
 *   decode_attention   GB/s of KV bytes read, batch 1 and 8, contexts 2K, 4K and 32K, one token per
 *                      sequence: the auto path (the split-KV decode kernel, cuda/attention_decode.cu),
 *                      frac_copy against copy_gbs, ideal_us = bytes at copy_gbs, and simple_us (the
 *                      oracle kernel, attention path simple, one run); us/gbs are back-to-back runs,
 *                      where a KV set smaller than L2 (batch 1 sliding: 16.8 MB) stays cached, so
 *                      cold_us / cold_gbs time single runs after a 256 MiB memset scrubs L2
 *   moe_layer          26B-A4B at M = 1, 8, 64, 512, 4096: the router's µs, then the routed
 *                      experts three ways, each with µs, GB/s of the distinct experts'
 *                      weights touched (experts hit × 3·I·H·2 bytes) and TFLOP/s (2·M·k·3·I·H):
 *                        fast         the default path (cuda/moe_decode.cu, M ≤ 64; null above)
 *                        simple       MoE path simple (sort, per-expert cuBLASLt, combine)
 *                        cublas_loop  only the 2 GEMMs per expert hit (counts known on the
 *                                     host, no routing / gather / GeGLU / combine): the cost
 *                                     floor of a loop of cuBLAS GEMMs per expert
 * Inputs are dummy bf16 values made on the GPU (cuda/dummy_weights.h). Each timing is the
 * mean of `reps` runs after one warm-up. Not a test: nothing is compared here. */
#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_backend.h"
#include "dummy_weights.h"

#define DIE(...)                            \
    do {                                    \
        fprintf(stderr, "bench_kernels: "); \
        fprintf(stderr, __VA_ARGS__);       \
        fputc('\n', stderr);                \
        exit(1);                            \
    } while (0)
#define CK(call)                                                                                        \
    do {                                                                                                \
        cudaError_t e_ = (call);                                                                        \
        if (e_ != cudaSuccess) DIE("%s:%d: %s: %s", __FILE__, __LINE__, #call, cudaGetErrorString(e_)); \
    } while (0)
#define OK(call)                                                                   \
    do {                                                                           \
        if ((call) != 0) DIE("%s:%d: %s: %s", __FILE__, __LINE__, #call, err.msg); \
    } while (0)

static g4_backend *be, *be_simple; /* be_simple: MoE path simple (same device and context) */
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

/* Mean ms of fn over reps runs after one warm-up, timed with events on backend tb's stream. */
static double time_ms_on(g4_backend *tb, bench_fn fn, void *arg, int reps) {
    cudaEvent_t a, b;
    cudaStream_t st = (cudaStream_t)g4_cuda_backend_stream(tb);
    CK(cudaEventCreate(&a));
    CK(cudaEventCreate(&b));
    fn(arg);
    OK(tb->ops->sync(tb->ctx, &err));
    CK(cudaEventRecord(a, st));
    for (int i = 0; i < reps; i++) fn(arg);
    CK(cudaEventRecord(b, st));
    CK(cudaEventSynchronize(b));
    float ms = 0;
    CK(cudaEventElapsedTime(&ms, a, b));
    CK(cudaEventDestroy(a));
    CK(cudaEventDestroy(b));
    return ms / reps;
}
static double time_ms(bench_fn fn, void *arg, int reps) { return time_ms_on(be, fn, arg, reps); }

/* Mean ms of fn over reps single runs on be's stream, each after a memset of 256 MiB (more than
 * any L2) so its inputs come from memory; one warm-up first. */
static double time_ms_cold(bench_fn fn, void *arg, int reps) {
    static void *scrub;
    const size_t scrub_bytes = (size_t)256 << 20;
    cudaEvent_t a, b;
    cudaStream_t st = (cudaStream_t)g4_cuda_backend_stream(be);
    if (!scrub && !(scrub = be->ops->alloc(be->ctx, scrub_bytes))) DIE("alloc L2 scrub buffer");
    CK(cudaEventCreate(&a));
    CK(cudaEventCreate(&b));
    fn(arg);
    double total = 0;
    for (int i = 0; i < reps; i++) {
        CK(cudaMemsetAsync(scrub, i & 0xff, scrub_bytes, st));
        CK(cudaEventRecord(a, st));
        fn(arg);
        CK(cudaEventRecord(b, st));
        CK(cudaEventSynchronize(b));
        float ms = 0;
        CK(cudaEventElapsedTime(&ms, a, b));
        total += ms;
    }
    CK(cudaEventDestroy(a));
    CK(cudaEventDestroy(b));
    return total / reps;
}

/* --- copy bandwidth and cuBLAS ------------------------------------------------------------- */
typedef struct {
    void *dst, *src;
    size_t bytes;
} copy_arg;
static void run_copy(void *p) {
    copy_arg *c = p;
    CK(cudaMemcpyAsync(c->dst, c->src, c->bytes, cudaMemcpyDeviceToDevice, stream));
}

typedef struct {
    void *y, *x;
    g4_weight W;
    int M;
} mm_arg;
static void run_mm(void *p) {
    mm_arg *m = p;
    OK(be->ops->matmul(be->ctx, m->y, m->x, &m->W, m->M, &err));
}

/* --- attention --------------------------------------------------------------------------- */
typedef struct {
    g4_backend *b; /* runs the op (be, or be_att_simple); the buffers live on be, same device */
    void *out, *q;
    g4_weight kn;
    g4_attn_geom g;
    g4_kv_layer kv;
    g4_step_dev s;
} att_arg;
static g4_backend *be_att_simple; /* attention path simple */
static double att_cold_ms;        /* bench_attention with T_per = 1: ms of a run after an L2 scrub */
static void run_att(void *p) {
    att_arg *a = p;
    OK(a->b->ops->attention(a->b->ctx, a->out, a->q, &a->kn, &a->g, &a->kv, &a->s, &err));
}

/* Sets up n_seqs sequences of ctx tokens each, with T_per queries at the last positions, the
 * blocks of each sequence laid out consecutively (block tables are identity-like).
 * Returns the ms per call; *flops and *bytes get the work done; *ms_simple (when not NULL) the
 * ms per call of the simple kernel on the same inputs. */
static double bench_attention(int global, int n_seqs, int ctx, int T_per, double *flops, double *bytes,
                              double *ms_simple) {
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
    a.b = be;
    double ms = time_ms(run_att, &a, T > 1024 ? 3 : 5);
    if (T_per == 1) att_cold_ms = time_ms_cold(run_att, &a, 5);
    if (ms_simple) {
        a.b = be_att_simple;
        *ms_simple = time_ms_on(be_att_simple, run_att, &a, 1);
    }
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
#define MOE_E 128
#define MOE_K 8
#define MOE_I 704
#define MOE_H 2816
#define MOE_FAST_MAX_M 64 /* G4_MOE_DECODE_MAX_T of cuda/ctx.cuh */
typedef struct {
    g4_backend *b;
    void *h1, *y;
    int32_t *ids;
    float *w;
    g4_weight proj, scale, escale, gu, down;
    int M;
    /* cublas_loop: per-expert weight views and row counts, inputs/outputs of the GEMMs */
    g4_weight gu_e[MOE_E], down_e[MOE_E];
    int cnt[MOE_E];
    void *xs, *gus, *acts, *ys;
} moe_arg;
static void run_route(void *p) {
    moe_arg *m = p;
    OK(be->ops->moe_route(be->ctx, m->ids, m->w, m->h1, &m->proj, &m->scale, &m->escale, m->M, MOE_K, 1e-6f, &err));
}
static void run_experts(void *p) {
    moe_arg *m = p;
    OK(m->b->ops->moe_experts(m->b->ctx, m->y, m->h1, m->ids, m->w, &m->gu, &m->down, m->M, MOE_K, &err));
}
static void run_cublas_loop(void *p) {
    moe_arg *m = p;
    size_t row = 0;
    for (int e = 0; e < MOE_E; e++) {
        if (!m->cnt[e]) continue;
        OK(be->ops->matmul(be->ctx, (char *)m->gus + row * 2 * MOE_I * 2, (char *)m->xs + row * MOE_H * 2, &m->gu_e[e],
                           m->cnt[e], &err));
        OK(be->ops->matmul(be->ctx, (char *)m->ys + row * MOE_H * 2, (char *)m->acts + row * MOE_I * 2, &m->down_e[e],
                           m->cnt[e], &err));
        row += (size_t)m->cnt[e];
    }
}
static void print_moe_path(const char *name, double ms, double bytes, double flops, double copy_gbs, int last) {
    if (ms < 0) {
        printf("\"%s\": null%s", name, last ? "" : ", ");
        return;
    }
    printf("\"%s\": {\"us\": %.1f, \"gbs\": %.1f, \"frac_copy\": %.3f, \"tflops\": %.2f}%s", name, ms * 1e3,
           bytes / (ms * 1e-3) / 1e9, bytes / (ms * 1e-3) / 1e9 / copy_gbs, flops / (ms * 1e-3) / 1e12,
           last ? "" : ", ");
}

static void bench_moe(double copy_gbs) {
    const int E = MOE_E, I = MOE_I, H = MOE_H, Ms[5] = {1, 8, 64, 512, 4096};
    static moe_arg mo; /* large: the per-expert views */
    memset(&mo, 0, sizeof mo);
    dummy_weight(&mo.proj, "router.proj", 2, E, H, 0, 0.0f, 0.3f);
    dummy_weight(&mo.scale, "router.scale", 1, H, 0, 0, 1.0f, 0.5f);
    dummy_weight(&mo.escale, "router.per_expert_scale", 1, E, 0, 0, 1.0f, 0.5f);
    dummy_weight(&mo.gu, "experts.gate_up", 3, E, 2 * I, H, 0.0f, 0.04f);
    dummy_weight(&mo.down, "experts.down", 3, E, H, I, 0.0f, 0.06f);
    for (int e = 0; e < E; e++) { /* 2-D views of one expert for the backend's matmul */
        mo.gu_e[e] = mo.gu;
        mo.gu_e[e].ndim = 2;
        mo.gu_e[e].shape[0] = 2 * I;
        mo.gu_e[e].shape[1] = H;
        mo.gu_e[e].data = (char *)mo.gu.data + (size_t)e * 2 * I * H * 2;
        mo.down_e[e] = mo.down;
        mo.down_e[e].ndim = 2;
        mo.down_e[e].shape[0] = H;
        mo.down_e[e].shape[1] = I;
        mo.down_e[e].data = (char *)mo.down.data + (size_t)e * H * I * 2;
    }
    printf("  \"moe_layer\": [\n");
    for (int i = 0; i < 5; i++) {
        int M = mo.M = Ms[i], P = M * MOE_K, reps = M >= 512 ? 3 : 10;
        mo.h1 = dummy((size_t)M * H, 0.0f, 2.0f);
        mo.y = be->ops->alloc(be->ctx, (size_t)M * H * 2);
        mo.ids = be->ops->alloc(be->ctx, (size_t)P * 4);
        mo.w = be->ops->alloc(be->ctx, (size_t)P * 4);
        mo.xs = dummy((size_t)P * H, 0.0f, 2.0f);
        mo.acts = dummy((size_t)P * I, 0.0f, 1.0f);
        mo.gus = be->ops->alloc(be->ctx, (size_t)P * 2 * I * 2);
        mo.ys = be->ops->alloc(be->ctx, (size_t)P * H * 2);
        if (!mo.y || !mo.ids || !mo.w || !mo.gus || !mo.ys) DIE("alloc (moe M=%d)", M);
        double route_ms = time_ms(run_route, &mo, reps);
        int32_t *ids = malloc((size_t)P * 4);
        OK(be->ops->download(be->ctx, ids, mo.ids, (size_t)P * 4, &err)); /* also waits for the route */
        int n_hit = 0;
        memset(mo.cnt, 0, sizeof mo.cnt);
        for (int j = 0; j < P; j++)
            if (ids[j] >= 0 && ids[j] < E && !mo.cnt[ids[j]]++) n_hit++;
        free(ids);
        mo.b = be;
        double fast_ms = M <= MOE_FAST_MAX_M ? time_ms(run_experts, &mo, reps) : -1.0;
        mo.b = be_simple;
        double simple_ms = time_ms_on(be_simple, run_experts, &mo, reps);
        double loop_ms = time_ms(run_cublas_loop, &mo, reps);
        double bytes = n_hit * 3.0 * I * H * 2.0, fl = 2.0 * P * 3.0 * I * H;
        printf("    {\"M\": %d, \"experts_hit\": %d, \"bytes_touched\": %.0f, \"route_us\": %.1f, ", M, n_hit, bytes,
               route_ms * 1e3);
        print_moe_path("fast", fast_ms, bytes, fl, copy_gbs, 0);
        print_moe_path("simple", simple_ms, bytes, fl, copy_gbs, 0);
        print_moe_path("cublas_loop", loop_ms, bytes, fl, copy_gbs, 1);
        printf("}%s\n", i == 4 ? "" : ",");
        void *bufs[8] = {mo.h1, mo.y, mo.ids, mo.w, mo.xs, mo.acts, mo.gus, mo.ys};
        for (int b = 0; b < 8; b++) be->ops->free(be->ctx, bufs[b]);
    }
    printf("  ]\n");
    be->ops->unload_weight(be->ctx, &mo.proj);
    be->ops->unload_weight(be->ctx, &mo.scale);
    be->ops->unload_weight(be->ctx, &mo.escale);
    be->ops->unload_weight(be->ctx, &mo.gu);
    be->ops->unload_weight(be->ctx, &mo.down);
}

int main(void) {
    if (g4_cuda_device_count() < 1) DIE("no CUDA device");
    /* one backend per MoE path; the main one takes the fast kernels where they apply */
    const g4_backend_options moe_simple = {.moe_path = G4_MOE_PATH_SIMPLE},
                             fast = {.attn_path = G4_ATTN_AUTO, .moe_path = G4_MOE_PATH_FAST};
    be_simple = g4_backend_cuda_create(&moe_simple, &err);
    if (!be_simple) DIE("%s", err.msg);
    be = g4_backend_cuda_create(&fast, &err);
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
    const g4_backend_options attn_simple = {.attn_path = G4_ATTN_SIMPLE};
    be_att_simple = g4_backend_cuda_create(&attn_simple, &err);
    if (!be_att_simple) DIE("%s", err.msg);
    for (int gl = 0; gl < 2; gl++)
        for (int i = 0; i < 2; i++) {
            double fl, by, ms_s;
            ms = bench_attention(gl, 1, ptok[i], ptok[i], &fl, &by, &ms_s);
            printf("    {\"layer\": \"%s\", \"tokens\": %d, \"ms\": %.3f, \"tflops\": %.2f, \"frac_cublas\": %.3f, "
                   "\"simple_ms\": %.3f, \"simple_tflops\": %.2f, \"speedup\": %.2f}%s\n",
                   gl ? "global_d512" : "sliding_d256", ptok[i], ms, fl / (ms * 1e-3) / 1e12,
                   fl / (ms * 1e-3) / 1e12 / cublas_tflops, ms_s, fl / (ms_s * 1e-3) / 1e12, ms_s / ms,
                   gl == 1 && i == 1 ? "" : ",");
        }
    printf("  ],\n  \"decode_attention\": [\n");
    const int dctx[3] = {2048, 4096, 32768}, dbatch[2] = {1, 8};
    for (int gl = 0; gl < 2; gl++)
        for (int i = 0; i < 3; i++)
            for (int bb = 0; bb < 2; bb++) {
                double fl, by, ms_s;
                ms = bench_attention(gl, dbatch[bb], dctx[i], 1, &fl, &by, &ms_s);
                printf("    {\"layer\": \"%s\", \"context\": %d, \"batch\": %d, \"us\": %.1f, \"gbs\": %.1f, "
                       "\"frac_copy\": %.3f, \"cold_us\": %.1f, \"cold_gbs\": %.1f, \"cold_frac_copy\": %.3f, "
                       "\"ideal_us\": %.1f, \"simple_us\": %.1f}%s\n",
                       gl ? "global_d512" : "sliding_d256", dctx[i], dbatch[bb], ms * 1e3, by / (ms * 1e-3) / 1e9,
                       by / (ms * 1e-3) / 1e9 / copy_gbs, att_cold_ms * 1e3, by / (att_cold_ms * 1e-3) / 1e9,
                       by / (att_cold_ms * 1e-3) / 1e9 / copy_gbs, by / (copy_gbs * 1e9) * 1e6, ms_s * 1e3,
                       gl == 1 && i == 2 && bb == 1 ? "" : ",");
            }
    g4_backend_destroy(be_att_simple);

    printf("  ],\n");
    bench_moe(copy_gbs);
    printf("}\n");
    g4_backend_destroy(be);
    g4_backend_destroy(be_simple);
    return 0;
}
