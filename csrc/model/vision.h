/* vision.h — the Gemma 4 vision tower and its projection into the text model (embed_vision):
 * 16 × 16 patches → patch embedding + learned 2-D position table → 27 encoder layers (1152 wide,
 * 16 heads × 72, q/k norms, 2-D RoPE θ = 100, bidirectional attention over one image, scale 1) →
 * 3 × 3 average pooling × √1152 → (x − std_bias) ⊙ std_scale → weightless RMSNorm → Linear
 * 1152 → H. Runs over the backend op table of the model it belongs to.
 * Not here: decoding and resizing (csrc/media), where the soft tokens go in the prompt. */
#ifndef G4_MODEL_VISION_H
#define G4_MODEL_VISION_H

#include "base/error.h"
#include "model/fuse.h"
#include "model/gemma4.h"

typedef struct g4_vision g4_vision;

/* The model's vision tower, or NULL when its checkpoint has none (a text-only checkpoint). */
g4_vision *g4_model_vision(g4_model *m);

/* patches: f32 [ph × pw, 768] as g4_vision_preprocess makes them (ph, pw multiples of 3).
 * out: f32 [(ph / 3) × (pw / 3), H] soft-token embeddings (H the text model's hidden size), not
 * scaled by √H. 0, or −1 with err. Not thread-safe: the caller serialises with the model's steps. */
int g4_vision_encode(g4_vision *v, const float *patches, int ph, int pw, float *out, g4_error *err);

/* --- model-internal: g4_model_open / g4_model_close (gemma4.c) ------------------------------- */

/* 1 when the checkpoint (cfg and st) has a vision tower, else 0 (a text-only model). */
int g4_vision_in(const g4_config *cfg, const g4_safetensors *st);
/* Maps the tower's weights from st (host views; nothing loaded on the backend yet). *out = NULL
 * (and 0) when cfg has no vision_config or st no vision tensors: a text-only model. −1 with err
 * naming the tensor for a tower that does not match its vision_config. text_hidden: H. */
int g4_vision_open(g4_vision **out, const g4_config *cfg, int text_hidden, const g4_safetensors *st, g4_backend *be,
                   g4_error *err);
/* Calls fn on each of the tower's weights (to load, count or unload them with the text weights). */
int g4_vision_for_each_weight(g4_vision *v, int (*fn)(g4_weight *w, void *user), void *user);
/* The tower's fused weights (each layer's gate|up, fuse.h), which for_each_weight does not visit:
 * the loader fills, loads and drops each. */
int g4_vision_for_each_fused(g4_vision *v, int (*fn)(g4_fused_weight *f, void *user), void *user);
/* Frees the tower's buffers and map; its weights must be unloaded first. NULL ok. */
void g4_vision_free(g4_vision *v);

#endif
