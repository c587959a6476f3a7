/* replay.c - the plain-C driver: runs every file of the corpus directories (or the files) named
 * on the command line through the target's LLVMFuzzerTestOneInput once, in name order.
 *
 * This is how the fuzz targets run where clang's libFuzzer is absent (gcc builds, the ASan
 * build): a crash, a sanitizer report or a leak fails the ctest test that replays the corpus.
 * It does not mutate anything; the coverage-guided search needs libFuzzer (G4_FUZZ=ON).
 * Exit 0 after at least one input, 1 when a path cannot be read or no input was found. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_target.h"

static int replay_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    size_t cap = 4096, n = 0;
    uint8_t *buf = malloc(cap);
    int rc = buf ? 0 : -1;
    while (!rc) {
        if (n == cap) {
            uint8_t *b = realloc(buf, cap * 2);
            if (!b) {
                rc = -1;
                break;
            }
            buf = b;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) {
            if (ferror(f)) rc = -1;
            break;
        }
    }
    fclose(f);
    if (rc) {
        fprintf(stderr, "replay: %s: read failed\n", path);
        free(buf);
        return -1;
    }
    /* An exact-size copy, so ASan sees an over-read past the input as libFuzzer would. */
    uint8_t *exact = malloc(n ? n : 1);
    if (!exact) {
        free(buf);
        return -1;
    }
    memcpy(exact, buf, n);
    free(buf);
    LLVMFuzzerTestOneInput(exact, n);
    free(exact);
    return 0;
}

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Replays every regular file of dir (not recursive); adds the count to *count. */
static int replay_dir(const char *dir, int *count) {
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "replay: %s: %s\n", dir, strerror(errno));
        return -1;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    struct dirent *e;
    while (!rc && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        if (n == cap) {
            size_t c = cap ? 2 * cap : 64;
            char **v = realloc(names, c * sizeof *v);
            if (!v) {
                rc = -1;
                break;
            }
            names = v;
            cap = c;
        }
        size_t len = strlen(dir) + strlen(e->d_name) + 2;
        if (!(names[n] = malloc(len))) {
            rc = -1;
            break;
        }
        snprintf(names[n++], len, "%s/%s", dir, e->d_name);
    }
    closedir(d);
    if (n > 1) qsort(names, n, sizeof *names, by_name);
    for (size_t i = 0; i < n; i++) {
        struct stat s;
        if (!rc && stat(names[i], &s) == 0 && S_ISREG(s.st_mode)) {
            rc = replay_file(names[i]);
            if (!rc) (*count)++;
        }
        free(names[i]);
    }
    free(names);
    return rc;
}

int main(int argc, char **argv) {
    int count = 0;
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] == '-') continue; /* libFuzzer flags (-runs=0, ...) mean nothing here */
        struct stat s;
        if (stat(argv[i], &s) != 0) {
            fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
            return 1;
        }
        int rc = S_ISDIR(s.st_mode) ? replay_dir(argv[i], &count) : replay_file(argv[i]);
        if (rc) return 1;
        if (!S_ISDIR(s.st_mode)) count++;
    }
    if (count == 0) {
        fprintf(stderr, "replay: no input found (usage: %s CORPUS_DIR|FILE...)\n", argv[0]);
        return 1;
    }
    printf("replay: %d inputs, no crash\n", count);
    return 0;
}
