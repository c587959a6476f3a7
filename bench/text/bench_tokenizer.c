/* bench_tokenizer.c - times the C tokenizer: load, encode, decode (single thread).
 *
 * Usage: g4_bench_tokenizer TOKENIZER_JSON TEXT_FILE [REPEAT]
 * Prints one JSON object: load seconds, then for the whole text as one document and for the
 * text line by line, the best-of-REPEAT encode and decode seconds with bytes and token counts.
 * bench/text/bench_tokenizer.py runs this next to the `tokenizers` library on the same files
 * and reports the ratio; this program alone measures nothing against anything. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/file.h"
#include "text/tokenizer.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static char *read_all(const char *path, size_t *len) {
    char *b;
    return g4_read_file(path, (size_t)1 << 31, &b, len, NULL) ? NULL : b;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s TOKENIZER_JSON TEXT_FILE [REPEAT]\n", argv[0]);
        return 2;
    }
    int repeat = argc > 3 ? atoi(argv[3]) : 5;
    g4_error err = {0};
    g4_tokenizer *tok;
    double t0 = now();
    if (g4_tokenizer_load(argv[1], &tok, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    double load_s = now() - t0;
    size_t len;
    char *text = read_all(argv[2], &len);
    if (!text) {
        fprintf(stderr, "cannot read %s\n", argv[2]);
        return 1;
    }
    g4_tokens ids = {0};
    g4_strbuf out = {0};
    double enc_doc = 1e30, dec_doc = 1e30, enc_lines = 1e30, dec_lines = 1e30;
    size_t n_doc = 0, n_lines_tok = 0, n_lines = 0;
    for (int r = 0; r < repeat; r++) {
        ids.n = 0;
        t0 = now();
        g4_tokenizer_encode(tok, text, len, G4_ENCODE_SPLIT_SPECIAL, &ids, NULL);
        double t = now() - t0;
        if (t < enc_doc) enc_doc = t;
        n_doc = ids.n;
        g4_strbuf_clear(&out);
        t0 = now();
        g4_tokenizer_decode(tok, ids.ids, ids.n, 0, &out, NULL);
        t = now() - t0;
        if (t < dec_doc) dec_doc = t;
        if (out.len != len || memcmp(out.data, text, len)) {
            fprintf(stderr, "round trip mismatch\n");
            return 1;
        }
        /* Line by line: the per-request shape (many short encodes). */
        ids.n = 0;
        n_lines = 0;
        double te = 0, td = 0;
        for (char *p = text, *end = text + len; p < end;) {
            char *nl = memchr(p, '\n', (size_t)(end - p));
            size_t l = nl ? (size_t)(nl - p) + 1 : (size_t)(end - p);
            size_t first = ids.n;
            double a = now();
            g4_tokenizer_encode(tok, p, l, G4_ENCODE_SPLIT_SPECIAL, &ids, NULL);
            double b = now();
            g4_strbuf_clear(&out);
            g4_tokenizer_decode(tok, ids.ids + first, ids.n - first, 0, &out, NULL);
            td += now() - b;
            te += b - a;
            p += l;
            n_lines++;
        }
        n_lines_tok = ids.n;
        if (te < enc_lines) enc_lines = te;
        if (td < dec_lines) dec_lines = td;
    }
    printf("{\"engine\":\"g4text\",\"load_s\":%.6f,\"bytes\":%zu,\"lines\":%zu,"
           "\"doc\":{\"tokens\":%zu,\"encode_s\":%.6f,\"decode_s\":%.6f},"
           "\"lines_mode\":{\"tokens\":%zu,\"encode_s\":%.6f,\"decode_s\":%.6f}}\n",
           load_s, len, n_lines, n_doc, enc_doc, dec_doc, n_lines_tok, enc_lines, dec_lines);
    g4_tokens_free(&ids);
    g4_strbuf_free(&out);
    free(text);
    g4_tokenizer_free(tok);
    return 0;
}
