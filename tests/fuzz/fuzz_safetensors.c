/* fuzz_safetensors.c - fuzz target: a whole .safetensors file (8-byte header length, JSON
 * header, data) through g4_st_open (csrc/model/safetensors.c), then every tensor it accepted.
 *
 * The reader takes a path and mmaps it, so each input is written to one file per process in
 * /dev/shm (a tmpfs: no disk I/O), or $TMPDIR when /dev/shm is missing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_target.h"
#include "model/safetensors.h"

static const char *scratch_path(void) {
    static char path[256];
    if (!path[0]) {
        const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
        snprintf(path, sizeof path, "%s/g4-fuzz-st-%ld.safetensors", dir ? dir : "/tmp", (long)getpid());
    }
    return path;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = scratch_path();
    FILE *f = fopen(path, "wb");
    if (!f) abort(); /* the harness itself is broken: say so loudly */
    if (size && fwrite(data, 1, size, f) != size) abort();
    if (fclose(f) != 0) abort();
    g4_error err;
    g4_safetensors *st = g4_st_open(path, &err);
    if (st) {
        /* Every accepted tensor must lie inside the file and be findable by its name. */
        for (int i = 0; i < g4_st_count(st); i++) {
            const g4_st_tensor *t = g4_st_at(st, i);
            if (g4_st_find(st, t->name) != t) abort();
            if (t->nbytes) {
                volatile const uint8_t *p = t->data;
                (void)p[0];
                (void)p[t->nbytes - 1];
            }
            (void)g4_st_numel(t);
        }
        g4_st_close(st);
    }
    unlink(path);
    return 0;
}
