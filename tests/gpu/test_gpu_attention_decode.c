/* test_gpu_attention_decode.c — the split-KV decode-attention kernel (cuda/attention_decode.cu)
 * vs the CPU backend (the oracle) and vs the simple CUDA kernel (cuda/attention.cu), paged through
 * shuffled block tables (B = 16, and 64 once), on decode steps (one token per sequence, T = n_seqs):
 *   31B sliding   d=256, 32 q / 16 kv heads (G 2), window 1024
 *   31B global    d=512, 32 q / 4 kv heads (G 8), k_eq_v (K = RoPE(U ⊙ k_norm), V = U), θ=1e6 on 64 of 256 pairs
 *   26B global    d=512, 16 q / 2 kv heads (G 8), k_eq_v
 *   26B sliding   d=256, 16 q / 8 kv heads (G 2), window 1024
 * Sequences with contexts 1, 17, 1024, 1025 and 1500 tokens (the decode token at the last
 * position) in one step, so the window is met exactly, crossed by one key and crossed by 476,
 * with peaked (near one-hot) and flat softmaxes (every key's V weighs in);
 * later cache slots hold random keys the causal bound must hide, and sliding tables hold −1 for
 * blocks wholly outside the window (a read there fails the CPU oracle and reads garbage here).
 * Three backends: CPU, CUDA with attention path auto (the decode kernel takes every T ≤ n_seqs step)
 * and CUDA with attention path simple. The emulated device has 132 SMs like an H100, so the split
 * rule (printed per case) gives Z > 1 on the five-sequence step (combine kernel) and Z = 1 on a
 * step of 20 short sequences (the kernel's direct bf16 epilogue).
 * Bound: the harness's 1 % of max|ref| (identical bf16 q and cache on every side; the decode
 * kernel adds a bf16 rounding of P and fp16 roundings of the rotated K dims, see its header).
 * The decode output must also differ from the simple one somewhere, else the decode kernel did
 * not run (a silent fallback would compare the simple kernel with itself).
 * Last: the decode attention captured in a CUDA graph and replayed (no host sync, no allocation
 * inside): the replay must equal the eager run bit for bit, and a replay after the positions
 * moved on (same bucket) must equal an eager run at the new positions.
 * And row identity across a batch bucket: the five tokens of a step run alone (T = 5) and with
 * three more short sequences after them (T = 8, what the model's padding to the bucket 8 does)
 * must give the five the same output bit for bit — the split count follows g4_bucket(T), not T
 * (with T it would be 4 vs 3 on the 31B sliding layer and 12 vs 9 on the global one, on the
 * emulated 132 SMs too, and the combine would add the splits differently: this can fail there). */
#include <cuda_runtime.h>

#include "base/bucket.h"
#include "gpu_harness.h"

static int B = 16; /* KV block size (tokens); one case runs with 64 (a tile inside one block) */
#define MAXB 96
#define MAXS 64

/* A decode step: sequence s has ctx[s] cached tokens, its query at position ctx[s] − 1. */
typedef struct dstep {
    const char *name;
    int n;
    float q_amp; /* q ~ U(0.05 ± q_amp): 1.5 gives near one-hot softmaxes, 0.15 spreads them over many keys */
    int ctx[MAXS];
} dstep;

typedef struct inputs {
    int n_blocks;
    int32_t *table;  /* [n, MAXB] */
    float *cache0, *q;
    size_t pool, nq;
    int32_t pos[MAXS], seq[MAXS];
} inputs;

/* Tables from a shuffled permutation of the physical blocks (+ spare blocks never referenced);
 * on sliding layers blocks wholly below the query's window start are −1. Random pool and q. */
static int make_inputs(inputs *in, const gh_attn_case *L, const dstep *st, uint64_t seed) {
    memset(in, 0, sizeof *in);
    int n_used = 0;
    for (int s = 0; s < st->n; s++) n_used += (st->ctx[s] + B - 1) / B;
    in->n_blocks = n_used + 7;
    int *perm = malloc((size_t)in->n_blocks * sizeof(int));
    in->table = malloc((size_t)st->n * MAXB * 4);
    if (!perm || !in->table) return -1;
    uint64_t rs = seed;
    gh_shuffled_ids(perm, in->n_blocks, &rs);
    int base = 0;
    for (int s = 0; s < st->n; s++) {
        int nb = (st->ctx[s] + B - 1) / B, p = st->ctx[s] - 1;
        int lo = L->window > 0 && p - L->window + 1 > 0 ? p - L->window + 1 : 0;
        for (int b = 0; b < MAXB; b++)
            in->table[s * MAXB + b] = b < nb && (L->window == 0 || (b + 1) * B - 1 >= lo) ? perm[base + b] : -1;
        base += nb;
        in->pos[s] = p;
        in->seq[s] = s;
    }
    free(perm);
    g4_kv_layer kvl = {NULL, in->n_blocks, B, L->nkv, L->d, L->k_eq_v};
    in->pool = (size_t)in->n_blocks * g4_kv_block_elems(&kvl);
    in->nq = (size_t)st->n * L->nq * L->d;
    in->cache0 = malloc(in->pool * 4);
    in->q = malloc(in->nq * 4);
    if (!in->cache0 || !in->q) return -1;
    gh_fill(in->cache0, in->pool, seed + 1, 0.0f, 1.0f);
    gh_fill(in->q, in->nq, seed + 2, 0.05f, st->q_amp);
    return 0;
}

static void free_inputs(inputs *in) {
    free(in->table), free(in->cache0), free(in->q);
    memset(in, 0, sizeof *in);
}

/* attention on backend b (k_norm kn loaded there) → out (floats). 0 ok. */
static int run_attention(g4_backend *b, const g4_weight *kn, const g4_attn_geom *g, const inputs *in, int n,
                         float *out) {
    g4_error err = {{0}};
    gh_step s;
    int ok = !gh_step_make(b, &s, n, NULL, in->pos, in->seq, n, MAXB, g->window ? in->table : NULL,
                           g->window ? NULL : in->table, 0, NULL);
    g4_kv_layer kb = {NULL, in->n_blocks, B, g->n_kv_heads, g->head_dim, g->k_eq_v};
    kb.base = gh_alloc_as(b, in->pool, b->ops->kv_dtype, in->cache0);
    void *dq = gh_act(b, in->nq, in->q), *dout = gh_act(b, in->nq, NULL);
    ok = ok && kb.base && dq && dout && !b->ops->attention(b->ctx, dout, dq, kn, g, &kb, &s.s, &err) &&
         !gh_get_act(b, out, dout, in->nq);
    if (!ok) fprintf(stderr, "attention on %s: %s\n", b->ops->name, err.msg);
    b->ops->free(b->ctx, kb.base);
    b->ops->free(b->ctx, dq);
    b->ops->free(b->ctx, dout);
    gh_step_free(b, &s);
    return ok ? 0 : -1;
}

/* Splits the decode kernel picks (the rule of g4_attention_decode_splits, for the printout). */
static int expect_splits(int T, int nkv, int G, int d, int k_eq_v, int keys) {
    int bucket = g4_bucket(keys) < 32 ? 32 : g4_bucket(keys);
    long base = (long)g4_bucket(T) * nkv, want = (2L * 132 + base - 1) / base;
    long kvb = (long)d * 2 * (k_eq_v ? 1 : 2), part = 8L * G * (d + 2) * 4, min_len = (part + kvb - 1) / kvb;
    min_len = (min_len + 31) / 32 * 32;
    if (min_len < 64) min_len = 64;
    long cap = bucket / min_len;
    if (cap > 64) cap = 64;
    if (want > cap) want = cap;
    return want < 1 ? 1 : (int)want;
}

static void run_case(gh_pair *p, g4_backend *simple, const gh_attn_case *L, const dstep *st, uint64_t seed) {
    char what[160];
    inputs in;
    if (make_inputs(&in, L, st, seed)) {
        CHECK(0, "out of memory");
        return;
    }
    float *ref = malloc(in.nq * 4), *dec = malloc(in.nq * 4), *slow = malloc(in.nq * 4);
    gh_weight kn;
    g4_weight kn_simple;
    int64_t shd[1] = {L->d};
    if (!ref || !dec || !slow || gh_weight_make(p, &kn, "k_norm.weight", 1, shd, seed + 6, 1.0f, 0.4f) ||
        gh_weight_load_on(simple, &kn_simple, &kn.gpu)) {
        CHECK(0, "setup %s %s", L->name, st->name);
        return;
    }
    g4_attn_geom g = {0, L->nq, L->nkv, L->d, L->window, L->rope, L->k_eq_v, 1e-6f};
    int max_keys = 0;
    for (int s = 0; s < st->n; s++) {
        int k = L->window && st->ctx[s] > L->window ? L->window : st->ctx[s];
        if (k > max_keys) max_keys = k;
    }
    printf("%s %s: %d sequences, B=%d, splits %d\n", L->name, st->name, st->n, B,
           expect_splits(st->n, L->nkv, L->nq / L->nkv, L->d, L->k_eq_v, max_keys));
    int ok = !run_attention(p->cpu, &kn.cpu, &g, &in, st->n, ref) &&
             !run_attention(p->gpu, &kn.gpu, &g, &in, st->n, dec) &&
             !run_attention(simple, &kn_simple, &g, &in, st->n, slow);
    CHECK(ok, "attention %s %s ran on all three backends", L->name, st->name);
    if (ok) {
        snprintf(what, sizeof what, "decode vs cpu %s %s T=%d", L->name, st->name, st->n);
        CHECK(gh_close_enough(what, dec, ref, in.nq, GH_TOL), "%s", what);
        snprintf(what, sizeof what, "decode vs simple %s %s T=%d", L->name, st->name, st->n);
        CHECK(gh_close_enough(what, dec, slow, in.nq, GH_TOL), "%s", what);
        snprintf(what, sizeof what, "simple vs cpu %s %s T=%d", L->name, st->name, st->n);
        CHECK(gh_close_enough(what, slow, ref, in.nq, GH_TOL), "%s", what);
        /* per sequence too: a wrong short context hides in the max over a long one */
        size_t per = (size_t)L->nq * L->d;
        for (int s = 0; s < st->n; s++) {
            snprintf(what, sizeof what, "  decode vs cpu, context %d", st->ctx[s]);
            CHECK(gh_close_enough(what, dec + s * per, ref + s * per, per, GH_TOL), "%s %s %s", L->name, st->name,
                  what);
        }
        size_t differ = 0;
        for (size_t i = 0; i < in.nq; i++) differ += dec[i] != slow[i];
        printf("  elements where decode != simple: %zu of %zu\n", differ, in.nq);
        CHECK(differ > 0, "%s %s: decode output bit-identical to simple: the decode kernel did not run", L->name,
              st->name);
    }
    simple->ops->unload_weight(simple->ctx, &kn_simple);
    gh_weight_free(p, &kn);
    free(ref), free(dec), free(slow);
    free_inputs(&in);
}

/* Graph capture of the decode attention on the decode backend: eager run (grows the split-KV
 * scratch), capture of the same call, replay = eager bit for bit; then the positions move one
 * token on (pos uploaded into the same device buffer, as a captured step would) and the replay
 * must equal a fresh eager run at the new positions. */
static void run_graph(gh_pair *p, const gh_attn_case *L, const dstep *st, uint64_t seed) {
    g4_error err = {{0}};
    g4_backend *be = p->gpu;
    inputs in;
    dstep st2 = *st;
    for (int s = 0; s < st2.n; s++) st2.ctx[s]++; /* the next decode step: one more key each */
    if (make_inputs(&in, L, &st2, seed)) {          /* tables sized for the longer contexts */
        CHECK(0, "out of memory");
        return;
    }
    for (int s = 0; s < st->n; s++) in.pos[s] = st->ctx[s] - 1;
    gh_weight kn;
    int64_t shd[1] = {L->d};
    if (gh_weight_make(p, &kn, "k_norm.weight", 1, shd, seed + 6, 1.0f, 0.4f)) {
        CHECK(0, "weights");
        return;
    }
    g4_attn_geom g = {0, L->nq, L->nkv, L->d, L->window, L->rope, L->k_eq_v, 1e-6f};
    float *eager = malloc(in.nq * 4), *replay = malloc(in.nq * 4), *eager2 = malloc(in.nq * 4);
    gh_step s;
    int ok = eager && replay && eager2 &&
             !gh_step_make(be, &s, st->n, NULL, in.pos, in.seq, st->n, MAXB, g.window ? in.table : NULL,
                           g.window ? NULL : in.table, 0, NULL);
    g4_kv_layer kb = {NULL, in.n_blocks, B, L->nkv, L->d, L->k_eq_v};
    kb.base = gh_alloc_as(be, in.pool, be->ops->kv_dtype, in.cache0);
    void *dq = gh_act(be, in.nq, in.q), *dout = gh_act(be, in.nq, NULL);
    ok = ok && kb.base && dq && dout && !be->ops->attention(be->ctx, dout, dq, &kn.gpu, &g, &kb, &s.s, &err) &&
         !gh_get_act(be, eager, dout, in.nq);
    CHECK(ok, "graph %s: eager run: %s", L->name, err.msg);
    cudaStream_t cs = (cudaStream_t)g4_cuda_backend_stream(be);
    cudaGraph_t graph = NULL;
    cudaGraphExec_t exec = NULL;
    if (ok) {
        ok = cudaMemsetAsync(dout, 0, in.nq * 2, cs) == cudaSuccess &&
             cudaStreamBeginCapture(cs, cudaStreamCaptureModeGlobal) == cudaSuccess;
        int rc = ok ? be->ops->attention(be->ctx, dout, dq, &kn.gpu, &g, &kb, &s.s, &err) : -1;
        cudaError_t ce = ok ? cudaStreamEndCapture(cs, &graph) : cudaErrorUnknown;
        CHECK(ok && rc == 0 && ce == cudaSuccess, "graph %s: capture (op rc %d: %s; end: %s)", L->name, rc, err.msg,
              cudaGetErrorString(ce));
        ok = ok && rc == 0 && ce == cudaSuccess && cudaGraphInstantiate(&exec, graph, 0) == cudaSuccess &&
             cudaGraphLaunch(exec, cs) == cudaSuccess && cudaStreamSynchronize(cs) == cudaSuccess &&
             !gh_get_act(be, replay, dout, in.nq);
        CHECK(ok, "graph %s: instantiate / replay: %s", L->name, cudaGetErrorString(cudaGetLastError()));
        CHECK(ok && !memcmp(eager, replay, in.nq * 4), "graph %s: replay differs from the eager run", L->name);
        if (ok) printf("graph %s: captured and replayed, equal to the eager run\n", L->name);
    }
    if (ok) { /* next step: positions + 1 in the same buffer, replay vs eager */
        int32_t pos2[MAXS];
        for (int i = 0; i < st->n; i++) pos2[i] = st2.ctx[i] - 1;
        ok = !be->ops->upload(be->ctx, s.bufs[1], pos2, (size_t)st->n * 4, &err) &&
             cudaGraphLaunch(exec, cs) == cudaSuccess && cudaStreamSynchronize(cs) == cudaSuccess &&
             !gh_get_act(be, replay, dout, in.nq);
        s.s.max_pos++;
        ok = ok && !be->ops->attention(be->ctx, dout, dq, &kn.gpu, &g, &kb, &s.s, &err) &&
             !gh_get_act(be, eager2, dout, in.nq);
        CHECK(ok, "graph %s: second step: %s", L->name, err.msg);
        CHECK(ok && !memcmp(eager2, replay, in.nq * 4), "graph %s: replay at moved positions != eager", L->name);
        size_t moved = 0;
        for (size_t i = 0; ok && i < in.nq; i++) moved += eager2[i] != eager[i];
        CHECK(moved > 0, "graph %s: the second step's output equals the first: positions did not reach the kernel",
              L->name);
        if (ok)
            printf("graph %s: replay at the next positions equal to the eager run (%zu elements moved)\n", L->name,
                   moved);
    }
    if (exec) cudaGraphExecDestroy(exec);
    if (graph) cudaGraphDestroy(graph);
    be->ops->free(be->ctx, kb.base);
    be->ops->free(be->ctx, dq);
    be->ops->free(be->ctx, dout);
    gh_step_free(be, &s);
    gh_weight_free(p, &kn);
    free(eager), free(replay), free(eager2);
    free_inputs(&in);
}

/* The first n of st's tokens run as a step of n and as the whole step (st->n, same bucket): their
 * outputs must be equal bit for bit on the decode backend. */
static void run_rows(gh_pair *p, const gh_attn_case *L, const dstep *st, int n, uint64_t seed) {
    inputs in;
    if (make_inputs(&in, L, st, seed)) {
        CHECK(0, "out of memory");
        return;
    }
    gh_weight kn;
    int64_t shd[1] = {L->d};
    float *alone = malloc(in.nq * 4), *all = malloc(in.nq * 4);
    if (!alone || !all || gh_weight_make(p, &kn, "k_norm.weight", 1, shd, seed + 6, 1.0f, 0.4f)) {
        CHECK(0, "setup rows %s", L->name);
        return;
    }
    g4_attn_geom g = {0, L->nq, L->nkv, L->d, L->window, L->rope, L->k_eq_v, 1e-6f};
    int ok = !run_attention(p->gpu, &kn.gpu, &g, &in, n, alone) && !run_attention(p->gpu, &kn.gpu, &g, &in, st->n, all);
    CHECK(ok, "rows %s: attention ran", L->name);
    if (ok) {
        size_t per = (size_t)L->nq * L->d, differ = 0;
        for (size_t i = 0; i < (size_t)n * per; i++) differ += memcmp(&alone[i], &all[i], 4) != 0;
        printf("%s: tokens 0..%d at T=%d vs T=%d (bucket %d): %zu of %zu elements differ\n", L->name, n - 1, n, st->n,
               g4_bucket(n), differ, (size_t)n * per);
        CHECK(g4_bucket(n) == g4_bucket(st->n) && differ == 0,
              "%s: a token's output at T=%d differs from the same token at T=%d", L->name, n, st->n);
    }
    gh_weight_free(p, &kn);
    free(alone), free(all);
    free_inputs(&in);
}

int main(void) {
    gh_pair p;
    const g4_backend_options auto_path = {.attn_path = G4_ATTN_AUTO}, simple_path = {.attn_path = G4_ATTN_SIMPLE};
    int rc = gh_open_with(&p, &auto_path);
    if (rc == CHECK_SKIP_CODE) return check_skip("no CUDA device");
    REQUIRE(rc == 0, "backends");
    g4_error err = {{0}};
    g4_backend *simple = g4_backend_cuda_create(&simple_path, &err);
    REQUIRE(simple, "simple CUDA backend: %s", err.msg);

    gh_attn_case s31 = {"31B sliding d256", 256, 32, 16, 1024, 0, {10000.0, 128}};
    gh_attn_case g31 = {"31B global d512 k_eq_v", 512, 32, 4, 0, 1, {1000000.0, 64}};
    gh_attn_case g26 = {"26B global d512 k_eq_v", 512, 16, 2, 0, 1, {1000000.0, 64}};
    gh_attn_case s26 = {"26B sliding d256", 256, 16, 8, 1024, 0, {10000.0, 128}};
    static const dstep cross = {"window", 5, 1.5f, {1, 17, 1024, 1025, 1500}};
    static const dstep flat = {"window flat", 5, 0.15f, {1, 17, 1024, 1025, 1500}};
    /* many short sequences: one split on both 31B layers (the kernel's direct epilogue) */
    static dstep many = {"many", 20, 0.5f, {0}};
    for (int s = 0; s < many.n; s++) many.ctx[s] = 1 + (s * 37) % 90;

    run_case(&p, simple, &s31, &cross, 61);
    run_case(&p, simple, &g31, &cross, 62);
    run_case(&p, simple, &g26, &cross, 63);
    run_case(&p, simple, &s26, &cross, 64);
    run_case(&p, simple, &s31, &flat, 71);
    run_case(&p, simple, &g31, &flat, 72);
    B = 64;
    run_case(&p, simple, &s31, &flat, 73);
    B = 16;
    run_case(&p, simple, &s31, &many, 65);
    run_case(&p, simple, &g31, &many, 66);
    /* five tokens of the "window" step, then three short sequences (max_pos stays the five's) */
    static const dstep padded = {"bucket", 8, 0.5f, {1, 17, 1024, 1025, 1500, 3, 9, 2}};
    run_rows(&p, &s31, &padded, 5, 81);
    run_rows(&p, &g31, &padded, 5, 82);
    static const dstep gsmall = {"graph", 3, 0.5f, {300, 1025, 40}};
    run_graph(&p, &s31, &gsmall, 67);
    run_graph(&p, &g31, &gsmall, 68);
    g4_backend_destroy(simple);
    gh_close(&p);
    return check_summary();
}
