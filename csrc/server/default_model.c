/* default_model.c — writes the embedded default model (default_model.h). The test tokenizer's
 * bytes are built into the binary with the assembler's .incbin (its path is a build-time
 * definition, G4_TINY_TOKENIZER_FILE); nothing here reads the source tree at run time. */
#include "server/default_model.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model/testmodel.h"

#ifndef G4_TINY_TOKENIZER_FILE
#error "G4_TINY_TOKENIZER_FILE (the test tokenizer.json to embed) must be defined by the build"
#endif

__asm__(".pushsection .rodata\n"
        ".balign 16\n"
        ".globl g4_tiny_tokenizer_begin\n"
        ".hidden g4_tiny_tokenizer_begin\n"
        "g4_tiny_tokenizer_begin:\n"
        ".incbin \"" G4_TINY_TOKENIZER_FILE "\"\n"
        ".globl g4_tiny_tokenizer_end\n"
        ".hidden g4_tiny_tokenizer_end\n"
        "g4_tiny_tokenizer_end:\n"
        ".popsection\n");
extern const char g4_tiny_tokenizer_begin[], g4_tiny_tokenizer_end[];

static bool exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* mkdir -p */
static int make_dirs(const char *dir, g4_error *err) {
    char path[4096];
    if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path)
        return g4_fail(err, "default model: directory name too long: %s", dir);
    for (char *p = path + 1;; p++) {
        if (*p && *p != '/') continue;
        char c = *p;
        *p = 0;
        if (mkdir(path, 0755) < 0 && errno != EEXIST)
            return g4_fail(err, "default model: cannot create %s: %s", path, strerror(errno));
        if (!c) return 0;
        *p = c;
    }
}

/* Written under a temporary name and renamed, so a server starting at the same time never reads
 * half a file. */
static int write_tokenizer(const char *path, g4_error *err) {
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid()) >= (int)sizeof tmp)
        return g4_fail(err, "default model: path too long: %s", path);
    size_t n = (size_t)(g4_tiny_tokenizer_end - g4_tiny_tokenizer_begin);
    FILE *f = fopen(tmp, "wb");
    if (!f) return g4_fail(err, "default model: cannot write %s: %s", tmp, strerror(errno));
    bool bad = fwrite(g4_tiny_tokenizer_begin, 1, n, f) != n;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path) < 0) {
        g4_fail(err, "default model: cannot write %s: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* The test tokenizer goes only beside the tiny model: a directory that already holds another
 * checkpoint (same geometry check as the loader's) is refused rather than given it. */
static int check_is_tiny(const char *config_path, const g4_config *tiny, g4_error *err) {
    g4_config have;
    if (g4_config_load(&have, config_path, err) < 0) return g4_fail_prefix(err, "default model");
    if (have.vocab != tiny->vocab || have.hidden != tiny->hidden || have.n_layers != tiny->n_layers)
        return g4_fail(err,
                       "%s is not the embedded default model (hidden %d, %d layers) and has no "
                       "tokenizer.json; serve it with --model and its own tokenizer.json",
                       config_path, have.hidden, have.n_layers);
    return 0;
}

int g4_default_model_write(const char *dir, const char *geometry, bool with_tokenizer, g4_error *err) {
    char config[4200], tokenizer[4200];
    g4_config tiny;
    if (g4_testmodel_config(&tiny, geometry, err) < 0 || make_dirs(dir, err) < 0) return -1;
    snprintf(config, sizeof config, "%s/config.json", dir);
    snprintf(tokenizer, sizeof tokenizer, "%s/tokenizer.json", dir);
    bool have_model = exists(config);
    if (!have_model) {
        fprintf(stderr, "g4serve: writing the embedded default model (%s, seed 1) to %s\n", geometry, dir);
        if (g4_testmodel_write(&tiny, 1, dir, err) < 0) return -1;
    }
    if (!with_tokenizer || exists(tokenizer)) return 0;
    if (have_model && check_is_tiny(config, &tiny, err) < 0) return -1;
    return write_tokenizer(tokenizer, err);
}
