/* test_gpu_matmul.c — matmul (cuBLASLt, bf16 in, fp32 accumulate) vs the CPU backend at real
 * projection shapes: 31B q_proj (M=7, N=8192, K=5376), a decode row through 31B o_proj
 * (M=1, N=5376, K=8192), 26B dense down_proj at an odd M (33, 2816, 2112), the same shape
 * twice (plan-cache hit) and a tiny-model shape; each counted as one launch. Bound: gpu_harness.h (1 % of max|ref|).
 * Then row identity across a row bucket: the first M rows of a GEMM run at M and at Mb =
 * g4_bucket(M) rows (base/bucket.h; what a padded decode step does) must be equal bit for bit —
 * gemm.cu picks one cuBLASLt algorithm per bucket for that. On a GPU this checks cuBLASLt; on the
 * emulated target, whose heuristic picks split-K per shape (docs/gpu-emulation.md), it checks that
 * gemm.cu pins the bucket's algorithm (asking the heuristic per real M fails here). */
#include "base/bucket.h"
#include "gpu_harness.h"

static void run_shape(gh_pair *p, int M, int N, int K, uint64_t seed) {
    g4_error err = {{0}};
    char what[96];
    float *x = malloc((size_t)M * K * 4), *ref = malloc((size_t)M * N * 4), *got = malloc((size_t)M * N * 4);
    gh_weight W;
    int64_t shw[2] = {N, K};
    if (!x || !ref || !got || gh_weight_make(p, &W, "proj.weight", 2, shw, seed, 0.0f, 0.05f)) {
        CHECK(0, "setup M=%d N=%d K=%d", M, N, K);
        return;
    }
    gh_fill(x, (size_t)M * K, seed + 1, 0.0f, 1.0f);
    g4_backend *be[2] = {p->cpu, p->gpu};
    float *out[2] = {ref, got};
    int ok = 1;
    for (int k = 0; k < 2 && ok; k++) {
        void *dx = gh_act(be[k], (size_t)M * K, x), *dy = gh_act(be[k], (size_t)M * N, NULL);
        uint64_t n0 = k ? be[k]->ops->launch_count(be[k]->ctx) : 0;
        ok = dx && dy && !be[k]->ops->matmul(be[k]->ctx, dy, dx, k ? &W.gpu : &W.cpu, M, &err) &&
             !gh_get_act(be[k], out[k], dy, (size_t)M * N);
        if (ok && k) /* one cuBLASLt call, counted once (backend.h launch_count) */
            CHECK(be[k]->ops->launch_count(be[k]->ctx) - n0 == 1, "matmul counted %llu launches, expected 1",
                  (unsigned long long)(be[k]->ops->launch_count(be[k]->ctx) - n0));
        CHECK(ok, "matmul M=%d N=%d K=%d on %s: %s", M, N, K, be[k]->ops->name, err.msg);
        be[k]->ops->free(be[k]->ctx, dx);
        be[k]->ops->free(be[k]->ctx, dy);
    }
    snprintf(what, sizeof what, "matmul M=%d N=%d K=%d", M, N, K);
    if (ok) CHECK(gh_close_enough(what, got, ref, (size_t)M * N, GH_TOL), "%s", what);
    gh_weight_free(p, &W);
    free(x), free(ref), free(got);
}

/* Rows 0..M−1 of x·Wᵀ on the GPU at M rows and at g4_bucket(M) rows (the extra rows random, as a
 * padded step's are not zero): bitwise equal. */
static void run_rows(gh_pair *p, int M, int N, int K, uint64_t seed) {
    g4_error err = {{0}};
    int Mb = g4_bucket(M);
    g4_backend *be = p->gpu;
    float *x = malloc((size_t)Mb * K * 4), *at_m = malloc((size_t)M * N * 4), *at_b = malloc((size_t)Mb * N * 4);
    gh_weight W;
    int64_t shw[2] = {N, K};
    if (!x || !at_m || !at_b || gh_weight_make(p, &W, "proj.weight", 2, shw, seed, 0.0f, 0.05f)) {
        CHECK(0, "setup rows M=%d N=%d K=%d", M, N, K);
        return;
    }
    gh_fill(x, (size_t)Mb * K, seed + 1, 0.0f, 1.0f);
    void *dx = gh_act(be, (size_t)Mb * K, x), *dy = gh_act(be, (size_t)Mb * N, NULL);
    int ok = dx && dy && !be->ops->matmul(be->ctx, dy, dx, &W.gpu, M, &err) &&
             !gh_get_act(be, at_m, dy, (size_t)M * N) && !be->ops->matmul(be->ctx, dy, dx, &W.gpu, Mb, &err) &&
             !gh_get_act(be, at_b, dy, (size_t)Mb * N);
    CHECK(ok, "matmul rows M=%d / %d N=%d K=%d: %s", M, Mb, N, K, err.msg);
    if (ok) {
        size_t differ = 0;
        for (size_t i = 0; i < (size_t)M * N; i++) differ += memcmp(&at_m[i], &at_b[i], 4) != 0;
        printf("matmul N=%d K=%d: rows 0..%d at M=%d vs M=%d: %zu of %zu elements differ\n", N, K, M - 1, M, Mb, differ,
               (size_t)M * N);
        CHECK(differ == 0, "matmul N=%d K=%d: a row's output at M=%d differs from the same row at M=%d", N, K, M, Mb);
    }
    be->ops->free(be->ctx, dx);
    be->ops->free(be->ctx, dy);
    gh_weight_free(p, &W);
    free(x), free(at_m), free(at_b);
}

int main(void) {
    gh_pair p;
    int rc = gh_open(&p);
    if (rc == CHECK_SKIP_CODE) return check_skip("no CUDA device");
    REQUIRE(rc == 0, "backends");
    run_shape(&p, 7, 8192, 5376, 21);
    run_shape(&p, 1, 5376, 8192, 22);
    run_shape(&p, 33, 2816, 2112, 23);
    run_shape(&p, 33, 2816, 2112, 24);
    run_shape(&p, 5, 96, 64, 25);
    run_rows(&p, 5, 8192, 5376, 26); /* 31B q_proj at a decode batch of 5 (bucket 8) */
    run_rows(&p, 9, 1024, 768, 27);  /* bucket 16 */
    run_rows(&p, 33, 512, 512, 28);  /* bucket 64 */
    run_rows(&p, 100, 256, 512, 29); /* bucket 128: more than one 64-row tile on a GPU */
    gh_close(&p);
    return check_summary();
}
