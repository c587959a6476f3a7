/* vision_weights.h — the vision tower's weight map: checkpoint names under `model.vision_tower.`
 * and `model.embed_vision.` → typed slots, every shape checked against g4_vision_config (spec
 * §3.5). The position table [2, P, D] is seen as two [P, D] weights (column table, row table).
 * Nothing is copied: slots point into the safetensors mapping, as the text weights do.
 * Not here: the text decoder's weights (weights.h), running the tower (vision.c). */
#ifndef G4_MODEL_VISION_WEIGHTS_H
#define G4_MODEL_VISION_WEIGHTS_H

#include "base/error.h"
#include "base/weight.h"
#include "model/config.h"
#include "model/safetensors.h"

typedef struct g4_vision_layer_weights {
    g4_weight input_norm, post_attn_norm, pre_ffn_norm, post_ffn_norm; /* [D] */
    g4_weight q_proj, k_proj, v_proj;                                  /* [heads·d, D] */
    g4_weight o_proj;                                                  /* [D, heads·d] */
    g4_weight q_norm, k_norm;                                          /* [d] */
    g4_weight gate_proj, up_proj;                                      /* [I, D] */
    g4_weight down_proj;                                               /* [D, I] */
} g4_vision_layer_weights;

typedef struct g4_vision_weights {
    g4_weight input_proj;             /* [D, 768] patch embedding */
    g4_weight pos_x, pos_y;           /* [P, D] each: position_embedding_table[0] (column), [1] (row) */
    g4_weight std_bias, std_scale;    /* [D]; absent without standardize */
    g4_weight projection;             /* [H, D] embed_vision.embedding_projection */
    int n_layers;
    g4_vision_layer_weights *layers;  /* [n_layers] */
} g4_vision_weights;

/* 1 when st holds any tensor of the vision tower (`model.vision_tower.`), else 0. */
int g4_vision_weights_in(const g4_safetensors *st);

/* Fills w for tower vc projecting to text width H. Returns 0, or -1 with err naming the tensor
 * that is missing, mis-shaped or unexpected under the vision prefixes. */
int g4_vision_weights_map(g4_vision_weights *w, const g4_vision_config *vc, int H, const g4_safetensors *st,
                          g4_error *err);
void g4_vision_weights_free(g4_vision_weights *w);

/* Calls fn on every present slot (fixed order). */
int g4_vision_weights_for_each(g4_vision_weights *w, int (*fn)(g4_weight *w, void *user), void *user);

#endif
