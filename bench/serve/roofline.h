/* roofline.h — what a Gemma 4 step must move and compute, from the model geometry alone, and the
 * fraction of that limit a measured run reached (docs/performance-anchors.md §5).
 *
 * Decode step (B sequences, one new token each) reads every weight once — for MoE only the
 * experts some sequence routed to, E·(1 − (1 − k/E)^B) of them per layer on average under uniform
 * routing — plus each sequence's KV: min(ctx, W) tokens on sliding layers, ctx on global layers.
 * The LM head is the tied embedding matrix, read whole; the embedding lookup reads B rows.
 * Prefill of n tokens costs 2 FLOPs per weight per token in every linear layer (experts: top-k
 * per token), the LM head for the last token only, and 4·heads·head_dim FLOPs per attended key
 * per query (QKᵀ and PV; causal, window-limited on sliding layers).
 * Not here: measuring the hardware (roofline_gpu.c) or running the model. */
#ifndef G4_BENCH_ROOFLINE_H
#define G4_BENCH_ROOFLINE_H

#include <stdbool.h>

#include "base/error.h"
#include "model/config.h"

/* Parameter counts of the text decoder (no vision tower). */
typedef struct g4_param_count {
    double total;          /* every text tensor, norms and scalars included */
    double matrices;       /* 2-D/3-D weights only (embedding included) */
    double embedding;      /* V·H, also the tied LM head */
    double expert_each;    /* one expert in one layer (gate_up + down); 0 for dense */
    double experts_all;    /* expert_each · E · L */
} g4_param_count;

void g4_roofline_params(const g4_config *c, g4_param_count *p);

/* KV-cache bytes per token on layer l: kv_heads · head_dim · elem_bytes · (2, or 1 for a k_eq_v
 * global layer when shared_global — one stored tensor, docs/model-spec.md §4). */
double g4_roofline_kv_bytes_token(const g4_config *c, int l, int elem_bytes, bool shared_global);

/* Bytes one decode step reads for `batch` sequences at context length ctx (tokens including the
 * one being decoded): weights (elem_bytes each) + KV. weights_out / kv_out may be NULL. */
double g4_roofline_decode_bytes(const g4_config *c, int batch, long ctx, int elem_bytes, bool shared_global,
                                double *weights_out, double *kv_out);

/* FLOPs of prefilling one prompt of n tokens (from position 0), split in linear + attention. */
double g4_roofline_prefill_flops(const g4_config *c, long n, double *linear_out, double *attn_out);

/* Peak rates measured on the device (roofline_gpu.c). */
typedef struct g4_hw_peak {
    bool measured;
    char device[256];
    double copy_bytes_per_s;   /* device-to-device copy, bytes read + written per second */
    double bf16_flops_per_s;   /* cuBLAS BF16 GEMM, FP32 accumulate */
} g4_hw_peak;

/* Measures copy bandwidth and BF16 GEMM rate on GPU `device`. Returns 0, or −1 with err saying
 * why (no GPU build: "the roofline needs a GPU"). */
int g4_hw_measure(int device, g4_hw_peak *hw, g4_error *err);

#endif
