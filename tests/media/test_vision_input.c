/* test_vision_input.c — media/vision_input.c, the request items both protocols share: soft-token
 * counts as transformers' Gemma 4 processor gives them (golden/vision.json) at the image budget
 * and, for a video frame, at the video budget whatever the image budget; the refusals and their
 * wording (too many items, no tower, too many frames, a broken file, a file over the pixel cap, a
 * grid the tower does not take, more prompt tokens than the context), each leaving the items as
 * they were; the engine's items made from them; and free emptying them. */
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "check.h"
#include <cjson/cJSON.h>
#include "golden_io.h"
#include "media/vision_input.h"

/* transformers' soft-token count for file at budget, from vision.json; −1 when absent. */
static int golden_soft(const cJSON *cases, const char *file, int budget) {
    const cJSON *c;
    cJSON_ArrayForEach(c, cases) {
        if (!strcmp(cJSON_GetObjectItemCaseSensitive(c, "file")->valuestring, file) &&
            cJSON_GetObjectItemCaseSensitive(c, "budget")->valueint == budget)
            return cJSON_GetObjectItemCaseSensitive(c, "num_soft_tokens")->valueint;
    }
    return -1;
}

static void expect_refused(const char *what, int rc, int want_rc, const g4_error *err, const char *needle) {
    CHECK(rc == want_rc, "%s: rc %d, want %d (%s)", what, rc, want_rc, err->msg);
    CHECK(strstr(err->msg, needle) != NULL, "%s: message \"%s\" does not say \"%s\"", what, err->msg, needle);
}

int main(void) {
    size_t jn, n_sq, n_wide;
    char *js = (char *)golden_read("vision.json", &jn);
    REQUIRE(js, "tests/media/golden/vision.json missing");
    cJSON *root = cJSON_ParseWithLength(js, jn);
    REQUIRE(root, "vision.json does not parse");
    const cJSON *cases = cJSON_GetObjectItemCaseSensitive(root, "cases");
    int sq70 = golden_soft(cases, "square_512.png", 70), sq280 = golden_soft(cases, "square_512.png", 280);
    int wide140 = golden_soft(cases, "wide_640x240.jpg", 140);
    REQUIRE(sq70 > 0 && sq280 > 0 && wide140 > 0, "golden cases missing");
    uint8_t *sq = golden_read("square_512.png", &n_sq), *wide = golden_read("wide_640x240.jpg", &n_wide);
    REQUIRE(sq && wide, "golden images missing");

    const g4_vision_limits lim = {.grid = 10240, .max_model_len = 100000};
    g4_error err = {{0}};

    /* begin: the request's item cap, then the tower */
    g4_vision_input v = {0};
    int rc = g4_vision_input_begin(&v, &lim, G4_VISION_MAX_REQUEST_ITEMS + 1, 280, 0, &err);
    expect_refused("65 items", rc, -1, &err, "65 images and video frames, more than the 64 a request may hold");
    g4_vision_limits no_tower = lim;
    no_tower.grid = 0;
    rc = g4_vision_input_begin(&v, &no_tower, 1, 280, 0, &err);
    expect_refused("no tower", rc, -1, &err, "image input is not supported (the served model has no vision tower)");
    rc = g4_vision_input_begin(&v, &no_tower, 1, 280, 1, &err);
    expect_refused("no tower, a video", rc, -1, &err, "video input is not supported");
    CHECK(g4_vision_frames_fit(G4_VISION_MAX_VIDEO_FRAMES, &err) == 0, "32 frames refused");
    expect_refused("33 frames", g4_vision_frames_fit(33, &err), -1, &err,
                   "33 video frames, more than the 32 frames per video Gemma 4 reads");

    /* an image at the image budget, a frame at the video budget, with the request's prompt tokens */
    REQUIRE(g4_vision_input_begin(&v, &lim, G4_VISION_MAX_REQUEST_ITEMS, 280, 0, &err) == 0, "%s", err.msg);
    CHECK(g4_vision_input_add(&v, sq, n_sq, -1, 0, &err) == 0, "image: %s", err.msg);
    CHECK(g4_vision_input_add(&v, sq, n_sq, 0, 0.5, &err) == 0, "frame: %s", err.msg);
    REQUIRE(v.n == 2, "%d items", v.n);
    CHECK(v.n_tokens[0] == sq280 && v.px[0].n_soft == sq280, "image: %d soft tokens, transformers %d", v.n_tokens[0],
          sq280);
    CHECK(v.n_tokens[1] == sq70, "frame: %d soft tokens, transformers %d at the video budget", v.n_tokens[1], sq70);
    CHECK(v.video[0] == -1 && v.video[1] == 0 && v.seconds[1] == 0.5, "video / seconds not kept");
    CHECK(v.prompt_tokens == sq280 + 2 + sq70 + 2, "prompt tokens %d", v.prompt_tokens);
    CHECK(v.px[0].hash[0] != v.px[1].hash[0], "one file at two budgets hashes alike");
    v.pos[0] = 5, v.pos[1] = 5 + sq280 + 2; /* as the prompt builder places the runs */
    g4_vision_input_items(&v);
    for (int i = 0; i < 2; i++) {
        const g4_mm_item *it = &v.items[i];
        CHECK(it->pos == v.pos[i] && it->n_tokens == v.n_tokens[i] && it->patches == v.px[i].patches &&
                  it->ph * it->pw == 9 * it->n_tokens && it->hash[0] == v.px[i].hash[0] &&
                  it->hash[1] == v.px[i].hash[1],
              "item %d: pos %d, %d tokens, %d x %d patches", i, it->pos, it->n_tokens, it->ph, it->pw);
    }

    /* refusals add nothing */
    const int n_before = v.n, tokens_before = v.prompt_tokens;
    rc = g4_vision_input_add(&v, sq, n_sq / 2, -1, 0, &err);
    expect_refused("truncated", rc, G4_VISION_BAD_FILE, &err, "truncated PNG");
    rc = g4_vision_input_add(&v, (const uint8_t *)"BM", 2, -1, 0, &err);
    expect_refused("not an image", rc, G4_VISION_BAD_FILE, &err, "unsupported image format");
    CHECK(v.n == n_before && v.prompt_tokens == tokens_before, "a bad file changed the items");
    g4_vision_input_free(&v);
    CHECK(v.n == 0 && v.prompt_tokens == 0 && v.px[0].patches == NULL, "free left items");

    /* the pixel cap */
    g4_vision_limits capped = lim;
    capped.image.max_pixels = 512 * 512 - 1;
    REQUIRE(g4_vision_input_begin(&v, &capped, 1, 280, 0, &err) == 0, "%s", err.msg);
    expect_refused("pixels", g4_vision_input_add(&v, sq, n_sq, -1, 0, &err), G4_VISION_BAD_FILE, &err, "pixels");
    g4_vision_input_free(&v);

    /* a grid the tower does not take: refused, its patches freed (ASan), the next file fits */
    g4_vision_limits small = lim;
    small.grid = 48; /* the tiny test towers' tables; wide at 140 is 21 × 57 patches */
    REQUIRE(g4_vision_input_begin(&v, &small, 2, 140, 0, &err) == 0, "%s", err.msg);
    rc = g4_vision_input_add(&v, wide, n_wide, -1, 0, &err);
    expect_refused("grid", rc, G4_VISION_BAD_FILE, &err, "the image's patch grid is 21 × 57, more than the 48");
    CHECK(v.n == 0 && v.prompt_tokens == 0, "a refused grid changed the items");
    CHECK(g4_vision_input_add(&v, sq, n_sq, 0, 0, &err) == 0, "frame after a refusal: %s", err.msg);
    g4_vision_input_free(&v);

    /* the context: each item takes its soft tokens + 2; exactly the length fits, one less does not */
    g4_vision_limits ctx = lim;
    ctx.max_model_len = (wide140 + 2) + (sq70 + 2) - 1;
    REQUIRE(g4_vision_input_begin(&v, &ctx, 2, 140, 0, &err) == 0, "%s", err.msg);
    CHECK(g4_vision_input_add(&v, wide, n_wide, -1, 0, &err) == 0, "first: %s", err.msg);
    rc = g4_vision_input_add(&v, sq, n_sq, 3, 1.0, &err);
    char want[200];
    snprintf(want, sizeof want,
             "the images so far take %d prompt tokens, more than the model's maximum context length of %d",
             ctx.max_model_len + 1, ctx.max_model_len);
    expect_refused("context", rc, G4_VISION_TOO_LONG, &err, want);
    CHECK(v.n == 1 && v.prompt_tokens == wide140 + 2, "a refusal for length changed the items");
    g4_vision_input_free(&v);
    ctx.max_model_len++;
    REQUIRE(g4_vision_input_begin(&v, &ctx, 2, 140, 0, &err) == 0, "%s", err.msg);
    CHECK(g4_vision_input_add(&v, wide, n_wide, -1, 0, &err) == 0 &&
              g4_vision_input_add(&v, sq, n_sq, 3, 1.0, &err) == 0,
          "exactly the context refused: %s", err.msg);
    g4_vision_input_free(&v);

    free(sq);
    free(wide);
    cJSON_Delete(root);
    free(js);
    return check_summary();
}
