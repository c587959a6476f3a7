/* moe_route.cu — the MoE router: fp32 logits, softmax over all experts, exact top-k with
 * lower-id tie break, renormalise, × per-expert scale. One block per token.
 * Not here: the experts themselves (moe_experts.cu).
 * Twin: g4_cpu_moe_route (csrc/backend/cpu/cpu_moe.c). Test: tests/gpu/test_gpu_moe.c.
 * Bench: bench/kernels/bench_kernels.c "moe_layer" (route_us). */
#include "ctx.cuh"

#define G4_ROUTE_THREADS 256
#define G4_ROUTE_MAX_K 64

/* Per token t:
 *   u[H]    = RMSNorm_∅(h1[t]) ⊙ scale × H^-½                         (f32, shared)
 *   z[e]    = u · proj[e,:]                 e < E                       (f32, one warp per expert)
 *   p[e]    = softmax(z)[e]
 *   S       = top_k by p; among equal p the lower e first (strict > in an ascending scan)
 *   ids[t,j]     = S_j                       in descending p
 *   weights[t,j] = p[S_j] / Σ_{e∈S} p[e] × expert_scale[S_j]
 * h1 [T,H] bf16, proj [E,H] bf16, scale [H] bf16, expert_scale [E] bf16.
 * grid: T blocks; 256 threads; dynamic shared (H + E) floats. The softmax and the selection
 * run on thread 0: E·k comparisons (1024 at 128×8), serial and plainly exact. */
static __global__ void g4_moe_route_kernel(int32_t *ids, float *weights, const __nv_bfloat16 *h1,
                                           const __nv_bfloat16 *proj, const __nv_bfloat16 *scale,
                                           const __nv_bfloat16 *expert_scale, int H, int E, int k, float eps) {
    G4_SHARED_DYN(float, sm);
    G4_SHARED(float, red, [32]);
    float *u = sm, *z = sm + H;
    const int t = blockIdx.x, lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;
    const __nv_bfloat16 *x = h1 + (size_t)t * H;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < H; i += blockDim.x) {
        float v = g4_ld(x, i);
        u[i] = v;
        ss += v * v;
    }
    float inv = rsqrtf(g4_block_sum(ss, red) / (float)H + eps) * rsqrtf((float)H);
    for (int i = threadIdx.x; i < H; i += blockDim.x) u[i] = u[i] * inv * g4_ld(scale, i);
    __syncthreads();
    for (int e = warp; e < E; e += n_warps) {
        const __nv_bfloat16 *w = proj + (size_t)e * H;
        float part = 0.0f;
        for (int i = lane; i < H; i += 32) part += u[i] * g4_ld(w, i);
        part = g4_warp_sum(part);
        if (lane == 0) z[e] = part;
    }
    __syncthreads();
    if (threadIdx.x != 0) return;
    float mx = -INFINITY, sum = 0.0f;
    for (int e = 0; e < E; e++) mx = fmaxf(mx, z[e]);
    for (int e = 0; e < E; e++) {
        z[e] = expf(z[e] - mx);
        sum += z[e];
    }
    for (int e = 0; e < E; e++) z[e] /= sum; /* z now holds p */
    int sel[G4_ROUTE_MAX_K];
    float top_sum = 0.0f;
    for (int j = 0; j < k; j++) {
        int best = -1;
        for (int e = 0; e < E; e++) {
            bool taken = false;
            for (int q = 0; q < j; q++) taken |= (sel[q] == e);
            if (!taken && (best < 0 || z[e] > z[best])) best = e;
        }
        sel[j] = best;
        top_sum += z[best];
    }
    for (int j = 0; j < k; j++) {
        ids[(size_t)t * k + j] = sel[j];
        weights[(size_t)t * k + j] = z[sel[j]] / top_sum * g4_ld(expert_scale, sel[j]);
    }
}

int g4_cuda_moe_route(void *ctx, int32_t *ids, float *weights, const void *h1, const g4_weight *proj,
                      const g4_weight *scale, const g4_weight *expert_scale, int T, int top_k, float eps,
                      g4_error *err) {
    g4_cuda_ctx *c = (g4_cuda_ctx *)ctx;
    G4_TRY(g4_cuda_check_weight(proj, "router proj", -1, err));
    if (proj->ndim != 2) return g4_fail(err, "moe_route: router proj %s must be [E,H]", proj->name ? proj->name : "?");
    int E = (int)proj->shape[0], H = (int)proj->shape[1];
    G4_TRY(g4_cuda_check_weight(scale, "router scale", H, err));
    G4_TRY(g4_cuda_check_weight(expert_scale, "router per_expert_scale", E, err));
    if (top_k < 1 || top_k > E || top_k > G4_ROUTE_MAX_K)
        return g4_fail(err, "moe_route: top_k %d out of range [1, min(E=%d, %d)]", top_k, E, G4_ROUTE_MAX_K);
    size_t shmem = (size_t)(H + E) * sizeof(float);
    if (shmem > 48 * 1024) return g4_fail(err, "moe_route: H=%d + E=%d floats exceed 48 KiB of shared memory", H, E);
    if (T <= 0) return 0;
    G4_LAUNCH(T, G4_ROUTE_THREADS, shmem, g4_launch_stream(c), g4_moe_route_kernel)
    (ids, weights, (const __nv_bfloat16 *)h1, (const __nv_bfloat16 *)proj->data, (const __nv_bfloat16 *)scale->data,
     (const __nv_bfloat16 *)expert_scale->data, H, E, top_k, eps);
    G4_CHECK_LAUNCH();
    return 0;
}
