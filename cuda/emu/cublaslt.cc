/* cublaslt.cc — the emulated cuBLASLt subset (contract in include/cublasLt.h): D = alpha·op(A)·op(B)
 * + beta·C over column-major layouts, F32 accumulation, queued on the stream like a kernel.
 * Several algorithms, as the real library has: split-K by 1, 2 or 4, each summing K in its own
 * order, so two algorithms may differ in the last bits while one algorithm gives a row the same
 * bits at every M (an output element never depends on another row). The heuristic picks one per
 * shape, deterministically but without regard to neighbouring shapes (below), so code that
 * relies on two shapes sharing an algorithm fails here as it would on a GPU.
 * Not here: speed, tensor-core rounding, the real library's cost model. */
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

/* --- Algorithms ------------------------------------------------------------------------------
 * An algorithm is cublasLtMatmulAlgo_t.data: [0] the tag below, [1..4] the A/B/C/D alignments it
 * was chosen for, [5] its split-K count, [6] the types it computes (types_of). Split-K by s cuts
 * K into s slices of a multiple of 16, sums each like dot() into the workspace (f32, s·M·N, as
 * the library's split-K reduction does) and adds the partial sums: (p0 + p1) for 2, the tree
 * (p0 + p1) + (p2 + p3) for 4. Every order differs from the others, none mixes rows. */
const uint64_t ALGO_TAG = 0x67346c74u;
const int SPLITS[] = {1, 2, 4};

uint64_t types_of(const g4emu_lt_desc *d, const g4emu_lt_layout *a, const g4emu_lt_layout *c) {
    return (uint64_t)d->compute | (uint64_t)d->scale << 8 | (uint64_t)a->type << 16 | (uint64_t)c->type << 24;
}

/* Length of each of the s slices of k (a multiple of 16; the last may be shorter). */
uint64_t slice_len(uint64_t k, int s) { return ((k + (uint64_t)s - 1) / (uint64_t)s + 15) / 16 * 16; }

/* Split-K by s runs when every slice holds at least 64 of K (four mma k-steps). */
bool split_fits_k(uint64_t k, int s) {
    return s == 1 || (slice_len(k, s) >= 64 && slice_len(k, s) * (uint64_t)(s - 1) < k);
}

/* Workspace split-K by s needs at m × n: the f32 partial sums. */
size_t split_workspace(uint64_t m, uint64_t n, int s) { return s == 1 ? 0 : (size_t)(m * n * (uint64_t)s * 4); }

uint64_t mix(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

/* The heuristic's candidates for D of m × n over k, best first. Eligible: s = 1 always; a split
 * when its slices fit k, its partial sums fit the workspace, and the grid of 128 × 128 tiles times
 * s does not overfill the device (a full grid gains nothing from splitting). Among them the first
 * is chosen by a hash of the whole shape, the others follow in split order: deterministic for the
 * same inputs, as the library is, and unrelated between neighbouring shapes — the real cost model
 * moves between algorithms at M values nobody can predict, so the emulator moves at most of them. */
int candidates(uint64_t m, uint64_t n, uint64_t k, uint64_t types, size_t workspace, int out[3]) {
    uint64_t tiles = ((m + 127) / 128) * ((n + 127) / 128);
    int cnt = 0;
    for (int s : SPLITS)
        if (s == 1 || (split_fits_k(k, s) && split_workspace(m, n, s) <= workspace &&
                       tiles * (uint64_t)s <= (uint64_t)g4emu::tgt().sms))
            out[cnt++] = s;
    int first = (int)(mix(m * 0x9e3779b97f4a7c15ull ^ mix(n ^ mix(k ^ mix(types)))) % (uint64_t)cnt);
    int t = out[first];
    for (int i = first; i > 0; i--) out[i] = out[i - 1];
    out[0] = t;
    return cnt;
}

/* Σ_p a[p]·b[p] by split-K s, the partial sums staged in ws[0..s). */
float split_dot(const float *a, const float *b, uint64_t k, int s, float *ws) {
    if (s == 1) return dot(a, b, k);
    uint64_t len = slice_len(k, s);
    for (int q = 0; q < s; q++) {
        uint64_t lo = (uint64_t)q * len, hi = lo + len < k ? lo + len : k;
        ws[q] = dot(a + lo, b + lo, hi - lo);
    }
    return s == 2 ? ws[0] + ws[1] : (ws[0] + ws[1]) + (ws[2] + ws[3]);
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

/* D's rows, columns and K under d. */
static void dims(const g4emu_lt_desc *d, const g4emu_lt_layout *a, const g4emu_lt_layout *dl, uint64_t *m, uint64_t *n,
                 uint64_t *k) {
    *m = dl->rows;
    *n = dl->cols;
    *k = d->ta == CUBLAS_OP_N ? a->cols : a->rows;
}

static void algo_make(cublasLtMatmulAlgo_t *algo, const uint32_t align[4], int split, uint64_t types) {
    memset(algo, 0, sizeof *algo);
    algo->data[0] = ALGO_TAG;
    for (int i = 0; i < 4; i++) algo->data[1 + i] = align[i];
    algo->data[5] = (uint64_t)split;
    algo->data[6] = types;
}

cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t h, cublasLtMatmulDesc_t d, cublasLtMatrixLayout_t a,
                                              cublasLtMatrixLayout_t b, cublasLtMatrixLayout_t c,
                                              cublasLtMatrixLayout_t dl, cublasLtMatmulPreference_t p, int requested,
                                              cublasLtMatmulHeuristicResult_t *res, int *n_res) {
    if (!h || !p || requested < 1 || !res || !n_res) return CUBLAS_STATUS_INVALID_VALUE;
    cublasStatus_t s = check_shapes(d, a, b, c, dl);
    if (s != CUBLAS_STATUS_SUCCESS) return s;
    for (int i = 0; i < 4; i++)
        if (!p->align[i] || (p->align[i] & (p->align[i] - 1))) return CUBLAS_STATUS_INVALID_VALUE;
    uint64_t m, n, k;
    dims(d, a, dl, &m, &n, &k);
    int splits[3], cnt = candidates(m, n, k, types_of(d, a, c), p->workspace, splits);
    if (cnt > requested) cnt = requested;
    memset(res, 0, sizeof *res * (size_t)requested);
    for (int i = 0; i < cnt; i++) {
        algo_make(&res[i].algo, p->align, splits[i], types_of(d, a, c));
        res[i].workspaceSize = split_workspace(m, n, splits[i]);
        res[i].state = CUBLAS_STATUS_SUCCESS;
        res[i].wavesCount = 1.0f;
    }
    *n_res = cnt;
    return CUBLAS_STATUS_SUCCESS;
}

/* Whether algo may run this call, as cublasLtMatmul checks it: an algorithm the heuristic made,
 * for these types (INVALID_VALUE otherwise: "descriptors don't match algo"), whose split fits K
 * (NOT_SUPPORTED), with the workspace its partial sums need at this M and N (INVALID_VALUE) and
 * the operands aligned as it was chosen for (INVALID_VALUE). Any M of the same N, K and types is
 * fine: that is how an algorithm chosen for one shape runs another. */
static cublasStatus_t algo_check(const cublasLtMatmulAlgo_t *algo, uint64_t m, uint64_t n, uint64_t k, uint64_t types,
                                 const void *const ptr[4], const void *workspace, size_t workspace_bytes) {
    int split = (int)algo->data[5];
    if (algo->data[0] != ALGO_TAG || (split != 1 && split != 2 && split != 4)) {
        g4emu::report("cublasLtMatmul: the algorithm was not made by cublasLtMatmulAlgoGetHeuristic");
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    if (algo->data[6] != types) {
        g4emu::report("cublasLtMatmul: the algorithm was chosen for other compute, scale or matrix types");
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    if (!split_fits_k(k, split)) {
        g4emu::report("cublasLtMatmul: split-K %d does not fit K=%llu", split, (unsigned long long)k);
        return CUBLAS_STATUS_NOT_SUPPORTED;
    }
    size_t need = split_workspace(m, n, split);
    if (need && (!workspace || workspace_bytes < need)) {
        g4emu::report("cublasLtMatmul: split-K %d at %llu x %llu needs %zu bytes of workspace, has %zu", split,
                      (unsigned long long)m, (unsigned long long)n, need, workspace ? workspace_bytes : (size_t)0);
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    for (int i = 0; i < 4; i++)
        if (algo->data[1 + i] && ((uintptr_t)ptr[i] % algo->data[1 + i])) {
            g4emu::report("cublasLtMatmul: operand %c at %p is not %llu-byte aligned as its algorithm requires",
                          "ABCD"[i], ptr[i], (unsigned long long)algo -> data[1 + i]);
            return CUBLAS_STATUS_INVALID_VALUE;
        }
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmul(cublasLtHandle_t h, cublasLtMatmulDesc_t d, const void *alpha, const void *A,
                              cublasLtMatrixLayout_t la, const void *B, cublasLtMatrixLayout_t lb, const void *beta,
                              const void *C, cublasLtMatrixLayout_t lc, void *D, cublasLtMatrixLayout_t ld,
                              const cublasLtMatmulAlgo_t *algo, void *workspace, size_t workspace_bytes,
                              cudaStream_t stream) {
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    cublasStatus_t s = check_shapes(d, la, lb, lc, ld);
    if (s != CUBLAS_STATUS_SUCCESS) return s;
    uint64_t m, n, k;
    dims(d, la, ld, &m, &n, &k);
    const void *ptr[4] = {A, B, C, D};
    cublasLtMatmulAlgo_t chosen;
    if (!algo) { /* the library asks its heuristic for this very shape */
        int splits[3];
        uint32_t none[4] = {0, 0, 0, 0};
        candidates(m, n, k, types_of(d, la, lc), workspace ? workspace_bytes : 0, splits);
        algo_make(&chosen, none, splits[0], types_of(d, la, lc));
        algo = &chosen;
    }
    s = algo_check(algo, m, n, k, types_of(d, la, lc), ptr, workspace, workspace_bytes);
    if (s != CUBLAS_STATUS_SUCCESS) return s;
    int split = (int)algo->data[5];
    float al, be;
    memcpy(&al, alpha, 4);
    memcpy(&be, beta, 4);
    auto job = std::make_shared<g4emu_lt_desc>(*d);
    g4emu_lt_layout a = *la, b = *lb, c = *lc, dd = *ld;
    cudaError_t e =
        g4emu::enqueue(stream, "cublasLtMatmul", [job, a, b, c, dd, al, be, A, B, C, D, split, workspace]() {
            uint64_t m = dd.rows, n = dd.cols, k = job->ta == CUBLAS_OP_N ? a.cols : a.rows;
            float *ws = (float *)workspace; /* element (i, j)'s partial sums at ws[(j·m + i)·split] */
            /* op(B) columns once as floats; op(A) one row at a time */
            std::vector<float> bt((size_t)(n * k)), ar((size_t)k);
            for (uint64_t j = 0; j < n; j++)
                load_row(&bt[(size_t)(j * k)], B, b, job->tb == CUBLAS_OP_N ? CUBLAS_OP_T : CUBLAS_OP_N, j, k);
            for (uint64_t i = 0; i < m; i++) {
                load_row(ar.data(), A, a, job->ta, i, k);
                for (uint64_t j = 0; j < n; j++) {
                    float v = al * split_dot(ar.data(), &bt[(size_t)(j * k)], k, split,
                                             split == 1 ? nullptr : ws + (size_t)((j * m + i) * (uint64_t)split));
                    if (be != 0.0f) v += be * load(C, c.type, (size_t)(i + j * (uint64_t)c.ld));
                    store(D, dd.type, (size_t)(i + j * (uint64_t)dd.ld), v);
                }
            }
            return cudaSuccess;
        });
    return e == cudaSuccess ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_EXECUTION_FAILED;
}

} /* extern "C" */
