/* tokenizer.h - the Gemma 4 tokenizer: HF tokenizer.json (BPE + byte fallback) in C.
 *
 * Loads the "Gemma form" of a Hugging Face tokenizer.json: a BPE model with byte fallback,
 * vocab + merges, added/special tokens, the Replace(" ", "\u2581") normalizer, a no-op
 * Split(" ") pre-tokenizer and the Replace/ByteFallback/Fuse decoder. Other pipelines are
 * refused at load time with a message naming the unsupported part.
 *
 * Encoding matches `tokenizers` exactly (tests/text/test_tokenizer.c checks a golden corpus):
 *   1. split out added tokens (leftmost-longest), unless the caller asks for plain text;
 *   2. replace every U+0020 with U+2581;
 *   3. BPE: start from characters (unknown ones as <0xXX> byte tokens), repeatedly merge the
 *      adjacent pair of lowest merge rank, leftmost first (binary heap, O(n log n)).
 * Bytes that are not valid UTF-8 (which `tokenizers` cannot receive) become their <0xXX> token.
 *
 * Threading: a loaded tokenizer is immutable; any number of threads may encode/decode at once.
 * Not here: streaming decode (detokenizer.h), chat formatting (chat_template.h). */
#ifndef G4_TEXT_TOKENIZER_H
#define G4_TEXT_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "base/strbuf.h"

typedef struct g4_tokenizer g4_tokenizer;

/* Ids of the tokens the rest of g4serve cares about, found by string at load time (never
 * hard-coded); -1 when the vocabulary lacks that string. */
typedef struct g4_special_ids {
    int32_t pad, eos, bos, unk, mask;       /* <pad> <eos> <bos> <unk> <mask> */
    int32_t turn_start, turn_end;           /* <|turn> <turn|>      (turn_end is a stop token) */
    int32_t channel_start, channel_end;     /* <|channel> <channel|> */
    int32_t tool_start, tool_end;           /* <|tool> <tool|>      (declarations) */
    int32_t tool_call_start, tool_call_end; /* <|tool_call> <tool_call|> */
    int32_t tool_response_start;            /* <|tool_response>     (a stop token) */
    int32_t tool_response_end;              /* <tool_response|> */
    int32_t string_delim;                   /* <|"|> */
    int32_t think;                          /* <|think|> */
    int32_t image_start, image, image_end;  /* <|image> <|image|> <image|> */
    int32_t audio_start, audio, audio_end;  /* <|audio> <|audio|> <audio|> */
    int32_t video;                          /* <|video|> */
    int32_t newline;                        /* "\n" (an ordinary token) */
} g4_special_ids;

/* A caller-owned growable id vector; zero-initialise before first use. */
typedef struct g4_tokens {
    int32_t *ids;
    size_t n, cap;
} g4_tokens;

int g4_tokens_push(g4_tokens *t, int32_t id); /* 0, or -1 when out of memory */
void g4_tokens_free(g4_tokens *t);

/* Loads tokenizer.json from a file / from memory (len bytes, need not be NUL-terminated).
 * On success *out owns everything (free with g4_tokenizer_free); on failure returns -1 with a
 * message naming the field that is wrong. */
int g4_tokenizer_load(const char *path, g4_tokenizer **out, g4_error *err);
int g4_tokenizer_load_json(const char *json, size_t len, g4_tokenizer **out, g4_error *err);
void g4_tokenizer_free(g4_tokenizer *tok);

/* Size of the id space: max id + 1 (262,144 for Gemma 4). Every id below it has a string. */
int32_t g4_tokenizer_n_vocab(const g4_tokenizer *tok);

const g4_special_ids *g4_tokenizer_specials(const g4_tokenizer *tok);

/* Id of the token whose text is exactly str (added tokens first, then the BPE vocab), or -1.
 * This is how stop tokens (<turn|>, <eos>, <|tool_response>) are found. */
int32_t g4_tokenizer_token_id(const g4_tokenizer *tok, const char *str, size_t len);

/* The raw vocabulary text of id (e.g. "\u2581world", "<0x0A>", "<turn|>"), length in *len;
 * NULL for an id outside [0, n_vocab). The pointer lives as long as the tokenizer. */
const char *g4_tokenizer_token_text(const g4_tokenizer *tok, int32_t id, size_t *len);

/* 1 when id is an added token marked special (what skip-special decoding drops). */
int g4_tokenizer_is_special(const g4_tokenizer *tok, int32_t id);

/* 1 when the file's post-processor prepends BOS to single sequences (Gemma 4 IT: 0). */
int g4_tokenizer_wants_bos(const g4_tokenizer *tok);

/* Encode flags. */
enum {
    /* Match added tokens in the text ("<|turn>" -> id 105). Without it, added tokens marked
     * special are NOT matched and their text is tokenized as ordinary characters (use this
     * for user-supplied text so it cannot inject control tokens; same as `tokenizers`'
     * encode_special_tokens=True). Non-special added tokens are matched either way. */
    G4_ENCODE_SPLIT_SPECIAL = 1u << 0,
    /* Make sure the result starts with exactly one BOS: prepend it unless the encoding already
     * begins with BOS (e.g. from a "<bos>" in a rendered chat prompt). */
    G4_ENCODE_ADD_BOS = 1u << 1,
};

/* Appends the ids of text[0..len) to out. Any byte string is accepted. Returns 0, or -1 (out
 * of memory) with err set; out then holds what was appended so far. */
int g4_tokenizer_encode(const g4_tokenizer *tok, const char *text, size_t len, unsigned flags, g4_tokens *out,
                        g4_error *err);

/* g4_tokenizer_encode, except that with G4_ENCODE_SPLIT_SPECIAL a special added token is matched
 * only where none of its bytes is flagged in user (NULL, or one flag per byte of text; nonzero
 * = caller-supplied text). This is how a rendered chat prompt is encoded: control tokens come
 * from the template (flag 0), while the same spelling inside message content, names, arguments
 * or tool results is tokenized as plain text. Ids are otherwise identical to the unmasked
 * encode (the BPE runs over the same spans), so a prompt without such spellings is unchanged. */
int g4_tokenizer_encode_masked(const g4_tokenizer *tok, const char *text, size_t len, unsigned flags,
                               const unsigned char *user, g4_tokens *out, g4_error *err);

/* Decode flags. */
enum {
    G4_DECODE_SKIP_SPECIAL = 1u << 0, /* drop added tokens marked special */
};

/* Appends the text of ids[0..n) to out, exactly as `tokenizers` decodes: byte tokens are
 * gathered into runs; a run that is valid UTF-8 becomes its text, an invalid run becomes one
 * U+FFFD per byte; "\u2581" becomes a space; ids outside the vocabulary are skipped.
 * The output is always valid UTF-8. Returns 0, or -1 (out of memory). */
int g4_tokenizer_decode(const g4_tokenizer *tok, const int32_t *ids, size_t n, unsigned flags, g4_strbuf *out,
                        g4_error *err);

#endif
