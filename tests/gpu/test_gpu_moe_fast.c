/* test_gpu_moe_fast.c — the CUDA backend's decode MoE path (cuda/moe_decode.cu, taken for
 * 1 ≤ T ≤ 64 when MoE path fast) vs the simple grouped CUDA path (MoE path simple, a
 * second backend) and vs the CPU backend, at the 26B-A4B shapes (E=128, k=8, I=704, H=2816)
 * for T = 1, 3, 8, 64.
 *
 * Routings: random distinct experts per token; every token on the same 8 experts (first and
 * last id among them, 120 experts with no token); every slot of every token on one expert
 * (the same expert repeated inside a token: 8·T pairs on one expert, many shared-memory
 * chunks); tokens drawn from a pool of 10 experts (experts repeated across tokens); some
 * slots −1 (dropped, as the simple path drops them: fast vs simple only, the CPU rejects
 * them). Bound: gpu_harness.h (1 % of max|ref|). Also: the fast path is bitwise
 * deterministic (two runs equal) and capturable in a CUDA graph (global capture mode fails
 * on any host synchronisation), its replay equal to the eager run bit for bit. */
#include <cuda_runtime.h>

#include "gpu_harness.h"

#define E 128
#define K 8
#define I 704
#define H 2816
#define MAXT 64

enum { R_RANDOM, R_SAME8, R_ONE, R_POOL, R_DROPPED, R_COUNT };
static const char *rname[R_COUNT] = {"random", "same 8 experts", "one expert x8", "pool of 10", "dropped slots"};

static gh_weight gate_up, down;
static g4_weight gu_simple, dn_simple; /* the same host bytes loaded on the simple backend */

static void make_routing(int mode, int T, uint64_t seed, int32_t *ids, float *wts) {
    uint64_t rs = seed * 7919 + 13;
    static const int fixed[K] = {0, 127, 5, 64, 6, 100, 7, 31};
    for (int t = 0; t < T; t++)
        for (int j = 0; j < K; j++) {
            int e = 0;
            if (mode == R_SAME8) e = fixed[j];
            else if (mode == R_ONE) e = 42;
            else {
                int pool = mode == R_POOL ? 10 : E, dup;
                do { /* distinct within a token */
                    e = (int)((gh_rand(&rs) * 0.5f + 0.5f) * pool) % pool;
                    if (mode == R_POOL) e = e * 13 % E;
                    dup = 0;
                    for (int i = 0; i < j; i++) dup |= ids[t * K + i] == e;
                } while (dup);
                if (mode == R_DROPPED && (t + j) % 3 == 0) e = -1;
            }
            ids[t * K + j] = e;
            wts[t * K + j] = 0.05f + 0.25f * (gh_rand(&rs) * 0.5f + 0.5f);
        }
}

/* out[T,H] = moe_experts on backend be. 0 ok. */
static int run(g4_backend *be, const g4_weight *gu, const g4_weight *dn, float *out, const float *x, const int32_t *ids,
               const float *wts, int T) {
    g4_error err = {{0}};
    void *dx = gh_act(be, (size_t)T * H, x), *dy = gh_act(be, (size_t)T * H, NULL);
    void *di = gh_bytes(be, ids, (size_t)T * K * 4), *dw = gh_bytes(be, wts, (size_t)T * K * 4);
    int ok = dx && dy && di && dw && !be->ops->moe_experts(be->ctx, dy, dx, di, dw, gu, dn, T, K, &err) &&
             !gh_get_act(be, out, dy, (size_t)T * H);
    if (!ok) fprintf(stderr, "moe_experts T=%d on %s: %s\n", T, be->ops->name, err.msg);
    be->ops->free(be->ctx, dx);
    be->ops->free(be->ctx, dy);
    be->ops->free(be->ctx, di);
    be->ops->free(be->ctx, dw);
    return ok ? 0 : -1;
}

static void run_case(gh_pair *p, g4_backend *simple, int T, int mode, int with_cpu, uint64_t seed) {
    char what[96];
    size_t n = (size_t)T * H;
    float *x = malloc(n * 4), *fast = malloc(n * 4), *fast2 = malloc(n * 4), *ref = malloc(n * 4);
    float wts[MAXT * K];
    int32_t ids[MAXT * K];
    gh_fill(x, n, seed, 0.0f, 2.0f);
    make_routing(mode, T, seed, ids, wts);
    int ok = !run(p->gpu, &gate_up.gpu, &down.gpu, fast, x, ids, wts, T);
    CHECK(ok, "fast path T=%d %s ran", T, rname[mode]);
    if (ok) {
        ok = !run(p->gpu, &gate_up.gpu, &down.gpu, fast2, x, ids, wts, T);
        CHECK(ok && !memcmp(fast, fast2, n * 4), "fast path T=%d %s: two runs differ (not deterministic)", T,
              rname[mode]);
    }
    if (ok && !run(simple, &gu_simple, &dn_simple, ref, x, ids, wts, T)) {
        snprintf(what, sizeof what, "fast vs simple T=%d %s", T, rname[mode]);
        CHECK(gh_close_enough(what, fast, ref, n, GH_TOL), "%s", what);
    } else {
        CHECK(0, "simple path T=%d %s ran", T, rname[mode]);
    }
    if (ok && with_cpu) {
        ok = !run(p->cpu, &gate_up.cpu, &down.cpu, ref, x, ids, wts, T);
        CHECK(ok, "cpu T=%d %s ran", T, rname[mode]);
        snprintf(what, sizeof what, "fast vs cpu T=%d %s", T, rname[mode]);
        if (ok) CHECK(gh_close_enough(what, fast, ref, n, GH_TOL), "%s", what);
    }
    free(x), free(fast), free(fast2), free(ref);
}

/* Captures the fast path at T tokens into a CUDA graph and replays it; the result must equal
 * the eager run bit for bit. A host sync inside the op ends the capture with an error. */
static void run_graph(gh_pair *p, int T, uint64_t seed) {
    g4_error err = {{0}};
    g4_backend *be = p->gpu;
    size_t n = (size_t)T * H;
    float *x = malloc(n * 4), *eager = malloc(n * 4), *replay = malloc(n * 4);
    float wts[MAXT * K];
    int32_t ids[MAXT * K];
    gh_fill(x, n, seed, 0.0f, 2.0f);
    make_routing(R_RANDOM, T, seed, ids, wts);
    void *dx = gh_act(be, n, x), *dy = gh_act(be, n, NULL);
    void *di = gh_bytes(be, ids, (size_t)T * K * 4), *dw = gh_bytes(be, wts, (size_t)T * K * 4);
    cudaStream_t st = (cudaStream_t)g4_cuda_backend_stream(be);
    cudaGraph_t graph = NULL;
    cudaGraphExec_t exec = NULL;
    int ok = dx && dy && di && dw &&
             !be->ops->moe_experts(be->ctx, dy, dx, di, dw, &gate_up.gpu, &down.gpu, T, K, &err) && /* grows scratch */
             !gh_get_act(be, eager, dy, n);
    CHECK(ok, "graph T=%d: eager run: %s", T, err.msg);
    if (ok) {
        ok = cudaMemsetAsync(dy, 0, n * 2, st) == cudaSuccess &&
             cudaStreamBeginCapture(st, cudaStreamCaptureModeGlobal) == cudaSuccess;
        int rc = ok ? be->ops->moe_experts(be->ctx, dy, dx, di, dw, &gate_up.gpu, &down.gpu, T, K, &err) : -1;
        cudaError_t ce = ok ? cudaStreamEndCapture(st, &graph) : cudaErrorUnknown;
        CHECK(ok && rc == 0 && ce == cudaSuccess, "graph T=%d: capture (op rc %d: %s; end: %s)", T, rc, err.msg,
              cudaGetErrorString(ce));
        ok = ok && rc == 0 && ce == cudaSuccess && cudaGraphInstantiate(&exec, graph, 0) == cudaSuccess &&
             cudaGraphLaunch(exec, st) == cudaSuccess && cudaStreamSynchronize(st) == cudaSuccess &&
             !gh_get_act(be, replay, dy, n);
        CHECK(ok, "graph T=%d: instantiate / replay: %s", T, cudaGetErrorString(cudaGetLastError()));
        CHECK(ok && !memcmp(eager, replay, n * 4), "graph T=%d: replay differs from the eager run", T);
        if (ok) printf("graph T=%-2d captured and replayed: equal to the eager run\n", T);
    }
    if (exec) cudaGraphExecDestroy(exec);
    if (graph) cudaGraphDestroy(graph);
    be->ops->free(be->ctx, dx);
    be->ops->free(be->ctx, dy);
    be->ops->free(be->ctx, di);
    be->ops->free(be->ctx, dw);
    free(x), free(eager), free(replay);
}

int main(void) {
    gh_pair p;
    g4_error err = {{0}};
    const g4_backend_options fast = {.moe_path = G4_MOE_PATH_FAST}, simple_path = {.moe_path = G4_MOE_PATH_SIMPLE};
    int rc = gh_open_with(&p, &fast);
    if (rc == CHECK_SKIP_CODE) return check_skip("no CUDA device");
    REQUIRE(rc == 0, "backends");
    g4_backend *simple = g4_backend_cuda_create(&simple_path, &err);
    REQUIRE(simple, "simple-path backend: %s", err.msg);
    int64_t s_gu[3] = {E, 2 * I, H}, s_d[3] = {E, H, I};
    REQUIRE(!gh_weight_make(&p, &gate_up, "experts.gate_up_proj", 3, s_gu, 54, 0.0f, 0.04f), "weight");
    REQUIRE(!gh_weight_make(&p, &down, "experts.down_proj", 3, s_d, 55, 0.0f, 0.06f), "weight");
    REQUIRE(!gh_weight_load_on(simple, &gu_simple, &gate_up.gpu) && !gh_weight_load_on(simple, &dn_simple, &down.gpu),
            "weights");

    static const int Ts[4] = {1, 3, 8, 64};
    for (int i = 0; i < 4; i++)
        for (int m = 0; m < R_COUNT; m++) {
#ifdef G4_CUDA_EMU /* CI time: at T=64 two routings; the edge cases run at T ≤ 8 */
            if (Ts[i] == 64 && m > R_SAME8) continue;
#endif
            /* the CPU rejects dropped ids; at T=64 it checks two routings (seconds each) */
            int with_cpu = m != R_DROPPED && (Ts[i] < 64 || m <= R_SAME8);
            run_case(&p, simple, Ts[i], m, with_cpu, 100 + 10 * i + m);
        }
    run_graph(&p, 1, 300);
    run_graph(&p, 8, 301);

    simple->ops->unload_weight(simple->ctx, &gu_simple);
    simple->ops->unload_weight(simple->ctx, &dn_simple);
    g4_backend_destroy(simple);
    gh_weight_free(&p, &gate_up);
    gh_weight_free(&p, &down);
    gh_close(&p);
    return check_summary();
}
