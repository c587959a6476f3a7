/* image.c — PNG (libpng), JPEG (libjpeg-turbo), WebP (libwebp + its demux library, first frame)
 * and GIF (giflib, first frame) bytes → 8-bit RGB as PIL's convert("RGB") after transformers'
 * transparency handling gives them (image.h). The format is told by its magic bytes; the byte
 * limit is checked before anything is parsed, the pixel limit after the header and before the
 * pixels are allocated. */
#include "media/image.h"

#include <setjmp.h>
#include <stdio.h> /* before jpeglib.h, which names FILE */
#include <stdlib.h>
#include <string.h>

#include <gif_lib.h>
#include <jerror.h>
#include <jpeglib.h>
#include <png.h>
#include <webp/decode.h>
#include <webp/demux.h>

/* --- limits and the RGBA → RGB step ------------------------------------------------------ */

static int check_pixels(const char *fmt, int64_t w, int64_t h, const g4_image_limits *lim, g4_error *err) {
    if (w <= 0 || h <= 0) return g4_fail(err, "corrupt %s image: size %lld x %lld", fmt, (long long)w, (long long)h);
    if (w > 65535 || h > 65535)
        return g4_fail(err, "%s image too large: %lld x %lld pixels (a side over 65535)", fmt, (long long)w,
                       (long long)h);
    if (lim && lim->max_pixels > 0 && w * h > lim->max_pixels)
        return g4_fail(err, "%s image too large: %lld x %lld = %lld pixels, the limit is %lld", fmt, (long long)w,
                       (long long)h, (long long)(w * h), (long long)lim->max_pixels);
    return 0;
}

static uint8_t *alloc_rgb(int w, int h, g4_error *err) {
    uint8_t *p = malloc((size_t)w * (size_t)h * 3);
    if (!p) g4_fail(err, "out of memory for a %d x %d image", w, h);
    return p;
}

/* PIL's alpha_composite of the pixel over an opaque white background (Pillow's ImagingAlphaComposite,
 * integer arithmetic with 7 extra bits), then the alpha dropped: what transformers' convert_to_rgb
 * does for an image with transparency. */
static void over_white(uint8_t rgb[3], unsigned a) {
    if (a == 0) {
        rgb[0] = rgb[1] = rgb[2] = 255;
        return;
    }
    const uint32_t prec = 7;
    uint32_t blend = 255u * (255u - a);
    uint32_t outa255 = a * 255u + blend;
    uint32_t coef1 = a * 255u * 255u * (1u << prec) / outa255;
    uint32_t coef2 = 255u * (1u << prec) - coef1;
    for (int c = 0; c < 3; c++) {
        uint32_t t = rgb[c] * coef1 + 255u * coef2 + (0x80u << prec);
        rgb[c] = (uint8_t)((((t >> 8) + t) >> 8) >> prec);
    }
}

/* rgba [n, 4] → rgb [n, 3]; composite when the image has transparency at all. */
static void rgba_to_rgb(const uint8_t *rgba, size_t n, int has_alpha, uint8_t *rgb) {
    for (size_t i = 0; i < n; i++) {
        uint8_t px[3] = {rgba[4 * i], rgba[4 * i + 1], rgba[4 * i + 2]};
        if (has_alpha) over_white(px, rgba[4 * i + 3]);
        memcpy(rgb + 3 * i, px, 3);
    }
}

/* --- PNG --------------------------------------------------------------------------------- */

typedef struct png_src {
    const uint8_t *p;
    size_t n, off;
    g4_error *err;
} png_src;

static void png_read_mem(png_structp png, png_bytep out, size_t len) {
    png_src *s = png_get_io_ptr(png);
    if (len > s->n - s->off) png_error(png, "truncated (the data ends before the image does)");
    memcpy(out, s->p + s->off, len);
    s->off += len;
}

static void png_on_error(png_structp png, png_const_charp msg) {
    png_src *s = png_get_error_ptr(png);
    if (strstr(msg, "truncated")) g4_fail(s->err, "truncated PNG image: %s", msg);
    else g4_fail(s->err, "corrupt PNG image: %s", msg);
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg;
}

static int decode_png(const uint8_t *data, size_t n, const g4_image_limits *lim, g4_image *out, g4_error *err) {
    png_src src = {data, n, 0, err};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &src, png_on_error, png_on_warning);
    if (!png) return g4_fail(err, "libpng: cannot create a reader");
    png_infop info = png_create_info_struct(png);
    uint8_t *volatile rgba = NULL;
    uint8_t *volatile rgb = NULL;
    png_bytep *volatile rows = NULL;
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        return g4_fail(err, "libpng: cannot create an info struct");
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        free(rgba);
        free(rgb);
        free(rows);
        return -1;
    }
    png_set_read_fn(png, &src, png_read_mem);
    png_set_user_limits(png, 65535, 65535);
    png_read_info(png, info);
    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    if (check_pixels("PNG", w, h, lim, err)) {
        png_destroy_read_struct(&png, &info, NULL);
        return -1;
    }
    int color = png_get_color_type(png, info);
    int has_alpha = (color & PNG_COLOR_MASK_ALPHA) || png_get_valid(png, info, PNG_INFO_tRNS);
    /* 16-bit grey without transparency: PIL reads it as mode I;16 and convert("RGB") clips each
     * value to 255 (not its high byte) */
    int grey16 = color == PNG_COLOR_TYPE_GRAY && png_get_bit_depth(png, info) == 16 && !has_alpha;
    /* Otherwise to RGBA8: palette expanded, grey replicated, tRNS made alpha, 16-bit samples keep
     * their high byte (PIL's 16-bit RGB unpackers do the same; 16-bit RGB is not in the parity
     * test: PIL cannot write it). */
    size_t bpp = grey16 ? 2 : 4;
    if (!grey16) {
        png_set_expand(png);
        png_set_strip_16(png);
        png_set_gray_to_rgb(png);
        png_set_add_alpha(png, 0xff, PNG_FILLER_AFTER);
    }
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    if (png_get_rowbytes(png, info) != (size_t)w * bpp) png_error(png, "unexpected row size after conversion");
    rgba = malloc((size_t)w * h * bpp);
    rows = malloc(sizeof(png_bytep) * h);
    rgb = malloc((size_t)w * h * 3);
    if (!rgba || !rows || !rgb) png_error(png, "out of memory");
    for (png_uint_32 y = 0; y < h; y++) rows[y] = rgba + (size_t)y * w * bpp;
    png_read_image(png, rows);
    if (grey16) {
        for (size_t i = 0; i < (size_t)w * h; i++) {
            unsigned v = (unsigned)rgba[2 * i] << 8 | rgba[2 * i + 1];
            rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = (uint8_t)(v > 255 ? 255 : v);
        }
    } else {
        rgba_to_rgb(rgba, (size_t)w * h, has_alpha, rgb);
    }
    png_destroy_read_struct(&png, &info, NULL);
    free(rgba);
    free(rows);
    out->width = (int)w;
    out->height = (int)h;
    out->rgb = rgb;
    return 0;
}

/* --- JPEG -------------------------------------------------------------------------------- */

typedef struct jpeg_fail {
    struct jpeg_error_mgr mgr;
    jmp_buf jb;
    int truncated;
} jpeg_fail;

static void jpeg_on_error(j_common_ptr c) {
    jpeg_fail *f = (jpeg_fail *)c->err;
    longjmp(f->jb, 1);
}

/* Warnings: a premature end of the data is what PIL reports as a truncated file; other
 * corrupt-data warnings are tolerated, as PIL does. */
static void jpeg_on_message(j_common_ptr c, int level) {
    jpeg_fail *f = (jpeg_fail *)c->err;
    if (level < 0 && c->err->msg_code == JWRN_JPEG_EOF) f->truncated = 1;
}

static int decode_jpeg(const uint8_t *data, size_t n, const g4_image_limits *lim, g4_image *out, g4_error *err) {
    struct jpeg_decompress_struct ci;
    jpeg_fail f;
    memset(&f, 0, sizeof f);
    ci.err = jpeg_std_error(&f.mgr);
    f.mgr.error_exit = jpeg_on_error;
    f.mgr.emit_message = jpeg_on_message;
    uint8_t *volatile rgb = NULL;
    if (setjmp(f.jb)) {
        char msg[JMSG_LENGTH_MAX];
        f.mgr.format_message((j_common_ptr)&ci, msg);
        jpeg_destroy_decompress(&ci);
        free(rgb);
        return g4_fail(err, "corrupt JPEG image: %s", msg);
    }
    jpeg_create_decompress(&ci);
    jpeg_mem_src(&ci, data, (unsigned long)n);
    if (jpeg_read_header(&ci, TRUE) != JPEG_HEADER_OK) {
        jpeg_destroy_decompress(&ci);
        return g4_fail(err, "corrupt JPEG image: no image in the data");
    }
    if (f.truncated) {
        jpeg_destroy_decompress(&ci);
        return g4_fail(err, "truncated JPEG image: the data ends inside the header");
    }
    if (ci.jpeg_color_space == JCS_CMYK || ci.jpeg_color_space == JCS_YCCK) {
        jpeg_destroy_decompress(&ci);
        return g4_fail(err, "unsupported JPEG image: CMYK colour (only greyscale and RGB/YCbCr JPEGs are read)");
    }
    if (check_pixels("JPEG", ci.image_width, ci.image_height, lim, err)) {
        jpeg_destroy_decompress(&ci);
        return -1;
    }
    ci.out_color_space = JCS_RGB; /* libjpeg's defaults otherwise: islow IDCT, fancy upsampling */
    jpeg_start_decompress(&ci);
    int w = (int)ci.output_width, h = (int)ci.output_height;
    rgb = alloc_rgb(w, h, err);
    if (!rgb) {
        jpeg_destroy_decompress(&ci);
        return -1;
    }
    while (ci.output_scanline < ci.output_height) {
        JSAMPROW row = rgb + (size_t)ci.output_scanline * w * 3;
        jpeg_read_scanlines(&ci, &row, 1);
    }
    jpeg_finish_decompress(&ci);
    jpeg_destroy_decompress(&ci);
    if (f.truncated) {
        free(rgb);
        return g4_fail(err, "truncated JPEG image: the data ends before the image does");
    }
    out->width = w;
    out->height = h;
    out->rgb = rgb;
    return 0;
}

/* --- WebP: the first frame of the animation decoder's canvas (what Pillow reads) --------- */

static int decode_webp(const uint8_t *data, size_t n, const g4_image_limits *lim, g4_image *out, g4_error *err) {
    WebPBitstreamFeatures ft;
    VP8StatusCode st = WebPGetFeatures(data, n, &ft);
    if (st == VP8_STATUS_NOT_ENOUGH_DATA) return g4_fail(err, "truncated WebP image: the header is incomplete");
    if (st != VP8_STATUS_OK) return g4_fail(err, "corrupt WebP image: bad header (status %d)", (int)st);
    /* the header's canvas size, before the animation decoder allocates two RGBA canvases of it */
    if (check_pixels("WebP", ft.width, ft.height, lim, err)) return -1;
    WebPData wd = {data, n};
    WebPAnimDecoderOptions o;
    if (!WebPAnimDecoderOptionsInit(&o)) return g4_fail(err, "libwebp: options version mismatch");
    o.color_mode = MODE_RGBA;
    o.use_threads = 0;
    WebPAnimDecoder *dec = WebPAnimDecoderNew(&wd, &o);
    if (!dec) {
        /* The demuxer refuses a file whose chunks run past its end as well as a broken one. */
        WebPDemuxState ds;
        WebPDemuxer *dm = WebPDemuxPartial(&wd, &ds);
        WebPDemuxDelete(dm);
        if (ds == WEBP_DEMUX_PARSED_HEADER || ds == WEBP_DEMUX_PARSING_HEADER)
            return g4_fail(err, "truncated WebP image: the data ends before the image does");
        return g4_fail(err, "corrupt WebP image: the container cannot be parsed");
    }
    WebPAnimInfo ai;
    if (!WebPAnimDecoderGetInfo(dec, &ai)) {
        WebPAnimDecoderDelete(dec);
        return g4_fail(err, "corrupt WebP image: no image information");
    }
    if (check_pixels("WebP", ai.canvas_width, ai.canvas_height, lim, err)) {
        WebPAnimDecoderDelete(dec);
        return -1;
    }
    uint8_t *frame = NULL;
    int ts = 0;
    if (!WebPAnimDecoderGetNext(dec, &frame, &ts)) {
        WebPAnimDecoderDelete(dec);
        return g4_fail(err, "corrupt or truncated WebP image: the first frame does not decode");
    }
    int w = (int)ai.canvas_width, h = (int)ai.canvas_height;
    uint8_t *rgb = alloc_rgb(w, h, err);
    if (!rgb) {
        WebPAnimDecoderDelete(dec);
        return -1;
    }
    rgba_to_rgb(frame, (size_t)w * h, ft.has_alpha, rgb);
    WebPAnimDecoderDelete(dec);
    out->width = w;
    out->height = h;
    out->rgb = rgb;
    return 0;
}

/* --- GIF: the first image on its logical screen --------------------------------------- */

typedef struct gif_src {
    const uint8_t *p;
    size_t n, off;
    int short_read;
} gif_src;

static int gif_read_mem(GifFileType *g, GifByteType *buf, int len) {
    gif_src *s = g->UserData;
    size_t left = s->n - s->off, k = (size_t)len <= left ? (size_t)len : left;
    if (k < (size_t)len) s->short_read = 1;
    memcpy(buf, s->p + s->off, k);
    s->off += k;
    return (int)k;
}

static int gif_fail(GifFileType *g, gif_src *s, int code, g4_error *err) {
    int e = g ? g->Error : code;
    const char *msg = GifErrorString(e);
    if (s->short_read || e == D_GIF_ERR_READ_FAILED || e == D_GIF_ERR_EOF_TOO_SOON)
        g4_fail(err, "truncated GIF image: %s", msg ? msg : "the data ends early");
    else g4_fail(err, "corrupt GIF image: %s", msg ? msg : "unknown giflib error");
    if (g) DGifCloseFile(g, &code);
    return -1;
}

static int decode_gif(const uint8_t *data, size_t n, const g4_image_limits *lim, g4_image *out, g4_error *err) {
    gif_src s = {data, n, 0, 0};
    int code = 0;
    GifFileType *g = DGifOpen(&s, gif_read_mem, &code);
    if (!g) return gif_fail(NULL, &s, code, err);
    if (check_pixels("GIF", g->SWidth, g->SHeight, lim, err)) {
        DGifCloseFile(g, &code);
        return -1;
    }
    int transparent = -1;
    GifRecordType rt;
    for (;;) {
        if (DGifGetRecordType(g, &rt) == GIF_ERROR) return gif_fail(g, &s, 0, err);
        if (rt == TERMINATE_RECORD_TYPE) {
            DGifCloseFile(g, &code);
            return g4_fail(err, "corrupt GIF image: no image in the file");
        }
        if (rt == EXTENSION_RECORD_TYPE) {
            int ext_code;
            GifByteType *ext;
            if (DGifGetExtension(g, &ext_code, &ext) == GIF_ERROR) return gif_fail(g, &s, 0, err);
            if (ext_code == GRAPHICS_EXT_FUNC_CODE && ext && ext[0] >= 4 && (ext[1] & 1)) transparent = ext[4];
            while (ext)
                if (DGifGetExtensionNext(g, &ext) == GIF_ERROR) return gif_fail(g, &s, 0, err);
            continue;
        }
        if (rt == IMAGE_DESC_RECORD_TYPE) break;
    }
    if (DGifGetImageDesc(g) == GIF_ERROR) return gif_fail(g, &s, 0, err);
    const GifImageDesc *d = &g->Image;
    const ColorMapObject *cm = d->ColorMap ? d->ColorMap : g->SColorMap;
    if (!cm) {
        DGifCloseFile(g, &code);
        return g4_fail(err, "corrupt GIF image: no colour table");
    }
    int W = g->SWidth, H = g->SHeight;
    if (d->Left < 0 || d->Top < 0 || d->Width <= 0 || d->Height <= 0 || d->Left + d->Width > W ||
        d->Top + d->Height > H) {
        DGifCloseFile(g, &code);
        return g4_fail(err, "corrupt GIF image: the first frame lies outside the screen");
    }
    /* The screen starts as the transparent index when there is one (PIL), else the background. */
    int fill = transparent >= 0 ? transparent : g->SBackGroundColor;
    uint8_t *idx = malloc((size_t)W * H);
    uint8_t *rgb = alloc_rgb(W, H, err);
    if (!idx || !rgb) {
        free(idx);
        free(rgb);
        DGifCloseFile(g, &code);
        return g4_fail(err, "out of memory for a %d x %d GIF image", W, H);
    }
    memset(idx, fill, (size_t)W * H);
    static const int start[4] = {0, 4, 2, 1}, step[4] = {8, 8, 4, 2};
    int passes = d->Interlace ? 4 : 1;
    for (int p = 0; p < passes; p++) {
        int y0 = d->Interlace ? start[p] : 0, dy = d->Interlace ? step[p] : 1;
        for (int y = y0; y < d->Height; y += dy) {
            if (DGifGetLine(g, idx + (size_t)(d->Top + y) * W + d->Left, d->Width) == GIF_ERROR) {
                free(idx);
                free(rgb);
                return gif_fail(g, &s, 0, err);
            }
        }
    }
    for (size_t i = 0; i < (size_t)W * H; i++) {
        int k = idx[i];
        uint8_t *o = rgb + 3 * i;
        if (k == transparent) {
            o[0] = o[1] = o[2] = 255;
        } else if (k < cm->ColorCount) {
            o[0] = cm->Colors[k].Red;
            o[1] = cm->Colors[k].Green;
            o[2] = cm->Colors[k].Blue;
        } else {
            o[0] = o[1] = o[2] = 0;
        }
    }
    free(idx);
    DGifCloseFile(g, &code);
    out->width = W;
    out->height = H;
    out->rgb = rgb;
    return 0;
}

/* --- entry ------------------------------------------------------------------------------- */

int g4_image_decode(const uint8_t *data, size_t n, const g4_image_limits *lim, g4_image *out, g4_error *err) {
    if (lim && lim->max_bytes > 0 && n > lim->max_bytes)
        return g4_fail(err, "image too large: %zu bytes, the limit is %zu", n, lim->max_bytes);
    if (!data || n == 0) return g4_fail(err, "empty image data");
    if (n >= 8 && !memcmp(data, "\x89PNG\r\n\x1a\n", 8)) return decode_png(data, n, lim, out, err);
    if (n >= 3 && data[0] == 0xff && data[1] == 0xd8 && data[2] == 0xff) return decode_jpeg(data, n, lim, out, err);
    if (n >= 12 && !memcmp(data, "RIFF", 4) && !memcmp(data + 8, "WEBP", 4)) return decode_webp(data, n, lim, out, err);
    if (n >= 6 && (!memcmp(data, "GIF87a", 6) || !memcmp(data, "GIF89a", 6))) return decode_gif(data, n, lim, out, err);
    if (n < 12)
        return g4_fail(err, "unsupported image format: %zu bytes are too few to tell (PNG, JPEG, WebP or GIF)", n);
    return g4_fail(err, "unsupported image format: not PNG, JPEG, WebP or GIF (first bytes %02x %02x %02x %02x)",
                   data[0], data[1], data[2], data[3]);
}

void g4_image_free(g4_image *img) {
    if (!img) return;
    free(img->rgb);
    img->rgb = NULL;
    img->width = img->height = 0;
}
