/* fuzz_image.c - fuzz target: image file bytes (PNG, JPEG, WebP, GIF: the decoders of
 * csrc/media/image.c, reached from a request's image parts) through g4_image_decode with a pixel
 * limit, then an accepted image through the Gemma 4 preprocessing at the smallest budget.
 * Invariants: an accepted image has a size within the limit and owns width × height × 3 bytes
 * (all read); a refused one leaves the output untouched and says why; the patch grid matches the
 * soft-token count computed from the size alone. */
#include <stdlib.h>
#include <string.h>

#include "fuzz_target.h"
#include "media/image.h"
#include "media/vision_preprocess.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    g4_image_limits lim = {.max_bytes = 1u << 20, .max_pixels = 1 << 20};
    g4_image img = {0};
    g4_error err = {{0}};
    if (g4_image_decode(data, size, &lim, &img, &err) < 0) {
        if (img.rgb || !err.msg[0]) abort();
        return 0;
    }
    if (img.width <= 0 || img.height <= 0 || (int64_t)img.width * img.height > lim.max_pixels || !img.rgb) abort();
    unsigned sum = 0;
    for (size_t i = 0; i < (size_t)img.width * img.height * 3; i++) sum += img.rgb[i];
    volatile unsigned sink = sum;
    (void)sink;
    int n_soft = g4_vision_soft_tokens(img.width, img.height, 70, &err);
    g4_vision_pixels px = {0};
    int rc = g4_vision_preprocess(&img, 70, &px, &err);
    if ((rc == 0) != (n_soft > 0)) abort();
    if (rc == 0 && (px.n_soft != n_soft || px.ph % 3 || px.pw % 3 || px.ph * px.pw > 9 * 70)) abort();
    g4_vision_pixels_free(&px);
    g4_image_free(&img);
    return 0;
}
