/* config.c — parses a Gemma 4 config.json (cJSON) into g4_config (see config.h).
 *
 * Both forms: multimodal (`text_config` object, checkpoint tensors under
 * `model.language_model.`) and text-only (fields at top level). Defaults follow
 * transformers 5.23's Gemma4TextConfig where a field may be absent; every unsupported
 * setting is rejected with a message naming the field. Not a general config reader.
 * vision_config (multimodal form) fills g4_config.vision with Gemma4VisionConfig's defaults for
 * absent fields; its errors name the field as vision_config.<name>. */
#include "model/config.h"

#include "base/file.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

#include <cjson/cJSON.h>

/* ---- small typed field readers ------------------------------------------------------ */

/* A field that is absent or JSON null reads as "missing". */
static const cJSON *field(const cJSON *obj, const char *name) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    return (v && !cJSON_IsNull(v)) ? v : NULL;
}

static int as_int(const cJSON *v, const char *name, int *out, g4_error *err) {
    if (!cJSON_IsNumber(v)) return g4_fail(err, "config: field %s: expected an integer", name);
    double d = v->valuedouble;
    if (d != floor(d) || d < -2147483648.0 || d > 2147483647.0)
        return g4_fail(err, "config: field %s: %g is not a 32-bit integer", name, d);
    *out = (int)d;
    return 0;
}

/* Required integer. */
static int req_int(const cJSON *obj, const char *name, int *out, g4_error *err) {
    const cJSON *v = field(obj, name);
    if (!v) return g4_fail(err, "config: missing required field %s", name);
    return as_int(v, name, out, err);
}

/* Required integer > 0. */
static int req_pos(const cJSON *obj, const char *name, int *out, g4_error *err) {
    if (req_int(obj, name, out, err)) return -1;
    if (*out <= 0) return g4_fail(err, "config: field %s = %d: must be positive", name, *out);
    return 0;
}

static int opt_int(const cJSON *obj, const char *name, int dflt, int *out, g4_error *err) {
    const cJSON *v = field(obj, name);
    if (!v) {
        *out = dflt;
        return 0;
    }
    return as_int(v, name, out, err);
}

static int opt_bool(const cJSON *obj, const char *name, bool dflt, bool *out, g4_error *err) {
    const cJSON *v = field(obj, name);
    if (!v) {
        *out = dflt;
        return 0;
    }
    if (!cJSON_IsBool(v)) return g4_fail(err, "config: field %s: expected true or false", name);
    *out = cJSON_IsTrue(v);
    return 0;
}

static int opt_num(const cJSON *obj, const char *name, double dflt, double *out, g4_error *err) {
    const cJSON *v = field(obj, name);
    if (!v) {
        *out = dflt;
        return 0;
    }
    if (!cJSON_IsNumber(v)) return g4_fail(err, "config: field %s: expected a number", name);
    *out = v->valuedouble;
    return 0;
}

/* ---- pieces ------------------------------------------------------------------------- */

/* rope_parameters.<type>: {"rope_type": "default"|"proportional", "rope_theta": θ,
 * "partial_rotary_factor": p (proportional only), "factor": 1 (optional)}. */
static int parse_rope(const cJSON *rp, const char *type, int head_dim, g4_rope *out, g4_error *err) {
    char fname[96];
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(rp, type);
    if (!cJSON_IsObject(r)) return g4_fail(err, "config: missing required field rope_parameters.%s", type);
    const cJSON *kind = field(r, "rope_type");
    if (!cJSON_IsString(kind)) return g4_fail(err, "config: missing required field rope_parameters.%s.rope_type", type);
    snprintf(fname, sizeof fname, "rope_parameters.%s.rope_theta", type);
    const cJSON *theta = field(r, "rope_theta");
    if (!cJSON_IsNumber(theta) || !(theta->valuedouble > 0))
        return g4_fail(err, "config: field %s: missing or not a positive number", fname);
    out->theta = theta->valuedouble;

    double factor = 1.0, p = 1.0; /* set by opt_num; initialised for -O3 -Wmaybe-uninitialized */
    snprintf(fname, sizeof fname, "rope_parameters.%s.factor", type);
    if (opt_num(r, "factor", 1.0, &factor, err)) return -1;
    if (factor != 1.0) return g4_fail(err, "config: field %s = %g: only 1.0 is supported", fname, factor);
    snprintf(fname, sizeof fname, "rope_parameters.%s.partial_rotary_factor", type);
    if (opt_num(r, "partial_rotary_factor", 1.0, &p, err)) return -1;

    if (strcmp(kind->valuestring, "default") == 0) {
        /* HF's default RoPE with p < 1 uses the rotated width as exponent denominator,
         * which g4_rope cannot express; the real models never do that. */
        if (p != 1.0)
            return g4_fail(err, "config: field %s = %g: only 1.0 is supported with rope_type \"default\"", fname, p);
        out->rotated_pairs = head_dim / 2;
    } else if (strcmp(kind->valuestring, "proportional") == 0) {
        if (!(p > 0.0 && p <= 1.0)) return g4_fail(err, "config: field %s = %g: must be in (0, 1]", fname, p);
        out->rotated_pairs = (int)floor(p * head_dim / 2.0); /* HF: int(p * head_dim // 2) */
        if (out->rotated_pairs < 1) return g4_fail(err, "config: field %s = %g: rotates no pairs", fname, p);
    } else {
        return g4_fail(err,
                       "config: field rope_parameters.%s.rope_type = \"%s\": unknown rope type "
                       "(supported: default, proportional)",
                       type, kind->valuestring);
    }
    return 0;
}

static int parse_layer_types(const cJSON *t, g4_config *c, g4_error *err) {
    const cJSON *lt = field(t, "layer_types");
    if (!lt) return g4_fail(err, "config: missing required field layer_types");
    if (!cJSON_IsArray(lt)) return g4_fail(err, "config: field layer_types: expected an array");
    int n = cJSON_GetArraySize(lt);
    if (n != c->n_layers)
        return g4_fail(err, "config: field layer_types has %d entries, num_hidden_layers is %d", n, c->n_layers);
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, lt) {
        if (cJSON_IsString(e) && strcmp(e->valuestring, "sliding_attention") == 0) c->layer_type[i] = G4_LAYER_SLIDING;
        else if (cJSON_IsString(e) && strcmp(e->valuestring, "full_attention") == 0) c->layer_type[i] = G4_LAYER_GLOBAL;
        else
            return g4_fail(err, "config: field layer_types[%d]: expected \"sliding_attention\" or \"full_attention\"",
                           i);
        i++;
    }
    /* transformers silently forces the last layer to full attention; we refuse instead of
     * silently disagreeing with what the file says. */
    if (c->layer_type[n - 1] != G4_LAYER_GLOBAL)
        return g4_fail(err, "config: field layer_types: the last layer must be \"full_attention\"");
    return 0;
}

/* Global-layer geometry: `global_head_dim` / `num_global_key_value_heads` (Google's files)
 * and/or transformers' `per_layer_config` {"05": {"head_dim": 512, "num_key_value_heads": 4}}.
 * Every global layer must end with the same (head_dim, kv heads), every sliding layer with the
 * base (head_dim, num_key_value_heads); when both spellings are present they must agree. */
static int parse_global_geometry(const cJSON *t, g4_config *c, g4_error *err) {
    int ghd = 0, gkv = 0;
    const cJSON *v;
    bool have_ghd = (v = field(t, "global_head_dim")) != NULL;
    if (have_ghd && as_int(v, "global_head_dim", &ghd, err)) return -1;
    bool have_gkv = (v = field(t, "num_global_key_value_heads")) != NULL;
    if (have_gkv && as_int(v, "num_global_key_value_heads", &gkv, err)) return -1;

    /* What transformers derives when per_layer_config is absent (Gemma4TextConfig.__post_init__):
     * head_dim = global_head_dim (default 512); kv heads = num_global_key_value_heads only
     * when attention_k_eq_v, else the base num_key_value_heads. */
    int want_hd = have_ghd ? ghd : 512;
    int want_kv = (have_gkv && c->k_eq_v) ? gkv : c->n_kv_heads;

    const cJSON *plc = field(t, "per_layer_config");
    if (!plc) {
        c->global_head_dim = want_hd;
        c->n_global_kv_heads = want_kv;
        return 0;
    }
    if (!cJSON_IsObject(plc)) return g4_fail(err, "config: field per_layer_config: expected an object");

    int hd[G4_MAX_LAYERS], kv[G4_MAX_LAYERS];
    for (int l = 0; l < c->n_layers; l++) {
        hd[l] = c->head_dim;
        kv[l] = c->n_kv_heads;
    }
    const cJSON *e;
    cJSON_ArrayForEach(e, plc) {
        char *end = NULL;
        errno = 0;
        long l = strtol(e->string, &end, 10); /* keys are zero-padded ("05"): base 10, not 0 */
        if (errno || end == e->string || *end || l < 0 || l >= c->n_layers)
            return g4_fail(err, "config: field per_layer_config: key \"%s\" is not a layer index < %d", e->string,
                           c->n_layers);
        if (!cJSON_IsObject(e)) return g4_fail(err, "config: field per_layer_config.%s: expected an object", e->string);
        const cJSON *f;
        cJSON_ArrayForEach(f, e) {
            char fname[96];
            snprintf(fname, sizeof fname, "per_layer_config.%s.%s", e->string, f->string);
            if (strcmp(f->string, "head_dim") == 0) {
                if (as_int(f, fname, &hd[l], err)) return -1;
            } else if (strcmp(f->string, "num_key_value_heads") == 0) {
                if (as_int(f, fname, &kv[l], err)) return -1;
            } else {
                return g4_fail(err, "config: field %s: unsupported per-layer override", fname);
            }
        }
    }
    int first_g = -1;
    for (int l = 0; l < c->n_layers; l++) {
        if (c->layer_type[l] == G4_LAYER_SLIDING) {
            if (hd[l] != c->head_dim || kv[l] != c->n_kv_heads)
                return g4_fail(err,
                               "config: field per_layer_config: sliding layer %d overrides head_dim/num_key_value_heads "
                               "(%d/%d, base %d/%d); only global layers may differ",
                               l, hd[l], kv[l], c->head_dim, c->n_kv_heads);
        } else if (first_g < 0) {
            first_g = l;
        } else if (hd[l] != hd[first_g] || kv[l] != kv[first_g]) {
            return g4_fail(err,
                           "config: field per_layer_config: global layers %d and %d differ (head_dim %d vs %d, "
                           "num_key_value_heads %d vs %d)",
                           first_g, l, hd[first_g], hd[l], kv[first_g], kv[l]);
        }
    }
    c->global_head_dim = hd[first_g];
    c->n_global_kv_heads = kv[first_g];
    if (have_ghd && ghd != c->global_head_dim)
        return g4_fail(err, "config: field global_head_dim = %d disagrees with per_layer_config (head_dim %d)", ghd,
                       c->global_head_dim);
    if (have_gkv && c->k_eq_v && gkv != c->n_global_kv_heads)
        return g4_fail(err,
                       "config: field num_global_key_value_heads = %d disagrees with per_layer_config "
                       "(num_key_value_heads %d)",
                       gkv, c->n_global_kv_heads);
    return 0;
}

static int parse_eos(const cJSON *t, g4_config *c, g4_error *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(t, "eos_token_id");
    c->n_eos = 0;
    if (!v) { /* transformers default */
        c->eos_ids[c->n_eos++] = 1;
        return 0;
    }
    if (cJSON_IsNull(v)) return 0;
    if (cJSON_IsNumber(v)) {
        c->n_eos = 1;
        return as_int(v, "eos_token_id", &c->eos_ids[0], err);
    }
    if (!cJSON_IsArray(v)) return g4_fail(err, "config: field eos_token_id: expected an integer or a list");
    const cJSON *e;
    cJSON_ArrayForEach(e, v) {
        if (c->n_eos == G4_MAX_EOS) return g4_fail(err, "config: field eos_token_id: more than %d ids", G4_MAX_EOS);
        if (as_int(e, "eos_token_id[]", &c->eos_ids[c->n_eos++], err)) return -1;
    }
    return 0;
}

/* Settings the real 31B / 26B-A4B never use. */
static int reject_unsupported(const cJSON *t, g4_error *err) {
    int ple = 0, shared = 0;
    bool b = false;
    const cJSON *v;
    if (!field(t, "hidden_size_per_layer_input"))
        return g4_fail(err, "config: field hidden_size_per_layer_input is missing; transformers' default (256) means "
                            "per-layer embeddings, which are not supported (write 0)");
    if (req_int(t, "hidden_size_per_layer_input", &ple, err)) return -1;
    if (ple != 0)
        return g4_fail(err, "config: field hidden_size_per_layer_input = %d: per-layer embeddings are not supported",
                       ple);
    if (opt_int(t, "num_kv_shared_layers", 0, &shared, err)) return -1;
    if (shared != 0)
        return g4_fail(err, "config: field num_kv_shared_layers = %d: KV sharing is not supported", shared);
    if (opt_bool(t, "use_double_wide_mlp", false, &b, err)) return -1;
    if (b) return g4_fail(err, "config: field use_double_wide_mlp = true: not supported");
    if (opt_bool(t, "attention_bias", false, &b, err)) return -1;
    if (b) return g4_fail(err, "config: field attention_bias = true: not supported");
    if ((v = field(t, "use_bidirectional_attention")) != NULL) {
        if (!cJSON_IsString(v))
            return g4_fail(err, "config: field use_bidirectional_attention: expected a string or null");
        if (strcmp(v->valuestring, "vision") != 0)
            return g4_fail(err,
                           "config: field use_bidirectional_attention = \"%s\": only null or \"vision\" is supported",
                           v->valuestring);
    }
    if ((v = field(t, "hidden_activation")) != NULL &&
        (!cJSON_IsString(v) || strcmp(v->valuestring, "gelu_pytorch_tanh") != 0))
        return g4_fail(err, "config: field hidden_activation = %s: only \"gelu_pytorch_tanh\" is supported",
                       cJSON_IsString(v) ? v->valuestring : "(not a string)");
    return 0;
}

static int parse_moe(const cJSON *t, g4_config *c, g4_error *err) {
    if (opt_bool(t, "enable_moe_block", false, &c->moe, err)) return -1;
    if (!c->moe) return 0;
    if (req_pos(t, "num_experts", &c->n_experts, err) || req_pos(t, "top_k_experts", &c->top_k, err) ||
        req_pos(t, "moe_intermediate_size", &c->moe_intermediate, err))
        return -1;
    if (c->top_k > c->n_experts)
        return g4_fail(err, "config: field top_k_experts = %d exceeds num_experts = %d", c->top_k, c->n_experts);
    return 0;
}

/* ---- geometry limits ------------------------------------------------------------------ */

/* Every size the engine turns into int arithmetic (KV plan, block tables, row widths) must stay
 * far from INT_MAX: each dimension has a cap well above any real Gemma 4 checkpoint, and the
 * products used as row widths are checked in 64 bits. A config past them is refused at load,
 * naming the field, instead of overflowing a signed int later (issue 20: sliding_window 2^30). */
#define G4_CFG_MAX_DIM (1 << 20)       /* hidden, heads, head dims, intermediate sizes, experts */
#define G4_CFG_MAX_TOKENS (1 << 24)    /* sliding_window, max_position_embeddings */
#define G4_CFG_MAX_VOCAB (1 << 24)

static int check_geometry(const g4_config *c, g4_error *err) {
    const struct {
        const char *name;
        int v, max;
    } dims[] = {
        {"hidden_size", c->hidden, G4_CFG_MAX_DIM},
        {"num_attention_heads", c->n_heads, G4_CFG_MAX_DIM},
        {"num_key_value_heads", c->n_kv_heads, G4_CFG_MAX_DIM},
        {"head_dim", c->head_dim, G4_CFG_MAX_DIM},
        {"global_head_dim", c->global_head_dim, G4_CFG_MAX_DIM},
        {"num_global_key_value_heads", c->n_global_kv_heads, G4_CFG_MAX_DIM},
        {"intermediate_size", c->intermediate, G4_CFG_MAX_DIM},
        {"num_experts", c->n_experts, G4_CFG_MAX_DIM},
        {"moe_intermediate_size", c->moe_intermediate, G4_CFG_MAX_DIM},
        {"vocab_size", c->vocab, G4_CFG_MAX_VOCAB},
        {"sliding_window", c->sliding_window, G4_CFG_MAX_TOKENS},
        {"max_position_embeddings", c->max_positions, G4_CFG_MAX_TOKENS},
    };
    for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++)
        if (dims[i].v > dims[i].max)
            return g4_fail(err, "config: field %s = %d exceeds the supported %d", dims[i].name, dims[i].v, dims[i].max);
    const struct {
        const char *name;
        int64_t v;
    } rows[] = {
        {"num_attention_heads * head_dim", (int64_t)c->n_heads * c->head_dim},
        {"num_attention_heads * global_head_dim", (int64_t)c->n_heads * c->global_head_dim},
        {"num_key_value_heads * head_dim", (int64_t)c->n_kv_heads * c->head_dim},
        {"num_global_key_value_heads * global_head_dim", (int64_t)c->n_global_kv_heads * c->global_head_dim},
        {"num_experts * moe_intermediate_size", (int64_t)c->n_experts * c->moe_intermediate},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        if (rows[i].v > G4_CFG_MAX_DIM)
            return g4_fail(err, "config: fields %s = %lld exceed the supported %d", rows[i].name, (long long)rows[i].v,
                           G4_CFG_MAX_DIM);
    return 0;
}

/* ---- the parser ----------------------------------------------------------------------- */

static int parse_text(g4_config *c, const cJSON *t, g4_error *err) {
    if (reject_unsupported(t, err)) return -1;
    if (req_pos(t, "num_hidden_layers", &c->n_layers, err)) return -1;
    if (c->n_layers > G4_MAX_LAYERS)
        return g4_fail(err, "config: field num_hidden_layers = %d exceeds the supported %d", c->n_layers,
                       G4_MAX_LAYERS);
    if (req_pos(t, "hidden_size", &c->hidden, err) || req_pos(t, "num_attention_heads", &c->n_heads, err) ||
        req_pos(t, "num_key_value_heads", &c->n_kv_heads, err) || req_pos(t, "head_dim", &c->head_dim, err) ||
        req_pos(t, "intermediate_size", &c->intermediate, err) || req_pos(t, "vocab_size", &c->vocab, err) ||
        req_pos(t, "sliding_window", &c->sliding_window, err))
        return -1;
    if (opt_int(t, "max_position_embeddings", 131072, &c->max_positions, err)) return -1;
    if (c->max_positions <= 0)
        return g4_fail(err, "config: field max_position_embeddings = %d: must be positive", c->max_positions);
    if (opt_bool(t, "attention_k_eq_v", false, &c->k_eq_v, err)) return -1;
    if (parse_layer_types(t, c, err) || parse_global_geometry(t, c, err)) return -1;

    if (c->global_head_dim <= 0 || c->n_global_kv_heads <= 0)
        return g4_fail(err,
                       "config: field global_head_dim / num_global_key_value_heads: must be positive (got %d / %d)",
                       c->global_head_dim, c->n_global_kv_heads);
    if (c->head_dim % 2 || c->global_head_dim % 2)
        return g4_fail(err, "config: field head_dim / global_head_dim: must be even (got %d / %d)", c->head_dim,
                       c->global_head_dim);
    if (c->n_heads % c->n_kv_heads)
        return g4_fail(err, "config: field num_key_value_heads = %d does not divide num_attention_heads = %d",
                       c->n_kv_heads, c->n_heads);
    if (c->n_heads % c->n_global_kv_heads)
        return g4_fail(err, "config: field num_global_key_value_heads = %d does not divide num_attention_heads = %d",
                       c->n_global_kv_heads, c->n_heads);

    const cJSON *rp = field(t, "rope_parameters");
    if (!cJSON_IsObject(rp)) return g4_fail(err, "config: missing required field rope_parameters");
    if (parse_rope(rp, "sliding_attention", c->head_dim, &c->rope_sliding, err) ||
        parse_rope(rp, "full_attention", c->global_head_dim, &c->rope_global, err))
        return -1;
    if (parse_moe(t, c, err)) return -1;
    if (check_geometry(c, err)) return -1;

    double cap = 0, eps = 0;
    if (opt_num(t, "final_logit_softcapping", 0.0, &cap, err)) return -1;
    if (cap < 0) return g4_fail(err, "config: field final_logit_softcapping = %g: must be >= 0", cap);
    c->final_softcap = (float)cap;
    if (opt_num(t, "rms_norm_eps", 1e-6, &eps, err)) return -1;
    if (!(eps > 0)) return g4_fail(err, "config: field rms_norm_eps = %g: must be positive", eps);
    c->eps = (float)eps;

    if (opt_bool(t, "tie_word_embeddings", true, &c->tie_embeddings, err)) return -1;
    if (!c->tie_embeddings)
        return g4_fail(err, "config: field tie_word_embeddings = false: an untied LM head is not supported");
    if (opt_int(t, "bos_token_id", 2, &c->bos_id, err) || opt_int(t, "pad_token_id", 0, &c->pad_id, err)) return -1;
    if (cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(t, "bos_token_id"))) c->bos_id = -1;
    if (cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(t, "pad_token_id"))) c->pad_id = -1;
    return parse_eos(t, c, err);
}

/* ---- vision_config ---------------------------------------------------------------------- */

/* vision_config.<key>: integer in [1, max], default dflt when absent (the bound keeps the tower's
 * buffer arithmetic inside int / size_t, as the text geometry's). */
static int vis_pos(const cJSON *vc, const char *key, int dflt, int max, int *out, g4_error *err) {
    char name[96];
    snprintf(name, sizeof name, "vision_config.%s", key);
    const cJSON *v = field(vc, key);
    *out = dflt;
    if (v && as_int(v, name, out, err)) return -1;
    if (*out <= 0) return g4_fail(err, "config: field %s = %d: must be positive", name, *out);
    if (*out > max) return g4_fail(err, "config: field %s = %d: at most %d", name, *out, max);
    return 0;
}

/* vision_config.<key> must be absent or equal `want` (a string). */
static int vis_str(const cJSON *vc, const char *key, const char *want, g4_error *err) {
    const cJSON *v = field(vc, key);
    if (!v) return 0;
    if (!cJSON_IsString(v) || strcmp(v->valuestring, want) != 0)
        return g4_fail(err, "config: field vision_config.%s: only \"%s\" is supported", key, want);
    return 0;
}

/* vision_config.<key> must be absent or false. */
static int vis_false(const cJSON *vc, const char *key, const char *why, g4_error *err) {
    const cJSON *v = field(vc, key);
    if (!v) return 0;
    if (!cJSON_IsBool(v)) return g4_fail(err, "config: field vision_config.%s: expected true or false", key);
    if (cJSON_IsTrue(v)) return g4_fail(err, "config: field vision_config.%s = true: %s", key, why);
    return 0;
}

/* The tower's geometry; defaults are transformers 5.24's Gemma4VisionConfig. */
static int parse_vision(const cJSON *vc, g4_vision_config *v, g4_error *err) {
    int patch = 0, pool = 0;
    v->present = true;
    if (vis_str(vc, "model_type", "gemma4_vision", err) || vis_str(vc, "hidden_activation", "gelu_pytorch_tanh", err) ||
        vis_false(vc, "use_clipped_linears", "clipped linears are not supported", err) ||
        vis_false(vc, "attention_bias", "attention biases are not supported", err) ||
        vis_pos(vc, "hidden_size", 768, 1 << 16, &v->hidden, err) ||
        vis_pos(vc, "intermediate_size", 3072, 1 << 18, &v->intermediate, err) ||
        vis_pos(vc, "num_hidden_layers", 16, G4_MAX_LAYERS, &v->n_layers, err) ||
        vis_pos(vc, "num_attention_heads", 12, 256, &v->n_heads, err) ||
        vis_pos(vc, "num_key_value_heads", 12, 256, &v->n_kv_heads, err) ||
        vis_pos(vc, "head_dim", 64, 1024, &v->head_dim, err) ||
        vis_pos(vc, "position_embedding_size", 10240, 1 << 16, &v->pos_size, err) ||
        vis_pos(vc, "patch_size", 16, 1 << 10, &patch, err) ||
        vis_pos(vc, "pooling_kernel_size", 3, 1 << 10, &pool, err))
        return -1;
    if (patch != 16)
        return g4_fail(err,
                       "config: field vision_config.patch_size = %d: only 16 is supported (media/vision_preprocess.h)",
                       patch);
    if (pool != 3)
        return g4_fail(err,
                       "config: field vision_config.pooling_kernel_size = %d: only 3 is supported "
                       "(media/vision_preprocess.h)",
                       pool);
    if (v->head_dim % 4)
        return g4_fail(err, "config: field vision_config.head_dim = %d: must be a multiple of 4 (2-D RoPE)",
                       v->head_dim);
    if (v->n_heads % v->n_kv_heads)
        return g4_fail(err,
                       "config: field vision_config.num_key_value_heads = %d does not divide num_attention_heads %d",
                       v->n_kv_heads, v->n_heads);
    double eps = 1e-6;
    if (opt_num(vc, "rms_norm_eps", 1e-6, &eps, err)) return g4_fail_prefix(err, "vision_config");
    if (!(eps > 0)) return g4_fail(err, "config: field vision_config.rms_norm_eps = %g: must be positive", eps);
    v->eps = (float)eps;
    if (opt_bool(vc, "standardize", false, &v->standardize, err)) return g4_fail_prefix(err, "vision_config");
    v->rope_theta = 100.0;
    const cJSON *rp = field(vc, "rope_parameters");
    if (rp) {
        if (!cJSON_IsObject(rp)) return g4_fail(err, "config: field vision_config.rope_parameters: expected an object");
        /* transformers reads "default" as the vision config's default type, "axial" */
        const cJSON *ty = field(rp, "rope_type");
        if (ty && (!cJSON_IsString(ty) || (strcmp(ty->valuestring, "axial") && strcmp(ty->valuestring, "default"))))
            return g4_fail(err,
                           "config: field vision_config.rope_parameters.rope_type: only \"axial\" (or \"default\") "
                           "is supported");
        const cJSON *th = field(rp, "rope_theta");
        if (th && (!cJSON_IsNumber(th) || !(th->valuedouble > 0)))
            return g4_fail(err, "config: field vision_config.rope_parameters.rope_theta: not a positive number");
        if (th) v->rope_theta = th->valuedouble;
    }
    return 0;
}

int g4_config_parse(g4_config *cfg, const char *json_text, g4_error *err) {
    memset(cfg, 0, sizeof *cfg);
    cJSON *root = cJSON_Parse(json_text);
    if (!root)
        return g4_fail(err, "config: malformed JSON near \"%.32s\"", cJSON_GetErrorPtr() ? cJSON_GetErrorPtr() : "");
    int rc = -1;
    if (!cJSON_IsObject(root)) {
        g4_fail(err, "config: top level is not a JSON object");
        goto done;
    }
    const cJSON *text = root;
    const cJSON *tc = cJSON_GetObjectItemCaseSensitive(root, "text_config");
    if (tc && !cJSON_IsNull(tc)) {
        if (!cJSON_IsObject(tc)) {
            g4_fail(err, "config: field text_config: expected an object");
            goto done;
        }
        if (field(root, "audio_config")) {
            g4_fail(err, "config: field audio_config is set: audio models are not supported");
            goto done;
        }
        bool tie = false;
        if (opt_bool(root, "tie_word_embeddings", true, &tie, err)) goto done;
        if (!tie) {
            g4_fail(err, "config: field tie_word_embeddings = false: an untied LM head is not supported");
            goto done;
        }
        text = tc;
        cfg->multimodal = true;
        const cJSON *vc = field(root, "vision_config");
        if (vc && !cJSON_IsObject(vc)) {
            g4_fail(err, "config: field vision_config: expected an object or null");
            goto done;
        }
        if (vc && parse_vision(vc, &cfg->vision, err)) goto done;
    }
    rc = parse_text(cfg, text, err);
done:
    cJSON_Delete(root);
    if (rc) memset(cfg, 0, sizeof *cfg);
    return rc;
}

int g4_config_load(g4_config *cfg, const char *path, g4_error *err) {
    char *buf;
    if (g4_read_file(path, 64u << 20, &buf, NULL, err)) return g4_fail_prefix(err, "config");
    int rc = g4_config_parse(cfg, buf, err);
    free(buf);
    if (rc) return g4_fail_prefix(err, "%s", path);
    return 0;
}

int g4_config_count_layers(const g4_config *c, g4_layer_type t) {
    int n = 0;
    for (int l = 0; l < c->n_layers; l++) n += c->layer_type[l] == t;
    return n;
}
