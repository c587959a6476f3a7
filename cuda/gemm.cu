/* gemm.cu — dense GEMMs through cuBLASLt: y = x · Wᵀ, BF16 in, FP32 accumulate, BF16 or F32 out,
 * the algorithm chosen by cuBLASLt's heuristic for the shape's row bucket (below) and cached per
 * shape in the context.
 * Not here: grouped expert GEMMs (moe_experts.cu drives this per expert), the LM head's
 * softcap (lm_head.cu).
 * Twin: cpu_matmul (csrc/backend/cpu/cpu_ops.c). Test: tests/gpu/test_gpu_matmul.c.
 * Bench: bench/kernels/bench_kernels.c "cublas_bf16_tflops".
 *
 * --- One algorithm per row bucket (why a padded decode step's real rows equal the unpadded ones)
 * The model pads a decode step of M rows to min(g4_bucket(M), cap) (base/bucket.h) and replays
 * it from a graph; its real rows must equal the same step run unpadded. cuBLASLt's heuristic
 * picks per shape, so asked for M and for the padded M it may pick different kernels, tiles or
 * split-K counts, and each sums K in its own order. So the heuristic is asked for the bucket's
 * shape, Mb = g4_bucket(M), equal for the padded and the unpadded step, and that algorithm runs at
 * the real M (layouts of M, so rows past M are neither read nor written).
 * What this guarantees: one algorithm (kernel, tile, stages, split-K count, reduction scheme) is
 * fixed for every M of a bucket; with it, output element (i, j) is the dot of x row i with W row
 * j over K, split and reduced by a pattern of K and the algorithm alone — no other row of x takes
 * part. What it does not: cuBLASLt documents bitwise reproducibility only for the same call
 * (same shapes, same architecture and SM count), not across M; a kernel whose work split depends
 * on the whole grid (a stream-K decomposition, which spreads the k-loop of the tile set over the
 * SMs) could pair different k-ranges when M and Mb have different tile counts along M. That
 * cannot happen while Mb fits in one tile row (Mb ≤ the tile's M, at least 64 on Hopper: every
 * bucket up to 64); above, only when M and Mb round to the same tile count, so for larger buckets
 * only a run on a GPU tells (tests/gpu/test_gpu_matmul.c compares a row at M and at Mb bit for
 * bit; the emulator's heuristic varies split-K with the shape, so there the test catches a
 * missing pin, though not a stream-K split of the real library). The heuristic is deterministic for the same
 * inputs, so a plan evicted and made again picks the same algorithm.
 * Roofline: a decode GEMM is weight-bound, N·K·2 B per call whatever M (31B sliding q|k|v:
 * 16384 × 5376 × 2 B = 176 MB, ~53 µs at 3.35 TB/s; its 2·M·N·K FLOPs reach that time only
 * at M ≈ 256: 45 GFLOP, ~46 µs at ~990 dense bf16 TFLOP/s). The kernel the heuristic tunes for
 * Mb reads W once at M too, and the idle rows of its tiles cost tensor-core cycles the
 * memory-bound kernel had to spare, so a fixed algorithm per bucket costs ≈ nothing there (and
 * the graph-replayed step runs at Mb anyway). Prefill (compute-bound) runs an algorithm tuned
 * for up to 2× its rows: tile shape and wave count were chosen for Mb, so an M just above a
 * power of two may lose part of a wave (not measured: bench "cublas_bf16_tflops" at
 * M = 2^k + 1 on a GPU would show it). */
#include <string.h>

#include "base/bucket.h"
#include "ctx.cuh"

/* Largest power of two ≤ 16 dividing the address: cuBLASLt algorithms assume the alignment
 * they were chosen for, so it is part of the plan's key. */
static int g4_align_of(const void *p) {
    uintptr_t a = (uintptr_t)p;
    int al = 16;
    while (al > 1 && (a % (uintptr_t)al)) al >>= 1;
    return al;
}

static void g4_plan_destroy(g4_gemm_plan *pl) {
    if (!pl->used) return;
    if (pl->op) cublasLtMatmulDescDestroy(pl->op);
    if (pl->la) cublasLtMatrixLayoutDestroy(pl->la);
    if (pl->lb) cublasLtMatrixLayoutDestroy(pl->lb);
    if (pl->lc) cublasLtMatrixLayoutDestroy(pl->lc);
    memset(pl, 0, sizeof(*pl));
}

void g4_cuda_gemm_plans_free(g4_cuda_ctx *c) {
    for (int i = 0; i < G4_GEMM_PLANS; i++) g4_plan_destroy(&c->plans[i]);
}

/* Row-major y[M,N] = x[M,K]·Wᵀ seen by column-major cuBLASLt:
 *   W row-major [N,K] = column-major A (K×N, ld K); op(A) = Aᵀ (N×K)
 *   x row-major [M,K] = column-major B (K×M, ld K); op(B) = B
 *   y row-major [M,N] = column-major C (N×M, ld N) = Aᵀ·B       (m=N, n=M, k=K)
 * The x and y layouts for M rows: *lb, *lc. */
static int g4_row_layouts(cublasLtMatrixLayout_t *lb, cublasLtMatrixLayout_t *lc, int M, int N, int K,
                          cudaDataType_t ydt, g4_error *err) {
    G4_CHECK(cublasLtMatrixLayoutCreate(lb, CUDA_R_16BF, (uint64_t)K, (uint64_t)M, (int64_t)K));
    G4_CHECK(cublasLtMatrixLayoutCreate(lc, ydt, (uint64_t)N, (uint64_t)M, (int64_t)N));
    return 0;
}

/* The heuristic's first algorithm for M rows into *algo (n_res 0: none). */
static cublasStatus_t g4_plan_heuristic(g4_cuda_ctx *c, g4_gemm_plan *pl, cublasLtMatrixLayout_t lb,
                                        cublasLtMatrixLayout_t lc, int ax, int aw, int ay,
                                        cublasLtMatmulHeuristicResult_t *res, int *n_res) {
    cublasLtMatmulPreference_t pref;
    cublasStatus_t st = cublasLtMatmulPreferenceCreate(&pref);
    if (st != CUBLAS_STATUS_SUCCESS) return st;
    uint32_t a32[3] = {(uint32_t)aw, (uint32_t)ax, (uint32_t)ay};
    st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &c->workspace_bytes,
                                              sizeof(c->workspace_bytes));
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &a32[0], 4);
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &a32[1], 4);
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &a32[2], 4);
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &a32[2], 4);
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtMatmulAlgoGetHeuristic(c->lt, pl->op, pl->la, lb, lc, lc, pref, 1, res, n_res);
    cublasLtMatmulPreferenceDestroy(pref);
    return st;
}

/* A plan for M rows running the algorithm the heuristic picks for Mb = g4_bucket(M) rows (the
 * file's header says why). An algorithm the library refuses at M fails in cublasLtMatmul, loudly. */
static int g4_plan_make(g4_cuda_ctx *c, g4_gemm_plan *pl, int M, int N, int K, cudaDataType_t ydt, int ax, int aw,
                        int ay, g4_error *err) {
    memset(pl, 0, sizeof(*pl));
    cublasOperation_t opT = CUBLAS_OP_T, opN = CUBLAS_OP_N;
    G4_CHECK(cublasLtMatmulDescCreate(&pl->op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    pl->used = 1; /* from here on g4_plan_destroy releases what was made (layouts may be NULL) */
    G4_CHECK(cublasLtMatmulDescSetAttribute(pl->op, CUBLASLT_MATMUL_DESC_TRANSA, &opT, sizeof(opT)));
    G4_CHECK(cublasLtMatmulDescSetAttribute(pl->op, CUBLASLT_MATMUL_DESC_TRANSB, &opN, sizeof(opN)));
    G4_CHECK(cublasLtMatrixLayoutCreate(&pl->la, CUDA_R_16BF, (uint64_t)K, (uint64_t)N, (int64_t)K));
    G4_TRY(g4_row_layouts(&pl->lb, &pl->lc, M, N, K, ydt, err));

    int Mb = g4_bucket(M), n_res = 0;
    cublasLtMatmulHeuristicResult_t res;
    cublasLtMatrixLayout_t bb = NULL, bc = NULL; /* the bucket's layouts, for the heuristic only */
    int rc = g4_row_layouts(&bb, &bc, Mb, N, K, ydt, err);
    cublasStatus_t st = rc ? CUBLAS_STATUS_SUCCESS : g4_plan_heuristic(c, pl, bb, bc, ax, aw, ay, &res, &n_res);
    if (bb) cublasLtMatrixLayoutDestroy(bb);
    if (bc) cublasLtMatrixLayoutDestroy(bc);
    if (rc) return -1;
    G4_CHECK(st);
    if (n_res < 1)
        return g4_fail(err,
                       "gemm: cuBLASLt has no algorithm for M=%d (bucket %d) N=%d K=%d (alignments x=%d W=%d y=%d)", M,
                       Mb, N, K, ax, aw, ay);
    pl->algo = res.algo;
    pl->M = M;
    pl->N = N;
    pl->K = K;
    pl->ydt = ydt;
    pl->align_x = ax;
    pl->align_w = aw;
    pl->align_y = ay;
    return 0;
}

int g4_cuda_gemm(g4_cuda_ctx *c, void *y, cudaDataType_t ydt, const void *x, const void *W, int M, int N, int K,
                 g4_error *err) {
    if (M <= 0) return 0;
    if (N <= 0 || K <= 0) return g4_fail(err, "gemm: bad shape M=%d N=%d K=%d", M, N, K);
    int ax = g4_align_of(x), aw = g4_align_of(W), ay = g4_align_of(y);
    g4_gemm_plan *pl = NULL;
    for (int i = 0; i < G4_GEMM_PLANS; i++) {
        g4_gemm_plan *q = &c->plans[i];
        if (q->used && q->M == M && q->N == N && q->K == K && q->ydt == ydt && q->align_x == ax && q->align_w == aw &&
            q->align_y == ay) {
            pl = q;
            break;
        }
    }
    if (!pl) {
        int slot = -1;
        for (int i = 0; i < G4_GEMM_PLANS && slot < 0; i++)
            if (!c->plans[i].used) slot = i;
        if (slot < 0) { /* full: evict round-robin */
            slot = c->next_plan;
            c->next_plan = (c->next_plan + 1) % G4_GEMM_PLANS;
        }
        pl = &c->plans[slot];
        g4_plan_destroy(pl);
        if (g4_plan_make(c, pl, M, N, K, ydt, ax, aw, ay, err) != 0) {
            g4_plan_destroy(pl);
            return -1;
        }
    }
    float alpha = 1.0f, beta = 0.0f;
    G4_CHECK(cublasLtMatmul(c->lt, pl->op, &alpha, W, pl->la, x, pl->lb, &beta, y, pl->lc, y, pl->lc, &pl->algo,
                            c->workspace, c->workspace_bytes, c->stream));
    c->launches++; /* one cuBLASLt call (a split-K algorithm may queue a second kernel: counted once) */
    return 0;
}

/* y[M,N] = x[M,K] · Wᵀ     W [N,K] loaded bf16; x, y bf16 activations */
int g4_cuda_matmul(void *ctx, void *y, const void *x, const g4_weight *W, int M, g4_error *err) {
    g4_cuda_ctx *c = (g4_cuda_ctx *)ctx;
    G4_TRY(g4_cuda_check_weight(W, "matmul", -1, err));
    if (W->ndim != 2) return g4_fail(err, "matmul: weight %s must be 2-D [N,K]", W->name ? W->name : "?");
    if (g4_cuda_gemm(c, y, CUDA_R_16BF, x, W->data, M, (int)W->shape[0], (int)W->shape[1], err) != 0)
        return g4_fail_prefix(err, "matmul %s", W->name ? W->name : "?");
    return 0;
}
