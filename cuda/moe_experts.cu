/* moe_experts.cu — the routed experts of a MoE layer, simple grouped path:
 * counting-sort the (token, expert) pairs by expert, gather their inputs, one cuBLASLt GEMM
 * per non-empty expert for gate_up and for down, GeGLU in between, weighted combine back in
 * token order. Correct for any routing (all tokens on one expert, experts with no tokens).
 *
 * Limitations: it reads the per-expert offsets back to the host (one stream sync per call,
 * so it cannot be captured in a CUDA graph), and runs 2·(experts hit) separate GEMMs.
 * Dispatch: with MoE path fast (the default) calls of 1 ≤ T ≤ 64 tokens take the decode
 * path of moe_decode.cu (no host sync); MoE path simple keeps every call here (oracle).
 * Not here: the router (moe_route.cu), the dense shared MLP (model side: matmul + geglu).
 * Twin: g4_cpu_moe_experts (csrc/backend/cpu/cpu_moe.c). Test: tests/gpu/test_gpu_moe.c.
 * Bench: bench/kernels/bench_kernels.c "moe_layer" (with the simple path). */
#include "ctx.cuh"

/* Counting sort of the P = T·k pairs q = t·k + j by expert e = ids[q] (stable in q):
 *   offsets[e] = #pairs with expert < e              [E+1], offsets[E] = valid pairs
 *   src[r]     = pair q at sorted row r              [P], −1 past offsets[E]
 *   inv[q]     = sorted row of pair q                [P], −1 for ids outside [0,E)
 * One block; thread e counts and places the pairs of expert e, so the order within an
 * expert is the pair order: deterministic, no atomics. Cost O(P·E / threads). */
static __global__ void g4_moe_sort_kernel(int32_t *offsets, int32_t *src, int32_t *inv, const int32_t *ids, int P,
                                          int E) {
    for (int q = threadIdx.x; q < P; q += blockDim.x) {
        src[q] = -1;
        inv[q] = -1;
    }
    for (int e = threadIdx.x; e < E; e += blockDim.x) {
        int n = 0;
        for (int q = 0; q < P; q++) n += (ids[q] == e);
        offsets[e + 1] = n;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        offsets[0] = 0;
        for (int e = 0; e < E; e++) offsets[e + 1] += offsets[e];
    }
    __syncthreads();
    for (int e = threadIdx.x; e < E; e += blockDim.x) {
        int r = offsets[e];
        for (int q = 0; q < P; q++)
            if (ids[q] == e) {
                src[r] = q;
                inv[q] = r;
                r++;
            }
    }
}

/* xs[r,:] = x[src[r] / k, :]   (zeros for unused rows)     x [T,H], xs [P,H] bf16; grid P blocks */
static __global__ void g4_moe_gather_kernel(__nv_bfloat16 *xs, const __nv_bfloat16 *x, const int32_t *src, int H,
                                            int k) {
    int r = blockIdx.x, q = src[r];
    __nv_bfloat16 *dst = xs + (size_t)r * H;
    if (q < 0) {
        for (int i = threadIdx.x; i < H; i += blockDim.x) g4_st(dst, i, 0.0f);
        return;
    }
    const __nv_bfloat16 *s = x + (size_t)(q / k) * H;
    for (int i = threadIdx.x; i < H; i += blockDim.x) dst[i] = s[i];
}

/* y[t,:] = bf16( Σ_{j<k} weights[t,j] · ys[inv[t·k+j], :] )    ys [P,H] f32, y [T,H] bf16
 * (pairs with inv −1 contribute nothing). grid T blocks, 256 threads over H. */
static __global__ void g4_moe_combine_kernel(__nv_bfloat16 *y, const float *ys, const int32_t *inv,
                                             const float *weights, int H, int k) {
    int t = blockIdx.x;
    for (int i = threadIdx.x; i < H; i += blockDim.x) {
        float a = 0.0f;
        for (int j = 0; j < k; j++) {
            int r = inv[(size_t)t * k + j];
            if (r >= 0) a += weights[(size_t)t * k + j] * ys[(size_t)r * H + i];
        }
        g4_st(y, (size_t)t * H + i, a);
    }
}

int g4_cuda_moe_experts(void *ctx, void *y, const void *x, const int32_t *ids, const float *weights,
                        const g4_weight *gate_up, const g4_weight *down, int T, int top_k, g4_error *err) {
    g4_cuda_ctx *c = (g4_cuda_ctx *)ctx;
    G4_TRY(g4_cuda_check_weight(gate_up, "experts gate_up", -1, err));
    G4_TRY(g4_cuda_check_weight(down, "experts down", -1, err));
    if (gate_up->ndim != 3 || down->ndim != 3)
        return g4_fail(err, "moe_experts: gate_up must be [E,2I,H] and down [E,H,I] (got %d-D, %d-D)", gate_up->ndim,
                       down->ndim);
    int E = (int)gate_up->shape[0], I2 = (int)gate_up->shape[1], H = (int)gate_up->shape[2], I = I2 / 2;
    if (I2 % 2 || down->shape[0] != E || down->shape[1] != H || down->shape[2] != I)
        return g4_fail(err, "moe_experts: down %s is [%lld,%lld,%lld], expected [%d,%d,%d] from gate_up",
                       down->name ? down->name : "?", (long long)down->shape[0], (long long)down->shape[1],
                       (long long)down->shape[2], E, H, I);
    if (top_k < 1) return g4_fail(err, "moe_experts: top_k %d < 1", top_k);
    if (T <= 0) return 0;
    if (c->moe_path == G4_MOE_PATH_FAST && g4_cuda_moe_decode_fits(E, I, H, T, top_k, y, x, gate_up->data, down->data))
        return g4_cuda_moe_decode(c, y, x, ids, weights, gate_up->data, down->data, E, I, H, T, top_k, err);
    size_t P = (size_t)T * top_k;

    int32_t *idx;
    void *xs, *gu, *act, *ys;
    G4_TRY(g4_cuda_scratch(c, G4_SCR_MOE_IDX, ((size_t)E + 1 + 2 * P) * sizeof(int32_t), (void **)&idx, err));
    G4_TRY(g4_cuda_scratch(c, G4_SCR_MOE_X, P * H * sizeof(__nv_bfloat16), &xs, err));
    G4_TRY(g4_cuda_scratch(c, G4_SCR_MOE_GU, P * I2 * sizeof(__nv_bfloat16), &gu, err));
    G4_TRY(g4_cuda_scratch(c, G4_SCR_MOE_ACT, P * I * sizeof(__nv_bfloat16), &act, err));
    G4_TRY(g4_cuda_scratch(c, G4_SCR_MOE_Y, P * H * sizeof(float), &ys, err));
    int32_t *offsets = idx, *src = idx + E + 1, *inv = src + P;
    if (c->host_offsets_n < E + 1) {
        if (c->host_offsets) G4_CHECK(cudaFreeHost(c->host_offsets));
        c->host_offsets = NULL;
        c->host_offsets_n = 0;
        G4_CHECK(cudaMallocHost((void **)&c->host_offsets, (size_t)(E + 1) * sizeof(int32_t)));
        c->host_offsets_n = E + 1;
    }

    G4_LAUNCH(1, 256, 0, g4_launch_stream(c), g4_moe_sort_kernel)(offsets, src, inv, ids, (int)P, E);
    G4_CHECK_LAUNCH();
    G4_LAUNCH((unsigned)P, 256, 0, g4_launch_stream(c), g4_moe_gather_kernel)
    ((__nv_bfloat16 *)xs, (const __nv_bfloat16 *)x, src, H, top_k);
    G4_CHECK_LAUNCH();
    G4_CHECK(cudaMemcpyAsync(c->host_offsets, offsets, (size_t)(E + 1) * sizeof(int32_t), cudaMemcpyDeviceToHost,
                             c->stream));
    G4_CHECK(cudaStreamSynchronize(c->stream));
    const int32_t *off = c->host_offsets;

    const __nv_bfloat16 *Wgu = (const __nv_bfloat16 *)gate_up->data, *Wd = (const __nv_bfloat16 *)down->data;
    for (int e = 0; e < E; e++) {
        int n = off[e + 1] - off[e];
        if (n <= 0) continue;
        if (g4_cuda_gemm(c, (__nv_bfloat16 *)gu + (size_t)off[e] * I2, CUDA_R_16BF,
                         (const __nv_bfloat16 *)xs + (size_t)off[e] * H, Wgu + (size_t)e * I2 * H, n, I2, H, err))
            return g4_fail_prefix(err, "moe_experts: expert %d gate_up", e);
    }
    size_t valid = (size_t)off[E];
    if (valid > 0) {
        if (g4_cuda_geglu(c, act, gu, (int)valid, I, err)) return g4_fail_prefix(err, "moe_experts");
    }
    for (int e = 0; e < E; e++) {
        int n = off[e + 1] - off[e];
        if (n <= 0) continue;
        if (g4_cuda_gemm(c, (float *)ys + (size_t)off[e] * H, CUDA_R_32F,
                         (const __nv_bfloat16 *)act + (size_t)off[e] * I, Wd + (size_t)e * H * I, n, H, I, err))
            return g4_fail_prefix(err, "moe_experts: expert %d down", e);
    }
    G4_LAUNCH(T, 256, 0, g4_launch_stream(c), g4_moe_combine_kernel)
    ((__nv_bfloat16 *)y, (const float *)ys, inv, weights, H, top_k);
    G4_CHECK_LAUNCH();
    return 0;
}
