/* make_tiny.c — g4-make-tiny: writes a deterministic tiny random Gemma 4 checkpoint.
 * Usage: g4-make-tiny [--config tiny-dense|tiny-moe] [--seed N] --out DIR */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/testmodel.h"

int main(int argc, char **argv) {
    const char *name = "tiny-dense", *out = NULL;
    unsigned long long seed = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--config") && i + 1 < argc) name = argv[++i];
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc) seed = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
        else {
            fprintf(stderr, "usage: %s [--config tiny-dense|tiny-moe] [--seed N] --out DIR\n", argv[0]);
            return 2;
        }
    }
    if (!out) {
        fprintf(stderr, "%s: --out DIR is required\n", argv[0]);
        return 2;
    }
    g4_config cfg;
    g4_error err = {{0}};
    if (g4_testmodel_config(&cfg, name, &err) || g4_testmodel_write(&cfg, seed, out, &err)) {
        fprintf(stderr, "g4-make-tiny: %s\n", err.msg);
        return 1;
    }
    printf("wrote %s (%s, seed %llu)\n", out, name, seed);
    return 0;
}
