/* config.h — the Gemma 4 text-decoder geometry, parsed from a Hugging Face config.json.
 *
 * Accepts the multimodal form (`Gemma4ForConditionalGeneration`, fields under `text_config`)
 * and the text-only form (fields at top level). Global-layer geometry may be given either as
 * `global_head_dim` / `num_global_key_value_heads` (as Google's checkpoints write it) or as
 * transformers' `per_layer_config` map. Settings the real 31B / 26B-A4B never use (per-layer
 * embeddings, KV sharing, double-wide MLP, audio, bidirectional "all", attention bias, ...) are
 * rejected with a message naming the field. The multimodal form's `vision_config` is parsed too
 * (g4_vision_config; a patch size other than 16 or a pooling other than 3 × 3, clipped linears,
 * a non-axial RoPE are refused). This is not a general transformers config reader. */
#ifndef G4_MODEL_CONFIG_H
#define G4_MODEL_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "base/error.h"
#include "base/rope.h"

#define G4_MAX_LAYERS 128
#define G4_MAX_EOS 8

typedef enum { G4_LAYER_SLIDING = 0, G4_LAYER_GLOBAL = 1 } g4_layer_type;

/* The vision tower's geometry (`vision_config`; model/vision.h). Absent fields take transformers'
 * Gemma4VisionConfig defaults; the real 31B / 26B-A4B tower is 1152 wide, 27 layers, 16 heads × 72,
 * MLP 4304, standardize true. */
typedef struct g4_vision_config {
    bool present;            /* vision_config is an object (false: null or absent) */
    int hidden;              /* D: 1152 */
    int intermediate;        /* GeGLU width: 4304 */
    int n_layers;            /* 27 */
    int n_heads, n_kv_heads; /* 16, 16 */
    int head_dim;            /* 72 (a multiple of 4: two rotate-half blocks, column and row) */
    int pos_size;            /* position_embedding_size: rows of each of the two position tables */
    double rope_theta;       /* 100 */
    float eps;               /* rms_norm_eps */
    bool standardize;        /* std_bias / std_scale after the pooler */
} g4_vision_config;

typedef struct g4_config {
    int hidden;              /* H: 5376 (31B), 2816 (26B) */
    int n_layers;            /* L: 60 / 30 */
    int n_heads;             /* query heads, both layer types: 32 / 16 */
    int n_kv_heads;          /* sliding-layer KV heads: 16 / 8 */
    int n_global_kv_heads;   /* global-layer KV heads: 4 / 2 */
    int head_dim;            /* sliding-layer head dim: 256 */
    int global_head_dim;     /* global-layer head dim: 512 */
    int intermediate;        /* dense MLP width: 21504 / 2112 */
    int vocab;               /* V: 262144 */
    int sliding_window;      /* W: 1024 keys including the current token */
    int max_positions;       /* max_position_embeddings */
    bool k_eq_v;             /* global layers take V from the K projection (no v_proj) */
    g4_rope rope_sliding;
    g4_rope rope_global;
    bool moe;                /* enable_moe_block: dense MLP + experts in every layer */
    int n_experts;           /* 128 */
    int top_k;               /* 8 */
    int moe_intermediate;    /* 704 */
    float final_softcap;     /* 30; 0 = none */
    float eps;               /* rms_norm_eps, 1e-6 */
    bool tie_embeddings;     /* must be true: LM head = embed_tokens */
    bool multimodal;         /* config had text_config (checkpoint tensors under model.language_model.) */
    int bos_id, pad_id;
    int n_eos;
    int eos_ids[G4_MAX_EOS];
    g4_layer_type layer_type[G4_MAX_LAYERS];
    g4_vision_config vision; /* multimodal form only */
} g4_config;

/* Parses config.json text. Returns 0, or -1 with err naming the offending field. */
int g4_config_parse(g4_config *cfg, const char *json_text, g4_error *err);

/* Reads and parses a config.json file. */
int g4_config_load(g4_config *cfg, const char *path, g4_error *err);

/* Per-layer geometry helpers. */
static inline bool g4_layer_is_global(const g4_config *c, int l) { return c->layer_type[l] == G4_LAYER_GLOBAL; }
static inline int g4_layer_head_dim(const g4_config *c, int l) {
    return g4_layer_is_global(c, l) ? c->global_head_dim : c->head_dim;
}
static inline int g4_layer_kv_heads(const g4_config *c, int l) {
    return g4_layer_is_global(c, l) ? c->n_global_kv_heads : c->n_kv_heads;
}
/* True when layer l has no v_proj (its V comes from the raw K projection). */
static inline bool g4_layer_k_eq_v(const g4_config *c, int l) { return c->k_eq_v && g4_layer_is_global(c, l); }

int g4_config_count_layers(const g4_config *c, g4_layer_type t);

#endif
