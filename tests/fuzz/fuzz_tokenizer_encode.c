/* fuzz_tokenizer_encode.c - fuzz target: any bytes through g4_tokenizer_encode / _encode_masked
 * (csrc/text/tokenizer.c) with the test tokenizer (g4_fuzz_tokenizer, fuzz_target.h).
 *
 * Input: byte 0 picks the flags (bit 0 split special tokens, bit 1 add BOS, bit 2 the masked
 * encode with every other byte run marked as user text); the rest is the text. Checks: every id
 * is in the vocabulary, and plain text that is valid UTF-8 without U+2581 decodes back to itself. */
#include <stdlib.h>
#include <string.h>

#include "fuzz_target.h"
#include "text/tokenizer.h"
#include "text/utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const g4_tokenizer *tok = g4_fuzz_tokenizer();
    if (size == 0) return 0;
    unsigned mode = data[0];
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    unsigned flags = (mode & 1 ? G4_ENCODE_SPLIT_SPECIAL : 0) | (mode & 2 ? G4_ENCODE_ADD_BOS : 0);
    g4_tokens ids = {0};
    g4_error err;
    int rc;
    if (mode & 4) {
        unsigned char *user = malloc(len ? len : 1);
        if (!user) return 0;
        for (size_t i = 0; i < len; i++) user[i] = (unsigned char)((i / 7) & 1);
        rc = g4_tokenizer_encode_masked(tok, text, len, flags, user, &ids, &err);
        free(user);
    } else {
        rc = g4_tokenizer_encode(tok, text, len, flags, &ids, &err);
    }
    if (rc == 0) {
        int32_t n_vocab = g4_tokenizer_n_vocab(tok);
        for (size_t i = 0; i < ids.n; i++)
            if (ids.ids[i] < 0 || ids.ids[i] >= n_vocab) abort();
        if (flags == 0 && !(mode & 4) && g4_utf8_valid(text, len) && !memmem(text, len, "\xe2\x96\x81", 3)) {
            g4_strbuf back = {0};
            if (g4_tokenizer_decode(tok, ids.ids, ids.n, 0, &back, &err) == 0 &&
                (back.len != len || (len && memcmp(back.data, text, len) != 0)))
                abort();
            g4_strbuf_free(&back);
        }
    }
    g4_tokens_free(&ids);
    return 0;
}
