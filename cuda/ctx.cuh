/* ctx.cuh — the CUDA backend's private context and the entry points of its op files.
 *
 * One g4_cuda_ctx per backend instance: its device, its one stream (every op is queued on it,
 * no hidden syncs except where an entry point says so), the cuBLASLt handle + workspace, the
 * per-shape GEMM plan cache and a few grow-on-demand scratch buffers. Nothing global: all
 * state lives here. The op table that points at the entry points is in cuda_backend.cu. */
#ifndef G4_CUDA_CTX_CUH
#define G4_CUDA_CTX_CUH

#include "common.cuh"

extern "C" {
#include "backend/backend.h"
}

/* One cached cuBLASLt GEMM: descriptors and the heuristic's algorithm for a key. */
typedef struct g4_gemm_plan {
    int used;
    int M, N, K;
    cudaDataType_t ydt;
    int align_x, align_w, align_y;  /* pointer alignments the plan was chosen for (bytes) */
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t la, lb, lc;
    cublasLtMatmulAlgo_t algo;
} g4_gemm_plan;

#define G4_GEMM_PLANS 128

/* Scratch slots (each grows on demand, never shrinks; cudaFree on growth syncs the device). */
enum {
    G4_SCR_ROWS = 0,     /* lm_head: gathered rows */
    G4_SCR_MOE_IDX,      /* moe: offsets / source tokens / inverse map (int32) */
    G4_SCR_MOE_X,        /* moe: gathered inputs [P, H] bf16 */
    G4_SCR_MOE_GU,       /* moe: gate_up outputs [P, 2I] bf16 */
    G4_SCR_MOE_ACT,      /* moe: GeGLU outputs [P, I] bf16 */
    G4_SCR_MOE_Y,        /* moe: expert outputs [P, H] f32 */
    G4_SCR_ATTN,         /* attention: split-KV partials [T, n_heads, splits, d + 2] f32 */
    G4_SCR_COUNT
};

typedef struct g4_cuda_ctx {
    int device;
    int n_sms;                  /* multiprocessors (split-KV heuristic) */
    int smem_optin;             /* max dynamic shared memory per block after opt-in (bytes) */
    g4_attn_path attn_path;     /* from the backend options at creation (backend/options.h) */
    cudaStream_t stream;
    cublasLtHandle_t lt;
    void *workspace;            /* cuBLASLt workspace */
    size_t workspace_bytes;
    g4_gemm_plan plans[G4_GEMM_PLANS];
    int next_plan;              /* round-robin eviction once full */
    void *scratch[G4_SCR_COUNT];
    size_t scratch_bytes[G4_SCR_COUNT];
    uint64_t scratch_generation; /* bumped whenever a scratch buffer moves (graphs record pointers) */
    int32_t *host_offsets;      /* pinned [host_offsets_n] (moe: expert offsets read back) */
    int host_offsets_n;
    g4_moe_path moe_path;       /* from the backend options at creation (backend/options.h) */
    uint64_t launches;          /* kernels and cuBLAS GEMMs queued so far (G4_LAUNCH, g4_cuda_gemm);
                                   a graph replay queues one cudaGraphLaunch and counts nothing */
    uint64_t uploads;           /* host-to-device copies queued by upload / upload_async (upload_count) */
} g4_cuda_ctx;

/* The stream every kernel of this backend goes to, counting the launch: the stream argument of
 * G4_LAUNCH (common.cuh), so every launch site counts itself and nothing else can forget to. */
static inline cudaStream_t g4_launch_stream(g4_cuda_ctx *c) {
    c->launches++;
    return c->stream;
}

/* Largest T the fast MoE path (G4_MOE_PATH_FAST, backend/options.h) runs moe_decode.cu for. */
#define G4_MOE_DECODE_MAX_T 64

/* Returns scratch slot `slot` with at least `bytes` bytes in *out. */
int g4_cuda_scratch(g4_cuda_ctx *c, int slot, size_t bytes, void **out, g4_error *err);
/* Dummy weights (dummy_weights.cu): allocates w->data and fills it with the seeded values. */
int g4_cuda_dummy_fill(g4_cuda_ctx *c, g4_weight *w, uint64_t seed, float mean, float amp, g4_error *err);

/* Fails unless w is loaded on this backend as bf16 with numel elements (numel < 0: any). */
int g4_cuda_check_weight(const g4_weight *w, const char *what, int64_t numel, g4_error *err);

/* y[M,N] = x[M,K] · Wᵀ     x, W bf16 row-major (W [N,K]), y row-major in ydt (BF16 or F32),
 * FP32 accumulate, through cuBLASLt with a cached per-shape plan. M = 0 is a no-op. */
int g4_cuda_gemm(g4_cuda_ctx *c, void *y, cudaDataType_t ydt, const void *x, const void *W, int M, int N, int K,
                 g4_error *err);
void g4_cuda_gemm_plans_free(g4_cuda_ctx *c);

/* Tiled tensor-core prefill attention (attention_flash.cu); same contract as the attention op.
 * _supported: 1 when this device and geometry (d 256/512, GQA group dividing the row tile) fit. */
int g4_cuda_attention_flash_supported(const g4_cuda_ctx *c, const g4_attn_geom *g);
int g4_cuda_attention_flash(g4_cuda_ctx *c, void *out, const void *q, const g4_weight *k_norm, const g4_attn_geom *g,
                            const g4_kv_layer *kv, const g4_step_dev *s, g4_error *err);

/* Split-KV decode attention (attention_decode.cu); same contract as the attention op, serving
 * every query head of a GQA group per block. _supported: 1 when d is 256 / 512, n_heads/n_kv ≤ 8,
 * the block size a power of two, k_eq_v rotated pairs a multiple of 16, and it fits this device. */
int g4_cuda_attention_decode_supported(const g4_cuda_ctx *c, const g4_attn_geom *g, const g4_kv_layer *kv);
int g4_cuda_attention_decode(g4_cuda_ctx *c, void *out, const void *q, const g4_weight *k_norm, const g4_attn_geom *g,
                             const g4_kv_layer *kv, const g4_step_dev *s, g4_error *err);

/* Graph recording and replay on the context's stream (graph.cu; contracts in backend/backend.h). */
int g4_cuda_graph_begin(void *ctx, g4_error *err);
int g4_cuda_graph_end(void *ctx, void **graph, g4_error *err);
int g4_cuda_graph_launch(void *ctx, void *graph, g4_error *err);
void g4_cuda_graph_free(void *ctx, void *graph);

/* Op entry points (contracts in backend/backend.h). */
int g4_cuda_embed(void *ctx, void *x, const g4_step_dev *s, const g4_weight *E, float scale, g4_error *err);
int g4_cuda_rmsnorm(void *ctx, void *y, const void *x, const g4_weight *w, int rows, int n, float eps, g4_error *err);
int g4_cuda_add_rmsnorm_norm(void *ctx, void *h, const void *x, const g4_weight *w, const g4_weight *lambda, void *y,
                             const g4_weight *w_next, int rows, int n, float eps, g4_error *err);
int g4_cuda_add_rmsnorm(void *ctx, void *h, const void *x, const g4_weight *w, int rows, int n, float eps,
                        g4_error *err);
int g4_cuda_add(void *ctx, void *y, const void *a, const void *b, size_t n, g4_error *err);
int g4_cuda_scale(void *ctx, void *h, const g4_weight *lambda, size_t n, g4_error *err);
int g4_cuda_matmul(void *ctx, void *y, const void *x, const g4_weight *W, int M, g4_error *err);
int g4_cuda_geglu(void *ctx, void *y, const void *gu, int rows, int n, g4_error *err);
int g4_cuda_qk_norm_rope_cache(void *ctx, void *q_out, const void *q, const void *k, const void *v, int64_t ld,
                               const g4_weight *q_norm, const g4_weight *k_norm, const g4_attn_geom *g,
                               const g4_kv_layer *kv, const g4_step_dev *s, g4_error *err);
int g4_cuda_attention(void *ctx, void *out, const void *q, const g4_weight *k_norm, const g4_attn_geom *g,
                      const g4_kv_layer *kv, const g4_step_dev *s, g4_error *err);
int g4_cuda_moe_route(void *ctx, int32_t *ids, float *weights, const void *h1, const g4_weight *proj,
                      const g4_weight *scale, const g4_weight *expert_scale, int T, int top_k, float eps,
                      g4_error *err);
int g4_cuda_moe_experts(void *ctx, void *y, const void *x, const int32_t *ids, const float *weights,
                        const g4_weight *gate_up, const g4_weight *down, int T, int top_k, g4_error *err);
/* Decode / small-T routed experts (moe_decode.cu): same contract as moe_experts, Wgu/Wd the
 * device data of gate_up [E,2I,H] and down [E,H,I]. _fits says whether the shapes and
 * pointer alignments are supported (1) or the caller must take the simple path (0). */
int g4_cuda_moe_decode_fits(int E, int I, int H, int T, int top_k, const void *y, const void *x, const void *Wgu,
                            const void *Wd);
int g4_cuda_moe_decode(g4_cuda_ctx *c, void *y, const void *x, const int32_t *ids, const float *weights,
                       const void *Wgu, const void *Wd, int E, int I, int H, int T, int top_k, g4_error *err);
int g4_cuda_lm_head(void *ctx, float *logits, const void *x, const g4_step_dev *s, const g4_weight *E, float softcap,
                    g4_error *err);
int g4_cuda_sample(void *ctx, const g4_sample_args *a, g4_error *err); /* sample.cu */
/* The vision tower's ops (vision.cu). */
int g4_cuda_rope_2d(void *ctx, void *x, const int32_t *pos, int T, int n_heads, int head_dim, float theta,
                    g4_error *err);
int g4_cuda_encoder_attention(void *ctx, void *out, const void *q, const void *k, const void *v, int T, int n_heads,
                              int n_kv_heads, int head_dim, float scale, g4_error *err);
int g4_cuda_vision_pool(void *ctx, void *y, const void *x, int ph, int pw, int n, int k, float mult,
                        const g4_weight *bias, const g4_weight *scale, g4_error *err);

/* RoPE inverse frequency of pair i (rotate-half pairs (i, i + d/2)):
 * theta^(-2i/d) for i < rotated_pairs, 0 beyond (those dims pass through). */
__device__ __forceinline__ float g4_rope_inv_freq(int i, int d, float log2_theta, int rotated_pairs) {
    return i < rotated_pairs ? exp2f(-(2.0f * (float)i / (float)d) * log2_theta) : 0.0f;
}

#endif
