/* test_config.c — g4_config_parse on config.json files as transformers 5.23 writes them and
 * as Google's checkpoints write them, and every rejection naming its field.
 *
 * Fixtures tests/model/data/config_*.json were written once by tests/model/data/make_configs.py
 * (transformers 5.23: Gemma4TextConfig / Gemma4Config(...).to_json_string()); expected values
 * below are the arguments given there and the spec §1 table, not anything computed by config.c. */
#include <string.h>

#include <cjson/cJSON.h>

#include "base/file.h"
#include "check.h"
#include "model/config.h"

static char *slurp(const char *path) {
    char *b;
    return g4_read_file(path, (size_t)1 << 31, &b, NULL, NULL) ? NULL : b;
}

/* Global layers are exactly i % 6 == 5 (all fixtures use the default 5:1 pattern). */
static void check_pattern(const g4_config *c, const char *what) {
    int bad = 0;
    for (int l = 0; l < c->n_layers; l++) bad += g4_layer_is_global(c, l) != (l % 6 == 5);
    CHECK(bad == 0, "%s: layer pattern has %d wrong layers", what, bad);
    CHECK(g4_config_count_layers(c, G4_LAYER_GLOBAL) == c->n_layers / 6, "%s: global count", what);
    CHECK(g4_config_count_layers(c, G4_LAYER_SLIDING) == c->n_layers - c->n_layers / 6, "%s: sliding count", what);
}

static void check_common(const g4_config *c, const char *what) {
    CHECK(c->k_eq_v, "%s: k_eq_v", what);
    CHECK(c->rope_sliding.theta == 1e4 && c->rope_global.theta == 1e6, "%s: rope theta %g %g", what,
          c->rope_sliding.theta, c->rope_global.theta);
    CHECK(c->final_softcap == 30.0f, "%s: softcap %g", what, c->final_softcap);
    CHECK(c->eps == 1e-6f, "%s: eps %g", what, c->eps);
    CHECK(c->tie_embeddings, "%s: tie", what);
    CHECK(c->bos_id == 2 && c->pad_id == 0, "%s: bos %d pad %d", what, c->bos_id, c->pad_id);
    CHECK(c->n_eos == 2 && c->eos_ids[0] == 1 && c->eos_ids[1] == 106, "%s: eos (%d ids)", what, c->n_eos);
    check_pattern(c, what);
}

static void test_tiny_dense_text(void) {
    g4_config c;
    g4_error err = {{0}};
    int rc = g4_config_load(&c, "tests/model/data/config_tiny_dense_text.json", &err);
    CHECK(rc == 0, "tiny dense: %s", err.msg);
    if (rc) return;
    CHECK(!c.multimodal && !c.moe, "tiny dense: multimodal %d moe %d", c.multimodal, c.moe);
    CHECK(c.hidden == 64 && c.n_layers == 12 && c.n_heads == 4 && c.n_kv_heads == 2, "tiny dense: sizes");
    CHECK(c.head_dim == 16 && c.global_head_dim == 32 && c.n_global_kv_heads == 1, "tiny dense: global %d %d %d",
          c.head_dim, c.global_head_dim, c.n_global_kv_heads);
    CHECK(c.intermediate == 128 && c.vocab == 512 && c.sliding_window == 8 && c.max_positions == 4096,
          "tiny dense: widths");
    CHECK(c.rope_sliding.rotated_pairs == 8, "tiny dense: sliding pairs %d", c.rope_sliding.rotated_pairs);
    CHECK(c.rope_global.rotated_pairs == 4, "tiny dense: global pairs %d (0.25*32/2)", c.rope_global.rotated_pairs);
    CHECK(g4_layer_head_dim(&c, 5) == 32 && g4_layer_kv_heads(&c, 5) == 1 && g4_layer_k_eq_v(&c, 11), "helpers");
    CHECK(g4_layer_head_dim(&c, 4) == 16 && g4_layer_kv_heads(&c, 4) == 2 && !g4_layer_k_eq_v(&c, 4), "helpers");
    check_common(&c, "tiny dense");
}

static void test_tiny_moe_mm(void) {
    g4_config c;
    g4_error err = {{0}};
    int rc = g4_config_load(&c, "tests/model/data/config_tiny_moe_mm.json", &err);
    CHECK(rc == 0, "tiny moe: %s", err.msg);
    if (rc) return;
    CHECK(c.multimodal && c.moe, "tiny moe: multimodal %d moe %d", c.multimodal, c.moe);
    CHECK(c.n_experts == 8 && c.top_k == 2 && c.moe_intermediate == 32 && c.intermediate == 96, "tiny moe: moe sizes");
    CHECK(c.n_layers == 6 && c.global_head_dim == 64 && c.n_global_kv_heads == 1, "tiny moe: global geometry");
    CHECK(c.rope_global.rotated_pairs == 8 && c.rope_sliding.rotated_pairs == 8, "tiny moe: pairs %d %d",
          c.rope_global.rotated_pairs, c.rope_sliding.rotated_pairs);
    check_common(&c, "tiny moe");
}

/* Spec §1 values for the real models. */
static void check_real(const g4_config *c, bool is31) {
    const char *w = is31 ? "31B" : "26B";
    CHECK(c->multimodal, "%s multimodal", w);
    CHECK(c->hidden == (is31 ? 5376 : 2816) && c->n_layers == (is31 ? 60 : 30), "%s: H %d L %d", w, c->hidden,
          c->n_layers);
    CHECK(c->n_heads == (is31 ? 32 : 16) && c->n_kv_heads == (is31 ? 16 : 8) && c->n_global_kv_heads == (is31 ? 4 : 2),
          "%s: heads %d/%d/%d", w, c->n_heads, c->n_kv_heads, c->n_global_kv_heads);
    CHECK(c->head_dim == 256 && c->global_head_dim == 512, "%s: head dims", w);
    CHECK(c->intermediate == (is31 ? 21504 : 2112) && c->vocab == 262144 && c->sliding_window == 1024 &&
              c->max_positions == 262144,
          "%s: widths", w);
    CHECK(c->rope_sliding.rotated_pairs == 128 && c->rope_global.rotated_pairs == 64, "%s: rope pairs %d %d", w,
          c->rope_sliding.rotated_pairs, c->rope_global.rotated_pairs);
    CHECK(c->moe == !is31, "%s: moe", w);
    if (!is31) CHECK(c->n_experts == 128 && c->top_k == 8 && c->moe_intermediate == 704, "26B experts");
    CHECK(g4_config_count_layers(c, G4_LAYER_GLOBAL) == (is31 ? 10 : 5), "%s: global layers", w);
    check_common(c, w);
}

/* The real towers' vision_config (spec §3.5 shapes: 1152 wide, 27 layers, 16 heads × 72, MLP 4304,
 * std_bias / std_scale present). */
#define VISION_31B                                                                                                 \
    "{\"attention_bias\":false,\"attention_dropout\":0.0,\"default_output_length\":280,\"dtype\":\"bfloat16\","    \
    "\"head_dim\":72,\"hidden_activation\":\"gelu_pytorch_tanh\",\"hidden_size\":1152,\"initializer_range\":0.02," \
    "\"intermediate_size\":4304,\"max_position_embeddings\":131072,\"model_type\":\"gemma4_vision\","              \
    "\"num_attention_heads\":16,\"num_hidden_layers\":27,\"num_key_value_heads\":16,\"patch_size\":16,"            \
    "\"pooling_kernel_size\":3,\"position_embedding_size\":10240,\"rms_norm_eps\":1e-06,"                          \
    "\"rope_parameters\":{\"rope_theta\":100.0,\"rope_type\":\"default\"},\"standardize\":true,"                   \
    "\"use_clipped_linears\":false}"

/* Google's spelling of the 31B text_config (global_head_dim, num_global_key_value_heads, no
 * per_layer_config), as in the real google/gemma-4-31B-it config.json. */
static const char *google_31b =
    "{\"architectures\":[\"Gemma4ForConditionalGeneration\"],\"model_type\":\"gemma4\",\"audio_config\":null,"
    "\"tie_word_embeddings\":true,\"vision_config\":" VISION_31B ","
    "\"text_config\":{\"model_type\":\"gemma4_text\",\"hidden_size\":5376,\"num_hidden_layers\":60,"
    "\"num_attention_heads\":32,\"num_key_value_heads\":16,\"num_global_key_value_heads\":4,\"head_dim\":256,"
    "\"global_head_dim\":512,\"intermediate_size\":21504,\"vocab_size\":262144,\"sliding_window\":1024,"
    "\"max_position_embeddings\":262144,\"attention_k_eq_v\":true,\"enable_moe_block\":false,"
    "\"hidden_size_per_layer_input\":0,\"num_kv_shared_layers\":0,\"use_double_wide_mlp\":false,"
    "\"use_bidirectional_attention\":\"vision\",\"attention_bias\":false,\"hidden_activation\":\"gelu_pytorch_tanh\","
    "\"final_logit_softcapping\":30.0,\"rms_norm_eps\":1e-06,\"tie_word_embeddings\":true,"
    "\"bos_token_id\":2,\"pad_token_id\":0,\"eos_token_id\":[1,106],"
    "\"rope_parameters\":{\"sliding_attention\":{\"rope_type\":\"default\",\"rope_theta\":10000.0},"
    "\"full_attention\":{\"rope_type\":\"proportional\",\"partial_rotary_factor\":0.25,\"rope_theta\":1000000.0}},"
    "\"layer_types\":[LT]}}";

static void test_real(void) {
    g4_config c31, c26, g31;
    g4_error err = {{0}};
    int rc = g4_config_load(&c31, "tests/model/data/config_31b_mm.json", &err);
    CHECK(rc == 0, "31B: %s", err.msg);
    if (!rc) check_real(&c31, true);
    rc = g4_config_load(&c26, "tests/model/data/config_26b_mm.json", &err);
    CHECK(rc == 0, "26B: %s", err.msg);
    if (!rc) check_real(&c26, false);

    /* expand LT into the 60 layer types */
    char lt[60 * 24] = "", *json = malloc(strlen(google_31b) + sizeof lt);
    for (int l = 0; l < 60; l++) strcat(lt, l % 6 == 5 ? "\"full_attention\"," : "\"sliding_attention\",");
    lt[strlen(lt) - 1] = 0;
    const char *at = strstr(google_31b, "LT");
    sprintf(json, "%.*s%s%s", (int)(at - google_31b), google_31b, lt, at + 2);
    rc = g4_config_parse(&g31, json, &err);
    CHECK(rc == 0, "31B google form: %s", err.msg);
    if (!rc) {
        check_real(&g31, true);
        const g4_vision_config *v = &g31.vision;
        CHECK(v->present && v->hidden == 1152 && v->n_layers == 27 && v->n_heads == 16 && v->n_kv_heads == 16 &&
                  v->head_dim == 72 && v->intermediate == 4304 && v->pos_size == 10240 && v->rope_theta == 100.0 &&
                  v->standardize && v->eps == 1e-6f,
              "31B vision_config");
        /* the fixture's vision_config is transformers' default one (768 wide, 16 layers) */
        CHECK(c31.vision.present && c31.vision.hidden == 768 && c31.vision.n_layers == 16 && !c31.vision.standardize,
              "fixture vision_config");
        g31.vision = c31.vision = (g4_vision_config){0};
        CHECK(memcmp(&g31, &c31, sizeof g31) == 0, "31B: google and transformers forms parse to the same text config");
    }
    free(json);
}

/* ---- rejections: mutate one field of a fixture, expect the field's name in the message ---- */

/* Sets (value != NULL) or deletes (value == NULL) the dotted path in the JSON text. */
static char *mutate(const char *text, const char *path, const char *value) {
    cJSON *root = cJSON_Parse(text), *obj = root;
    char buf[256], *save = NULL;
    snprintf(buf, sizeof buf, "%s", path);
    char *key = strtok_r(buf, ".", &save), *next;
    while ((next = strtok_r(NULL, ".", &save)) != NULL) {
        obj = cJSON_GetObjectItemCaseSensitive(obj, key);
        key = next;
    }
    if (!obj) {
        cJSON_Delete(root);
        return NULL;
    }
    cJSON_DeleteItemFromObjectCaseSensitive(obj, key);
    if (value) cJSON_AddItemToObject(obj, key, cJSON_Parse(value));
    char *out = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return out;
}

static void expect_reject(const char *base, const char *path, const char *value, const char *needle) {
    char *text = mutate(base, path, value);
    CHECK(text != NULL, "mutate %s", path);
    if (!text) return;
    g4_config c;
    g4_error err = {{0}};
    int rc = g4_config_parse(&c, text, &err);
    CHECK(rc == -1 && strstr(err.msg, needle), "%s = %s: rc %d, message \"%s\" should name %s", path,
          value ? value : "(deleted)", rc, err.msg, needle);
    free(text);
}

static void expect_accept(const char *base, const char *path, const char *value, g4_config *c) {
    char *text = mutate(base, path, value);
    g4_error err = {{0}};
    CHECK(text && g4_config_parse(c, text, &err) == 0, "%s = %s should be accepted: %s", path, value, err.msg);
    free(text);
}

static void test_rejections(void) {
    char *d = slurp("tests/model/data/config_tiny_dense_text.json");
    char *m = slurp("tests/model/data/config_tiny_moe_mm.json");
    CHECK(d && m, "fixtures readable");
    if (!d || !m) return;
    expect_reject(d, "hidden_size_per_layer_input", "256", "hidden_size_per_layer_input");
    expect_reject(d, "hidden_size_per_layer_input", NULL, "hidden_size_per_layer_input");
    expect_reject(d, "num_kv_shared_layers", "4", "num_kv_shared_layers");
    expect_reject(d, "use_double_wide_mlp", "true", "use_double_wide_mlp");
    expect_reject(d, "use_bidirectional_attention", "\"all\"", "use_bidirectional_attention");
    expect_reject(d, "attention_bias", "true", "attention_bias");
    expect_reject(d, "hidden_activation", "\"gelu\"", "hidden_activation");
    expect_reject(d, "tie_word_embeddings", "false", "tie_word_embeddings");
    expect_reject(m, "tie_word_embeddings", "false", "tie_word_embeddings");
    expect_reject(m, "text_config.tie_word_embeddings", "false", "tie_word_embeddings");
    expect_reject(m, "audio_config", "{\"hidden_size\":1536}", "audio_config");
    expect_reject(d, "rope_parameters.full_attention.rope_type", "\"yarn\"",
                  "rope_parameters.full_attention.rope_type");
    expect_reject(d, "rope_parameters.sliding_attention.partial_rotary_factor", "0.5", "partial_rotary_factor");
    expect_reject(d, "rope_parameters.sliding_attention", NULL, "rope_parameters.sliding_attention");
    expect_reject(d, "hidden_size", NULL, "hidden_size");
    expect_reject(d, "vocab_size", NULL, "vocab_size");
    expect_reject(d, "layer_types", NULL, "layer_types");
    expect_reject(d, "hidden_size", "0", "hidden_size");
    expect_reject(d, "head_dim", "-16", "head_dim");
    expect_reject(d, "intermediate_size", "12.5", "intermediate_size");
    expect_reject(d, "sliding_window", "\"8\"", "sliding_window");
    expect_reject(d, "num_key_value_heads", "3", "num_key_value_heads");
    expect_reject(d, "num_hidden_layers", "11", "layer_types");
    expect_reject(d, "num_hidden_layers", "200", "num_hidden_layers");
    expect_reject(d, "layer_types", "[\"sliding_attention\"]", "layer_types");
    expect_reject(m, "text_config.layer_types",
                  "[\"sliding_attention\",\"sliding_attention\",\"sliding_attention\",\"sliding_attention\","
                  "\"full_attention\",\"local\"]",
                  "layer_types[5]");
    expect_reject(m, "text_config.layer_types",
                  "[\"sliding_attention\",\"sliding_attention\",\"sliding_attention\",\"sliding_attention\","
                  "\"full_attention\",\"sliding_attention\"]",
                  "layer_types");
    expect_reject(d, "per_layer_config.11", "{\"head_dim\":64,\"num_key_value_heads\":1}", "per_layer_config");
    expect_reject(d, "per_layer_config.03", "{\"head_dim\":32}", "per_layer_config");
    expect_reject(d, "per_layer_config.05", "{\"head_dim\":32,\"num_key_value_heads\":1,\"sliding_window\":4}",
                  "per_layer_config.05.sliding_window");
    expect_reject(d, "per_layer_config.12", "{\"head_dim\":32}", "per_layer_config");
    expect_reject(d, "global_head_dim", "64", "global_head_dim");
    expect_reject(d, "num_global_key_value_heads", "2", "num_global_key_value_heads");
    expect_reject(m, "text_config.per_layer_config.5", "{\"head_dim\":64,\"num_key_value_heads\":3}",
                  "num_global_key_value_heads");
    expect_reject(m, "text_config.num_experts", NULL, "num_experts");
    expect_reject(m, "text_config.top_k_experts", "16", "top_k_experts");
    expect_reject(m, "text_config.moe_intermediate_size", "0", "moe_intermediate_size");
    expect_reject(m, "text_config.rms_norm_eps", "0", "rms_norm_eps");
    /* the vision tower's config (issue 18): malformed or unsupported fields named */
    expect_reject(m, "vision_config", "5", "vision_config");
    expect_reject(m, "vision_config.num_hidden_layers", "0", "vision_config.num_hidden_layers");
    expect_reject(m, "vision_config.num_hidden_layers", "129", "vision_config.num_hidden_layers");
    expect_reject(m, "vision_config.hidden_size", "\"1152\"", "vision_config.hidden_size");
    expect_reject(m, "vision_config.hidden_size", "2147483647", "vision_config.hidden_size");
    expect_reject(m, "vision_config.head_dim", "70", "vision_config.head_dim");
    expect_reject(m, "vision_config.num_key_value_heads", "5", "vision_config.num_key_value_heads");
    expect_reject(m, "vision_config.use_clipped_linears", "true", "vision_config.use_clipped_linears");
    expect_reject(m, "vision_config.attention_bias", "true", "vision_config.attention_bias");
    expect_reject(m, "vision_config.patch_size", "14", "vision_config.patch_size");
    expect_reject(m, "vision_config.pooling_kernel_size", "2", "vision_config.pooling_kernel_size");
    expect_reject(m, "vision_config.hidden_activation", "\"gelu\"", "vision_config.hidden_activation");
    expect_reject(m, "vision_config.model_type", "\"siglip_vision_model\"", "vision_config.model_type");
    expect_reject(m, "vision_config.rope_parameters.rope_type", "\"yarn\"", "vision_config.rope_parameters.rope_type");
    expect_reject(m, "vision_config.rope_parameters.rope_theta", "-1", "vision_config.rope_parameters.rope_theta");
    expect_reject(m, "vision_config.rms_norm_eps", "0", "vision_config.rms_norm_eps");
    expect_reject(m, "vision_config.standardize", "1", "standardize");
    {
        g4_config c;
        expect_accept(m, "vision_config", "null", &c);
        CHECK(!c.vision.present && c.multimodal, "vision_config null: no tower");
        expect_accept(m, "vision_config.rope_parameters.rope_type", "\"axial\"", &c);
        CHECK(c.vision.present && c.vision.rope_theta == 100.0 && c.vision.head_dim == 64, "axial rope accepted");
    }
    /* issue 20: geometry past int arithmetic is refused at load, naming the field */
    expect_reject(d, "sliding_window", "1073741824", "sliding_window");
    expect_reject(d, "sliding_window", "2147483647", "sliding_window");
    expect_reject(d, "max_position_embeddings", "2147483647", "max_position_embeddings");
    expect_reject(d, "head_dim", "2097152", "head_dim");
    expect_reject(d, "hidden_size", "2147483647", "hidden_size");
    expect_reject(d, "vocab_size", "1073741824", "vocab_size");
    expect_reject(d, "intermediate_size", "1073741824", "intermediate_size");
    expect_reject(d, "num_attention_heads", "65536", "num_attention_heads");
    expect_reject(m, "text_config.moe_intermediate_size", "1048576", "moe_intermediate_size");

    /* malformed JSON */
    g4_config c;
    g4_error err = {{0}};
    CHECK(g4_config_parse(&c, "{\"hidden_size\": 64,", &err) == -1 && strstr(err.msg, "JSON"), "bad JSON: %s", err.msg);
    CHECK(g4_config_load(&c, "tests/model/data/no_such_config.json", &err) == -1 && strstr(err.msg, "no_such_config"),
          "missing file: %s", err.msg);

    /* accepted variants: eos as an int or null, softcap null = 0, Google names agreeing with the map */
    expect_accept(d, "eos_token_id", "1", &c);
    CHECK(c.n_eos == 1 && c.eos_ids[0] == 1, "eos int");
    expect_accept(d, "eos_token_id", "null", &c);
    CHECK(c.n_eos == 0, "eos null");
    expect_accept(d, "final_logit_softcapping", "null", &c);
    CHECK(c.final_softcap == 0.0f, "softcap null = 0");
    expect_accept(d, "global_head_dim", "32", &c);
    CHECK(c.global_head_dim == 32, "global_head_dim agreeing with per_layer_config");
    expect_accept(d, "per_layer_config", NULL, &c); /* transformers' default: global head_dim 512 */
    CHECK(c.global_head_dim == 512 && c.n_global_kv_heads == 2, "no per_layer_config: %d %d", c.global_head_dim,
          c.n_global_kv_heads);
    free(d);
    free(m);
}

int main(void) {
    test_tiny_dense_text();
    test_tiny_moe_mm();
    test_real();
    test_rejections();
    return check_summary();
}
