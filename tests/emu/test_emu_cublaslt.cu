/* test_emu_cublaslt.cu — the emulated cuBLASLt chooses algorithms as the real library may, so a
 * program that relies on two shapes sharing one is caught. On y = x·Wᵀ (bf16 in, f32 out, the
 * call gemm.cu makes: D = op(W)ᵀ·x column-major) it checks:
 *   1. the heuristic offers split-K 1, 2 and 4; each is within fp32-accumulation tolerance of a
 *      double reference, and they do not all give the same bits (their K orders differ);
 *   2. control: one algorithm (the heuristic's for the bucket g4_bucket(M)) run at M and at the
 *      bucket gives rows 0..M−1 bit for bit the same, for every M in 1..40;
 *   3. planted defect: letting the heuristic choose for each real M and expecting the same
 *      bits as at the bucket fails for some M in 1..40 (the emulator catches it);
 *   4. an algorithm used outside what the heuristic made it for is refused as cublasLtMatmul
 *      documents: not from the heuristic or for other types → INVALID_VALUE, a split K cannot
 *      hold → NOT_SUPPORTED, too little workspace → INVALID_VALUE; a NULL algorithm runs the
 *      heuristic's choice for the call's shape.
 * Emulator only: on a GPU, 1 and 3 depend on the library version and the device. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <cublasLt.h>

#include "base/bucket.h"
#include "check.h"
#include "common.cuh"

enum { N = 64, K = 1024, MMAX = 64 };
static const size_t WS_BYTES = (size_t)1 << 20;

struct gemm_env {
    cublasLtHandle_t lt;
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t la;
    __nv_bfloat16 *W, *x; /* device: W [N,K], x [MMAX,K] */
    float *y;             /* device: y [MMAX,N] */
    void *ws;
    float hW[N * K], hx[MMAX * K]; /* the bf16 values as floats */
};

static cublasStatus_t layouts(int M, cudaDataType_t yt, cublasLtMatrixLayout_t *lb, cublasLtMatrixLayout_t *lc) {
    cublasStatus_t s = cublasLtMatrixLayoutCreate(lb, CUDA_R_16BF, K, (uint64_t)M, K);
    if (s == CUBLAS_STATUS_SUCCESS) s = cublasLtMatrixLayoutCreate(lc, yt, N, (uint64_t)M, N);
    return s;
}

/* Up to 4 algorithms the heuristic offers for M rows; the count, or −1. */
static int heuristic(gemm_env *g, int M, size_t ws, cublasLtMatmulHeuristicResult_t res[4]) {
    cublasLtMatrixLayout_t lb = NULL, lc = NULL;
    cublasLtMatmulPreference_t pref = NULL;
    int n = -1;
    if (layouts(M, CUDA_R_32F, &lb, &lc) == CUBLAS_STATUS_SUCCESS &&
        cublasLtMatmulPreferenceCreate(&pref) == CUBLAS_STATUS_SUCCESS &&
        cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws) ==
            CUBLAS_STATUS_SUCCESS &&
        cublasLtMatmulAlgoGetHeuristic(g->lt, g->op, g->la, lb, lc, lc, pref, 4, res, &n) != CUBLAS_STATUS_SUCCESS)
        n = -1;
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    if (lb) cublasLtMatrixLayoutDestroy(lb);
    if (lc) cublasLtMatrixLayoutDestroy(lc);
    return n;
}

/* y[0..M) = x[0..M)·Wᵀ with algo (NULL: the library's choice), into out (host, M×N); the status. */
static cublasStatus_t run(gemm_env *g, int M, const cublasLtMatmulAlgo_t *algo, size_t ws, float *out) {
    cublasLtMatrixLayout_t lb = NULL, lc = NULL;
    float alpha = 1.0f, beta = 0.0f;
    cublasStatus_t s = layouts(M, CUDA_R_32F, &lb, &lc);
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmul(g->lt, g->op, &alpha, g->W, g->la, g->x, lb, &beta, g->y, lc, g->y, lc, algo,
                           ws ? g->ws : NULL, ws, (cudaStream_t)0);
    if (s == CUBLAS_STATUS_SUCCESS && cudaMemcpy(out, g->y, (size_t)M * N * 4, cudaMemcpyDeviceToHost) != cudaSuccess)
        s = CUBLAS_STATUS_EXECUTION_FAILED;
    if (lb) cublasLtMatrixLayoutDestroy(lb);
    if (lc) cublasLtMatrixLayoutDestroy(lc);
    return s;
}

static int setup(gemm_env *g) {
    static __nv_bfloat16 bw[N * K], bx[MMAX * K];
    uint32_t r = 12345;
    for (int i = 0; i < N * K + MMAX * K; i++) {
        r = r * 1664525u + 1013904223u;
        float v = ((float)(r >> 8) / (float)(1u << 24)) * 2.0f - 1.0f;
        __nv_bfloat16 b = __float2bfloat16_rn(v);
        if (i < N * K) {
            bw[i] = b;
            g->hW[i] = __bfloat162float(b);
        } else {
            bx[i - N * K] = b;
            g->hx[i - N * K] = __bfloat162float(b);
        }
    }
    cublasOperation_t opT = CUBLAS_OP_T, opN = CUBLAS_OP_N;
    return cublasLtCreate(&g->lt) == CUBLAS_STATUS_SUCCESS &&
           cublasLtMatmulDescCreate(&g->op, CUBLAS_COMPUTE_32F, CUDA_R_32F) == CUBLAS_STATUS_SUCCESS &&
           cublasLtMatmulDescSetAttribute(g->op, CUBLASLT_MATMUL_DESC_TRANSA, &opT, sizeof opT) ==
               CUBLAS_STATUS_SUCCESS &&
           cublasLtMatmulDescSetAttribute(g->op, CUBLASLT_MATMUL_DESC_TRANSB, &opN, sizeof opN) ==
               CUBLAS_STATUS_SUCCESS &&
           cublasLtMatrixLayoutCreate(&g->la, CUDA_R_16BF, K, N, K) == CUBLAS_STATUS_SUCCESS &&
           cudaMalloc((void **)&g->W, sizeof bw) == cudaSuccess &&
           cudaMalloc((void **)&g->x, sizeof bx) == cudaSuccess &&
           cudaMalloc((void **)&g->y, (size_t)MMAX * N * 4) == cudaSuccess &&
           cudaMalloc(&g->ws, WS_BYTES) == cudaSuccess &&
           cudaMemcpy(g->W, bw, sizeof bw, cudaMemcpyHostToDevice) == cudaSuccess &&
           cudaMemcpy(g->x, bx, sizeof bx, cudaMemcpyHostToDevice) == cudaSuccess;
}

/* How many of rows 0..M−1 of a (M rows) and b differ in any bit. */
static int rows_differ(const float *a, const float *b, int M) {
    int d = 0;
    for (int i = 0; i < M; i++) d += memcmp(a + (size_t)i * N, b + (size_t)i * N, N * 4) != 0;
    return d;
}

int main(void) {
    static gemm_env g;
    REQUIRE(setup(&g), "setup");
    static float a[MMAX * N], b[MMAX * N];

    /* 1 */
    cublasLtMatmulHeuristicResult_t res[4];
    int M = 24, n = heuristic(&g, M, WS_BYTES, res), seen[5] = {0};
    REQUIRE(n == 3, "the heuristic offers %d algorithms for M=%d N=%d K=%d, want 3 (split-K 1, 2, 4)", n, M, N, K);
    static float outs[3][MMAX * N];
    for (int t = 0; t < n; t++) {
        CHECK(run(&g, M, &res[t].algo, WS_BYTES, outs[t]) == CUBLAS_STATUS_SUCCESS, "algorithm %d at M=%d", t, M);
        if (res[t].algo.data[5] <= 4) seen[res[t].algo.data[5]]++;
        double worst = 0;
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) {
                double ref = 0, mag = 0;
                for (int p = 0; p < K; p++) {
                    ref += (double)g.hx[i * K + p] * g.hW[j * K + p];
                    mag += fabs((double)g.hx[i * K + p] * g.hW[j * K + p]);
                }
                double err = fabs(outs[t][i * N + j] - ref) / (mag + 1e-30);
                if (err > worst) worst = err;
            }
        CHECK(worst < 1e-5, "algorithm %d: relative error %.3g against the double reference", t, worst);
    }
    CHECK(seen[1] == 1 && seen[2] == 1 && seen[4] == 1, "split-K counts offered: 1×%d 2×%d 4×%d", seen[1], seen[2],
          seen[4]);
    int pairs_differ = rows_differ(outs[0], outs[1], M) > 0 && rows_differ(outs[0], outs[2], M) > 0 &&
                       rows_differ(outs[1], outs[2], M) > 0;
    CHECK(pairs_differ, "the three algorithms do not each sum K in their own order");
    printf("1. heuristic at M=%d: 3 algorithms, within 1e-5 of the reference, bits %s\n", M,
           pairs_differ ? "differ pairwise" : "SAME");

    /* 2 and 3 */
    int control_bad = 0, caught = 0;
    for (M = 1; M <= 40; M++) {
        int Mb = g4_bucket(M);
        cublasLtMatmulHeuristicResult_t rb[4], rm[4];
        if (heuristic(&g, Mb, WS_BYTES, rb) < 1 || heuristic(&g, M, WS_BYTES, rm) < 1 ||
            run(&g, Mb, &rb[0].algo, WS_BYTES, b) != CUBLAS_STATUS_SUCCESS ||
            run(&g, M, &rb[0].algo, WS_BYTES, a) != CUBLAS_STATUS_SUCCESS) {
            CHECK(0, "M=%d: heuristic or run failed", M);
            continue;
        }
        control_bad += rows_differ(a, b, M) > 0; /* the bucket's algorithm pinned: must match */
        if (run(&g, M, &rm[0].algo, WS_BYTES, a) != CUBLAS_STATUS_SUCCESS) {
            CHECK(0, "M=%d: run with its own algorithm failed", M);
            continue;
        }
        caught += rows_differ(a, b, M) > 0; /* the planted defect: the heuristic's choice at M */
    }
    CHECK(control_bad == 0, "control: the bucket's algorithm gave other bits at M for %d of 40 M", control_bad);
    CHECK(caught > 0, "planted defect (heuristic per real M, bits expected equal to the bucket's) not caught");
    printf("2. one algorithm per bucket: rows equal at M and bucket for %d of 40 M\n", 40 - control_bad);
    printf("3. heuristic per real M: rows differ from the bucket's for %d of 40 M (defect %s)\n", caught,
           caught ? "caught" : "MISSED");

    /* 4 */
    M = 8;
    n = heuristic(&g, M, WS_BYTES, res);
    REQUIRE(n == 3, "heuristic at M=%d", M);
    const cublasLtMatmulAlgo_t *split4 = NULL;
    for (int t = 0; t < n; t++)
        if (res[t].algo.data[5] == 4) split4 = &res[t].algo;
    REQUIRE(split4 != NULL, "no split-K 4 at M=%d", M);
    cublasLtMatmulAlgo_t zero;
    memset(&zero, 0, sizeof zero);
    CHECK(run(&g, M, &zero, WS_BYTES, a) == CUBLAS_STATUS_INVALID_VALUE, "an algorithm not from the heuristic");
    CHECK(run(&g, M, split4, 0, a) == CUBLAS_STATUS_INVALID_VALUE, "split-K 4 without a workspace");
    CHECK(run(&g, 64, split4, (size_t)N * 64 * 4 * 4 - 4, a) == CUBLAS_STATUS_INVALID_VALUE,
          "split-K 4 at M=64 with a workspace one float short");
    CHECK(run(&g, 64, split4, (size_t)N * 64 * 4 * 4, a) == CUBLAS_STATUS_SUCCESS,
          "split-K 4 chosen at M=8 runs at M=64 given the workspace");
    {
        cublasLtMatrixLayout_t lb, lc, la16;
        float alpha = 1, beta = 0;
        /* other types: the same algorithm with a bf16 D */
        REQUIRE(layouts(M, CUDA_R_16BF, &lb, &lc) == CUBLAS_STATUS_SUCCESS, "layouts");
        CHECK(cublasLtMatmul(g.lt, g.op, &alpha, g.W, g.la, g.x, lb, &beta, g.y, lc, g.y, lc, split4, g.ws, WS_BYTES,
                             (cudaStream_t)0) == CUBLAS_STATUS_INVALID_VALUE,
              "an algorithm chosen for f32 D run with a bf16 D");
        cublasLtMatrixLayoutDestroy(lb);
        cublasLtMatrixLayoutDestroy(lc);
        /* a K its split cannot hold: 128 = 4 slices of 32 */
        REQUIRE(cublasLtMatrixLayoutCreate(&la16, CUDA_R_16BF, 128, N, 128) == CUBLAS_STATUS_SUCCESS &&
                    cublasLtMatrixLayoutCreate(&lb, CUDA_R_16BF, 128, M, 128) == CUBLAS_STATUS_SUCCESS &&
                    cublasLtMatrixLayoutCreate(&lc, CUDA_R_32F, N, M, N) == CUBLAS_STATUS_SUCCESS,
                "layouts K=128");
        CHECK(cublasLtMatmul(g.lt, g.op, &alpha, g.W, la16, g.x, lb, &beta, g.y, lc, g.y, lc, split4, g.ws, WS_BYTES,
                             (cudaStream_t)0) == CUBLAS_STATUS_NOT_SUPPORTED,
              "split-K 4 at K=128");
        cublasLtMatrixLayoutDestroy(la16);
        cublasLtMatrixLayoutDestroy(lb);
        cublasLtMatrixLayoutDestroy(lc);
    }
    CHECK(run(&g, M, NULL, WS_BYTES, a) == CUBLAS_STATUS_SUCCESS && run(&g, M, &res[0].algo, WS_BYTES, b) == 0 &&
              rows_differ(a, b, M) == 0,
          "a NULL algorithm runs the heuristic's first choice for the shape");
    printf("4. misuse refused: foreign algorithm, missing or short workspace, other types, K too short\n");

    cudaFree(g.W);
    cudaFree(g.x);
    cudaFree(g.y);
    cudaFree(g.ws);
    cublasLtMatrixLayoutDestroy(g.la);
    cublasLtMatmulDescDestroy(g.op);
    cublasLtDestroy(g.lt);
    return check_summary();
}
