/* detokenizer.c - streaming decode (see detokenizer.h). The held-back state is just the
 * pending byte-token run; ordinary and special tokens are always complete UTF-8. */
#include <stdbool.h>
#include <stdlib.h>

#include "text/detokenizer.h"
#include "text/tokenizer_impl.h"

struct g4_detokenizer {
    const g4_tokenizer *tok;
    unsigned flags;
    g4_strbuf run;   /* raw bytes of the open byte-token run */
    bool any_text;   /* something was handed out (G4_DETOK_SPACES_BETWEEN_SPECIAL) */
    bool after_special; /* the last text handed out was a special token's */
};

int g4_detokenizer_new(const g4_tokenizer *tok, unsigned flags, g4_detokenizer **out, g4_error *err) {
    g4_detokenizer *d = calloc(1, sizeof *d);
    if (!d) return g4_fail(err, "detokenizer: out of memory");
    d->tok = tok;
    d->flags = flags;
    *out = d;
    return 0;
}

void g4_detokenizer_free(g4_detokenizer *d) {
    if (!d) return;
    g4_strbuf_free(&d->run);
    free(d);
}

size_t g4_detokenizer_pending(const g4_detokenizer *d) { return d->run.len; }

/* With G4_DECODE_SPACES_BETWEEN_SPECIAL: a space where text meets a special token, as
 * vLLM's " ".join of the pieces between added tokens. Records what comes next. */
static int separate(g4_detokenizer *d, bool special, g4_strbuf *out) {
    bool space = (d->flags & G4_DECODE_SPACES_BETWEEN_SPECIAL) && d->any_text && (special || d->after_special);
    d->any_text = true;
    d->after_special = special;
    return space ? g4_strbuf_append(out, " ", 1) : 0;
}

static int close_run(g4_detokenizer *d, g4_strbuf *out) {
    if (!d->run.len) return 0;
    if (separate(d, false, out)) return -1;
    size_t start = out->len;
    if (g4_strbuf_append(out, d->run.data, d->run.len) || g4_tok_close_byte_run(out, start)) return -1;
    g4_strbuf_clear(&d->run);
    return 0;
}

int g4_detokenizer_push(g4_detokenizer *d, int32_t id, g4_strbuf *out, g4_error *err) {
    const g4_tokenizer *tok = d->tok;
    /* Skipped and unknown ids vanish without ending a run, as in whole-sequence decode. */
    if (id < 0 || id >= tok->n_vocab || ((d->flags & G4_DECODE_SKIP_SPECIAL) && tok->is_special[id])) return 0;
    int bv = tok->byte_val[id];
    if (bv >= 0) {
        char c = (char)bv;
        if (g4_strbuf_append(&d->run, &c, 1)) return g4_fail(err, "detokenizer: out of memory");
        return 0;
    }
    if (close_run(d, out) || (tok->dec_len[id] && separate(d, tok->is_special[id], out)) ||
        g4_strbuf_append(out, tok->dec + tok->dec_off[id], tok->dec_len[id]))
        return g4_fail(err, "detokenizer: out of memory");
    return 0;
}

int g4_detokenizer_finish(g4_detokenizer *d, g4_strbuf *out, g4_error *err) {
    if (close_run(d, out)) return g4_fail(err, "detokenizer: out of memory");
    return 0;
}
