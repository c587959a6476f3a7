/* test_golden_vision.c — the vision tower (model/vision.h) on the CPU backend against Hugging
 * Face transformers' Gemma 4 vision tower + embed_vision, through the committed golden data of
 * tests/golden/vision/ (made by make_golden_vision.py; no Python here).
 *
 * For each golden image i: g4_vision_encode(image.<i>.patches, image.<i>.grid) must give
 * image.<i>.soft (transformers in float32) within max|Δ| / max|soft| ≤ 1e-4 (printed), for both
 * images (different grids and aspect ratios), in either order on one tower (the buffers grow
 * and are reused), and on both ranks of a tensor-parallel pair (the tower is replicated, each rank
 * encodes alone: same soft tokens). Also: the dense golden model (vision_config null) has no tower, and encode
 * refuses a grid that is not made of 3 × 3 blocks or does not fit the position table, and a
 * vision_config that does not match the checkpoint's vision tensors fails g4_model_open naming
 * the tensor (a layer missing, a layer too many, std_bias without standardize).
 *
 * Not here: the language side (soft tokens in the prompt), the CUDA kernels (tests/gpu). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/backend.h"
#include "backend/cpu/cpu_backend.h"
#include "base/error.h"
#include "check.h"
#include "model/gemma4.h"
#include "model/safetensors.h"
#include "model/vision.h"

#define BAR 1e-4
#define DIR "tests/golden/vision"

typedef struct image {
    int ph, pw, n_soft, H;
    const float *patches, *soft; /* into the golden mapping */
} image;

static int load_image(g4_safetensors *st, int i, image *im) {
    char name[64];
    snprintf(name, sizeof name, "image.%d.grid", i);
    const g4_st_tensor *g = g4_st_find(st, name);
    snprintf(name, sizeof name, "image.%d.patches", i);
    const g4_st_tensor *p = g4_st_find(st, name);
    snprintf(name, sizeof name, "image.%d.soft", i);
    const g4_st_tensor *s = g4_st_find(st, name);
    if (!g || !p || !s || g->dtype != G4_DT_I32 || p->dtype != G4_DT_F32 || s->dtype != G4_DT_F32 || p->ndim != 2 ||
        s->ndim != 2)
        return -1;
    int32_t grid[2];
    memcpy(grid, g->data, sizeof grid);
    im->ph = grid[0];
    im->pw = grid[1];
    im->n_soft = (int)s->shape[0];
    im->H = (int)s->shape[1];
    im->patches = p->data;
    im->soft = s->data;
    return p->shape[0] == (int64_t)im->ph * im->pw && p->shape[1] == 768 && im->n_soft == im->ph * im->pw / 9 ? 0 : -1;
}

/* max|got − want| / max|want| */
static double rel_err(const float *got, const float *want, size_t n) {
    double d = 0, m = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - want[i]), a = fabs((double)want[i]);
        if (!(e <= d)) d = e; /* NaN counts as a failure */
        if (a > m) m = a;
    }
    return d / m;
}

static void check_image(g4_vision *v, const image *im, int i) {
    g4_error err = {{0}};
    size_t n = (size_t)im->n_soft * im->H;
    float *out = malloc(n * sizeof *out);
    REQUIRE_VOID(out, "out of memory");
    for (size_t k = 0; k < n; k++) out[k] = NAN;
    int rc = g4_vision_encode(v, im->patches, im->ph, im->pw, out, &err);
    CHECK(rc == 0, "image %d: encode: %s", i, err.msg);
    if (rc == 0) {
        double e = rel_err(out, im->soft, n);
        printf("image %d: grid %d x %d, %d soft tokens x %d: max|d|/max|soft| = %.3g (bar %.0e)\n", i, im->ph, im->pw,
               im->n_soft, im->H, e, BAR);
        CHECK(e <= BAR, "image %d: soft tokens differ from transformers: %.3g", i, e);
    }
    free(out);
}

/* Opens the golden checkpoint with its config.json's `from` replaced by `to`; expects failure
 * naming `needle`. */
static void expect_open_fails(g4_backend *be, const char *from, const char *to, const char *needle) {
    char dir[] = "/tmp/g4_vision_cfg_XXXXXX", path[256], src[1024];
    REQUIRE_VOID(mkdtemp(dir), "mkdtemp");
    FILE *f = fopen(DIR "/config.json", "rb");
    REQUIRE_VOID(f, "config.json");
    static char text[1 << 16], out[1 << 16];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = 0;
    char *at = strstr(text, from);
    REQUIRE_VOID(at && !strstr(at + 1, from), "\"%s\" must occur once in config.json", from);
    snprintf(out, sizeof out, "%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
    snprintf(path, sizeof path, "%s/config.json", dir);
    f = fopen(path, "wb");
    REQUIRE_VOID(f && fputs(out, f) >= 0 && fclose(f) == 0, "write %s", path);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    REQUIRE_VOID(realpath(DIR "/model.safetensors", src) && symlink(src, path) == 0, "symlink");
    g4_model *m = NULL;
    g4_error err = {{0}};
    int rc = g4_model_open(&m, dir, be, NULL, &err);
    CHECK(rc == -1 && strstr(err.msg, needle), "%s -> %s: rc %d \"%s\" should name %s", from, to, rc, err.msg, needle);
    printf("vision_config %s -> %s\n", to, err.msg);
    if (rc == 0) g4_model_close(m);
    unlink(path);
    snprintf(path, sizeof path, "%s/config.json", dir);
    unlink(path);
    rmdir(dir);
}

int main(void) {
    g4_error err = {{0}};
    g4_backend *be = g4_backend_cpu_create(&err);
    REQUIRE(be, "cpu backend: %s", err.msg);
    g4_model *m = NULL;
    REQUIRE(g4_model_open(&m, DIR, be, NULL, &err) == 0, "open %s: %s", DIR, err.msg);
    g4_vision *v = g4_model_vision(m);
    REQUIRE(v, "the vision golden model has no vision tower");

    g4_safetensors *st = g4_st_open(DIR "/golden.safetensors", &err);
    REQUIRE(st, "%s", err.msg);
    image im[2];
    REQUIRE(load_image(st, 0, &im[0]) == 0 && load_image(st, 1, &im[1]) == 0, "golden images malformed");
    CHECK(im[0].ph != im[1].ph && im[0].pw != im[1].pw, "the two images must differ in shape");
    CHECK(im[0].H == m->full_cfg.hidden, "soft width %d, text hidden %d", im[0].H, m->full_cfg.hidden);
    check_image(v, &im[1], 1); /* the larger first: buffers sized once, reused */
    check_image(v, &im[0], 0);
    check_image(v, &im[1], 1);

    /* refusals */
    float dummy[9 * 768] = {0}, out[64 * 64];
    CHECK(g4_vision_encode(v, dummy, 4, 3, out, &err) == -1 && strstr(err.msg, "multiples of 3"), "4 x 3 grid: %s",
          err.msg);
    CHECK(g4_vision_encode(v, dummy, 3, 51, out, &err) == -1 && strstr(err.msg, "position table"), "3 x 51 grid: %s",
          err.msg);
    g4_model_close(m);

    /* tensor parallel t = 2: each rank holds the whole tower and encodes alone */
    g4_comm *comm = g4_cpu_comm_create(2, &err);
    REQUIRE(comm, "comm: %s", err.msg);
    for (int r = 0; r < 2; r++) {
        g4_model_opts o;
        g4_model_opts_default(&o);
        o.tp_rank = r, o.tp_size = 2, o.comm = comm;
        g4_model *mr = NULL;
        CHECK(g4_model_open(&mr, DIR, be, &o, &err) == 0, "rank %d: %s", r, err.msg);
        if (!mr) continue;
        printf("tensor parallel rank %d of 2: ", r);
        check_image(g4_model_vision(mr), &im[0], 0);
        g4_model_close(mr);
    }
    g4_comm_destroy(comm);
    g4_st_close(st);

    /* a text-only model (vision_config null) has no tower */
    REQUIRE(g4_model_open(&m, "tests/golden/dense", be, NULL, &err) == 0, "open dense: %s", err.msg);
    CHECK(g4_model_vision(m) == NULL, "dense golden: unexpected vision tower");
    CHECK(g4_vision_encode(NULL, dummy, 3, 3, out, &err) == -1 && strstr(err.msg, "no vision tower"), "NULL: %s",
          err.msg);
    g4_model_close(m);

    /* a vision_config that does not match the tensors */
    expect_open_fails(be, "\"num_hidden_layers\": 3", "\"num_hidden_layers\": 4",
                      "tensor model.vision_tower.encoder.layers.3.input_layernorm.weight: missing");
    expect_open_fails(be, "\"num_hidden_layers\": 3", "\"num_hidden_layers\": 2",
                      "model.vision_tower.encoder.layers.2.");
    expect_open_fails(be, "\"standardize\": true", "\"standardize\": false", "unexpected tensor");
    expect_open_fails(be, "\"intermediate_size\": 200", "\"intermediate_size\": 100",
                      "mlp.gate_proj.linear.weight: shape [200, 144], expected [100, 144]");
    g4_backend_destroy(be);
    return check_summary();
}
