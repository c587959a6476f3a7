/* detok_seam.h — the engine's detokenizer seam (engine.h g4_detok_iface) over the text layer's
 * streaming detokenizer. Each request's stream opens with that request's flags (engine.h
 * G4_DETOK_*: skip special tokens, spaces between special tokens); with none, special tokens are
 * rendered (the output parser needs them). One adapter, given to the engine by the composition root
 * (stack.c); header-only so neither library depends on the other. Not here: the detokenizer
 * itself (text/detokenizer.c). */
#ifndef G4_SERVER_DETOK_SEAM_H
#define G4_SERVER_DETOK_SEAM_H

#include <string.h>

#include "engine/engine.h"
#include "text/detokenizer.h"

/* Engine flags → text-layer flags. */
static inline unsigned g4_seam_detok_flags(unsigned engine_flags) {
    return ((engine_flags & G4_DETOK_SKIP_SPECIAL) ? G4_DECODE_SKIP_SPECIAL : 0) |
           ((engine_flags & G4_DETOK_SPACES_BETWEEN_SPECIAL) ? G4_DECODE_SPACES_BETWEEN_SPECIAL : 0);
}

static void *g4_seam_detok_open(void *tok, unsigned flags) {
    g4_detokenizer *d = NULL;
    return g4_detokenizer_new(tok, g4_seam_detok_flags(flags), &d, NULL) < 0 ? NULL : d;
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
    g4_detok_iface d = {.ctx = (void *)tok,
                        .open = g4_seam_detok_open,
                        .push = g4_seam_detok_push,
                        .close = g4_seam_detok_close,
                        .finish = g4_seam_detok_finish};
    return d;
}

#endif
