/* fuzz_tokenizer.c - the tokenizer the text fuzz targets share (g4_fuzz_tokenizer, fuzz_target.h). */
#include <stdio.h>
#include <stdlib.h>

#include "fuzz_target.h"
#include "text/tokenizer.h"

const g4_tokenizer *g4_fuzz_tokenizer(void) {
    static g4_tokenizer *tok; /* loaded once, immutable afterwards, never freed (one per process) */
    if (!tok) {
        const char *path = getenv("G4_FUZZ_TOKENIZER");
        g4_error err;
        if (g4_tokenizer_load(path ? path : G4_FUZZ_TOKENIZER, &tok, &err) != 0) {
            fprintf(stderr, "fuzz: cannot load the test tokenizer: %s\n", err.msg);
            abort();
        }
    }
    return tok;
}
