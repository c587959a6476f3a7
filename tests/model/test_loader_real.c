/* test_loader_real.c — the loader on header-only checkpoints laid out exactly like the real
 * google/gemma-4-31B-it and gemma-4-26B-A4B-it (config.json + 2 sparse shards + index).
 *
 * The tensor tables below are copied from docs/model-spec.md §3.2, §3.3 and §3.5 as
 * literal shapes (not derived from a config), so they are independent of weights.c. The
 * tables are first checked against the spec's own totals (§3.4: tensor counts 1,188 / 1,013,
 * parameter counts 31,273,088,876 / 25,805,936,206), then mapped with g4_config_load +
 * g4_st_open + g4_weights_map, and the vision tower's 356 tensors with the real vision_config
 * through g4_vision_weights_map. Shards are sparse (data == NULL): ~110 GB of apparent size,
 * no data written. Corrupted variants must be rejected naming the tensor and expected shape. */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "model/config.h"
#include "model/safetensors.h"
#include "model/safetensors_write.h"
#include "model/vision_weights.h"
#include "model/weights.h"

/* One row of a spec table: shape on sliding (S) and global (F) layers; ndim 0 = absent. */
typedef struct row {
    const char *suffix;
    int s_ndim;
    int64_t s[3];
    int f_ndim;
    int64_t f[3];
} row;

/* §3.2: 31B, per layer, prefix model.language_model.layers.ℓ. */
static const row rows_31b[] = {
    {"input_layernorm.weight", 1, {5376}, 1, {5376}},
    {"self_attn.q_proj.weight", 2, {8192, 5376}, 2, {16384, 5376}},
    {"self_attn.k_proj.weight", 2, {4096, 5376}, 2, {2048, 5376}},
    {"self_attn.v_proj.weight", 2, {4096, 5376}, 0, {0}},
    {"self_attn.o_proj.weight", 2, {5376, 8192}, 2, {5376, 16384}},
    {"self_attn.q_norm.weight", 1, {256}, 1, {512}},
    {"self_attn.k_norm.weight", 1, {256}, 1, {512}},
    {"post_attention_layernorm.weight", 1, {5376}, 1, {5376}},
    {"pre_feedforward_layernorm.weight", 1, {5376}, 1, {5376}},
    {"mlp.gate_proj.weight", 2, {21504, 5376}, 2, {21504, 5376}},
    {"mlp.up_proj.weight", 2, {21504, 5376}, 2, {21504, 5376}},
    {"mlp.down_proj.weight", 2, {5376, 21504}, 2, {5376, 21504}},
    {"post_feedforward_layernorm.weight", 1, {5376}, 1, {5376}},
    {"layer_scalar", 1, {1}, 1, {1}},
};

/* §3.3: 26B-A4B, per layer. */
static const row rows_26b[] = {
    {"input_layernorm.weight", 1, {2816}, 1, {2816}},
    {"self_attn.q_proj.weight", 2, {4096, 2816}, 2, {8192, 2816}},
    {"self_attn.k_proj.weight", 2, {2048, 2816}, 2, {1024, 2816}},
    {"self_attn.v_proj.weight", 2, {2048, 2816}, 0, {0}},
    {"self_attn.o_proj.weight", 2, {2816, 4096}, 2, {2816, 8192}},
    {"self_attn.q_norm.weight", 1, {256}, 1, {512}},
    {"self_attn.k_norm.weight", 1, {256}, 1, {512}},
    {"post_attention_layernorm.weight", 1, {2816}, 1, {2816}},
    {"pre_feedforward_layernorm.weight", 1, {2816}, 1, {2816}},
    {"mlp.gate_proj.weight", 2, {2112, 2816}, 2, {2112, 2816}},
    {"mlp.up_proj.weight", 2, {2112, 2816}, 2, {2112, 2816}},
    {"mlp.down_proj.weight", 2, {2816, 2112}, 2, {2816, 2112}},
    {"post_feedforward_layernorm_1.weight", 1, {2816}, 1, {2816}},
    {"router.proj.weight", 2, {128, 2816}, 2, {128, 2816}},
    {"router.scale", 1, {2816}, 1, {2816}},
    {"router.per_expert_scale", 1, {128}, 1, {128}},
    {"pre_feedforward_layernorm_2.weight", 1, {2816}, 1, {2816}},
    {"experts.gate_up_proj", 3, {128, 1408, 2816}, 3, {128, 1408, 2816}},
    {"experts.down_proj", 3, {128, 2816, 704}, 3, {128, 2816, 704}},
    {"post_feedforward_layernorm_2.weight", 1, {2816}, 1, {2816}},
    {"post_feedforward_layernorm.weight", 1, {2816}, 1, {2816}},
    {"layer_scalar", 1, {1}, 1, {1}},
};

/* §3.5: vision encoder layer (27 of them) under model.vision_tower.encoder.layers.i. */
static const row rows_vision_layer[] = {
    {"input_layernorm.weight", 1, {1152}, 0, {0}},
    {"post_attention_layernorm.weight", 1, {1152}, 0, {0}},
    {"pre_feedforward_layernorm.weight", 1, {1152}, 0, {0}},
    {"post_feedforward_layernorm.weight", 1, {1152}, 0, {0}},
    {"self_attn.q_proj.linear.weight", 2, {1152, 1152}, 0, {0}},
    {"self_attn.k_proj.linear.weight", 2, {1152, 1152}, 0, {0}},
    {"self_attn.v_proj.linear.weight", 2, {1152, 1152}, 0, {0}},
    {"self_attn.o_proj.linear.weight", 2, {1152, 1152}, 0, {0}},
    {"self_attn.q_norm.weight", 1, {72}, 0, {0}},
    {"self_attn.k_norm.weight", 1, {72}, 0, {0}},
    {"mlp.gate_proj.linear.weight", 2, {4304, 1152}, 0, {0}},
    {"mlp.up_proj.linear.weight", 2, {4304, 1152}, 0, {0}},
    {"mlp.down_proj.linear.weight", 2, {1152, 4304}, 0, {0}},
};

typedef struct model {
    const char *name;
    const row *rows;
    int n_rows, n_layers, hidden;
    int64_t want_params, want_text_params;
    int want_tensors, want_text_tensors;
    const char *config_json; /* printf format: %s = the text_config body */
} model;

/* The real towers' vision_config (§3.5 shapes). */
#define VISION_REAL                                                                                      \
    "{\"head_dim\":72,\"hidden_size\":1152,\"intermediate_size\":4304,\"model_type\":\"gemma4_vision\"," \
    "\"num_attention_heads\":16,\"num_hidden_layers\":27,\"num_key_value_heads\":16,\"patch_size\":16,"  \
    "\"pooling_kernel_size\":3,\"position_embedding_size\":10240,\"rms_norm_eps\":1e-06,"                \
    "\"rope_parameters\":{\"rope_theta\":100.0,\"rope_type\":\"default\"},\"standardize\":true,"         \
    "\"use_clipped_linears\":false}"

/* config.json text_config bodies in Google's spelling (spec §1 values). */
#define TEXT_COMMON                                                                                          \
    "\"head_dim\":256,\"global_head_dim\":512,\"vocab_size\":262144,\"sliding_window\":1024,"                \
    "\"max_position_embeddings\":262144,\"attention_k_eq_v\":true,\"hidden_size_per_layer_input\":0,"        \
    "\"num_kv_shared_layers\":0,\"use_double_wide_mlp\":false,\"use_bidirectional_attention\":\"vision\","   \
    "\"attention_bias\":false,\"hidden_activation\":\"gelu_pytorch_tanh\",\"final_logit_softcapping\":30.0," \
    "\"rms_norm_eps\":1e-06,\"tie_word_embeddings\":true,\"bos_token_id\":2,\"pad_token_id\":0,"             \
    "\"eos_token_id\":[1,106],\"model_type\":\"gemma4_text\","                                               \
    "\"rope_parameters\":{\"sliding_attention\":{\"rope_type\":\"default\",\"rope_theta\":10000.0},"         \
    "\"full_attention\":{\"rope_type\":\"proportional\",\"partial_rotary_factor\":0.25,\"rope_theta\":1000000.0}}"
static const char text_31b[] = "\"hidden_size\":5376,\"num_hidden_layers\":60,\"num_attention_heads\":32,"
                               "\"num_key_value_heads\":16,\"num_global_key_value_heads\":4,"
                               "\"intermediate_size\":21504,\"enable_moe_block\":false," TEXT_COMMON;
static const char text_26b[] = "\"hidden_size\":2816,\"num_hidden_layers\":30,\"num_attention_heads\":16,"
                               "\"num_key_value_heads\":8,\"num_global_key_value_heads\":2,"
                               "\"intermediate_size\":2112,\"enable_moe_block\":true,\"num_experts\":128,"
                               "\"top_k_experts\":8,\"moe_intermediate_size\":704," TEXT_COMMON;

static const model m31 = {"31B", rows_31b,      sizeof rows_31b / sizeof(row), 60,
                          5376,  31273088876LL, 30696013824LL + 1331516LL,     1188,
                          832,   text_31b};
static const model m26 = {"26B-A4B", rows_26b,      sizeof rows_26b / sizeof(row), 30,
                          2816,      25805936206LL, 25232441344LL + 700446LL,      1013,
                          657,       text_26b};

/* ---- building a checkpoint ------------------------------------------------------------- */

typedef struct tensor {
    char name[128];
    int ndim;
    int64_t shape[3];
} tensor;

typedef enum { OK, BAD_KPROJ, NO_SCALAR, EXTRA_VPROJ, UNKNOWN_TENSOR } corruption;

static int add(tensor *t, int n, const char *name, int ndim, const int64_t *shape) {
    snprintf(t[n].name, sizeof t[n].name, "%s", name);
    t[n].ndim = ndim;
    memcpy(t[n].shape, shape, sizeof t[n].shape);
    return n + 1;
}

/* All tensors of the checkpoint, in the spec's order. text_only: prefix model., no vision. */
static int table(const model *m, corruption bad, bool text_only, tensor *t) {
    const char *P = text_only ? "model." : "model.language_model.";
    char name[128];
    int n = 0;
    int64_t embed[3] = {262144, m->hidden}, norm[3] = {m->hidden};
    snprintf(name, sizeof name, "%sembed_tokens.weight", P);
    n = add(t, n, name, 2, embed);
    snprintf(name, sizeof name, "%snorm.weight", P);
    n = add(t, n, name, 1, norm);
    for (int l = 0; l < m->n_layers; l++) {
        bool global = l % 6 == 5; /* spec §1: [S,S,S,S,S,F] repeated */
        for (int r = 0; r < m->n_rows; r++) {
            const row *w = &m->rows[r];
            int ndim = global ? w->f_ndim : w->s_ndim;
            const int64_t *shape = global ? w->f : w->s;
            snprintf(name, sizeof name, "%slayers.%d.%s", P, l, w->suffix);
            if (bad == BAD_KPROJ && l == 3 && strstr(w->suffix, "k_proj")) shape = w->f; /* global shape on S */
            if (bad == NO_SCALAR && l == 7 && strcmp(w->suffix, "layer_scalar") == 0) continue;
            if (bad == EXTRA_VPROJ && l == 5 && strstr(w->suffix, "v_proj")) ndim = w->s_ndim, shape = w->s;
            if (ndim) n = add(t, n, name, ndim, shape);
        }
    }
    if (bad == UNKNOWN_TENSOR) {
        snprintf(name, sizeof name, "%slayers.2.mlp.gate_proj.bias", P);
        n = add(t, n, name, 1, (int64_t[3]){m->hidden});
    }
    if (text_only) return n;
    static const int64_t patch[3] = {1152, 768}, pos[3] = {2, 10240, 1152}, v1152[3] = {1152};
    n = add(t, n, "model.vision_tower.patch_embedder.input_proj.weight", 2, patch);
    n = add(t, n, "model.vision_tower.patch_embedder.position_embedding_table", 3, pos);
    for (int l = 0; l < 27; l++)
        for (size_t r = 0; r < sizeof rows_vision_layer / sizeof(row); r++) {
            snprintf(name, sizeof name, "model.vision_tower.encoder.layers.%d.%s", l, rows_vision_layer[r].suffix);
            n = add(t, n, name, rows_vision_layer[r].s_ndim, rows_vision_layer[r].s);
        }
    n = add(t, n, "model.vision_tower.std_bias", 1, v1152);
    n = add(t, n, "model.vision_tower.std_scale", 1, v1152);
    n = add(t, n, "model.embed_vision.embedding_projection.weight", 2, (int64_t[3]){m->hidden, 1152});
    return n;
}

static int64_t numel(const tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

static char dir[64];

static char *pathf(const char *name) {
    static char buf[2][256];
    static int k;
    k ^= 1;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

static const char *shard_name[2] = {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"};

/* Writes config.json, two sparse BF16 shards (first half / second half of the table) and the index. */
static int write_checkpoint(const model *m, const tensor *t, int n, bool text_only) {
    g4_error err = {{0}};
    FILE *f = fopen(pathf("config.json"), "w");
    if (!f) return -1;
    if (text_only) fprintf(f, "{%s,\"layer_types\":[", m->config_json);
    else
        fprintf(f,
                "{\"architectures\":[\"Gemma4ForConditionalGeneration\"],\"model_type\":\"gemma4\","
                "\"audio_config\":null,\"vision_config\":" VISION_REAL ",\"tie_word_embeddings\":true,"
                "\"text_config\":{%s,\"layer_types\":[",
                m->config_json);
    for (int l = 0; l < m->n_layers; l++)
        fprintf(f, "%s\"%s\"", l ? "," : "", l % 6 == 5 ? "full_attention" : "sliding_attention");
    fprintf(f, text_only ? "]}\n" : "]}}\n");
    if (fclose(f)) return -1;

    f = fopen(pathf("model.safetensors.index.json"), "w");
    if (!f) return -1;
    int64_t total = 0;
    for (int i = 0; i < n; i++) total += 2 * numel(&t[i]);
    fprintf(f, "{\"metadata\":{\"total_size\":%lld},\"weight_map\":{", (long long)total);
    for (int s = 0; s < 2; s++) {
        g4_st_writer *w = g4_stw_create();
        int lo = s ? n / 2 : 0, hi = s ? n : n / 2;
        for (int i = lo; i < hi; i++) {
            if (g4_stw_add(w, t[i].name, G4_DT_BF16, t[i].ndim, t[i].shape, NULL, &err)) return -1;
            fprintf(f, "%s\"%s\":\"%s\"", i ? "," : "", t[i].name, shard_name[s]);
        }
        int rc = g4_stw_write(w, pathf(shard_name[s]), &err);
        g4_stw_free(w);
        if (rc) {
            fprintf(stderr, "%s\n", err.msg);
            fclose(f);
            return -1;
        }
    }
    fprintf(f, "}}\n");
    return fclose(f) ? -1 : 0;
}

static void remove_checkpoint(void) {
    unlink(pathf("config.json"));
    unlink(pathf("model.safetensors.index.json"));
    unlink(pathf(shard_name[0]));
    unlink(pathf(shard_name[1]));
}

/* Builds, loads and maps; returns g4_weights_map's rc with err, or -2 if a step before it failed.
 * w's names and pointers live in the mapping: it stays open until the next load (or close_st). */
static g4_safetensors *open_st;
static g4_config open_cfg; /* the config of the last load */
static void close_st(void) {
    g4_st_close(open_st);
    open_st = NULL;
}

static int load(const model *m, corruption bad, bool text_only, const char *config_path, g4_weights *w, g4_error *err) {
    static tensor t[1200];
    int n = table(m, bad, text_only, t);
    if (write_checkpoint(m, t, n, text_only)) return -2;
    if (g4_config_load(&open_cfg, config_path ? config_path : pathf("config.json"), err)) return -2;
    close_st();
    open_st = g4_st_open(dir, err);
    if (!open_st) return -2;
    return g4_weights_map(w, &open_cfg, open_st, err);
}

static const char *commas(int64_t v, char *buf) {
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, "%lld", (long long)v), o = 0;
    for (int i = 0; i < n; i++) {
        if (i && (n - i) % 3 == 0) buf[o++] = ',';
        buf[o++] = tmp[i];
    }
    buf[o] = 0;
    return buf;
}

static int count_slot(g4_weight *w, void *user) {
    (void)w;
    ++*(int *)user;
    return 0;
}

static int sum_numel(g4_weight *w, void *user) {
    *(int64_t *)user += g4_weight_numel(w);
    return 0;
}

static void test_model(const model *m, const char *transformers_config) {
    static tensor t[1200];
    static g4_weights w;
    char a[32], b[32];
    g4_error err = {{0}};

    /* the table itself reproduces the spec's totals (§3.4) */
    int n = table(m, OK, false, t);
    int64_t params = 0;
    for (int i = 0; i < n; i++) params += numel(&t[i]);
    CHECK(n == m->want_tensors, "%s table: %d tensors, spec says %d", m->name, n, m->want_tensors);
    CHECK(params == m->want_params, "%s table: %s params, spec says %s", m->name, commas(params, a),
          commas(m->want_params, b));

    int rc = load(m, OK, false, NULL, &w, &err);
    CHECK(rc == 0, "%s: accepted: %s", m->name, err.msg);
    if (rc == 0) {
        printf("%s: %d tensors, %s parameters (%s text, %d vision/projector tensors skipped)\n", m->name, n,
               commas(w.n_all_params, a), commas(w.n_text_params, b), w.n_skipped);
        CHECK(w.n_all_params == m->want_params, "%s: n_all_params %lld", m->name, (long long)w.n_all_params);
        CHECK(w.n_text_params == m->want_text_params, "%s: n_text_params %lld", m->name, (long long)w.n_text_params);
        CHECK(w.n_skipped == 356, "%s: skipped %d", m->name, w.n_skipped);
        CHECK(w.n_layers == m->n_layers, "%s: layers", m->name);
        int slots = 0;
        CHECK(g4_weights_for_each(&w, count_slot, &slots) == 0 && slots == m->want_text_tensors,
              "%s: %d present slots, want %d", m->name, slots, m->want_text_tensors);
        CHECK(g4_weight_present(&w.layers[4].v_proj) && !g4_weight_present(&w.layers[5].v_proj), "%s: v_proj", m->name);
        CHECK(w.embed.shape[0] == 262144 && w.embed.shape[1] == m->hidden && w.embed.dtype == G4_DT_BF16, "%s: embed",
              m->name);
        CHECK(strcmp(w.layers[59 % m->n_layers].layer_scalar.name,
                     m->n_layers == 60 ? "model.language_model.layers.59.layer_scalar"
                                       : "model.language_model.layers.29.layer_scalar") == 0,
              "%s: names", m->name);
        if (m->n_layers == 30)
            CHECK(w.layers[29].experts_gate_up.shape[1] == 1408 && w.layers[29].experts_down.shape[2] == 704 &&
                      g4_weight_present(&w.layers[0].router_expert_scale),
                  "26B: experts");
        else CHECK(!g4_weight_present(&w.layers[0].experts_gate_up), "31B: no experts");

        /* the vision tower of the same checkpoint (spec §3.4: 569,550,384 + projector H·1152) */
        g4_vision_weights vw;
        CHECK(open_cfg.vision.present && g4_vision_weights_in(open_st), "%s: vision tower present", m->name);
        rc = g4_vision_weights_map(&vw, &open_cfg.vision, m->hidden, open_st, &err);
        CHECK(rc == 0, "%s: vision weights: %s", m->name, err.msg);
        if (rc == 0) {
            int vslots = 0;
            int64_t vparams = 0;
            g4_vision_weights_for_each(&vw, count_slot, &vslots);
            g4_vision_weights_for_each(&vw, sum_numel, &vparams);
            /* 356 tensors; the position table is two [10240, 1152] slots */
            CHECK(vslots == 357, "%s: %d vision slots", m->name, vslots);
            CHECK(vparams == 569550384LL + (int64_t)m->hidden * 1152, "%s: vision params %lld", m->name,
                  (long long)vparams);
            CHECK(vw.pos_y.host == (const char *)vw.pos_x.host + 10240 * 1152 * 2, "%s: row table is the second half",
                  m->name);
            g4_vision_weights_free(&vw);
        }
    }
    /* the same checkpoint with config.json as transformers 5.23 writes it (per_layer_config) */
    rc = load(m, OK, false, transformers_config, &w, &err);
    CHECK(rc == 0 && w.n_all_params == m->want_params, "%s with %s: %s", m->name, transformers_config, err.msg);

    /* corrupted variants */
    char want[256];
    const int64_t *ks = m->rows[2].s, *kf = m->rows[2].f;
    snprintf(want, sizeof want,
             "tensor model.language_model.layers.3.self_attn.k_proj.weight: shape [%lld, %lld], expected [%lld, %lld]",
             (long long)kf[0], (long long)kf[1], (long long)ks[0], (long long)ks[1]);
    rc = load(m, BAD_KPROJ, false, NULL, &w, &err);
    CHECK(rc == -1 && strstr(err.msg, want), "%s mis-shaped k_proj: \"%s\"", m->name, err.msg);
    printf("%s mis-shaped k_proj -> %s\n", m->name, err.msg);
    rc = load(m, NO_SCALAR, false, NULL, &w, &err);
    CHECK(rc == -1 && strstr(err.msg, "tensor model.language_model.layers.7.layer_scalar: missing, expected shape [1]"),
          "%s missing layer_scalar: \"%s\"", m->name, err.msg);
    printf("%s missing layer_scalar -> %s\n", m->name, err.msg);
    rc = load(m, EXTRA_VPROJ, false, NULL, &w, &err);
    CHECK(rc == -1 &&
              strstr(err.msg, "tensor model.language_model.layers.5.self_attn.v_proj.weight: unexpected tensor") &&
              strstr(err.msg, "no v_proj"),
          "%s extra v_proj: \"%s\"", m->name, err.msg);
    printf("%s extra v_proj -> %s\n", m->name, err.msg);
    rc = load(m, UNKNOWN_TENSOR, false, NULL, &w, &err);
    CHECK(rc == -1 && strstr(err.msg, "tensor model.language_model.layers.2.mlp.gate_proj.bias: unexpected tensor"),
          "%s unknown tensor: \"%s\"", m->name, err.msg);

    /* text-only conversion: prefix model., no vision tower */
    rc = load(m, OK, true, NULL, &w, &err);
    CHECK(rc == 0 && w.n_skipped == 0 && w.n_all_params == m->want_text_params && w.n_text_params == w.n_all_params,
          "%s text-only: %s", m->name, err.msg);
    CHECK(rc != 0 || strncmp(w.embed.name, "model.embed_tokens", 18) == 0, "%s text-only prefix", m->name);
    remove_checkpoint();
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/g4_test_loader_XXXXXX");
    if (!mkdtemp(dir)) return check_skip("mkdtemp failed");
    test_model(&m31, "tests/model/data/config_31b_mm.json");
    test_model(&m26, "tests/model/data/config_26b_mm.json");
    remove_checkpoint();
    CHECK(rmdir(dir) == 0, "temp dir %s removed", dir);
    return check_summary();
}
