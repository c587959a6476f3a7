/* image.h — one still image decoded from its file bytes (PNG, JPEG, WebP, GIF first frame) into
 * 8-bit RGB, with limits on the input bytes and the pixel count checked before the pixels are
 * allocated. Errors name what is wrong (format unknown, truncated, corrupt, too large).
 * Colour as transformers' convert_to_rgb gives it (PIL underneath), which the Gemma 4 processor
 * calls: grey is replicated, palettes are expanded, and an image with transparency (an alpha
 * channel, a PNG tRNS chunk, a GIF transparent index) is composited over opaque white with PIL's
 * alpha_composite arithmetic before the alpha is dropped. 16-bit PNG: RGB keeps each sample's
 * high byte, grey is clipped to 255 (PIL's I;16 conversion). JPEG decodes with libjpeg-turbo's
 * defaults (islow IDCT, fancy upsampling), as PIL does; CMYK JPEGs are refused.
 * Not here: where the bytes come from (data:, http(s), file: URLs: media_source.h), resizing and
 * normalisation for the vision tower (vision_preprocess.h). */
#ifndef G4_MEDIA_IMAGE_H
#define G4_MEDIA_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

typedef struct g4_image {
    int width, height;
    uint8_t *rgb;                /* [height, width, 3] row-major, R G B; transparency over white */
} g4_image;

typedef struct g4_image_limits {
    size_t max_bytes;            /* encoded input, 0 = no limit */
    int64_t max_pixels;          /* width × height, 0 = no limit */
} g4_image_limits;

/* Decodes data[0..n). 0, or −1 with err naming the problem (out untouched). */
int g4_image_decode(const uint8_t *data, size_t n, const g4_image_limits *lim, g4_image *out, g4_error *err);
void g4_image_free(g4_image *img);

#endif
