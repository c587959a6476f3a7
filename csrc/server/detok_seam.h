/* detok_seam.h — the engine's detokenizer seam (engine.h g4_detok_iface) over the text layer's
 * streaming detokenizer, special tokens rendered (the output parser needs them). One adapter for
 * every server executable (g4serve, g4serve-grpc); header-only so neither library depends on the
 * other. Not here: the detokenizer itself (text/detokenizer.c). */
#ifndef G4_SERVER_DETOK_SEAM_H
#define G4_SERVER_DETOK_SEAM_H

#include <string.h>

#include "engine/engine.h"
#include "text/detokenizer.h"

static void *g4_seam_detok_open(void *tok) {
    g4_detokenizer *d = NULL;
    return g4_detokenizer_new(tok, 0, &d, NULL) < 0 ? NULL : d;
}

/* Moves b's bytes into out (NUL-terminated, at most cap − 1) and frees b. */
static int g4_seam_detok_copy(g4_strbuf *b, char *out, size_t cap) {
    size_t n = b->len < cap - 1 ? b->len : cap - 1;
    if (n) memcpy(out, b->data, n);
    out[n] = 0;
    g4_strbuf_free(b);
    return (int)n;
}

static int g4_seam_detok_push(void *state, int32_t token, char *out, size_t cap) {
    g4_strbuf b = {0};
    if (!state || g4_detokenizer_push(state, token, &b, NULL) < 0) {
        g4_strbuf_free(&b);
        return -1;
    }
    return g4_seam_detok_copy(&b, out, cap);
}

static int g4_seam_detok_finish(void *state, char *out, size_t cap) {
    g4_strbuf b = {0};
    if (!state || g4_detokenizer_finish(state, &b, NULL) < 0) {
        g4_strbuf_free(&b);
        return -1;
    }
    return g4_seam_detok_copy(&b, out, cap);
}

static void g4_seam_detok_close(void *state) { g4_detokenizer_free(state); }

static inline g4_detok_iface g4_detok_iface_for(const g4_tokenizer *tok) {
    g4_detok_iface d = {.ctx = (void *)tok, .open = g4_seam_detok_open, .push = g4_seam_detok_push,
                        .close = g4_seam_detok_close, .finish = g4_seam_detok_finish};
    return d;
}

#endif
