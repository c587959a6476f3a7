/* fuzz_tokenizer_load.c - fuzz target: a tokenizer.json through g4_tokenizer_load_json
 * (csrc/text/tokenizer_load.c); what loads encodes and decodes a fixed text and its own input. */
#include <stdlib.h>
#include <string.h>

#include "fuzz_target.h"
#include "text/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    g4_tokenizer *tok = NULL;
    g4_error err;
    if (g4_tokenizer_load_json((const char *)data, size, &tok, &err) != 0) return 0;
    static const char text[] = "<bos><|turn>user\nHello world \xe2\x96\x81 caf\xc3\xa9 \xff<turn|>\n";
    g4_tokens ids = {0};
    g4_strbuf out = {0};
    if (g4_tokenizer_encode(tok, text, sizeof text - 1, G4_ENCODE_SPLIT_SPECIAL | G4_ENCODE_ADD_BOS, &ids, &err) == 0)
        (void)g4_tokenizer_decode(tok, ids.ids, ids.n, 0, &out, &err);
    size_t n = size < 256 ? size : 256;
    ids.n = 0;
    if (g4_tokenizer_encode(tok, (const char *)data, n, 0, &ids, &err) == 0)
        (void)g4_tokenizer_decode(tok, ids.ids, ids.n, G4_DECODE_SKIP_SPECIAL, &out, &err);
    for (int32_t id = 0; id < 8 && id < g4_tokenizer_n_vocab(tok); id++) {
        size_t len;
        const char *s = g4_tokenizer_token_text(tok, id, &len);
        if (!s || g4_tokenizer_token_id(tok, s, len) < 0) abort();
    }
    g4_strbuf_free(&out);
    g4_tokens_free(&ids);
    g4_tokenizer_free(tok);
    return 0;
}
