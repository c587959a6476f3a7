/* bench_vision.c — g4-bench-vision: images per second through the vision encoder alone
 * (g4_vision_encode, model/vision.h) at the real tower's widths, on any backend.
 *
 * Writes a header-only checkpoint into a temporary directory: the golden tiny text model's
 * tensors (tests/golden/vision, read for names and shapes only) plus a vision tower 1152 wide,
 * 16 heads × 72, MLP 4304, position table 2 × 10240, standardize, with --layers L layers (27 is the
 * real tower), and opens it with dummy weights (base/dummy.h: seeded values made on the backend).
 * Then encodes a random image of the budget's patch grid (a square-ish grid of ≤ 9 × budget
 * patches, sides multiples of 3) --repeat times (after one warm-up encode when repeat > 1) and prints one JSON object: seconds per image,
 * images/s, and GFLOP/s over the encoder's matmul + attention FLOPs (the terms of
 * bench/vision/encoder_cost.py). With L < 27 it also prints the time scaled to 27 layers
 * (the layers are identical, so the time is linear in L up to the fixed patch embedding,
 * pooling and projection).
 *
 *   g4-bench-vision [--backend cpu|cuda] [--layers 27] [--budget 70] [--repeat 1]
 * Run from the repository root. Not decoding or resizing (the media benchmark's part). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backend/backend.h"
#include "model/gemma4.h"
#include "model/safetensors.h"
#include "model/safetensors_write.h"
#include "model/vision.h"

#define GOLDEN "tests/golden/vision"
#define D 1152
#define NH 16
#define HD 72
#define MLP 4304
#define POS 10240

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int usage(void) {
    fprintf(stderr, "usage: g4-bench-vision [--backend cpu|cuda] [--layers L] [--budget B] [--repeat N]\n");
    return 2;
}

/* config.json: the golden one with the real vision widths and L layers. */
static int write_config(const char *dir, int layers, g4_error *err) {
    char path[512], *text = NULL;
    snprintf(path, sizeof path, "%s/config.json", GOLDEN);
    FILE *f = fopen(path, "rb");
    if (!f) return g4_fail(err, "cannot open %s (run from the repository root)", path);
    text = calloc(1, 1 << 16);
    size_t n = text ? fread(text, 1, (1 << 16) - 1, f) : 0;
    fclose(f);
    char *vc = text ? strstr(text, "\"vision_config\"") : NULL;
    char *end = vc ? strchr(vc, '}') : NULL; /* rope_parameters closes first */
    end = end ? strchr(end + 1, '}') : NULL;
    if (!n || !vc || !end) {
        free(text);
        return g4_fail(err, "%s: no vision_config", path);
    }
    snprintf(path, sizeof path, "%s/config.json", dir);
    f = fopen(path, "wb");
    if (!f) {
        free(text);
        return g4_fail(err, "cannot write %s", path);
    }
    fprintf(f,
            "%.*s\"vision_config\": {\"head_dim\": %d, \"hidden_size\": %d, \"intermediate_size\": %d, "
            "\"model_type\": \"gemma4_vision\", \"num_attention_heads\": %d, \"num_hidden_layers\": %d, "
            "\"num_key_value_heads\": %d, \"position_embedding_size\": %d, \"rms_norm_eps\": 1e-06, "
            "\"rope_parameters\": {\"rope_theta\": 100.0, \"rope_type\": \"default\"}, \"standardize\": true}%s",
            (int)(vc - text), text, HD, D, MLP, NH, layers, NH, POS, end + 1);
    free(text);
    return fclose(f) ? g4_fail(err, "cannot write %s", path) : 0;
}

/* model.safetensors: the golden text tensors and a real-width tower, all sparse (no bytes). */
static int write_tensors(const char *dir, int layers, int H, g4_error *err) {
    g4_safetensors *st = g4_st_open(GOLDEN "/model.safetensors", err);
    if (!st) return -1;
    g4_st_writer *w = g4_stw_create();
    int rc = w ? 0 : g4_fail(err, "out of memory");
    for (int i = 0; i < g4_st_count(st) && !rc; i++) {
        const g4_st_tensor *t = g4_st_at(st, i);
        if (strncmp(t->name, "model.language_model.", 21) == 0)
            rc = g4_stw_add(w, t->name, t->dtype, t->ndim, t->shape, NULL, err);
    }
    g4_st_close(st);
    char name[160];
#define ADD(nd, a, b, c, ...) \
    (snprintf(name, sizeof name, __VA_ARGS__), g4_stw_add(w, name, G4_DT_BF16, nd, (int64_t[3]){a, b, c}, NULL, err))
    if (!rc)
        rc = ADD(2, D, 768, 0, "model.vision_tower.patch_embedder.input_proj.weight") ||
             ADD(3, 2, POS, D, "model.vision_tower.patch_embedder.position_embedding_table") ||
             ADD(1, D, 0, 0, "model.vision_tower.std_bias") || ADD(1, D, 0, 0, "model.vision_tower.std_scale") ||
             ADD(2, H, D, 0, "model.embed_vision.embedding_projection.weight");
    static const char *norms[] = {"input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm",
                                  "post_feedforward_layernorm"};
    static const char *attn[] = {"q", "k", "v", "o"};
    const char *L = "model.vision_tower.encoder.layers";
    for (int l = 0; l < layers && !rc; l++) {
        for (int i = 0; i < 4 && !rc; i++) rc = ADD(1, D, 0, 0, "%s.%d.%s.weight", L, l, norms[i]);
        for (int i = 0; i < 4 && !rc; i++) rc = ADD(2, D, D, 0, "%s.%d.self_attn.%s_proj.linear.weight", L, l, attn[i]);
        rc = rc || ADD(1, HD, 0, 0, "%s.%d.self_attn.q_norm.weight", L, l) ||
             ADD(1, HD, 0, 0, "%s.%d.self_attn.k_norm.weight", L, l) ||
             ADD(2, MLP, D, 0, "%s.%d.mlp.gate_proj.linear.weight", L, l) ||
             ADD(2, MLP, D, 0, "%s.%d.mlp.up_proj.linear.weight", L, l) ||
             ADD(2, D, MLP, 0, "%s.%d.mlp.down_proj.linear.weight", L, l);
    }
#undef ADD
    char path[512];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (!rc) rc = g4_stw_write(w, path, err);
    g4_stw_free(w);
    return rc ? -1 : 0;
}

int main(int argc, char **argv) {
    const char *backend = "cpu";
    int layers = 27, budget = 70, repeat = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[++i] : NULL;
        if (!v) return usage();
        if (!strcmp(a, "--backend")) backend = v;
        else if (!strcmp(a, "--layers")) layers = atoi(v);
        else if (!strcmp(a, "--budget")) budget = atoi(v);
        else if (!strcmp(a, "--repeat")) repeat = atoi(v);
        else return usage();
    }
    if (layers < 1 || layers > 27 || budget < 1 || repeat < 1) return usage();
    /* the patch grid: ph × pw cells of 3 × 3 patches, the most cells ≤ budget, as square as that allows */
    int gh = 0, gw = 0;
    for (int h = (int)floor(sqrt((double)budget)); h >= 1; h--)
        if (h * (budget / h) > gh * gw) gh = h, gw = budget / h;
    int ph = 3 * gh, pw = 3 * gw, N = ph * pw;

    g4_error err = {{0}};
    char dir[] = "/tmp/g4_bench_vision_XXXXXX";
    if (!mkdtemp(dir)) return fprintf(stderr, "mkdtemp failed\n"), 1;
    g4_backend *be = NULL;
    g4_model *m = NULL;
    float *patches = NULL, *out = NULL;
    int rc = 1;
    g4_backend_options bo;
    g4_backend_options_default(&bo);
    if (write_config(dir, layers, &err)) goto done;
    g4_config cfg;
    char path[512];
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (g4_config_load(&cfg, path, &err) || write_tensors(dir, layers, cfg.hidden, &err)) goto done;
    if (!(be = g4_backend_create(backend, &bo, &err))) goto done;
    g4_model_opts o;
    g4_model_opts_default(&o);
    o.dummy_seed = 7;
    if (g4_model_open(&m, dir, be, &o, &err)) goto done;
    patches = malloc((size_t)N * 768 * sizeof *patches);
    out = malloc((size_t)(N / 9) * cfg.hidden * sizeof *out);
    if (!patches || !out) {
        g4_fail(&err, "out of memory");
        goto done;
    }
    uint64_t s = 88172645463325252ull;
    for (size_t i = 0; i < (size_t)N * 768; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        patches[i] = (float)((s >> 11) * (2.0 / 9007199254740992.0) - 1.0);
    }
    if (repeat > 1 && g4_vision_encode(g4_model_vision(m), patches, ph, pw, out, &err)) goto done; /* warm-up */
    double t0 = now_s();
    for (int r = 0; r < repeat; r++)
        if (g4_vision_encode(g4_model_vision(m), patches, ph, pw, out, &err)) goto done;
    double sec = (now_s() - t0) / repeat;
    double A = NH * HD, flops = 2.0 * N * 768 * D +
                                layers * (8.0 * N * D * A + 6.0 * N * D * MLP + 4.0 * (double)N * N * A) +
                                2.0 * (N / 9) * D * cfg.hidden;
    double fixed = 2.0 * N * 768 * D + 2.0 * (N / 9) * D * cfg.hidden;
    double per_layer = (flops - fixed) / layers;
    double sec27 = sec * (fixed + 27 * per_layer) / flops; /* time ∝ FLOPs, same rate */
    printf("{\"backend\": \"%s\", \"budget\": %d, \"grid\": [%d, %d], \"patches\": %d, \"layers\": %d, "
           "\"seconds_per_image\": %.4f, \"images_per_s\": %.4f, \"gflop\": %.1f, \"gflop_per_s\": %.2f, "
           "\"seconds_per_image_27_layers\": %.3f, \"images_per_s_27_layers\": %.5f}\n",
           backend, budget, ph, pw, N, layers, sec, 1.0 / sec, flops / 1e9, flops / 1e9 / sec, sec27, 1.0 / sec27);
    rc = 0;
done:
    if (rc) fprintf(stderr, "g4-bench-vision: %s\n", err.msg);
    free(patches);
    free(out);
    g4_model_close(m);
    g4_backend_destroy(be);
    snprintf(path, sizeof path, "%s/config.json", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    unlink(path);
    rmdir(dir);
    return rc;
}
