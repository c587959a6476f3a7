/* test_image_decode.c — media/image.c against PIL: every committed PNG / JPEG / WebP / GIF decodes
 * to exactly the RGB bytes PIL + transformers' convert_to_rgb give (their weighted sums, from
 * make_vision_golden.py), and broken input is refused with a message naming the problem:
 * truncated, corrupt, too many bytes, too many pixels, unknown format. */
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "check.h"
#include <cjson/cJSON.h>
#include "golden_io.h"
#include "media/image.h"

static void expect_fail(const char *what, const uint8_t *data, size_t n, const g4_image_limits *lim,
                        const char *needle) {
    g4_image img = {0};
    g4_error err = {{0}};
    int rc = g4_image_decode(data, n, lim, &img, &err);
    CHECK(rc == -1, "%s: decoded (%d x %d) but should fail", what, img.width, img.height);
    CHECK(strstr(err.msg, needle) != NULL, "%s: message \"%s\" does not say \"%s\"", what, err.msg, needle);
    CHECK(img.rgb == NULL, "%s: output touched on failure", what);
    if (rc == 0) g4_image_free(&img);
}

int main(void) {
    size_t jn;
    char *js = (char *)golden_read("vision.json", &jn);
    REQUIRE(js, "tests/media/golden/vision.json missing");
    cJSON *root = cJSON_ParseWithLength(js, jn);
    REQUIRE(root, "vision.json does not parse");
    const cJSON *dec = cJSON_GetObjectItemCaseSensitive(root, "decoded_rgb_sum64");
    REQUIRE(cJSON_IsObject(dec) && cJSON_GetArraySize(dec) >= 10, "decoded_rgb_sum64 missing");

    const cJSON *it;
    cJSON_ArrayForEach(it, dec) {
        size_t n;
        uint8_t *data = golden_read(it->string, &n);
        CHECK(data != NULL, "%s missing", it->string);
        if (!data) continue;
        g4_image img = {0};
        g4_error err = {{0}};
        int rc = g4_image_decode(data, n, NULL, &img, &err);
        CHECK(rc == 0, "%s: %s", it->string, err.msg);
        if (rc == 0) {
            char hex[17];
            snprintf(hex, sizeof hex, "%016llx",
                     (unsigned long long)weighted_sum64(img.rgb, (size_t)img.width * img.height * 3));
            CHECK(!strcmp(hex, it->valuestring), "%s: decoded RGB differs from PIL's (%s vs %s)", it->string, hex,
                  it->valuestring);
            g4_image_free(&img);
        }

        /* truncated: the first half of the file */
        char what[256];
        snprintf(what, sizeof what, "%s cut in half", it->string);
        expect_fail(what, data, n / 2, NULL, "truncated");
        /* limits: one byte fewer than the file, one pixel fewer than the image */
        g4_image_limits lb = {.max_bytes = n - 1};
        snprintf(what, sizeof what, "%s over the byte limit", it->string);
        expect_fail(what, data, n, &lb, "too large");
        if (rc == 0) {
            g4_image ok = {0};
            g4_image_decode(data, n, NULL, &ok, &err);
            g4_image_limits lp = {.max_pixels = (int64_t)ok.width * ok.height - 1};
            snprintf(what, sizeof what, "%s over the pixel limit", it->string);
            expect_fail(what, data, n, &lp, "pixels");
            g4_image_limits exact = {.max_bytes = n, .max_pixels = (int64_t)ok.width * ok.height};
            g4_image again = {0};
            CHECK(g4_image_decode(data, n, &exact, &again, &err) == 0, "%s at exactly its limits: %s", it->string,
                  err.msg);
            g4_image_free(&again);
            g4_image_free(&ok);
        }
        free(data);
    }

    /* corrupt: a PNG whose first chunk after IHDR is garbled (CRC mismatch), a JPEG whose frame
     * header claims zero height, a GIF with no image, a WebP whose VP8L bitstream is garbage */
    size_t n;
    uint8_t *png = golden_read("grey_90x200.png", &n);
    REQUIRE(png, "grey_90x200.png");
    for (size_t i = 40; i < 60 && i < n; i++) png[i] ^= 0x5a;
    expect_fail("garbled PNG", png, n, NULL, "corrupt PNG");
    free(png);

    uint8_t *jpg = golden_read("grey_120x80.jpg", &n);
    REQUIRE(jpg, "grey_120x80.jpg");
    for (size_t i = 2; i + 8 < n; i++)
        if (jpg[i] == 0xff && jpg[i + 1] == 0xc0) { /* SOF0: FF C0 len(2) prec(1) height(2) width(2) */
            jpg[i + 5] = jpg[i + 6] = 0;
            break;
        }
    expect_fail("JPEG with zero height", jpg, n, NULL, "corrupt JPEG");
    free(jpg);

    static const uint8_t gif_no_image[] = {'G',  'I', 'F', '8', '9', 'a', 4,   0,   4,   0,
                                           0x80, 0,   0,   0,   0,   0,   255, 255, 255, 0x3b};
    expect_fail("GIF without an image", gif_no_image, sizeof gif_no_image, NULL, "corrupt GIF");

    uint8_t *webp = golden_read("lossless_300x200.webp", &n);
    REQUIRE(webp, "lossless_300x200.webp");
    for (size_t i = 40; i < n; i++) webp[i] = (uint8_t)(i * 131u);
    expect_fail("garbled WebP", webp, n, NULL, "WebP");
    free(webp);

    /* unsupported formats and empty input */
    static const uint8_t bmp[] = {'B', 'M', 0x46, 0, 0, 0, 0, 0, 0, 0, 0x36, 0, 0, 0, 0x28, 0};
    expect_fail("BMP", bmp, sizeof bmp, NULL, "unsupported image format");
    static const char text[] = "this is not an image at all";
    expect_fail("text", (const uint8_t *)text, sizeof text - 1, NULL, "unsupported image format");
    expect_fail("empty", (const uint8_t *)"", 0, NULL, "empty");

    cJSON_Delete(root);
    free(js);
    return check_summary();
}
