/* testmodel.c — deterministic tiny random Gemma 4 checkpoints (see testmodel.h).
 *
 * Values come from splitmix64 → uniform in [-1, 1), scaled per tensor kind:
 *   Linear [out, in]      × √(3/in)      (unit-variance outputs for unit-variance inputs)
 *   embedding             × 0.5
 *   norm weights          1 + 0.2·u      (never exactly 1)
 *   layer_scalar          0.75 + 0.2·u
 *   router scale          1 + 0.2·u;  per_expert_scale 1 + 0.3·u
 * Everything is rounded to bf16 and written under `model.language_model.`. */
#include "base/rng.h"
#include "model/testmodel.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "base/bf16.h"
#include "model/safetensors_write.h"

/* The real geometries (docs/model-spec.md §1), for header-only checkpoints + dummy weights. */
static void real_config(g4_config *c, int moe) {
    c->hidden = moe ? 2816 : 5376;
    c->n_layers = moe ? 30 : 60;
    c->n_heads = moe ? 16 : 32;
    c->n_kv_heads = moe ? 8 : 16;
    c->n_global_kv_heads = moe ? 2 : 4;
    c->head_dim = 256;
    c->global_head_dim = 512;
    c->intermediate = moe ? 2112 : 21504;
    c->sliding_window = 1024;
    c->max_positions = 262144;
    c->rope_sliding.rotated_pairs = 128;
    c->rope_global.rotated_pairs = 64;
    c->n_experts = moe ? 128 : 0;
    c->top_k = moe ? 8 : 0;
    c->moe_intermediate = moe ? 704 : 0;
    for (int l = 0; l < c->n_layers; l++) c->layer_type[l] = l % 6 == 5 ? G4_LAYER_GLOBAL : G4_LAYER_SLIDING;
}

int g4_testmodel_config(g4_config *c, const char *name, g4_error *err) {
    int moe = !strcmp(name, "tiny-moe") || !strcmp(name, "26b-a4b");
    int real = !strcmp(name, "31b") || !strcmp(name, "26b-a4b");
    if (!moe && !real && strcmp(name, "tiny-dense"))
        return g4_fail(err, "unknown test model \"%s\" (tiny-dense, tiny-moe, 31b, 26b-a4b)", name);
    memset(c, 0, sizeof *c);
    c->hidden = 64;
    c->n_layers = 6;
    c->n_heads = 4;
    c->n_kv_heads = 2;
    c->n_global_kv_heads = 1;
    c->head_dim = 32;
    c->global_head_dim = 64;
    c->intermediate = moe ? 64 : 128;
    c->vocab = 262144;
    c->sliding_window = 16;
    c->max_positions = 4096;
    c->k_eq_v = true;
    c->rope_sliding = (g4_rope){.theta = 10000.0, .rotated_pairs = 16};
    c->rope_global = (g4_rope){.theta = 1000000.0, .rotated_pairs = 8}; /* 0.25 × 64/2 */
    c->moe = moe;
    c->n_experts = moe ? 8 : 0;
    c->top_k = moe ? 2 : 0;
    c->moe_intermediate = moe ? 32 : 0;
    c->final_softcap = 30.0f;
    c->eps = 1e-6f;
    c->tie_embeddings = true;
    c->multimodal = true;
    c->bos_id = 2;
    c->pad_id = 0;
    c->n_eos = 2;
    c->eos_ids[0] = 1;
    c->eos_ids[1] = 106;
    for (int l = 0; l < c->n_layers; l++) c->layer_type[l] = (l == 2 || l == 5) ? G4_LAYER_GLOBAL : G4_LAYER_SLIDING;
    if (real) real_config(c, moe);
    return 0;
}

static float uniform(uint64_t *s) { return (float)((g4_splitmix64(s) >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f; }

typedef struct {
    g4_st_writer *w;
    uint64_t rng;
    g4_error *err;
    int failed;
    int sparse;     /* header only: no values (dummy-weights use) */
} gen;

/* Adds one bf16 tensor whose elements are base + spread·u. */
static void add(gen *g, const char *name, int ndim, const int64_t *shape, float base, float spread) {
    if (g->failed) return;
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    if (g->sparse) {
        if (g4_stw_add(g->w, name, G4_DT_BF16, ndim, shape, NULL, g->err)) g->failed = -1;
        return;
    }
    uint16_t *buf = malloc((size_t)n * sizeof *buf);
    if (!buf) {
        g->failed = g4_fail(g->err, "testmodel: out of memory");
        return;
    }
    for (int64_t i = 0; i < n; i++) buf[i] = g4_f32_to_bf16(base + spread * uniform(&g->rng));
    if (g4_stw_add(g->w, name, G4_DT_BF16, ndim, shape, buf, g->err)) g->failed = -1;
    free(buf);
}
static void add_linear(gen *g, const char *name, int64_t out, int64_t in) {
    int64_t s[2] = {out, in};
    add(g, name, 2, s, 0.0f, sqrtf(3.0f / (float)in));
}
static void add_vec(gen *g, const char *name, int64_t n, float base, float spread) {
    add(g, name, 1, &n, base, spread);
}

static void add_layer(gen *g, const g4_config *c, int l) {
    char n[256];
    int H = c->hidden, d = g4_layer_head_dim(c, l), kv = g4_layer_kv_heads(c, l);
#define NAME(suffix) (snprintf(n, sizeof n, "model.language_model.layers.%d.%s", l, suffix), n)
    add_vec(g, NAME("input_layernorm.weight"), H, 1.0f, 0.2f);
    add_linear(g, NAME("self_attn.q_proj.weight"), (int64_t)c->n_heads * d, H);
    add_linear(g, NAME("self_attn.k_proj.weight"), (int64_t)kv * d, H);
    if (!g4_layer_k_eq_v(c, l)) add_linear(g, NAME("self_attn.v_proj.weight"), (int64_t)kv * d, H);
    add_linear(g, NAME("self_attn.o_proj.weight"), H, (int64_t)c->n_heads * d);
    add_vec(g, NAME("self_attn.q_norm.weight"), d, 1.0f, 0.2f);
    add_vec(g, NAME("self_attn.k_norm.weight"), d, 1.0f, 0.2f);
    add_vec(g, NAME("post_attention_layernorm.weight"), H, 1.0f, 0.2f);
    add_vec(g, NAME("pre_feedforward_layernorm.weight"), H, 1.0f, 0.2f);
    add_linear(g, NAME("mlp.gate_proj.weight"), c->intermediate, H);
    add_linear(g, NAME("mlp.up_proj.weight"), c->intermediate, H);
    add_linear(g, NAME("mlp.down_proj.weight"), H, c->intermediate);
    add_vec(g, NAME("post_feedforward_layernorm.weight"), H, 1.0f, 0.2f);
    add_vec(g, NAME("layer_scalar"), 1, 0.75f, 0.2f);
    if (c->moe) {
        int E = c->n_experts, I = c->moe_intermediate;
        add_vec(g, NAME("post_feedforward_layernorm_1.weight"), H, 1.0f, 0.2f);
        add_vec(g, NAME("pre_feedforward_layernorm_2.weight"), H, 1.0f, 0.2f);
        add_vec(g, NAME("post_feedforward_layernorm_2.weight"), H, 1.0f, 0.2f);
        add_linear(g, NAME("router.proj.weight"), E, H);
        add_vec(g, NAME("router.scale"), H, 1.0f, 0.2f);
        add_vec(g, NAME("router.per_expert_scale"), E, 1.0f, 0.3f);
        int64_t gu[3] = {E, 2 * I, H}, dn[3] = {E, H, I};
        add(g, NAME("experts.gate_up_proj"), 3, gu, 0.0f, sqrtf(3.0f / (float)H));
        add(g, NAME("experts.down_proj"), 3, dn, 0.0f, sqrtf(3.0f / (float)I));
    }
#undef NAME
}

/* config.json in the multimodal form Google's checkpoints use. */
static char *config_json(const g4_config *c) {
    cJSON *root = cJSON_CreateObject(), *tc = cJSON_CreateObject();
    cJSON_AddItemToObject(root, "architectures",
                          cJSON_CreateStringArray((const char *[]){"Gemma4ForConditionalGeneration"}, 1));
    cJSON_AddStringToObject(root, "model_type", "gemma4");
    cJSON_AddNullToObject(root, "audio_config");
    cJSON_AddBoolToObject(root, "tie_word_embeddings", 1);
    cJSON_AddItemToObject(root, "text_config", tc);
    cJSON_AddStringToObject(tc, "model_type", "gemma4_text");
    cJSON_AddNumberToObject(tc, "hidden_size", c->hidden);
    cJSON_AddNumberToObject(tc, "num_hidden_layers", c->n_layers);
    cJSON_AddNumberToObject(tc, "num_attention_heads", c->n_heads);
    cJSON_AddNumberToObject(tc, "num_key_value_heads", c->n_kv_heads);
    cJSON_AddNumberToObject(tc, "num_global_key_value_heads", c->n_global_kv_heads);
    cJSON_AddNumberToObject(tc, "head_dim", c->head_dim);
    cJSON_AddNumberToObject(tc, "global_head_dim", c->global_head_dim);
    cJSON_AddNumberToObject(tc, "intermediate_size", c->intermediate);
    cJSON_AddNumberToObject(tc, "vocab_size", c->vocab);
    cJSON_AddNumberToObject(tc, "sliding_window", c->sliding_window);
    cJSON_AddNumberToObject(tc, "max_position_embeddings", c->max_positions);
    cJSON_AddBoolToObject(tc, "attention_k_eq_v", c->k_eq_v);
    cJSON_AddBoolToObject(tc, "attention_bias", 0);
    cJSON_AddStringToObject(tc, "hidden_activation", "gelu_pytorch_tanh");
    cJSON_AddNumberToObject(tc, "rms_norm_eps", c->eps);
    cJSON_AddNumberToObject(tc, "final_logit_softcapping", c->final_softcap);
    cJSON_AddBoolToObject(tc, "tie_word_embeddings", 1);
    cJSON_AddNumberToObject(tc, "hidden_size_per_layer_input", 0);
    cJSON_AddNumberToObject(tc, "num_kv_shared_layers", 0);
    cJSON_AddBoolToObject(tc, "use_double_wide_mlp", 0);
    cJSON_AddStringToObject(tc, "use_bidirectional_attention", "vision");
    cJSON_AddBoolToObject(tc, "enable_moe_block", c->moe);
    if (c->moe) {
        cJSON_AddNumberToObject(tc, "num_experts", c->n_experts);
        cJSON_AddNumberToObject(tc, "top_k_experts", c->top_k);
        cJSON_AddNumberToObject(tc, "moe_intermediate_size", c->moe_intermediate);
    }
    cJSON_AddNumberToObject(tc, "bos_token_id", c->bos_id);
    cJSON_AddNumberToObject(tc, "pad_token_id", c->pad_id);
    cJSON_AddItemToObject(tc, "eos_token_id", cJSON_CreateIntArray(c->eos_ids, c->n_eos));
    cJSON *types = cJSON_AddArrayToObject(tc, "layer_types");
    for (int l = 0; l < c->n_layers; l++)
        cJSON_AddItemToArray(types,
                             cJSON_CreateString(g4_layer_is_global(c, l) ? "full_attention" : "sliding_attention"));
    cJSON *rp = cJSON_AddObjectToObject(tc, "rope_parameters");
    cJSON *rs = cJSON_AddObjectToObject(rp, "sliding_attention");
    cJSON_AddStringToObject(rs, "rope_type", "default");
    cJSON_AddNumberToObject(rs, "rope_theta", c->rope_sliding.theta);
    cJSON *rg = cJSON_AddObjectToObject(rp, "full_attention");
    cJSON_AddStringToObject(rg, "rope_type", "proportional");
    cJSON_AddNumberToObject(rg, "partial_rotary_factor",
                            (double)c->rope_global.rotated_pairs / (c->global_head_dim / 2));
    cJSON_AddNumberToObject(rg, "rope_theta", c->rope_global.theta);
    char *s = cJSON_Print(root);
    cJSON_Delete(root);
    return s;
}

static int write_checkpoint(const g4_config *c, uint64_t seed, int sparse, const char *dir, g4_error *err);

int g4_testmodel_write(const g4_config *c, uint64_t seed, const char *dir, g4_error *err) {
    return write_checkpoint(c, seed, 0, dir, err);
}

int g4_testmodel_write_sparse(const g4_config *c, const char *dir, g4_error *err) {
    return write_checkpoint(c, 0, 1, dir, err);
}

static int write_checkpoint(const g4_config *c, uint64_t seed, int sparse, const char *dir, g4_error *err) {
    if (mkdir(dir, 0755) && errno != EEXIST)
        return g4_fail(err, "testmodel: cannot create %s: %s", dir, strerror(errno));
    char path[4096];
    char *json = config_json(c);
    if (!json) return g4_fail(err, "testmodel: out of memory");
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    if (!f) {
        free(json);
        return g4_fail(err, "testmodel: cannot write %s: %s", path, strerror(errno));
    }
    int bad = fputs(json, f) < 0;
    bad |= fclose(f) != 0;
    free(json);
    if (bad) return g4_fail(err, "testmodel: cannot write %s", path);

    gen g = {.w = g4_stw_create(), .rng = seed, .err = err, .sparse = sparse};
    if (!g.w) return g4_fail(err, "testmodel: out of memory");
    int64_t emb[2] = {c->vocab, c->hidden};
    add(&g, "model.language_model.embed_tokens.weight", 2, emb, 0.0f, 0.5f);
    for (int l = 0; l < c->n_layers; l++) add_layer(&g, c, l);
    add_vec(&g, "model.language_model.norm.weight", c->hidden, 1.0f, 0.2f);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    int rc = g.failed ? -1 : g4_stw_write(g.w, path, err);
    g4_stw_free(g.w);
    return rc;
}
