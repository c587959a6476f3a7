/* weights.h — the Gemma 4 text-decoder weight map: checkpoint names → typed slots.
 *
 * g4_weights_map() walks a config and an opened checkpoint, finds every text-decoder tensor
 * under either prefix (`model.language_model.` for the multimodal checkpoints, `model.` for
 * text-only conversions), checks each shape against the config, and fails naming the tensor
 * and the expected shape on anything missing, extra or mis-shaped. Vision tensors
 * (`model.vision_tower.`, `model.embed_vision.`) are skipped. Tied LM head: no lm_head.weight
 * is expected (one that exists must equal embed_tokens' shape and is ignored).
 *
 * A g4_weight (base/weight.h) starts as a host view into the mmapped file; a backend then makes
 * it usable on its side (backend.h, load_weight) and sets `data`. */
#ifndef G4_MODEL_WEIGHTS_H
#define G4_MODEL_WEIGHTS_H

#include <stdbool.h>
#include <stdint.h>

#include "base/error.h"
#include "base/weight.h"
#include "model/config.h"
#include "model/safetensors.h"

/* One decoder layer. Shapes for 31B sliding / global; 26B in the spec (§3.2, §3.3). */
typedef struct g4_layer_weights {
    g4_weight input_norm;        /* [H] */
    g4_weight q_proj;            /* [n_q·d, H] */
    g4_weight k_proj;            /* [n_kv·d, H] */
    g4_weight v_proj;            /* [n_kv·d, H]; absent on k_eq_v (global) layers */
    g4_weight o_proj;            /* [H, n_q·d] */
    g4_weight q_norm;            /* [d] shared by all heads */
    g4_weight k_norm;            /* [d] */
    g4_weight post_attn_norm;    /* [H] */
    g4_weight pre_ffn_norm;      /* [H] dense MLP input */
    g4_weight gate_proj;         /* [I, H] */
    g4_weight up_proj;           /* [I, H] */
    g4_weight down_proj;         /* [H, I] */
    g4_weight post_ffn_norm;     /* [H] dense model: after MLP; MoE model: after dense+moe sum */
    g4_weight layer_scalar;      /* [1] multiplies the whole residual at the end of the layer */
    /* MoE layers only (absent otherwise) */
    g4_weight post_ffn_norm_1;   /* [H] dense branch out */
    g4_weight pre_ffn_norm_2;    /* [H] expert input */
    g4_weight post_ffn_norm_2;   /* [H] expert sum out */
    g4_weight router_proj;       /* [E, H] */
    g4_weight router_scale;      /* [H] */
    g4_weight router_expert_scale; /* [E] per_expert_scale */
    g4_weight experts_gate_up;   /* [E, 2·I_moe, H], gate rows first */
    g4_weight experts_down;      /* [E, H, I_moe] */
} g4_layer_weights;

typedef struct g4_weights {
    g4_weight embed;             /* [V, H], also the tied LM head */
    g4_weight final_norm;        /* [H] */
    int n_layers;
    g4_layer_weights layers[G4_MAX_LAYERS];
    int64_t n_text_params;       /* elements of all mapped text tensors */
    int64_t n_all_params;        /* elements of every tensor in the checkpoint, vision included */
    int n_skipped;               /* vision / projector tensors ignored */
} g4_weights;

/* Fills w from st per cfg. Returns 0, or -1 with err naming the tensor and expected shape. */
int g4_weights_map(g4_weights *w, const g4_config *cfg, const g4_safetensors *st, g4_error *err);

/* Maps the tensor `name` of st into w (a host view), requiring exactly shape[0..ndim) and a float
 * dtype. Returns 0, or -1 with err naming the tensor and the expected shape. */
int g4_weight_take(g4_weight *w, const g4_safetensors *st, const char *name, int ndim, const int64_t *shape,
                   g4_error *err);

/* Calls fn on every present weight slot, in a fixed order (embed, final_norm, layers). */
typedef int (*g4_weight_fn)(g4_weight *w, void *user);
int g4_weights_for_each(g4_weights *w, g4_weight_fn fn, void *user);

#endif
