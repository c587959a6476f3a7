/* cpu_moe.c — reference MoE ops of the CPU backend: the router (fp32 softmax over all experts,
 * exact top-k with lower-id tie break, renormalise, × per-expert scale) and the experts
 * (GeGLU per selected expert, weighted sum). Straight loops per token; the CUDA backend
 * groups tokens by expert instead. Spec: docs/model-spec.md §2.6.
 * bf16 mode (moe_route.cu, moe_experts.cu simple path): inputs rounded on read; gate and up
 * outputs and the GeGLU product rounded; the down outputs and their weighted sum stay f32 until
 * the sum is rounded once (table in cpu_ops.c). */
#include <math.h>
#include <stdlib.h>

#include "backend/cpu/cpu_internal.h"

/* u = RMSNorm_∅(h1[t]) ⊙ scale × H^-½; p = softmax(u·projᵀ); top-k; w = p/Σp_top × expert_scale */
int g4_cpu_moe_route(void *ctx, int32_t *ids, float *weights, const void *h1v, const g4_weight *proj,
                     const g4_weight *scale, const g4_weight *expert_scale, int T, int top_k, float eps,
                     g4_error *err) {
    int bf = g4_cpu_is_bf16(ctx), order = g4_cpu_order(ctx);
    int E = (int)proj->shape[0], H = (int)proj->shape[1];
    if (top_k < 1 || top_k > E) return g4_fail(err, "moe_route: top_k %d not in [1, %d]", top_k, E);
    float *sc = malloc((size_t)H * sizeof *sc), *es = malloc((size_t)E * sizeof *es);
    float *W = malloc((size_t)E * H * sizeof *W), *u = malloc((size_t)H * sizeof *u);
    float *prob = malloc((size_t)E * sizeof *prob);
    int rc = 0;
    if (!sc || !es || !W || !u || !prob) {
        rc = g4_fail(err, "moe_route: out of memory");
        goto done;
    }
    g4_cpu_weight_f32(scale, 0, H, sc);
    g4_cpu_weight_f32(expert_scale, 0, E, es);
    g4_cpu_weight_f32(proj, 0, (int64_t)E * H, W);
    float root = 1.0f / sqrtf((float)H);
    for (int t = 0; t < T; t++) {
        const float *h1 = (const float *)h1v + (size_t)t * H;
        if (bf) {
            for (int i = 0; i < H; i++) u[i] = g4_round_bf16(h1[i]);
            h1 = u;
        }
        g4_cpu_rmsnorm_row(u, h1, NULL, H, eps);
        for (int i = 0; i < H; i++) u[i] = u[i] * sc[i] * root;
        float mx = -INFINITY;
        for (int e = 0; e < E; e++) {
            prob[e] = g4_cpu_dot_ord(u, W + (size_t)e * H, H, order);
            if (prob[e] > mx) mx = prob[e];
        }
        double sum = 0;
        for (int e = 0; e < E; e++) sum += (prob[e] = expf(prob[e] - mx));
        for (int e = 0; e < E; e++) prob[e] = (float)(prob[e] / sum);
        /* exact top-k: repeatedly take the largest remaining (strict > keeps the lower id on ties) */
        double top_sum = 0;
        for (int j = 0; j < top_k; j++) {
            int best = -1;
            for (int e = 0; e < E; e++) {
                int taken = 0;
                for (int i = 0; i < j; i++) taken |= ids[(size_t)t * top_k + i] == e;
                if (!taken && (best < 0 || prob[e] > prob[best])) best = e;
            }
            ids[(size_t)t * top_k + j] = best;
            top_sum += prob[best];
        }
        for (int j = 0; j < top_k; j++) {
            int e = ids[(size_t)t * top_k + j];
            weights[(size_t)t * top_k + j] = (float)(prob[e] / top_sum) * es[e];
        }
    }
done:
    free(sc);
    free(es);
    free(W);
    free(u);
    free(prob);
    return rc;
}

/* y[t] = Σ_j w[t,j] · D_e (gelu_tanh(G_e x[t]) ⊙ U_e x[t]),  e = ids[t,j];
 * gate_up[e] = [G_e; U_e] (2I × H), down[e] (H × I). */
int g4_cpu_moe_experts(void *ctx, void *yv, const void *xv, const int32_t *ids, const float *weights,
                       const g4_weight *gate_up, const g4_weight *down, int T, int top_k, g4_error *err) {
    int bf = g4_cpu_is_bf16(ctx), order = g4_cpu_order(ctx);
    int E = (int)gate_up->shape[0], I2 = (int)gate_up->shape[1], H = (int)gate_up->shape[2], I = I2 / 2;
    float *row = malloc((size_t)(H > I ? H : I) * sizeof *row), *gu = malloc((size_t)I2 * sizeof *gu);
    float *xb = malloc((size_t)H * sizeof *xb); /* bf16 mode: the token's input rounded on read */
    if (!row || !gu || !xb) {
        free(row);
        free(gu);
        free(xb);
        return g4_fail(err, "moe_experts: out of memory");
    }
    int rc = 0;
    for (int t = 0; t < T && rc == 0; t++) {
        const float *x = (const float *)xv + (size_t)t * H;
        float *y = (float *)yv + (size_t)t * H;
        if (bf) {
            for (int i = 0; i < H; i++) xb[i] = g4_round_bf16(x[i]);
            x = xb;
        }
        for (int i = 0; i < H; i++) y[i] = 0;
        for (int j = 0; j < top_k; j++) {
            int e = ids[(size_t)t * top_k + j];
            if (e < 0 || e >= E) {
                rc = g4_fail(err, "moe_experts: expert id %d out of range [0, %d)", e, E);
                break;
            }
            float w = weights[(size_t)t * top_k + j];
            for (int r = 0; r < I2; r++) {
                g4_cpu_weight_f32(gate_up, ((int64_t)e * I2 + r) * H, H, row);
                gu[r] = g4_cpu_dot_ord(x, row, H, order);
                if (bf) gu[r] = g4_round_bf16(gu[r]); /* gate_up GEMM writes bf16 */
            }
            for (int r = 0; r < I; r++) {
                gu[r] = g4_cpu_gelu_tanh(gu[r]) * gu[I + r];
                if (bf) gu[r] = g4_round_bf16(gu[r]); /* g4_cuda_geglu (activation.cu) writes bf16 */
            }
            for (int o = 0; o < H; o++) {
                g4_cpu_weight_f32(down, ((int64_t)e * H + o) * I, I, row);
                y[o] += w * g4_cpu_dot_ord(gu, row, I, order); /* down GEMM writes f32 */
            }
        }
        if (bf) g4_cpu_round_bf16(y, (size_t)H); /* g4_moe_combine_kernel writes bf16 */
    }
    free(row);
    free(gu);
    free(xb);
    return rc;
}
