/* test_tokenizer.c - the C tokenizer against `tokenizers` on the golden corpus, both directions.
 *
 * Data: tests/text/data/tokenizer.json and tok_corpus.json, written by make_tokenizer.py with
 * the real `tokenizers` library (texts and decoded strings hex-encoded). Checks, per case:
 * encode (special split on and off), whole decode (specials kept / skipped), streaming decode
 * (same text, every piece complete UTF-8). Plus: structural ids found by string, BOS rule,
 * round trips on random text, and loader errors on malformed files. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "base/file.h"
#include "check.h"
#include "text/detokenizer.h"
#include "text/tokenizer.h"
#include "text/tokenizer_impl.h" /* white-box: toggles chunking */
#include "text/utf8.h"

static char *read_file(const char *path, size_t *len) {
    char *b;
    return g4_read_file(path, (size_t)1 << 31, &b, len, NULL) ? NULL : b;
}

static size_t unhex(const char *h, char *out) {
    size_t n = strlen(h) / 2;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        sscanf(h + 2 * i, "%2x", &v);
        out[i] = (char)v;
    }
    return n;
}

static int ids_equal(const g4_tokens *t, const cJSON *arr) {
    if ((size_t)cJSON_GetArraySize(arr) != t->n) return 0;
    size_t i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, arr) if (t->ids[i++] != e->valueint) return 0;
    return 1;
}

static void print_ids(const char *what, const g4_tokens *t, const cJSON *arr) {
    fprintf(stderr, "  %s got:", what);
    for (size_t i = 0; i < t->n && i < 40; i++) fprintf(stderr, " %d", t->ids[i]);
    char *s = cJSON_PrintUnformatted(arr);
    fprintf(stderr, "\n  want: %.400s\n", s);
    free(s);
}

/* Decodes ids whole and streaming; checks both against want[0..wn). */
static void check_decode(const g4_tokenizer *tok, const int32_t *ids, size_t n, unsigned flags, const char *want,
                         size_t wn, int k) {
    g4_strbuf whole = {0}, stream = {0}, piece = {0};
    g4_error err = {0};
    CHECK(g4_tokenizer_decode(tok, ids, n, flags, &whole, &err) == 0, "decode: %s", err.msg);
    CHECK(whole.len == wn && !memcmp(whole.data, want, wn),
          "case %d flags %u: decode mismatch "
          "(got %zu bytes, want %zu)",
          k, flags, whole.len, wn);
    g4_detokenizer *d;
    if (g4_detokenizer_new(tok, flags, &d, &err)) return;
    int pieces_ok = 1;
    for (size_t i = 0; i < n; i++) {
        g4_strbuf_clear(&piece);
        g4_detokenizer_push(d, ids[i], &piece, &err);
        if (!g4_utf8_valid(piece.data, piece.len)) pieces_ok = 0;
        g4_strbuf_append(&stream, piece.data ? piece.data : "", piece.len);
    }
    g4_strbuf_clear(&piece);
    g4_detokenizer_finish(d, &piece, &err);
    g4_strbuf_append(&stream, piece.data ? piece.data : "", piece.len);
    CHECK(pieces_ok, "case %d: a streamed piece was not complete UTF-8", k);
    CHECK(stream.len == wn && !memcmp(stream.data, want, wn),
          "case %d flags %u: streaming "
          "decode differs from whole decode",
          k, flags);
    CHECK(g4_detokenizer_pending(d) == 0, "finish left bytes pending");
    g4_detokenizer_free(d);
    g4_strbuf_free(&whole);
    g4_strbuf_free(&stream);
    g4_strbuf_free(&piece);
}

static void check_corpus(const g4_tokenizer *tok, const cJSON *root) {
    const cJSON *c;
    int k = 0, n_enc = 0;
    char *text = malloc(1 << 20), *want = malloc(1 << 20);
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "cases")) {
        size_t tn = unhex(cJSON_GetObjectItem(c, "text")->valuestring, text);
        g4_tokens t = {0};
        g4_error err = {0};
        CHECK(g4_tokenizer_encode(tok, text, tn, G4_ENCODE_SPLIT_SPECIAL, &t, &err) == 0, "%s", err.msg);
        int ok = ids_equal(&t, cJSON_GetObjectItem(c, "ids"));
        CHECK(ok, "case %d (%.60s): ids differ from tokenizers", k, cJSON_GetObjectItem(c, "text")->valuestring);
        if (!ok) print_ids("ids", &t, cJSON_GetObjectItem(c, "ids"));
        n_enc += ok;
        t.n = 0;
        g4_tokenizer_encode(tok, text, tn, 0, &t, &err);
        ok = ids_equal(&t, cJSON_GetObjectItem(c, "ids_plain"));
        CHECK(ok, "case %d: plain-text ids differ from tokenizers(encode_special_tokens=True)", k);
        if (!ok) print_ids("ids_plain", &t, cJSON_GetObjectItem(c, "ids_plain"));
        /* Decode the golden ids (not ours) so both directions are checked independently. */
        const cJSON *gold = cJSON_GetObjectItem(c, "ids");
        t.n = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, gold) g4_tokens_push(&t, e->valueint);
        size_t wn = unhex(cJSON_GetObjectItem(c, "decoded")->valuestring, want);
        check_decode(tok, t.ids, t.n, 0, want, wn, k);
        wn = unhex(cJSON_GetObjectItem(c, "decoded_skip")->valuestring, want);
        check_decode(tok, t.ids, t.n, G4_DECODE_SKIP_SPECIAL, want, wn, k);
        if (!cJSON_IsTrue(cJSON_GetObjectItem(c, "invalid_utf8")))
            CHECK(g4_utf8_valid(text, tn), "case %d: corpus text should be valid UTF-8", k);
        g4_tokens_free(&t);
        k++;
    }
    printf("corpus: %d/%d encodings identical to tokenizers\n", n_enc, k);
    CHECK(k >= 300, "corpus has only %d cases", k);
    k = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "decode_cases")) {
        g4_tokens t = {0};
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItem(c, "ids")) g4_tokens_push(&t, e->valueint);
        size_t wn = unhex(cJSON_GetObjectItem(c, "decoded")->valuestring, want);
        check_decode(tok, t.ids, t.n, 0, want, wn, 1000 + k);
        wn = unhex(cJSON_GetObjectItem(c, "decoded_skip")->valuestring, want);
        check_decode(tok, t.ids, t.n, G4_DECODE_SKIP_SPECIAL, want, wn, 1000 + k);
        g4_tokens_free(&t);
        k++;
    }
    CHECK(k >= 100, "only %d decode cases", k);
    free(text);
    free(want);
}

static void check_specials(const g4_tokenizer *tok) {
    const g4_special_ids *sp = g4_tokenizer_specials(tok);
    CHECK(g4_tokenizer_n_vocab(tok) == 262144, "n_vocab %d", g4_tokenizer_n_vocab(tok));
    /* Real Gemma 4 ids (docs/model-spec.md §5), found by string at load. */
    CHECK(sp->pad == 0 && sp->eos == 1 && sp->bos == 2 && sp->unk == 3 && sp->mask == 4, "basic");
    CHECK(sp->tool_start == 46 && sp->tool_end == 47, "tool decl");
    CHECK(sp->tool_call_start == 48 && sp->tool_call_end == 49, "tool call");
    CHECK(sp->tool_response_start == 50 && sp->tool_response_end == 51, "tool response");
    CHECK(sp->string_delim == 52 && sp->think == 98, "delim/think");
    CHECK(sp->channel_start == 100 && sp->channel_end == 101, "channel");
    CHECK(sp->turn_start == 105 && sp->turn_end == 106, "turn");
    CHECK(sp->image_start == 255999 && sp->image == 258880 && sp->image_end == 258882, "image");
    CHECK(sp->audio_start == 256000 && sp->audio == 258881 && sp->audio_end == 258883, "audio");
    CHECK(sp->video == 258884 && sp->newline == 107, "video/newline");
    CHECK(g4_tokenizer_token_id(tok, "<0x00>", 6) == 238, "<0x00>");
    CHECK(g4_tokenizer_token_id(tok, "<0xFF>", 6) == 493, "<0xFF>");
    CHECK(g4_tokenizer_token_id(tok, "thought", 7) == 45518, "thought");
    CHECK(g4_tokenizer_token_id(tok, "\xE2\x96\x81", 3) == 236743, "space piece");
    CHECK(g4_tokenizer_token_id(tok, "<nope>", 6) == -1, "missing token");
    CHECK(g4_tokenizer_is_special(tok, 106) && !g4_tokenizer_is_special(tok, 107), "special flag");
    CHECK(!g4_tokenizer_wants_bos(tok), "Gemma 4 IT tokenizer adds no BOS by itself");
    size_t len;
    const char *s = g4_tokenizer_token_text(tok, 106, &len);
    CHECK(s && len == 7 && !memcmp(s, "<turn|>", 7), "token text");
    CHECK(g4_tokenizer_token_text(tok, 262144, &len) == NULL, "out of range id");
}

static void check_bos(const g4_tokenizer *tok) {
    g4_tokens t = {0};
    g4_tokenizer_encode(tok, "Hi", 2, G4_ENCODE_SPLIT_SPECIAL | G4_ENCODE_ADD_BOS, &t, NULL);
    CHECK(t.n >= 1 && t.ids[0] == 2 && (t.n < 2 || t.ids[1] != 2), "ADD_BOS prepends one BOS");
    t.n = 0;
    const char *p = "<bos><|turn>user\nHi<turn|>\n";
    g4_tokenizer_encode(tok, p, strlen(p), G4_ENCODE_SPLIT_SPECIAL | G4_ENCODE_ADD_BOS, &t, NULL);
    int n_bos = 0;
    for (size_t i = 0; i < t.n; i++) n_bos += t.ids[i] == 2;
    CHECK(t.n > 2 && t.ids[0] == 2 && t.ids[1] == 105 && n_bos == 1,
          "rendered prompt with <bos> + ADD_BOS keeps exactly one BOS");
    t.n = 0;
    g4_tokenizer_encode(tok, p, strlen(p), G4_ENCODE_ADD_BOS, &t, NULL); /* plain text */
    CHECK(t.n > 2 && t.ids[0] == 2 && t.ids[1] != 2, "plain mode: BOS id, then '<bos>' as text");
    int injected = 0;
    for (size_t i = 1; i < t.n; i++) injected |= t.ids[i] == 105 || t.ids[i] == 106 || t.ids[i] == 2;
    CHECK(!injected, "plain mode must not produce control tokens from user text");
    g4_tokens_free(&t);
}

/* Random valid UTF-8 round-trips exactly; random bytes never crash and decode to valid UTF-8. */
static void check_random(const g4_tokenizer *tok) {
    static const char *pieces[] = {"a",
                                   "b",
                                   " ",
                                   "  ",
                                   "\n",
                                   "\t",
                                   "the",
                                   " world",
                                   "\xC3\xA9",
                                   "\xE4\xB8\xAD",
                                   "\xF0\x9F\x98\x8A",
                                   "\xE2\x80\x8D",
                                   "<|turn>",
                                   "<",
                                   "|",
                                   ">",
                                   "\xCC\x81",
                                   "\xEA\xB0\x80",
                                   "\xD0\x96",
                                   "0"};
    unsigned seed = 12345;
    int ok = 1, valid = 1;
    for (int it = 0; it < 300; it++) {
        char buf[512];
        size_t n = 0;
        int parts = (int)((seed = seed * 1103515245u + 12345u) >> 16) % 40;
        for (int p = 0; p < parts; p++) {
            const char *s = pieces[((seed = seed * 1103515245u + 12345u) >> 16) % 20];
            memcpy(buf + n, s, strlen(s));
            n += strlen(s);
        }
        g4_tokens t = {0};
        g4_strbuf out = {0};
        g4_tokenizer_encode(tok, buf, n, it & 1 ? G4_ENCODE_SPLIT_SPECIAL : 0, &t, NULL);
        g4_tokenizer_decode(tok, t.ids, t.n, 0, &out, NULL);
        ok &= out.len == n && (n == 0 || !memcmp(out.data, buf, n));
        /* Random bytes (mostly invalid UTF-8). */
        for (size_t i = 0; i < 64; i++) buf[i] = (char)((seed = seed * 1103515245u + 12345u) >> 16);
        t.n = 0;
        g4_strbuf_clear(&out);
        g4_tokenizer_encode(tok, buf, 64, G4_ENCODE_SPLIT_SPECIAL, &t, NULL);
        g4_tokenizer_decode(tok, t.ids, t.n, 0, &out, NULL);
        valid &= g4_utf8_valid(out.data, out.len);
        g4_tokens_free(&t);
        g4_strbuf_free(&out);
    }
    CHECK(ok, "valid UTF-8 text must round-trip through encode/decode");
    CHECK(valid, "decode output must always be valid UTF-8");
}

/* Chunked BPE (long pieces cut at never-merged boundaries) must equal the plain heap run. */
static void check_chunking(g4_tokenizer *tok) {
    static const char *pieces[] = {"the",
                                   " world",
                                   " ",
                                   "\n",
                                   "\n\n",
                                   "    ",
                                   "x = f(y)",
                                   "\xC3\xA9",
                                   "\xE4\xB8\xAD\xE6\x96\x87",
                                   "\xF0\x9F\x98\x8A",
                                   "ab",
                                   "thought",
                                   "Hello",
                                   "!",
                                   "1",
                                   "\t",
                                   "\xE0\xAE\x95",
                                   "<|turn>",
                                   "\xEA\xB0\x80",
                                   "q"};
    CHECK(tok->chunk_ok, "the test tokenizer should allow chunking");
    unsigned seed = 777;
    int same = 1;
    char *buf = malloc(64 * 1024);
    for (int it = 0; it < 20; it++) {
        size_t n = 0;
        int parts = 500 + it * 200;
        for (int p = 0; p < parts; p++) {
            const char *s = pieces[((seed = seed * 1103515245u + 12345u) >> 16) % 20];
            memcpy(buf + n, s, strlen(s));
            n += strlen(s);
        }
        g4_tokens a = {0}, b = {0};
        tok->chunk_ok = 1;
        g4_tokenizer_encode(tok, buf, n, it & 1 ? G4_ENCODE_SPLIT_SPECIAL : 0, &a, NULL);
        tok->chunk_ok = 0;
        g4_tokenizer_encode(tok, buf, n, it & 1 ? G4_ENCODE_SPLIT_SPECIAL : 0, &b, NULL);
        tok->chunk_ok = 1;
        same &= a.n == b.n && !memcmp(a.ids, b.ids, a.n * sizeof(int32_t));
        g4_tokens_free(&a);
        g4_tokens_free(&b);
    }
    free(buf);
    CHECK(same, "chunked and unchunked BPE differ");
}

static void check_load_errors(void) {
    static const char *bad[] = {
        "{",
        "{\"model\":{\"type\":\"Unigram\",\"vocab\":[]}}",
        "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":2},\"merges\":[]}}",
        "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1},\"merges\":[[\"a\",\"b\"]]}}",
        "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]},"
        "\"normalizer\":{\"type\":\"NFKC\"}}",
        "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[],\"unk_token\":\"<unk>\"}}",
        /* A lone id far beyond the listed tokens: refused before the id tables are sized (the
         * fuzzer's out-of-memory input asked for 4 GB). */
        "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]},"
        "\"added_tokens\":[{\"id\":1000000000,\"content\":\"<x>\"}]}",
    };
    static const char *what[] = {"syntax", "Unigram", "contiguous", "not in vocab", "NFKC", "unk", "only 2 tokens"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        g4_tokenizer *t = NULL;
        g4_error err = {0};
        int rc = g4_tokenizer_load_json(bad[i], strlen(bad[i]), &t, &err);
        CHECK(rc == -1 && t == NULL && strstr(err.msg, what[i]), "bad file %zu: rc %d msg '%s'", i, rc, err.msg);
    }
    g4_tokenizer *t = NULL;
    g4_error err = {0};
    CHECK(g4_tokenizer_load("/nonexistent/tokenizer.json", &t, &err) == -1 && err.msg[0], "no file");
}

int main(void) {
    g4_tokenizer *tok = NULL;
    g4_error err = {0};
    REQUIRE(g4_tokenizer_load("tests/text/data/tokenizer.json", &tok, &err) == 0, "%s", err.msg);
    size_t len;
    char *json = read_file("tests/text/data/tok_corpus.json", &len);
    REQUIRE(json != NULL, "cannot read tests/text/data/tok_corpus.json");
    cJSON *root = cJSON_Parse(json);
    REQUIRE(root != NULL, "tok_corpus.json does not parse");
    check_specials(tok);
    check_corpus(tok, root);
    check_bos(tok);
    check_random(tok);
    check_chunking(tok);
    check_load_errors();
    cJSON_Delete(root);
    free(json);
    g4_tokenizer_free(tok);
    return check_summary();
}
