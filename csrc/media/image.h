/* image.h — one still image decoded from its file bytes (PNG, JPEG, WebP, GIF first frame) into
 * 8-bit RGB, with limits on the input bytes and the pixel count checked before the pixels are
 * allocated. Errors name what is wrong (format unknown, truncated, corrupt, too large).
 * Not here: where the bytes come from (data: URL, fetch, file: csrc/server), resizing and
 * normalisation for the vision tower (vision_preprocess.h). */
#ifndef G4_MEDIA_IMAGE_H
#define G4_MEDIA_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

typedef struct g4_image {
    int width, height;
    uint8_t *rgb;                /* [height, width, 3] row-major, R G B; alpha composited on white? see image.c */
} g4_image;

typedef struct g4_image_limits {
    size_t max_bytes;            /* encoded input, 0 = no limit */
    int64_t max_pixels;          /* width × height, 0 = no limit */
} g4_image_limits;

/* Decodes data[0..n). 0, or −1 with err naming the problem (out untouched). */
int g4_image_decode(const uint8_t *data, size_t n, const g4_image_limits *lim, g4_image *out, g4_error *err);
void g4_image_free(g4_image *img);

#endif
