/* gemm.cu — dense GEMMs through cuBLASLt: y = x · Wᵀ, BF16 in, FP32 accumulate, BF16 or F32 out,
 * the algorithm chosen once per shape by cuBLASLt's heuristic and cached in the context.
 * Not here: grouped expert GEMMs (moe_experts.cu drives this per expert), the LM head's
 * softcap (lm_head.cu).
 * Twin: cpu_matmul (csrc/backend/cpu/cpu_ops.c). Test: tests/gpu/test_gpu_matmul.c.
 * Bench: bench/kernels/bench_kernels.c "cublas_bf16_tflops". */
#include <string.h>

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
 *   y row-major [M,N] = column-major C (N×M, ld N) = Aᵀ·B       (m=N, n=M, k=K) */
static int g4_plan_make(g4_cuda_ctx *c, g4_gemm_plan *pl, int M, int N, int K, cudaDataType_t ydt, int ax, int aw,
                        int ay, g4_error *err) {
    memset(pl, 0, sizeof(*pl));
    cublasOperation_t opT = CUBLAS_OP_T, opN = CUBLAS_OP_N;
    G4_CHECK(cublasLtMatmulDescCreate(&pl->op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    pl->used = 1; /* from here on g4_plan_destroy releases what was made (layouts may be NULL) */
    G4_CHECK(cublasLtMatmulDescSetAttribute(pl->op, CUBLASLT_MATMUL_DESC_TRANSA, &opT, sizeof(opT)));
    G4_CHECK(cublasLtMatmulDescSetAttribute(pl->op, CUBLASLT_MATMUL_DESC_TRANSB, &opN, sizeof(opN)));
    G4_CHECK(cublasLtMatrixLayoutCreate(&pl->la, CUDA_R_16BF, (uint64_t)K, (uint64_t)N, (int64_t)K));
    G4_CHECK(cublasLtMatrixLayoutCreate(&pl->lb, CUDA_R_16BF, (uint64_t)K, (uint64_t)M, (int64_t)K));
    G4_CHECK(cublasLtMatrixLayoutCreate(&pl->lc, ydt, (uint64_t)N, (uint64_t)M, (int64_t)N));

    cublasLtMatmulPreference_t pref;
    G4_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    uint32_t a32[3] = {(uint32_t)aw, (uint32_t)ax, (uint32_t)ay};
    cublasStatus_t st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                             &c->workspace_bytes, sizeof(c->workspace_bytes));
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &a32[0], 4);
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &a32[1], 4);
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &a32[2], 4);
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &a32[2], 4);
    cublasLtMatmulHeuristicResult_t res;
    int n_res = 0;
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtMatmulAlgoGetHeuristic(c->lt, pl->op, pl->la, pl->lb, pl->lc, pl->lc, pref, 1, &res, &n_res);
    cublasLtMatmulPreferenceDestroy(pref);
    G4_CHECK(st);
    if (n_res < 1)
        return g4_fail(err, "gemm: cuBLASLt has no algorithm for M=%d N=%d K=%d (alignments x=%d W=%d y=%d)", M, N, K,
                       ax, aw, ay);
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
