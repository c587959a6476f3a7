/* test_gpu_attention_image.c — attention over image soft-token runs (the step's key_end: on
 * sliding layers every token of a run also sees the later tokens of its run, spec §2.4.5; global
 * layers stay causal) on every CUDA attention path — simple (the oracle), flash (prefill) and
 * split-KV decode — vs the CPU backend, at real geometry on random inputs, paged through shuffled
 * block tables (B = 16):
 *   31B sliding  d=256, 32 q / 16 kv heads (GQA 2), window 1024
 *   26B sliding  d=256, 16 q / 8 kv heads (GQA 2), window 1024
 *   31B global   d=512, 32 q / 4 kv heads, k_eq_v, proportional RoPE: key_end must change nothing
 *                (the small step; the prefill one too on the emulated target, where it is small)
 * Step (the "prefill" one): seq 0 text 1090..1099, a 280-token image run 1100..1379 (its first
 * tokens see keys 77..1379: more than the window, through the window start), text 1380..1389
 * (causal again); seq 1 a run of 1100 soft tokens 40..1139 (the 1120 budget: keys past the window
 * in both directions) — on the emulated target runs of 24 and 40 tokens with window 16 and contexts
 * of 240 / 100 / 51 instead (CI time); seq 2 one text token at 700. A second, small step (one run of 24 tokens + a text token,
 * T ≤ n_seqs) goes through the decode kernel (path decode) as well.
 * Later cache slots of every sequence hold random keys: text tokens must not see them, image
 * tokens must see those of their run. Bound: the harness's 1 % of max|ref| (identical bf16 q and
 * cache). Sensitivity: the CPU result with the runs differs from the causal one by > 5 % of
 * max|ref| on sliding layers (so a kernel ignoring key_end fails) and not at all on global ones. */
#include "gpu_harness.h"

#define B 16
#define MAXB 160
#define NSEQ 32 /* table rows: ≥ T of the small step, so the decode path takes it */
#define MAXT 1500

typedef struct tstep {
    const char *name;
    int T;
    int32_t pos[MAXT], seq[MAXT], key_end[MAXT];
} tstep;

#ifdef G4_CUDA_EMU /* CI-sized contexts (window 16 below) */
static const int ctx_len[3] = {240, 100, 51};
#define SEQ0 100 /* seq 0's image run starts here */
#define SEQ2 50  /* seq 2's text token */
#define SMALL0 200
#else
static const int ctx_len[3] = {1400, 1160, 701};
#define SEQ0 1100
#define SEQ2 700
#define SMALL0 1200
#endif

static void add(tstep *st, int sq, int from, int to, int image) { /* positions [from, to] */
    for (int p = from; p <= to; p++, st->T++) {
        st->seq[st->T] = sq;
        st->pos[st->T] = p;
        st->key_end[st->T] = image ? to : p;
    }
}

static void make_steps(tstep *pre, tstep *small) {
    memset(pre, 0, sizeof *pre);
    memset(small, 0, sizeof *small);
    pre->name = "prefill";
#ifdef G4_CUDA_EMU
    add(pre, 0, SEQ0 - 10, SEQ0 - 1, 0);
    add(pre, 0, SEQ0, SEQ0 + 23, 1);
    add(pre, 0, SEQ0 + 24, SEQ0 + 27, 0);
    add(pre, 1, 40, 79, 1);
#else
    add(pre, 0, SEQ0 - 10, SEQ0 - 1, 0);
    add(pre, 0, SEQ0, SEQ0 + 279, 1);
    add(pre, 0, SEQ0 + 280, SEQ0 + 289, 0);
    add(pre, 1, 40, 1139, 1);
#endif
    add(pre, 2, SEQ2, SEQ2, 0);
    small->name = "small (decode path)";
    add(small, 0, SMALL0, SMALL0 + 23, 1);
    add(small, 2, SEQ2, SEQ2, 0);
}

/* Block table [NSEQ, MAXB]; sliding layers: −1 below the smallest window start of the step's
 * queries of a sequence. Rows of sequences ≥ 3 are empty. */
static void make_table(int32_t *table, const int *perm, const tstep *st, int window) {
    int base = 0;
    for (int s = 0; s < NSEQ; s++) {
        int nb = s < 3 ? (ctx_len[s] + B - 1) / B : 0, lo = 1 << 30;
        for (int t = 0; t < st->T; t++)
            if (st->seq[t] == s) {
                int l = window > 0 && st->pos[t] - window + 1 > 0 ? st->pos[t] - window + 1 : 0;
                if (l < lo) lo = l;
            }
        for (int b = 0; b < MAXB; b++)
            table[s * MAXB + b] = b < nb && (window == 0 || (b + 1) * B - 1 >= lo) ? perm[base + b] : -1;
        base += nb;
    }
}

/* attention on backend b → out; key_end NULL = causal. 0 ok. */
static int run_attention(g4_backend *b, const g4_weight *kn, const g4_attn_geom *g, const g4_kv_layer *kvl,
                         const tstep *st, const int32_t *key_end, const int32_t *table, const float *cache0,
                         size_t pool, const float *q, size_t nq, float *out) {
    g4_error err = {{0}};
    gh_step s;
    int ok = !gh_step_make(b, &s, st->T, NULL, st->pos, st->seq, NSEQ, MAXB, g->window ? table : NULL,
                           g->window ? NULL : table, 0, NULL);
    void *ke = key_end ? gh_bytes(b, key_end, (size_t)st->T * 4) : NULL;
    s.s.key_end = ke;
    g4_kv_layer kb = *kvl;
    kb.base = gh_alloc_as(b, pool, b->ops->kv_dtype, cache0);
    void *dq = gh_act(b, nq, q), *dout = gh_act(b, nq, NULL);
    ok = ok && (ke || !key_end) && kb.base && dq && dout &&
         !b->ops->attention(b->ctx, dout, dq, kn, g, &kb, &s.s, &err) && !gh_get_act(b, out, dout, nq);
    if (!ok) fprintf(stderr, "attention on %s: %s\n", b->ops->name, err.msg);
    b->ops->free(b->ctx, ke);
    b->ops->free(b->ctx, kb.base);
    b->ops->free(b->ctx, dq);
    b->ops->free(b->ctx, dout);
    gh_step_free(b, &s);
    return ok ? 0 : -1;
}

typedef struct path {
    const char *name;
    g4_backend *be;
} path;

static void run_case(gh_pair *p, path *paths, int n_paths, const gh_attn_case *L, const tstep *st, uint64_t seed) {
    char what[160];
    int n_used = 0;
    for (int s = 0; s < 3; s++) n_used += (ctx_len[s] + B - 1) / B;
    int n_blocks = n_used + 5, perm[512];
    uint64_t rs = seed;
    gh_shuffled_ids(perm, n_blocks, &rs);
    static int32_t table[NSEQ * MAXB];
    make_table(table, perm, st, L->window);
    g4_kv_layer kvl = {NULL, n_blocks, B, L->nkv, L->d, L->k_eq_v};
    size_t pool = (size_t)n_blocks * g4_kv_block_elems(&kvl), nq = (size_t)st->T * L->nq * L->d;
    float *cache0 = malloc(pool * 4), *q = malloc(nq * 4), *ref = malloc(nq * 4), *causal = malloc(nq * 4),
          *got = malloc(nq * 4), *first = malloc(nq * 4);
    gh_weight kn;
    int64_t shd[1] = {L->d};
    if (!cache0 || !q || !ref || !causal || !got || !first ||
        gh_weight_make(p, &kn, "k_norm.weight", 1, shd, seed + 6, 1.0f, 0.4f)) {
        CHECK(0, "out of memory / weights");
        return;
    }
    gh_fill(cache0, pool, seed + 1, 0.0f, 1.0f);
    gh_fill(q, nq, seed + 2, 0.05f, 1.5f);
    g4_attn_geom g = {0, L->nq, L->nkv, L->d, L->window, L->rope, L->k_eq_v, 1e-6f};
    int ok = !run_attention(p->cpu, &kn.cpu, &g, &kvl, st, st->key_end, table, cache0, pool, q, nq, ref) &&
             !run_attention(p->cpu, &kn.cpu, &g, &kvl, st, NULL, table, cache0, pool, q, nq, causal);
    CHECK(ok, "CPU attention %s %s", L->name, st->name);
    double dmax = 0, rmax = 0;
    for (size_t i = 0; ok && i < nq; i++) {
        double e = fabs((double)ref[i] - causal[i]);
        dmax = e > dmax ? e : dmax;
        rmax = fabs(ref[i]) > rmax ? fabs(ref[i]) : rmax;
    }
    printf("%s %s T=%d: image runs move the CPU result by %.3g of max|ref|\n", L->name, st->name, st->T, dmax / rmax);
    if (L->window) CHECK(dmax > 0.05 * rmax, "%s %s: the runs change too little to test", L->name, st->name);
    else CHECK(dmax == 0, "%s %s: a global layer must ignore image runs", L->name, st->name);
    for (int k = 0; ok && k < n_paths; k++) {
        g4_weight knk = kn.gpu;
        knk.data = NULL;
        g4_error err = {{0}};
        if (paths[k].be->ops->load_weight(paths[k].be->ctx, &knk, &err)) {
            CHECK(0, "k_norm on %s: %s", paths[k].name, err.msg);
            continue;
        }
        int r = run_attention(paths[k].be, &knk, &g, &kvl, st, st->key_end, table, cache0, pool, q, nq, got);
        paths[k].be->ops->unload_weight(paths[k].be->ctx, &knk);
        CHECK(r == 0, "%s %s %s ran", paths[k].name, L->name, st->name);
        if (r) continue;
        snprintf(what, sizeof what, "%s vs cpu %s %s T=%d", paths[k].name, L->name, st->name, st->T);
        CHECK(gh_close_enough(what, got, ref, nq, GH_TOL), "%s", what);
        if (k == 0) memcpy(first, got, nq * 4);
        else {
            size_t differ = 0;
            for (size_t i = 0; i < nq; i++) differ += got[i] != first[i];
            printf("  elements where %s != %s: %zu of %zu\n", paths[k].name, paths[0].name, differ, nq);
            CHECK(differ > 0, "%s bit-identical to %s: its kernel did not run", paths[k].name, paths[0].name);
        }
    }
    gh_weight_free(p, &kn);
    free(cache0), free(q), free(ref), free(causal), free(got), free(first);
}

int main(void) {
    gh_pair p;
    const g4_backend_options simple = {.attn_path = G4_ATTN_SIMPLE}, fast = {.attn_path = G4_ATTN_FAST},
                             decode = {.attn_path = G4_ATTN_DECODE};
    int rc = gh_open_with(&p, &simple);
    if (rc == CHECK_SKIP_CODE) return check_skip("no CUDA device");
    REQUIRE(rc == 0, "backends");
    g4_error err = {{0}};
    g4_backend *be_fast = g4_backend_cuda_create(&fast, &err),
               *be_dec = be_fast ? g4_backend_cuda_create(&decode, &err) : NULL;
    REQUIRE(be_fast && be_dec, "CUDA backends: %s", err.msg);
    static tstep pre, small;
    make_steps(&pre, &small);
#ifdef G4_CUDA_EMU
    const int W = 16; /* runs of 24 and 40 tokens reach past it, as 1100 do past 1024 */
#else
    const int W = 1024;
#endif
    gh_attn_case s31 = {"31B sliding d256", 256, 32, 16, W, 0, {10000.0, 128}};
    gh_attn_case s26 = {"26B sliding d256", 256, 16, 8, W, 0, {10000.0, 128}};
    gh_attn_case g31 = {"31B global d512 k_eq_v", 512, 32, 4, 0, 1, {1000000.0, 64}};
    path prefill_paths[2] = {{"simple", p.gpu}, {"flash", be_fast}};
    path small_paths[3] = {{"simple", p.gpu}, {"flash", be_fast}, {"decode", be_dec}};
    run_case(&p, prefill_paths, 2, &s31, &pre, 61);
    run_case(&p, prefill_paths, 2, &s26, &pre, 62);
#ifdef G4_CUDA_EMU
    run_case(&p, prefill_paths, 2, &g31, &pre, 63);
#endif
    run_case(&p, small_paths, 3, &g31, &small, 66);
    run_case(&p, small_paths, 3, &s31, &small, 64);
    run_case(&p, small_paths, 3, &s26, &small, 65);
    g4_backend_destroy(be_dec);
    g4_backend_destroy(be_fast);
    gh_close(&p);
    return check_summary();
}
