/* cuda_backend.cu — the CUDA backend's op table, context lifetime, memory ops and weight
 * upload (any checkpoint dtype → bf16 on the device).
 * Not here: the kernels (one file per op family: embed, norm, activation, rope_cache,
 * attention, gemm, moe_route, moe_experts, lm_head). */
#include <stdlib.h>
#include <string.h>

#include "ctx.cuh"

extern "C" {
#include "backend/registry.h"
#include "base/bf16.h"
#include "base/invariant.h"
#include "cuda_backend.h"
#ifdef G4_HAVE_NCCL
#include "comm_nccl.h"
#endif
}

#define G4_LT_WORKSPACE_BYTES ((size_t)32 << 20)

int g4_cuda_scratch(g4_cuda_ctx *c, int slot, size_t bytes, void **out, g4_error *err) {
    G4_INVARIANT(slot >= 0 && slot < G4_SCR_COUNT, "scratch slot %d", slot);
    if (bytes == 0) bytes = 1;
    if (c->scratch_bytes[slot] < bytes) {
        c->scratch_generation++; /* graphs recorded with the old buffer are stale now */
        if (c->scratch[slot]) G4_CHECK(cudaFree(c->scratch[slot])); /* syncs: nothing queued still uses it */
        c->scratch[slot] = NULL;
        c->scratch_bytes[slot] = 0;
        size_t want = bytes + bytes / 4; /* headroom: fewer regrowths when sizes creep up */
        G4_CHECK(cudaMalloc(&c->scratch[slot], want));
        c->scratch_bytes[slot] = want;
    }
    *out = c->scratch[slot];
    return 0;
}

int g4_cuda_check_weight(const g4_weight *w, const char *what, int64_t numel, g4_error *err) {
    if (!w) return g4_fail(err, "%s: weight is NULL", what);
    if (!w->data) return g4_fail(err, "%s: weight %s is not loaded on the CUDA backend", what, w->name ? w->name : "?");
    if (w->data_dtype != G4_DT_BF16)
        return g4_fail(err, "%s: weight %s has device dtype %d, expected bf16", what, w->name ? w->name : "?",
                       w->data_dtype);
    if (numel >= 0 && g4_weight_numel(w) != numel)
        return g4_fail(err, "%s: weight %s has %lld elements, expected %lld", what, w->name ? w->name : "?",
                       (long long)g4_weight_numel(w), (long long)numel);
    return 0;
}

/* --- memory ------------------------------------------------------------------------------ */

static void *g4_cuda_alloc(void *ctx, size_t bytes) {
    g4_cuda_ctx *c = (g4_cuda_ctx *)ctx;
    void *p = NULL;
    if (cudaSetDevice(c->device) != cudaSuccess) return NULL;
    if (cudaMalloc(&p, bytes ? bytes : 1) != cudaSuccess) {
        (void)cudaGetLastError(); /* clear the sticky-free error state of a failed malloc */
        return NULL;
    }
    return p;
}

static void g4_cuda_free(void *ctx, void *p) {
    (void)ctx;
    if (p) cudaFree(p);
}

/* Pinned host memory: the only host memory cudaMemcpyAsync copies from without first staging
 * it synchronously (and the only kind a captured graph may copy from). */
static void *g4_cuda_staging_alloc(void *ctx, size_t bytes) {
    g4_cuda_ctx *c = (g4_cuda_ctx *)ctx;
    void *p = NULL;
    if (cudaSetDevice(c->device) != cudaSuccess ||
        cudaHostAlloc(&p, bytes ? bytes : 1, cudaHostAllocDefault) != cudaSuccess) {
        (void)cudaGetLastError(); /* reported as NULL, like alloc; not left sticky for a later call */
        return NULL;
    }
    return p;
}

static void g4_cuda_staging_free(void *ctx, void *p) {
    (void)ctx;
    if (p && cudaFreeHost(p) != cudaSuccess) (void)cudaGetLastError(); /* void slot: nothing to report to */
}

/* Queued on the stream, no wait: src_staging (pinned) must not change until a later sync. */
static int g4_cuda_upload_async(void *ctx, void *dst_dev, const void *src_staging, size_t bytes, g4_error *err) {
    g4_cuda_ctx *c = (g4_cuda_ctx *)ctx;
    if (bytes == 0) return 0;
    c->uploads++;
    G4_CHECK(cudaMemcpyAsync(dst_dev, src_staging, bytes, cudaMemcpyHostToDevice, c->stream));
    return 0;
}

static uint64_t g4_cuda_upload_count(void *ctx) { return ((g4_cuda_ctx *)ctx)->uploads; }

/* Synchronous with respect to the host: returns when src_host may be reused. */
static int g4_cuda_upload(void *ctx, void *dst_dev, const void *src_host, size_t bytes, g4_error *err) {
    g4_cuda_ctx *c = (g4_cuda_ctx *)ctx;
    if (bytes == 0) return 0;
    c->uploads++;
    G4_CHECK(cudaMemcpyAsync(dst_dev, src_host, bytes, cudaMemcpyHostToDevice, c->stream));
    G4_CHECK(cudaStreamSynchronize(c->stream));
    return 0;
}

/* Waits for every queued op, then copies. */
static int g4_cuda_download(void *ctx, void *dst_host, const void *src_dev, size_t bytes, g4_error *err) {
    g4_cuda_ctx *c = (g4_cuda_ctx *)ctx;
    if (bytes == 0) return 0;
    G4_CHECK(cudaMemcpyAsync(dst_host, src_dev, bytes, cudaMemcpyDeviceToHost, c->stream));
    G4_CHECK(cudaStreamSynchronize(c->stream));
    return 0;
}

static int g4_cuda_sync(void *ctx, g4_error *err) {
    g4_cuda_ctx *c = (g4_cuda_ctx *)ctx;
    G4_CHECK(cudaStreamSynchronize(c->stream));
    return 0;
}

/* --- weights ----------------------------------------------------------------------------- */

#define G4_CONVERT_CHUNK ((size_t)1 << 22) /* elements converted on the host per copy */

/* w->data = bf16 copy of w->host on the device. BF16 is copied as is; F16 and F32 are
 * converted on the host (round-to-nearest-even) in chunks, then copied. */
static int g4_cuda_load_weight(void *ctx, g4_weight *w, g4_error *err) {
    g4_cuda_ctx *c = (g4_cuda_ctx *)ctx;
    const char *name = w->name ? w->name : "?";
    if (!w->host) return g4_fail(err, "load_weight %s: no host data", name);
    if (w->dtype != G4_DT_BF16 && w->dtype != G4_DT_F16 && w->dtype != G4_DT_F32)
        return g4_fail(err, "load_weight %s: dtype %d not convertible to bf16", name, (int)w->dtype);
    int64_t n = g4_weight_numel(w);
    if (n <= 0) return g4_fail(err, "load_weight %s: %lld elements", name, (long long)n);
    G4_CHECK(cudaSetDevice(c->device));
    void *dev = NULL;
    G4_CHECK(cudaMalloc(&dev, (size_t)n * 2));
    cudaError_t e = cudaSuccess;
    if (w->dtype == G4_DT_BF16) {
        e = cudaMemcpyAsync(dev, w->host, (size_t)n * 2, cudaMemcpyHostToDevice, c->stream);
        if (e == cudaSuccess) e = cudaStreamSynchronize(c->stream);
    } else {
        size_t chunk = (size_t)n < G4_CONVERT_CHUNK ? (size_t)n : G4_CONVERT_CHUNK;
        uint16_t *buf = (uint16_t *)malloc(chunk * 2);
        if (!buf) {
            cudaFree(dev);
            return g4_fail(err, "load_weight %s: out of host memory", name);
        }
        for (size_t i0 = 0; i0 < (size_t)n && e == cudaSuccess; i0 += chunk) {
            size_t m = (size_t)n - i0 < chunk ? (size_t)n - i0 : chunk;
            for (size_t i = 0; i < m; i++) {
                float f;
                if (w->dtype == G4_DT_F32) {
                    memcpy(&f, (const char *)w->host + (i0 + i) * 4, 4);
                } else {
                    uint16_t h;
                    memcpy(&h, (const char *)w->host + (i0 + i) * 2, 2);
                    f = g4_f16_to_f32(h);
                }
                buf[i] = g4_f32_to_bf16(f);
            }
            e = cudaMemcpyAsync((uint16_t *)dev + i0, buf, m * 2, cudaMemcpyHostToDevice, c->stream);
            if (e == cudaSuccess) e = cudaStreamSynchronize(c->stream); /* buf is reused next chunk */
        }
        free(buf);
    }
    if (e != cudaSuccess) {
        cudaFree(dev);
        return g4_fail(err, "load_weight %s: copy to device: %s", name, cudaGetErrorString(e));
    }
    w->data = dev;
    w->data_dtype = G4_DT_BF16;
    return 0;
}

static void g4_cuda_unload_weight(void *ctx, g4_weight *w) {
    (void)ctx;
    if (w->data) cudaFree(w->data);
    w->data = NULL;
}

/* Dummy weights: seeded values made on the device (dummy_weights.cu). */
static int g4_cuda_load_dummy_weight(void *ctx, g4_weight *w, uint64_t seed, float mean, float amp, g4_error *err) {
    return g4_cuda_dummy_fill((g4_cuda_ctx *)ctx, w, seed, mean, amp, err);
}

/* --- table and lifetime ------------------------------------------------------------------ */

/* Every op; weights stored as bf16, f16 or f32 (converted to bf16 on upload). */
static int g4_cuda_supports(void *ctx, g4_op op, g4_dtype dt) {
    (void)ctx;
    if (op == G4_OP_LOAD_WEIGHT) return dt == G4_DT_BF16 || dt == G4_DT_F16 || dt == G4_DT_F32;
    return op >= 0 && op < G4_OP_COUNT;
}

static uint64_t g4_cuda_launch_count(void *ctx) { return ((g4_cuda_ctx *)ctx)->launches; }

static const g4_backend_ops g4_cuda_ops = {
    .api_version = G4_BACKEND_API_VERSION,
    .name = "cuda",
    .act_dtype = G4_DT_BF16,
    .kv_dtype = G4_DT_BF16,
    .supports = g4_cuda_supports,
    .alloc = g4_cuda_alloc,
    .free = g4_cuda_free,
    .upload = g4_cuda_upload,
    .download = g4_cuda_download,
    .sync = g4_cuda_sync,
    .staging_alloc = g4_cuda_staging_alloc,
    .staging_free = g4_cuda_staging_free,
    .upload_async = g4_cuda_upload_async,
    .upload_count = g4_cuda_upload_count,
    .load_weight = g4_cuda_load_weight,
    .unload_weight = g4_cuda_unload_weight,
    .embed = g4_cuda_embed,
    .rmsnorm = g4_cuda_rmsnorm,
    .add_rmsnorm = g4_cuda_add_rmsnorm,
    .add_rmsnorm_norm = g4_cuda_add_rmsnorm_norm,
    .add = g4_cuda_add,
    .scale = g4_cuda_scale,
    .matmul = g4_cuda_matmul,
    .geglu = g4_cuda_geglu,
    .qk_norm_rope_cache = g4_cuda_qk_norm_rope_cache,
    .attention = g4_cuda_attention,
    .moe_route = g4_cuda_moe_route,
    .moe_experts = g4_cuda_moe_experts,
    .lm_head = g4_cuda_lm_head,
    .load_dummy_weight = g4_cuda_load_dummy_weight,
    .sample = g4_cuda_sample,
    .graph_begin = g4_cuda_graph_begin,
    .graph_end = g4_cuda_graph_end,
    .graph_launch = g4_cuda_graph_launch,
    .graph_free = g4_cuda_graph_free,
    .rope_2d = g4_cuda_rope_2d,
    .encoder_attention = g4_cuda_encoder_attention,
    .vision_pool = g4_cuda_vision_pool,
    .launch_count = g4_cuda_launch_count,
};

static void g4_cuda_ctx_free(g4_cuda_ctx *c) {
    if (!c) return;
    cudaSetDevice(c->device);
    if (c->stream) cudaStreamSynchronize(c->stream);
    g4_cuda_gemm_plans_free(c);
    for (int i = 0; i < G4_SCR_COUNT; i++)
        if (c->scratch[i]) cudaFree(c->scratch[i]);
    if (c->host_offsets) cudaFreeHost(c->host_offsets);
    if (c->workspace) cudaFree(c->workspace);
    if (c->lt) cublasLtDestroy(c->lt);
    if (c->stream) cudaStreamDestroy(c->stream);
    free(c);
}

static void g4_cuda_destroy(g4_backend *b) {
    if (!b) return;
    g4_cuda_ctx_free((g4_cuda_ctx *)b->ctx);
    free(b);
}

static int g4_cuda_ctx_init(g4_cuda_ctx *c, const g4_backend_options *o, g4_error *err) {
    int n = 0, device = o->device;
    G4_CHECK(cudaGetDeviceCount(&n));
    if (device < 0 || device >= n) return g4_fail(err, "cuda backend: no CUDA device %d (found %d)", device, n);
    c->device = device;
    /* Kernel paths (backend/options.h). Defaults: the fast MoE path and the auto attention path
     * (the decode kernel on decode steps, the flash kernel on prefill-like ones): they run (and
     * pass test_gpu_moe_fast, test_gpu_attention_decode / _fast) on the emulated CUDA target on
     * every commit; no GPU run has timed them yet. simple stays the oracle of both. */
    /* options are made from the enums (g4_backend_options_from_env refuses wrong spellings) */
    G4_INVARIANT((unsigned)o->moe_path <= G4_MOE_PATH_SIMPLE, "MoE path %d", (int)o->moe_path);
    G4_INVARIANT((unsigned)o->attn_path <= G4_ATTN_DECODE, "attention path %d", (int)o->attn_path);
    c->moe_path = o->moe_path;
    c->attn_path = o->attn_path;
    G4_CHECK(cudaSetDevice(device));
    G4_CHECK(cudaDeviceGetAttribute(&c->n_sms, cudaDevAttrMultiProcessorCount, device));
    G4_CHECK(cudaDeviceGetAttribute(&c->smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
    G4_CHECK(cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking));
    G4_CHECK(cublasLtCreate(&c->lt));
    c->workspace_bytes = G4_LT_WORKSPACE_BYTES;
    G4_CHECK(cudaMalloc(&c->workspace, c->workspace_bytes));
    return 0;
}

extern "C" g4_backend *g4_backend_cuda_create(const g4_backend_options *o, g4_error *err) {
    g4_backend_options defaults;
    if (!o) g4_backend_options_default(&defaults), o = &defaults;
    g4_cuda_ctx *c = (g4_cuda_ctx *)calloc(1, sizeof(*c));
    g4_backend *b = (g4_backend *)calloc(1, sizeof(*b));
    if (!c || !b) {
        free(c);
        free(b);
        g4_fail(err, "cuda backend: out of host memory");
        return NULL;
    }
    if (g4_cuda_ctx_init(c, o, err) != 0) {
        g4_cuda_ctx_free(c);
        free(b);
        return NULL;
    }
    b->ops = &g4_cuda_ops;
    b->ctx = c;
    b->destroy = g4_cuda_destroy;
    return b;
}

extern "C" int g4_cuda_device_count(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        (void)cudaGetLastError();
        return 0;
    }
    return n;
}

extern "C" void *g4_cuda_backend_stream(g4_backend *be) {
    return be && be->ctx ? (void *)((g4_cuda_ctx *)be->ctx)->stream : NULL;
}

/* --- the registry's "cuda" kind (backend/registry.h) ------------------------------------- */

#ifdef G4_HAVE_NCCL
static g4_comm *g4_cuda_comm_create(int size, g4_error *err) { return g4_comm_nccl_create_group(size, err); }
static int g4_cuda_comm_join(g4_comm *comm, int rank, g4_backend *be, g4_error *err) {
    return g4_comm_nccl_bind(comm, rank, g4_cuda_backend_stream(be), err);
}
#else
static g4_comm *g4_cuda_comm_create(int size, g4_error *err) {
    g4_fail(err, "tensor parallel on \"cuda\" with %d ranks: this build has no NCCL", size);
    return NULL;
}
static int g4_cuda_comm_join(g4_comm *comm, int rank, g4_backend *be, g4_error *err) {
    (void)comm, (void)be;
    return g4_fail(err, "rank %d: this build has no NCCL", rank); /* unreachable: no comm to join */
}
#endif

extern "C" const g4_backend_kind g4_backend_kind_cuda = {
    .name = "cuda",
    .create = g4_backend_cuda_create,
    .comm_create = g4_cuda_comm_create,
    .comm_join = g4_cuda_comm_join,
};
