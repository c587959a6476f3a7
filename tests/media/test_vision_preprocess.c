/* test_vision_preprocess.c — media/vision_preprocess.c against transformers' Gemma 4 image
 * processor (golden data from make_vision_golden.py: 14 files × 5 budgets): the same soft-token
 * count before any pixel is touched, the same patch grid, and the same pixel values — each value
 * within 1e-6 of transformers' (through the golden value table: the processor's values are
 * k / 255 for bytes k, so equal bytes mean equal values), whole tensors checked by their weighted
 * byte sums and, for two cases, value by value. Also the budgets accepted and the hash. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "check.h"
#include <cjson/cJSON.h>
#include "golden_io.h"
#include "media/image.h"
#include "media/vision_preprocess.h"

static float table[256];

/* The byte whose golden value v is, or −1 when v is none of them (within 1e-6). */
static int byte_of(float v) {
    int k = (int)lrintf((v + 1.0f) * 127.5f);
    if (k < 0 || k > 255 || fabsf(table[k] - v) > 1e-6f) return -1;
    return k;
}

int main(void) {
    size_t jn;
    char *js = (char *)golden_read("vision.json", &jn);
    REQUIRE(js, "tests/media/golden/vision.json missing");
    cJSON *root = cJSON_ParseWithLength(js, jn);
    REQUIRE(root, "vision.json does not parse");
    const cJSON *tab = cJSON_GetObjectItemCaseSensitive(root, "value_table");
    REQUIRE(cJSON_GetArraySize(tab) == 256, "value_table");
    for (int k = 0; k < 256; k++) table[k] = (float)cJSON_GetArrayItem(tab, k)->valuedouble;
    const cJSON *cases = cJSON_GetObjectItemCaseSensitive(root, "cases");
    REQUIRE(cJSON_GetArraySize(cases) >= 50, "cases");

    static const int budgets[] = {70, 140, 280, 560, 1120};
    for (int b = 0; b < 5; b++) CHECK(g4_vision_budget_valid(budgets[b]), "budget %d", budgets[b]);
    static const int bad[] = {0, 69, 71, 100, 256, 300, 2240, -280};
    for (int b = 0; b < 8; b++) {
        g4_error err = {{0}};
        CHECK(!g4_vision_budget_valid(bad[b]), "budget %d accepted", bad[b]);
        CHECK(g4_vision_soft_tokens(100, 100, bad[b], &err) == -1 && strstr(err.msg, "budget"),
              "budget %d: soft tokens not refused (%s)", bad[b], err.msg);
    }
    g4_error e0 = {{0}};
    CHECK(g4_vision_soft_tokens(0, 10, 280, &e0) == -1, "empty image accepted");

    int n_cases = 0, n_full = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cases) {
        const char *file = cJSON_GetObjectItemCaseSensitive(c, "file")->valuestring;
        int budget = cJSON_GetObjectItemCaseSensitive(c, "budget")->valueint;
        int W = cJSON_GetObjectItemCaseSensitive(c, "width")->valueint;
        int H = cJSON_GetObjectItemCaseSensitive(c, "height")->valueint;
        int ph = cJSON_GetObjectItemCaseSensitive(c, "ph")->valueint;
        int pw = cJSON_GetObjectItemCaseSensitive(c, "pw")->valueint;
        int n_soft = cJSON_GetObjectItemCaseSensitive(c, "num_soft_tokens")->valueint;
        const char *sum = cJSON_GetObjectItemCaseSensitive(c, "sum64")->valuestring;
        g4_error err = {{0}};
        int ns = g4_vision_soft_tokens(W, H, budget, &err);
        CHECK(ns == n_soft, "%s @%d: %d soft tokens, transformers %d (%s)", file, budget, ns, n_soft, err.msg);

        size_t n;
        uint8_t *data = golden_read(file, &n);
        CHECK(data != NULL, "%s missing", file);
        if (!data) continue;
        g4_image img = {0};
        int rc = g4_image_decode(data, n, NULL, &img, &err);
        free(data);
        CHECK(rc == 0, "%s: %s", file, err.msg);
        if (rc) continue;
        g4_vision_pixels px = {0};
        rc = g4_vision_preprocess(&img, budget, &px, &err);
        g4_image_free(&img);
        CHECK(rc == 0, "%s @%d: %s", file, budget, err.msg);
        if (rc) continue;
        n_cases++;
        CHECK(px.ph == ph && px.pw == pw && px.n_soft == n_soft, "%s @%d: grid %dx%d (%d) vs %dx%d (%d)", file, budget,
              px.ph, px.pw, px.n_soft, ph, pw, n_soft);
        if (px.ph != ph || px.pw != pw) {
            g4_vision_pixels_free(&px);
            continue;
        }
        size_t nv = (size_t)ph * pw * G4_VISION_PATCH_DIM;
        uint8_t *bytes = malloc(nv);
        size_t off_table = 0;
        for (size_t i = 0; i < nv; i++) {
            int k = byte_of(px.patches[i]);
            if (k < 0) off_table++;
            bytes[i] = (uint8_t)(k < 0 ? 0 : k);
        }
        CHECK(off_table == 0, "%s @%d: %zu values are not transformers' k/255 values", file, budget, off_table);
        char hex[17];
        snprintf(hex, sizeof hex, "%016llx", (unsigned long long)weighted_sum64(bytes, nv));
        CHECK(!strcmp(hex, sum), "%s @%d: pixel values differ from transformers' (sum %s vs %s)", file, budget, hex,
              sum);
        const cJSON *bf = cJSON_GetObjectItemCaseSensitive(c, "bytes");
        if (cJSON_IsString(bf)) {
            size_t gn;
            uint8_t *gold = golden_read(bf->valuestring, &gn);
            CHECK(gold && gn == nv, "%s: %zu bytes, want %zu", bf->valuestring, gn, nv);
            if (gold && gn == nv) {
                size_t bad_n = 0, first = 0;
                float worst = 0;
                for (size_t i = 0; i < nv; i++) {
                    float d = fabsf(px.patches[i] - table[gold[i]]);
                    if (d > 1e-6f && bad_n++ == 0) first = i;
                    if (d > worst) worst = d;
                }
                CHECK(bad_n == 0, "%s @%d: %zu values off by more than 1e-6 (max %g, first at patch %zu value %zu)",
                      file, budget, bad_n, worst, first / G4_VISION_PATCH_DIM, first % G4_VISION_PATCH_DIM);
                n_full++;
            }
            free(gold);
        }
        /* the hash: stable, and different for a different budget's pixels */
        g4_vision_pixels again = {0};
        g4_image img2 = {0};
        data = golden_read(file, &n);
        if (data && g4_image_decode(data, n, NULL, &img2, &err) == 0 &&
            g4_vision_preprocess(&img2, budget, &again, &err) == 0)
            CHECK(!memcmp(again.hash, px.hash, sizeof px.hash), "%s @%d: hash not deterministic", file, budget);
        g4_vision_pixels_free(&again);
        g4_image_free(&img2);
        free(data);
        free(bytes);
        g4_vision_pixels_free(&px);
    }
    CHECK(n_cases >= 70 && n_full == 2, "%d cases, %d value by value", n_cases, n_full);
    fprintf(stderr, "%d cases against transformers, %d value by value\n", n_cases, n_full);
    cJSON_Delete(root);
    free(js);
    return check_summary();
}
