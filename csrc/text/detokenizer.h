/* detokenizer.h - streaming decode: one token in, the text that is now certain out.
 *
 * One g4_detokenizer per request stream. Feeding ids one by one and concatenating everything
 * push/finish produced gives exactly g4_tokenizer_decode of the whole sequence. Every piece
 * handed out is complete UTF-8: a run of byte-fallback tokens (<0xE4><0xBD><0xA0>) is held
 * back whole until a non-byte token (or finish) ends it, because `tokenizers` turns an invalid
 * run into one U+FFFD per byte, so a run cannot be judged before it ends.
 *
 * Threading: a detokenizer belongs to one thread at a time; the tokenizer it reads is shared. */
#ifndef G4_TEXT_DETOKENIZER_H
#define G4_TEXT_DETOKENIZER_H

#include <stdint.h>

#include "base/error.h"
#include "base/strbuf.h"
#include "text/tokenizer.h"

typedef struct g4_detokenizer g4_detokenizer;

/* A streaming-only decode flag beside tokenizer.h's G4_DECODE_*: a space where text meets a
 * special token (vLLM's spaces_between_special_tokens, the " ".join of the pieces between added
 * tokens); with G4_DECODE_SKIP_SPECIAL there is nothing to separate. */
enum { G4_DECODE_SPACES_BETWEEN_SPECIAL = 1u << 8 };

/* flags: G4_DECODE_SKIP_SPECIAL, G4_DECODE_SPACES_BETWEEN_SPECIAL, or 0 (render special tokens
 * as their text, which the output parser needs). The flags are the request's: a server sets
 * them per request (engine.h detok_flags). The tokenizer must outlive the detokenizer. */
int g4_detokenizer_new(const g4_tokenizer *tok, unsigned flags, g4_detokenizer **out, g4_error *err);
void g4_detokenizer_free(g4_detokenizer *d);

/* Appends to out the text that token id makes certain (possibly nothing). 0, or -1 (OOM). */
int g4_detokenizer_push(g4_detokenizer *d, int32_t id, g4_strbuf *out, g4_error *err);

/* End of stream: appends whatever was held back. The detokenizer is then ready for reuse. */
int g4_detokenizer_finish(g4_detokenizer *d, g4_strbuf *out, g4_error *err);

/* Bytes currently held back (a pending byte-token run). */
size_t g4_detokenizer_pending(const g4_detokenizer *d);

#endif
