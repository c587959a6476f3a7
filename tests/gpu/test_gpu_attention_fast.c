/* test_gpu_attention_fast.c — the tiled flash-attention kernel (cuda/attention_flash.cu) vs the
 * simple CUDA kernel and vs the CPU backend, at 31B geometry, paged through shuffled block
 * tables (B = 16):
 *   sliding  d=256, 32 q / 16 kv heads, window 1024
 *   global   d=512, 32 q / 4 kv heads, k_eq_v (K = RoPE(U ⊙ k_norm), V = U), θ=1e6 on 64 of 256 pairs
 * Three backends: CPU (oracle), CUDA with attention path fast (flash on every step) and CUDA with
 * attention path simple. Five sequences (cached contexts 1500, 201, 764, 1301, 1) mixed in one
 * packed step, so row tiles straddle sequence boundaries:
 *   mixed  seq0 prefill chunk 1100..1499 (crosses the window), seq1 chunk 0..200 (from the
 *          start), one decode token of seq3 at 1300 between them, seq2 chunk 700..763, seq4 pos 0
 *   small  seq0 1452..1499, seq1 0..40, seq3 1300, seq2 760..763, seq4 0
 * Later cache slots of a sequence hold random keys that the causal mask must hide; sliding
 * tables hold −1 for blocks wholly outside every query's window, so a read outside the window
 * fails the oracle. Bound: the harness's 1 % of max|ref| (identical bf16 q and cache on all
 * sides; the flash kernel adds fp16 roundings of K (k_eq_v only) and of P, see its header).
 * The fast output must also differ from the simple one somewhere, else the flash kernel did
 * not run (a silent fallback would make this test compare the simple kernel with itself). */
#include "gpu_harness.h"

#define B 16
#define MAXB 96
#define NSEQ 5
#define SPARE 7
#define MAXT 700

static const int ctx_len[NSEQ] = {1500, 201, 764, 1301, 1};

typedef struct tstep {
    const char *name;
    int T;
    int32_t pos[MAXT], seq[MAXT];
} tstep;

static void add_run(tstep *st, int sq, int from, int to) { /* positions [from, to] */
    for (int p = from; p <= to; p++) {
        st->seq[st->T] = sq;
        st->pos[st->T] = p;
        st->T++;
    }
}

static void make_steps(tstep *mixed, tstep *small) {
    memset(mixed, 0, sizeof *mixed);
    memset(small, 0, sizeof *small);
#ifdef G4_CUDA_EMU /* fewer tokens per chunk for CI time; the same sequences, window crossing and straddling */
    mixed->name = "mixed";
    add_run(mixed, 0, 1480, 1499);
    add_run(mixed, 1, 0, 24);
    add_run(mixed, 3, 1300, 1300);
    add_run(mixed, 2, 748, 763);
    add_run(mixed, 4, 0, 0);
    small->name = "small";
    add_run(small, 0, 1496, 1499);
    add_run(small, 1, 0, 7);
    add_run(small, 3, 1300, 1300);
    add_run(small, 2, 760, 763);
    add_run(small, 4, 0, 0);
#else
    mixed->name = "mixed";
    add_run(mixed, 0, 1100, 1499);
    add_run(mixed, 1, 0, 200);
    add_run(mixed, 3, 1300, 1300);
    add_run(mixed, 2, 700, 763);
    add_run(mixed, 4, 0, 0);
    small->name = "small";
    add_run(small, 0, 1452, 1499);
    add_run(small, 1, 0, 40);
    add_run(small, 3, 1300, 1300);
    add_run(small, 2, 760, 763);
    add_run(small, 4, 0, 0);
#endif
}

/* Block table [NSEQ, MAXB] from the physical permutation; on sliding layers blocks whose last
 * position is below the smallest window start of the step's queries of that sequence are −1. */
static void make_table(int32_t *table, const int *perm, const tstep *st, int window) {
    int base = 0;
    for (int s = 0; s < NSEQ; s++) {
        int nb = (ctx_len[s] + B - 1) / B, lo = 1 << 30;
        for (int t = 0; t < st->T; t++)
            if (st->seq[t] == s) {
                int l = window > 0 && st->pos[t] - window + 1 > 0 ? st->pos[t] - window + 1 : 0;
                if (l < lo) lo = l;
            }
        for (int b = 0; b < MAXB; b++) {
            int32_t v = -1;
            if (b < nb && (window == 0 || (b + 1) * B - 1 >= lo)) v = perm[base + b];
            table[s * MAXB + b] = v;
        }
        base += nb;
    }
}

/* attention on backend b (k_norm kn already loaded there) → out (floats). 0 ok. */
static int run_attention(g4_backend *b, const g4_weight *kn, const g4_attn_geom *g, const g4_kv_layer *kvl,
                         const tstep *st, const int32_t *table, const float *cache0, size_t pool, const float *q,
                         size_t nq, float *out) {
    g4_error err = {{0}};
    gh_step s;
    int ok = !gh_step_make(b, &s, st->T, NULL, st->pos, st->seq, NSEQ, MAXB, g->window ? table : NULL,
                           g->window ? NULL : table, 0, NULL);
    g4_kv_layer kb = *kvl;
    kb.base = gh_alloc_as(b, pool, b->ops->kv_dtype, cache0);
    void *dq = gh_act(b, nq, q), *dout = gh_act(b, nq, NULL);
    ok = ok && kb.base && dq && dout && !b->ops->attention(b->ctx, dout, dq, kn, g, &kb, &s.s, &err) &&
         !gh_get_act(b, out, dout, nq);
    if (!ok) fprintf(stderr, "attention on %s: %s\n", b->ops->name, err.msg);
    b->ops->free(b->ctx, kb.base);
    b->ops->free(b->ctx, dq);
    b->ops->free(b->ctx, dout);
    gh_step_free(b, &s);
    return ok ? 0 : -1;
}

static void run_case(gh_pair *p, g4_backend *simple, const gh_attn_case *L, const tstep *st, uint64_t seed) {
    g4_error err = {{0}};
    char what[128];
    int n_used = 0;
    for (int s = 0; s < NSEQ; s++) n_used += (ctx_len[s] + B - 1) / B;
    int n_blocks = n_used + SPARE, perm[512];
    uint64_t rs = seed;
    gh_shuffled_ids(perm, n_blocks, &rs);
    int32_t table[NSEQ * MAXB];
    make_table(table, perm, st, L->window);

    g4_kv_layer kvl = {NULL, n_blocks, B, L->nkv, L->d, L->k_eq_v};
    size_t pool = (size_t)n_blocks * g4_kv_block_elems(&kvl), nq = (size_t)st->T * L->nq * L->d;
    float *cache0 = malloc(pool * 4), *q = malloc(nq * 4), *ref = malloc(nq * 4), *fast = malloc(nq * 4),
          *slow = malloc(nq * 4);
    if (!cache0 || !q || !ref || !fast || !slow) {
        CHECK(0, "out of memory");
        return;
    }
    gh_fill(cache0, pool, seed + 1, 0.0f, 1.0f);
    gh_fill(q, nq, seed + 2, 0.05f, 1.5f);
    gh_weight kn;
    int64_t shd[1] = {L->d};
    if (gh_weight_make(p, &kn, "k_norm.weight", 1, shd, seed + 6, 1.0f, 0.4f)) {
        CHECK(0, "weights");
        return;
    }
    g4_weight kn_simple = kn.gpu; /* same host bytes, loaded on the third backend */
    kn_simple.data = NULL;
    if (simple->ops->load_weight(simple->ctx, &kn_simple, &err)) {
        CHECK(0, "load k_norm on the simple backend: %s", err.msg);
        return;
    }
    g4_attn_geom g = {0, L->nq, L->nkv, L->d, L->window, L->rope, L->k_eq_v, 1e-6f};

    int ok = !run_attention(p->cpu, &kn.cpu, &g, &kvl, st, table, cache0, pool, q, nq, ref) &&
             !run_attention(p->gpu, &kn.gpu, &g, &kvl, st, table, cache0, pool, q, nq, fast) &&
             !run_attention(simple, &kn_simple, &g, &kvl, st, table, cache0, pool, q, nq, slow);
    CHECK(ok, "attention %s %s ran on all three backends", L->name, st->name);
    if (ok) {
        snprintf(what, sizeof what, "fast vs cpu %s %s T=%d", L->name, st->name, st->T);
        CHECK(gh_close_enough(what, fast, ref, nq, GH_TOL), "%s", what);
        snprintf(what, sizeof what, "fast vs simple %s %s T=%d", L->name, st->name, st->T);
        CHECK(gh_close_enough(what, fast, slow, nq, GH_TOL), "%s", what);
        snprintf(what, sizeof what, "simple vs cpu %s %s T=%d", L->name, st->name, st->T);
        CHECK(gh_close_enough(what, slow, ref, nq, GH_TOL), "%s", what);
        size_t differ = 0;
        for (size_t i = 0; i < nq; i++) differ += fast[i] != slow[i];
        printf("  elements where fast != simple: %zu of %zu\n", differ, nq);
        CHECK(differ > 0, "%s %s: fast output bit-identical to simple: the flash kernel did not run", L->name,
              st->name);
    }
    simple->ops->unload_weight(simple->ctx, &kn_simple);
    gh_weight_free(p, &kn);
    free(cache0), free(q), free(ref), free(fast), free(slow);
}

int main(void) {
    gh_pair p;
    const g4_backend_options fast = {.attn_path = G4_ATTN_FAST}, simple_path = {.attn_path = G4_ATTN_SIMPLE};
    int rc = gh_open_with(&p, &fast);
    if (rc == CHECK_SKIP_CODE) return check_skip("no CUDA device");
    REQUIRE(rc == 0, "backends");
    g4_error err = {{0}};
    g4_backend *simple = g4_backend_cuda_create(&simple_path, &err);
    REQUIRE(simple, "simple CUDA backend: %s", err.msg);

    static tstep mixed, small;
    make_steps(&mixed, &small);
    gh_attn_case sliding = {"sliding d256", 256, 32, 16, 1024, 0, {10000.0, 128}};
    gh_attn_case global = {"global d512 k_eq_v", 512, 32, 4, 0, 1, {1000000.0, 64}};
    run_case(&p, simple, &sliding, &small, 51);
    run_case(&p, simple, &sliding, &mixed, 52);
    run_case(&p, simple, &global, &small, 53);
    run_case(&p, simple, &global, &mixed, 54);
    g4_backend_destroy(simple);
    gh_close(&p);
    return check_summary();
}
