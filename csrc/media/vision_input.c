/* vision_input.c — a request's images and video frames → the vision tower's input, with the
 * limits and the refusals every protocol shares (vision_input.h). */
#include "media/vision_input.h"

#include <string.h>

#include "base/invariant.h"

int g4_vision_unsupported(int video, g4_error *err) {
    return g4_fail(err, "%s input is not supported (the served model has no vision tower)", video ? "video" : "image");
}

int g4_vision_frames_fit(size_t n_frames, g4_error *err) {
    if (n_frames <= G4_VISION_MAX_VIDEO_FRAMES) return 0;
    return g4_fail(err,
                   "%zu video frames, more than the %d frames per video Gemma 4 reads (its video processor samples "
                   "%d; send fewer frames or a lower fps)",
                   n_frames, G4_VISION_MAX_VIDEO_FRAMES, G4_VISION_MAX_VIDEO_FRAMES);
}

int g4_vision_input_begin(g4_vision_input *v, const g4_vision_limits *lim, size_t n, int image_budget,
                          int first_is_video, g4_error *err) {
    G4_INVARIANT(v->n == 0, "a request's items begin once");
    if (n > G4_VISION_MAX_REQUEST_ITEMS)
        return g4_fail(err, "%zu images and video frames, more than the %d a request may hold", n,
                       G4_VISION_MAX_REQUEST_ITEMS);
    if (!lim->grid) return g4_vision_unsupported(first_is_video, err);
    v->lim = *lim;
    v->image_budget = image_budget;
    v->prompt_tokens = 0;
    return 0;
}

int g4_vision_input_add(g4_vision_input *v, const uint8_t *data, size_t len, int video, double seconds, g4_error *err) {
    G4_INVARIANT(v->n < G4_VISION_MAX_REQUEST_ITEMS && v->lim.grid, "an item beyond what begin allowed");
    int budget = video < 0 ? v->image_budget : G4_VISION_VIDEO_BUDGET;
    g4_image img = {0};
    g4_vision_pixels *px = &v->px[v->n];
    int rc = g4_image_decode(data, len, &v->lim.image, &img, err);
    /* the prompt tokens so far must fit the model before the patches are made */
    int n_soft = rc == 0 ? g4_vision_soft_tokens(img.width, img.height, budget, err) : -1;
    if (n_soft > 0 && (v->prompt_tokens += n_soft + 2) > v->lim.max_model_len) {
        g4_image_free(&img);
        g4_fail(err, "the images so far take %d prompt tokens, more than the model's maximum context length of %d",
                v->prompt_tokens, v->lim.max_model_len);
        v->prompt_tokens -= n_soft + 2;
        return G4_VISION_TOO_LONG;
    }
    if (rc == 0 && n_soft < 0) rc = -1;
    if (rc == 0) rc = g4_vision_preprocess(&img, budget, px, err);
    if (rc == 0 && (rc = g4_vision_grid_fits(px, v->lim.grid, err))) g4_vision_pixels_free(px);
    g4_image_free(&img);
    if (rc) {
        v->prompt_tokens -= n_soft > 0 ? n_soft + 2 : 0;
        return G4_VISION_BAD_FILE;
    }
    v->n_tokens[v->n] = px->n_soft;
    v->video[v->n] = video;
    v->seconds[v->n] = seconds;
    v->n++;
    return 0;
}

void g4_vision_input_items(g4_vision_input *v) {
    for (int i = 0; i < v->n; i++) {
        const g4_vision_pixels *px = &v->px[i];
        v->items[i] = (g4_mm_item){.pos = v->pos[i],
                                   .n_tokens = px->n_soft,
                                   .hash = {px->hash[0], px->hash[1]},
                                   .patches = px->patches,
                                   .ph = px->ph,
                                   .pw = px->pw};
    }
}

void g4_vision_input_free(g4_vision_input *v) {
    for (int i = 0; i < v->n; i++) g4_vision_pixels_free(&v->px[i]);
    memset(v, 0, sizeof *v);
}
