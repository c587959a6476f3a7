/* vision_preprocess.c — Gemma 4's image preprocessing, as transformers' default Gemma 4 image
 * processor does it (Gemma4ImageProcessor, the torchvision backend that AutoProcessor picks and
 * vLLM runs): the target size from the soft-token budget (get_aspect_ratio_preserving_size),
 * torchvision's bicubic antialiased resize of uint8 CHW images — on the CPU that is torch's
 * native uint8 kernel: PIL-style separable filtering (Keys cubic, a = −0.5, support scaled by the
 * downscale factor) with int16 fixed-point weights, horizontal pass first, each pass rounded and
 * clamped to uint8 — then x · (1/255) in f32 and 2 · (x − 0.5), the patch embedder's first step.
 * Not here: decoding (image.c), the tower (model/vision.h). */
#include "media/vision_preprocess.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/rng.h"

int g4_vision_budget_valid(int budget) {
    return budget == 70 || budget == 140 || budget == 280 || budget == 560 || budget == 1120;
}

/* transformers get_aspect_ratio_preserving_size, double for double (Python floats). */
static int target_size(int width, int height, int budget, int *th, int *tw, g4_error *err) {
    if (!g4_vision_budget_valid(budget))
        return g4_fail(err, "image token budget %d is not one of 70, 140, 280, 560, 1120", budget);
    if (width <= 0 || height <= 0) return g4_fail(err, "image size %d x %d is empty", width, height);
    const int patch = G4_VISION_PATCH, pool = G4_VISION_POOL, side = patch * pool;
    const int64_t max_patches = (int64_t)budget * pool * pool;
    const double total_px = (double)width * (double)height;
    const double target_px = (double)(max_patches * patch * patch);
    const double factor = sqrt(target_px / total_px);
    int64_t h = (int64_t)floor(factor * height / side) * side;
    int64_t w = (int64_t)floor(factor * width / side) * side;
    if (h == 0 && w == 0) return g4_fail(err, "image size %d x %d resizes to 0 x 0", width, height);
    const int64_t max_side = (max_patches / (pool * pool)) * side;
    if (h == 0) {
        h = side;
        w = (int64_t)floor((double)width / (double)height) * side;
        if (w > max_side) w = max_side;
    } else if (w == 0) {
        w = side;
        h = (int64_t)floor((double)height / (double)width) * side;
        if (h > max_side) h = max_side;
    }
    if ((double)(h * w) > target_px || h <= 0 || w <= 0)
        return g4_fail(err, "image size %d x %d: resized to %lld x %lld, over %lld patches", width, height,
                       (long long)w, (long long)h, (long long)max_patches);
    *th = (int)h;
    *tw = (int)w;
    return 0;
}

int g4_vision_soft_tokens(int width, int height, int budget, g4_error *err) {
    int th, tw;
    if (target_size(width, height, budget, &th, &tw, err)) return -1;
    return (th / G4_VISION_PATCH / G4_VISION_POOL) * (tw / G4_VISION_PATCH / G4_VISION_POOL);
}

/* --- torch's uint8 antialiased bicubic, one axis ------------------------------------------ */

static double cubic_aa(double x) {
    const double a = -0.5;
    x = fabs(x);
    if (x < 1.0) return ((a + 2) * x - (a + 3)) * x * x + 1;
    if (x < 2.0) return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;
    return 0.0;
}

typedef struct axis_weights {
    int taps;         /* weights per output sample (max_interp_size) */
    int prec;         /* fixed-point bits */
    int *xmin, *xsize;
    int16_t *w;       /* [out, taps] */
} axis_weights;

static void axis_free(axis_weights *a) {
    free(a->xmin);
    free(a->xsize);
    free(a->w);
}

/* torch _compute_indices_min_size_weights_aa + _compute_index_ranges_int16_weights. */
static int axis_init(axis_weights *a, int in, int out, g4_error *err) {
    const double scale = (double)in / (double)out;
    const double support = scale >= 1.0 ? 2.0 * scale : 2.0;
    const double invscale = scale >= 1.0 ? 1.0 / scale : 1.0;
    a->taps = (int)ceil(support) * 2 + 1;
    a->xmin = malloc(sizeof(int) * (size_t)out);
    a->xsize = malloc(sizeof(int) * (size_t)out);
    a->w = malloc(sizeof(int16_t) * (size_t)out * a->taps);
    double *wd = malloc(sizeof(double) * (size_t)out * a->taps);
    if (!a->xmin || !a->xsize || !a->w || !wd) {
        free(wd);
        axis_free(a);
        return g4_fail(err, "out of memory for resize weights");
    }
    double wt_max = 0.0;
    for (int i = 0; i < out; i++) {
        const double center = scale * (i + 0.5);
        int64_t xmin = (int64_t)(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int64_t xend = (int64_t)(center + support + 0.5);
        if (xend > in) xend = in;
        int64_t xsize = xend - xmin;
        if (xsize < 0) xsize = 0;
        if (xsize > a->taps) xsize = a->taps;
        double *w = wd + (size_t)i * a->taps, total = 0.0;
        int64_t j = 0;
        for (; j < xsize; j++) {
            w[j] = cubic_aa(((double)(j + xmin) - center + 0.5) * invscale);
            total += w[j];
        }
        if (total != 0.0)
            for (j = 0; j < xsize; j++) {
                w[j] /= total;
                if (w[j] > wt_max) wt_max = w[j];
            }
        for (j = xsize; j < a->taps; j++) w[j] = 0.0;
        a->xmin[i] = (int)xmin;
        a->xsize[i] = (int)xsize;
    }
    int p = 0;
    for (p = 0; p < 22; p++)
        if ((int)(0.5 + wt_max * (1 << (p + 1))) >= (1 << 15)) break;
    a->prec = p;
    for (size_t k = 0; k < (size_t)out * a->taps; k++) {
        double v = wd[k] * (1 << p);
        a->w[k] = (int16_t)(v < 0 ? (int)(-0.5 + v) : (int)(0.5 + v));
    }
    free(wd);
    return 0;
}

static uint8_t clamp_u8(int32_t v) { return v < 0 ? 0 : v > 255 ? 255 : (uint8_t)v; }

/* src [h, w_in, 3] → dst [h, w_out, 3] along the rows. */
static void pass_horizontal(const uint8_t *src, int h, int w_in, const axis_weights *a, int w_out, uint8_t *dst) {
    const int32_t half = a->prec > 0 ? 1 << (a->prec - 1) : 0;
    for (int y = 0; y < h; y++) {
        const uint8_t *row = src + (size_t)y * w_in * 3;
        uint8_t *o = dst + (size_t)y * w_out * 3;
        for (int x = 0; x < w_out; x++) {
            const int16_t *w = a->w + (size_t)x * a->taps;
            const uint8_t *p = row + (size_t)a->xmin[x] * 3;
            int32_t s0 = half, s1 = half, s2 = half;
            for (int j = 0; j < a->xsize[x]; j++) {
                s0 += w[j] * p[3 * j];
                s1 += w[j] * p[3 * j + 1];
                s2 += w[j] * p[3 * j + 2];
            }
            o[3 * x] = clamp_u8(s0 >> a->prec);
            o[3 * x + 1] = clamp_u8(s1 >> a->prec);
            o[3 * x + 2] = clamp_u8(s2 >> a->prec);
        }
    }
}

/* src [h_in, w, 3] → dst [h_out, w, 3] along the columns. */
static void pass_vertical(const uint8_t *src, int w, const axis_weights *a, int h_out, uint8_t *dst) {
    const int32_t half = a->prec > 0 ? 1 << (a->prec - 1) : 0;
    const size_t stride = (size_t)w * 3;
    for (int y = 0; y < h_out; y++) {
        const int16_t *wt = a->w + (size_t)y * a->taps;
        const uint8_t *base = src + (size_t)a->xmin[y] * stride;
        uint8_t *o = dst + (size_t)y * stride;
        for (size_t k = 0; k < stride; k++) {
            int32_t s = half;
            for (int j = 0; j < a->xsize[y]; j++) s += wt[j] * base[(size_t)j * stride + k];
            o[k] = clamp_u8(s >> a->prec);
        }
    }
}

/* img → [th, tw, 3] uint8; a freshly allocated buffer. */
static uint8_t *resize_rgb(const g4_image *img, int th, int tw, g4_error *err) {
    const int w = img->width, h = img->height;
    uint8_t *horiz = NULL, *out = NULL;
    const uint8_t *cur = img->rgb;
    if (tw != w) {
        axis_weights a;
        if (axis_init(&a, w, tw, err)) return NULL;
        horiz = malloc((size_t)h * tw * 3);
        if (!horiz) {
            axis_free(&a);
            g4_fail(err, "out of memory resizing a %d x %d image", w, h);
            return NULL;
        }
        pass_horizontal(cur, h, w, &a, tw, horiz);
        axis_free(&a);
        cur = horiz;
    }
    out = malloc((size_t)th * tw * 3);
    if (!out) {
        free(horiz);
        g4_fail(err, "out of memory resizing a %d x %d image", w, h);
        return NULL;
    }
    if (th != h) {
        axis_weights a;
        if (axis_init(&a, h, th, err)) {
            free(horiz);
            free(out);
            return NULL;
        }
        pass_vertical(cur, tw, &a, th, out);
        axis_free(&a);
    } else {
        memcpy(out, cur, (size_t)th * tw * 3);
    }
    free(horiz);
    return out;
}

/* Two 64-bit lanes of the splitmix mix (base/rng.h, as the prefix cache's keys) over the size,
 * the budget and the resized pixels. Not cryptographic. */
static void content_hash(const uint8_t *px, int th, int tw, int budget, uint64_t out[2]) {
    uint64_t h0 = g4_mix64(0x6a09e667f3bcc908ull ^ ((uint64_t)th << 32 | (uint64_t)tw));
    uint64_t h1 = g4_mix64(0xbb67ae8584caa73bull ^ ((uint64_t)budget << 32 | (uint64_t)th * tw));
    const size_t n = (size_t)th * tw * 3;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t v;
        memcpy(&v, px + i, 8);
        h0 = g4_mix64(h0 ^ v);
        h1 = g4_mix64(h1 ^ (v + G4_SPLITMIX_GAMMA * (i + 1)));
    }
    uint64_t tail = 0;
    memcpy(&tail, px + i, n - i);
    out[0] = g4_mix64(h0 ^ tail ^ n);
    out[1] = g4_mix64(h1 ^ (tail + G4_SPLITMIX_GAMMA) ^ (n << 1));
}

int g4_vision_grid_fits(const g4_vision_pixels *p, int max_side, g4_error *err) {
    if (p->ph <= max_side && p->pw <= max_side) return 0;
    return g4_fail(err,
                   "the image's patch grid is %d × %d, more than the %d patches a side the model's vision tower "
                   "takes (a smaller max_soft_tokens or a less elongated image fits)",
                   p->ph, p->pw, max_side);
}

int g4_vision_preprocess(const g4_image *img, int budget, g4_vision_pixels *out, g4_error *err) {
    if (!img || !img->rgb) return g4_fail(err, "no image to preprocess");
    int th, tw;
    if (target_size(img->width, img->height, budget, &th, &tw, err)) return -1;
    uint8_t *px = resize_rgb(img, th, tw, err);
    if (!px) return -1;
    const int ph = th / G4_VISION_PATCH, pw = tw / G4_VISION_PATCH;
    float *patches = malloc(sizeof(float) * (size_t)ph * pw * G4_VISION_PATCH_DIM);
    if (!patches) {
        free(px);
        return g4_fail(err, "out of memory for %d x %d patches", ph, pw);
    }
    /* rescale as torch does (u8 · f32(1/255)), then the patch embedder's 2 · (x − 0.5) */
    float lut[256];
    const float inv255 = (float)(1.0 / 255.0);
    for (int v = 0; v < 256; v++) lut[v] = 2.0f * ((float)v * inv255 - 0.5f);
    /* patch (r, c) holds rows r·16 … r·16+15 of columns c·16 …: [16 y][16 x][3 channels] */
    const int P = G4_VISION_PATCH;
    for (int r = 0; r < ph; r++)
        for (int c = 0; c < pw; c++) {
            float *dst = patches + ((size_t)r * pw + c) * G4_VISION_PATCH_DIM;
            for (int y = 0; y < P; y++) {
                const uint8_t *src = px + ((size_t)(r * P + y) * tw + (size_t)c * P) * 3;
                for (int k = 0; k < P * 3; k++) dst[y * P * 3 + k] = lut[src[k]];
            }
        }
    out->ph = ph;
    out->pw = pw;
    out->n_soft = (ph / G4_VISION_POOL) * (pw / G4_VISION_POOL);
    out->patches = patches;
    content_hash(px, th, tw, budget, out->hash);
    free(px);
    return 0;
}

void g4_vision_pixels_free(g4_vision_pixels *p) {
    if (!p) return;
    free(p->patches);
    memset(p, 0, sizeof *p);
}
