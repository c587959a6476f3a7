/* cublaslt.cc — the emulated cuBLASLt subset (contract in include/cublasLt.h): a reference
 * D = alpha·op(A)·op(B) + beta·C over column-major layouts, F32 accumulation in k order,
 * queued on the stream like a kernel. */
#include <stdlib.h>
#include <string.h>

#include <memory>
#include <vector>

#include "cublasLt.h"
#include "emu_internal.h"

struct g4emu_lt {
    int dummy;
};
struct g4emu_lt_desc {
    cublasComputeType_t compute;
    cudaDataType_t scale;
    cublasOperation_t ta, tb;
};
struct g4emu_lt_layout {
    cudaDataType_t type;
    uint64_t rows, cols;
    int64_t ld;
};
struct g4emu_lt_pref {
    size_t workspace;
    uint32_t align[4];
};

namespace {

bool type_ok(cudaDataType_t t) { return t == CUDA_R_32F || t == CUDA_R_16BF || t == CUDA_R_16F; }

/* Element i of a matrix of type t as float, and back (the emulated cuda_bf16.h / cuda_fp16.h
 * conversions: one rounding rule for the whole target). */
float load(const void *p, cudaDataType_t t, size_t i) {
    if (t == CUDA_R_32F) return ((const float *)p)[i];
    if (t == CUDA_R_16BF) return __bfloat162float(((const __nv_bfloat16 *)p)[i]);
    return __half2float(((const __half *)p)[i]);
}

void store(void *p, cudaDataType_t t, size_t i, float v) {
    if (t == CUDA_R_32F) ((float *)p)[i] = v;
    else if (t == CUDA_R_16BF) ((__nv_bfloat16 *)p)[i] = __float2bfloat16_rn(v);
    else ((__half *)p)[i] = __float2half_rn(v);
}

/* Row r of op(X) (length k) as floats: op(X)[r][p] = X[p][r] when transposed (column r of X
 * is contiguous), X[r][p] otherwise (strided by ld). The type is looked at once per row, not
 * per element: this is the GEMM's data path. */
void load_row(float *out, const void *X, const g4emu_lt_layout &l, cublasOperation_t t, uint64_t r, uint64_t k) {
    size_t base = t == CUBLAS_OP_N ? (size_t)r : (size_t)(r * (uint64_t)l.ld);
    size_t step = t == CUBLAS_OP_N ? (size_t)l.ld : 1;
    if (l.type == CUDA_R_32F)
        for (uint64_t p = 0; p < k; p++) out[p] = ((const float *)X)[base + p * step];
    else if (l.type == CUDA_R_16BF)
        for (uint64_t p = 0; p < k; p++) out[p] = __bfloat162float(((const __nv_bfloat16 *)X)[base + p * step]);
    else
        for (uint64_t p = 0; p < k; p++) out[p] = __half2float(((const __half *)X)[base + p * step]);
}

/* Σ_p a[p]·b[p] the way a tensor-core GEMM accumulates: k in chunks of 16 (one mma), each chunk
 * summed as a pairwise tree, chunks added to one f32 accumulator in k order. Deliberately not
 * the CPU backend's order (8 interleaved partial sums), so the GPU tests' tolerances are
 * exercised by summation-order noise here as they will be on a GPU. */
float dot(const float *a, const float *b, uint64_t k) {
    float acc = 0.0f;
    uint64_t p = 0;
    for (; p + 16 <= k; p += 16) {
        float t[16];
        for (int q = 0; q < 16; q++) t[q] = a[p + q] * b[p + q];
        for (int w = 8; w > 0; w >>= 1)
            for (int q = 0; q < w; q++) t[q] += t[q + w];
        acc += t[0];
    }
    for (; p < k; p++) acc += a[p] * b[p];
    return acc;
}

} /* namespace */

extern "C" {

cublasStatus_t cublasLtCreate(cublasLtHandle_t *h) {
    *h = new g4emu_lt{0};
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtDestroy(cublasLtHandle_t h) {
    delete h;
    return CUBLAS_STATUS_SUCCESS;
}
const char *cublasLtGetStatusString(cublasStatus_t s) {
    switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    default: return "CUBLAS_STATUS_INTERNAL_ERROR";
    }
}

cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *d, cublasComputeType_t compute, cudaDataType_t scale) {
    if (compute != CUBLAS_COMPUTE_32F && compute != CUBLAS_COMPUTE_32F_FAST_16BF) return CUBLAS_STATUS_NOT_SUPPORTED;
    if (scale != CUDA_R_32F) return CUBLAS_STATUS_INVALID_VALUE;
    *d = new g4emu_lt_desc{compute, scale, CUBLAS_OP_N, CUBLAS_OP_N};
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t d) {
    delete d;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t a, const void *buf,
                                              size_t size) {
    if (!d || size != sizeof(cublasOperation_t)) return CUBLAS_STATUS_INVALID_VALUE;
    cublasOperation_t op;
    memcpy(&op, buf, sizeof op);
    if (op != CUBLAS_OP_N && op != CUBLAS_OP_T) return CUBLAS_STATUS_INVALID_VALUE;
    if (a == CUBLASLT_MATMUL_DESC_TRANSA) d->ta = op;
    else if (a == CUBLASLT_MATMUL_DESC_TRANSB) d->tb = op;
    else return CUBLAS_STATUS_INVALID_VALUE;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *l, cudaDataType_t type, uint64_t rows, uint64_t cols,
                                          int64_t ld) {
    if (!type_ok(type) || (int64_t)rows > ld || ld < 1) return CUBLAS_STATUS_INVALID_VALUE;
    *l = new g4emu_lt_layout{type, rows, cols, ld};
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t l) {
    delete l;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t *p) {
    *p = new g4emu_lt_pref{0, {256, 256, 256, 256}};
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t p) {
    delete p;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t p,
                                                    cublasLtMatmulPreferenceAttributes_t a, const void *buf,
                                                    size_t size) {
    if (a == CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES) {
        if (size != sizeof(size_t) && size != sizeof(uint64_t)) return CUBLAS_STATUS_INVALID_VALUE;
        memcpy(&p->workspace, buf, sizeof(size_t));
        return CUBLAS_STATUS_SUCCESS;
    }
    if (a >= CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES && a <= CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES) {
        if (size != 4) return CUBLAS_STATUS_INVALID_VALUE;
        memcpy(&p->align[a - CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES], buf, 4);
        return CUBLAS_STATUS_SUCCESS;
    }
    return CUBLAS_STATUS_INVALID_VALUE;
}

static cublasStatus_t check_shapes(const g4emu_lt_desc *d, const g4emu_lt_layout *a, const g4emu_lt_layout *b,
                                   const g4emu_lt_layout *c, const g4emu_lt_layout *dl) {
    if (!d || !a || !b || !c || !dl) return CUBLAS_STATUS_INVALID_VALUE;
    uint64_t m = d->ta == CUBLAS_OP_N ? a->rows : a->cols, ka = d->ta == CUBLAS_OP_N ? a->cols : a->rows;
    uint64_t kb = d->tb == CUBLAS_OP_N ? b->rows : b->cols, n = d->tb == CUBLAS_OP_N ? b->cols : b->rows;
    if (ka != kb || c->rows != m || c->cols != n || dl->rows != m || dl->cols != n || a->type != b->type ||
        c->type != dl->type)
        return CUBLAS_STATUS_INVALID_VALUE;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t h, cublasLtMatmulDesc_t d, cublasLtMatrixLayout_t a,
                                              cublasLtMatrixLayout_t b, cublasLtMatrixLayout_t c,
                                              cublasLtMatrixLayout_t dl, cublasLtMatmulPreference_t p, int requested,
                                              cublasLtMatmulHeuristicResult_t *res, int *n_res) {
    if (!h || !p || requested < 1) return CUBLAS_STATUS_INVALID_VALUE;
    cublasStatus_t s = check_shapes(d, a, b, c, dl);
    if (s != CUBLAS_STATUS_SUCCESS) return s;
    memset(res, 0, sizeof *res);
    for (int i = 0; i < 4; i++)
        if (!p->align[i] || (p->align[i] & (p->align[i] - 1))) return CUBLAS_STATUS_INVALID_VALUE;
    res->algo.data[0] = 0x67346c74u; /* the one reference algorithm */
    for (int i = 0; i < 4; i++) res->algo.data[1 + i] = p->align[i];
    res->state = CUBLAS_STATUS_SUCCESS;
    res->wavesCount = 1.0f;
    *n_res = 1;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmul(cublasLtHandle_t h, cublasLtMatmulDesc_t d, const void *alpha, const void *A,
                              cublasLtMatrixLayout_t la, const void *B, cublasLtMatrixLayout_t lb, const void *beta,
                              const void *C, cublasLtMatrixLayout_t lc, void *D, cublasLtMatrixLayout_t ld,
                              const cublasLtMatmulAlgo_t *algo, void *workspace, size_t workspace_bytes,
                              cudaStream_t stream) {
    (void)workspace;
    (void)workspace_bytes;
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    cublasStatus_t s = check_shapes(d, la, lb, lc, ld);
    if (s != CUBLAS_STATUS_SUCCESS) return s;
    if (algo) { /* the pointers must keep the alignment the algorithm was chosen for */
        const void *ptr[4] = {A, B, C, D};
        for (int i = 0; i < 4; i++)
            if (algo->data[1 + i] && ((uintptr_t)ptr[i] % algo->data[1 + i])) {
                g4emu::report("cublasLtMatmul: operand %c at %p is not %llu-byte aligned as its algorithm requires",
                              "ABCD"[i], ptr[i], (unsigned long long)algo -> data[1 + i]);
                return CUBLAS_STATUS_INVALID_VALUE;
            }
    }
    float al, be;
    memcpy(&al, alpha, 4);
    memcpy(&be, beta, 4);
    auto job = std::make_shared<g4emu_lt_desc>(*d);
    g4emu_lt_layout a = *la, b = *lb, c = *lc, dd = *ld;
    cudaError_t e = g4emu::enqueue(stream, "cublasLtMatmul", [job, a, b, c, dd, al, be, A, B, C, D]() {
        uint64_t m = dd.rows, n = dd.cols, k = job->ta == CUBLAS_OP_N ? a.cols : a.rows;
        /* op(B) columns once as floats; op(A) one row at a time */
        std::vector<float> bt((size_t)(n * k)), ar((size_t)k);
        for (uint64_t j = 0; j < n; j++)
            load_row(&bt[(size_t)(j * k)], B, b, job->tb == CUBLAS_OP_N ? CUBLAS_OP_T : CUBLAS_OP_N, j, k);
        for (uint64_t i = 0; i < m; i++) {
            load_row(ar.data(), A, a, job->ta, i, k);
            for (uint64_t j = 0; j < n; j++) {
                float v = al * dot(ar.data(), &bt[(size_t)(j * k)], k);
                if (be != 0.0f) v += be * load(C, c.type, (size_t)(i + j * (uint64_t)c.ld));
                store(D, dd.type, (size_t)(i + j * (uint64_t)dd.ld), v);
            }
        }
        return cudaSuccess;
    });
    return e == cudaSuccess ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_EXECUTION_FAILED;
}

} /* extern "C" */
