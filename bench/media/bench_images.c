/* bench_images.c - images per second through csrc/media on one CPU thread: decode (PNG, JPEG,
 * WebP, GIF) and the Gemma 4 preprocessing (resize, rescale, patches) at each soft-token budget.
 *
 * Usage: g4_bench_images [REPEAT] FILE...
 * Prints one JSON object: per file its size and format, the best-of-REPEAT decode seconds, and per
 * budget the best preprocessing seconds and decode + preprocess images/s. bench_images.py runs it
 * on tests/media/golden next to transformers' processor (PIL decode + torchvision resize) and
 * writes bench/results/. The vision encoder's own cost per budget is the tower's benchmark. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/file.h"
#include "media/image.h"
#include "media/vision_preprocess.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char **argv) {
    int first = 1, repeat = 5;
    if (argc > 1 && atoi(argv[1]) > 0) repeat = atoi(argv[first++]);
    if (first >= argc) {
        fprintf(stderr, "usage: %s [REPEAT] FILE...\n", argv[0]);
        return 2;
    }
    static const int budgets[] = {70, 140, 280, 560, 1120};
    printf("{\"repeat\": %d, \"threads\": 1, \"files\": [", repeat);
    for (int f = first; f < argc; f++) {
        char *data;
        size_t n;
        g4_error err = {{0}};
        if (g4_read_file(argv[f], (size_t)1 << 30, &data, &n, &err)) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        double dec = 1e30;
        g4_image img = {0};
        for (int r = 0; r < repeat; r++) {
            g4_image_free(&img);
            double t0 = now();
            if (g4_image_decode((const uint8_t *)data, n, NULL, &img, &err)) {
                fprintf(stderr, "%s: %s\n", argv[f], err.msg);
                return 1;
            }
            double t = now() - t0;
            if (t < dec) dec = t;
        }
        const char *name = strrchr(argv[f], '/') ? strrchr(argv[f], '/') + 1 : argv[f];
        printf("%s\n {\"file\": \"%s\", \"bytes\": %zu, \"width\": %d, \"height\": %d, \"decode_s\": %.6g, "
               "\"budgets\": [",
               f > first ? "," : "", name, n, img.width, img.height, dec);
        for (int b = 0; b < 5; b++) {
            double pre = 1e30;
            int n_soft = 0;
            for (int r = 0; r < repeat; r++) {
                g4_vision_pixels px = {0};
                double t0 = now();
                if (g4_vision_preprocess(&img, budgets[b], &px, &err)) {
                    fprintf(stderr, "%s @%d: %s\n", argv[f], budgets[b], err.msg);
                    return 1;
                }
                double t = now() - t0;
                if (t < pre) pre = t;
                n_soft = px.n_soft;
                g4_vision_pixels_free(&px);
            }
            printf("%s{\"budget\": %d, \"soft_tokens\": %d, \"preprocess_s\": %.6g, \"images_per_s\": %.4g}",
                   b ? ", " : "", budgets[b], n_soft, pre, 1.0 / (dec + pre));
        }
        printf("]}");
        g4_image_free(&img);
        free(data);
    }
    printf("\n]}\n");
    return 0;
}
