/* vision_preprocess.h — an RGB image → the Gemma 4 vision tower's input, as transformers' Gemma 4
 * image processor makes it: resized with the aspect ratio kept so that both sides are multiples of
 * 48 (patch 16 × pool 3) and the patch count is at most 9 × the soft-token budget, pixels mapped
 * to [−1, 1], cut into 16 × 16 patches. transformers' pixel_values are in [0, 1] and its patch
 * embedder maps them with 2 · (x − 0.5) before input_proj; the patches here are already past that
 * step (value = 2 · (pixel_values − 0.5) in f32), so the tower starts at input_proj. Also the soft-token count an image of a given size gets,
 * which the prompt needs before any pixel is touched. Not here: decoding (image.h), the tower
 * (model/vision.h). */
#ifndef G4_MEDIA_VISION_PREPROCESS_H
#define G4_MEDIA_VISION_PREPROCESS_H

#include <stdint.h>

#include "base/error.h"
#include "media/image.h"

#define G4_VISION_PATCH 16
#define G4_VISION_POOL 3
#define G4_VISION_PATCH_DIM (3 * G4_VISION_PATCH * G4_VISION_PATCH) /* 768 values per patch */
#define G4_VISION_DEFAULT_BUDGET 280 /* soft tokens per image; also 70, 140, 560, 1120 */
#define G4_VISION_VIDEO_BUDGET 70    /* per video frame */
/* Frames per video: Gemma 4's video processor samples 32 frames of a video (Gemma4VideoProcessor
 * num_frames = 32); the model was not shown longer frame sequences, so servers refuse more. */
#define G4_VISION_MAX_VIDEO_FRAMES 32
/* Images and video frames per request, on every protocol: each is decoded, held as patches
 * (up to 27 KiB a soft token) and encoded before the request is admitted. */
#define G4_VISION_MAX_REQUEST_ITEMS 64

typedef struct g4_vision_pixels {
    int ph, pw;                  /* patch grid rows × columns (each a multiple of G4_VISION_POOL) */
    int n_soft;                  /* (ph / 3) × (pw / 3): soft tokens the tower makes */
    float *patches;              /* [ph × pw, G4_VISION_PATCH_DIM] patches row by row; the values inside
                                    a patch in exactly the order of transformers' pixel_values */
    uint64_t hash[2];            /* content hash of the resized pixels, their size and the budget
                                    (prefix-cache and encoder-cache keys; not cryptographic) */
} g4_vision_pixels;

/* The budgets transformers accepts (70, 140, 280, 560, 1120): 1, or 0. */
int g4_vision_budget_valid(int budget);
/* Soft tokens for an image of width × height at this budget (what the prompt's placeholder run
 * holds); −1 with err for a bad size or budget. */
int g4_vision_soft_tokens(int width, int height, int budget, g4_error *err);
/* Resizes and normalises img. 0, or −1 with err. */
int g4_vision_preprocess(const g4_image *img, int budget, g4_vision_pixels *out, g4_error *err);
void g4_vision_pixels_free(g4_vision_pixels *p);
/* Whether p's patch grid fits a tower whose position tables have max_side rows (the config's
 * position_embedding_size): 0, or −1 with err saying what to change. Real Gemma 4 towers take
 * every grid a budget allows (10,240 rows; the longest side at 1120 is 3,360); small test
 * towers do not. */
int g4_vision_grid_fits(const g4_vision_pixels *p, int max_side, g4_error *err);

#endif
