/* fuzz_check.c - random and mutated schemas, regexes and grammars never crash the compiler, the
 * matcher or the token masks, and each takes bounded time (run it under the ASan build too).
 *
 * Inputs: (1) random schemas drawn from the keyword vocabulary (supported and not, with values of
 * every JSON type, $refs to random pointers, deep nesting, huge bounds); (2) byte mutations of the
 * corpus schemas given on the command line; (3) random regexes and GBNF texts from their token
 * soups. Each compile runs under small limits; what compiles is matched against random bytes and
 * masked over a small vocabulary. Prints counts; exit 1 when one input took over the time bound. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/file.h"
#include "base/rng.h"
#include "grammar/gbnf.h"
#include "grammar/json_schema.h"
#include "grammar/token_mask.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t rnd(uint64_t *r, uint64_t n) { return g4_splitmix64(r) % n; }

static const char *KW[] = {"type",
                           "properties",
                           "required",
                           "additionalProperties",
                           "items",
                           "prefixItems",
                           "minItems",
                           "maxItems",
                           "enum",
                           "const",
                           "minLength",
                           "maxLength",
                           "pattern",
                           "format",
                           "minimum",
                           "maximum",
                           "exclusiveMinimum",
                           "exclusiveMaximum",
                           "anyOf",
                           "oneOf",
                           "allOf",
                           "$ref",
                           "$defs",
                           "nullable",
                           "not",
                           "if",
                           "then",
                           "uniqueItems",
                           "multipleOf",
                           "title",
                           "additionalItems",
                           "definitions"};
static const char *TYPES[] = {"\"object\"",  "\"array\"",
                              "\"string\"",  "\"number\"",
                              "\"integer\"", "\"boolean\"",
                              "\"null\"",    "[\"string\",\"null\"]",
                              "\"bogus\"",   "7"};
static const char *VALUES[] = {
    "0",          "1",        "-1",        "3",        "1e300",      "2.5",           "-7.25",
    "100000",     "true",     "false",     "null",     "\"\"",       "\"a\"",         "\"^[a-z]+$\"",
    "\"(?=x)\"",  "\"date\"", "\"email\"", "\"uuid\"", "\"#\"",      "\"#/$defs/a\"", "\"#/properties/x\"",
    "\"#/nope\"", "[]",       "[1,2]",     "{}",       "\"\\u0000\""};

static void gen_schema(uint64_t *r, char *buf, size_t *w, size_t cap, int depth) {
#define PUT(s)                        \
    do {                              \
        const char *s_ = (s);         \
        size_t l_ = strlen(s_);       \
        if (*w + l_ < cap) {          \
            memcpy(buf + *w, s_, l_); \
            *w += l_;                 \
        }                             \
    } while (0)
    if (depth > 5 || rnd(r, 10) == 0) {
        PUT(rnd(r, 2) ? "true" : "{}");
        return;
    }
    PUT("{");
    int n = (int)rnd(r, 5);
    for (int i = 0; i < n; i++) {
        if (i) PUT(",");
        const char *k = KW[rnd(r, sizeof KW / sizeof *KW)];
        PUT("\"");
        PUT(k);
        PUT("\":");
        if (!strcmp(k, "type")) PUT(TYPES[rnd(r, sizeof TYPES / sizeof *TYPES)]);
        else if (!strcmp(k, "properties") || !strcmp(k, "$defs") || !strcmp(k, "definitions")) {
            PUT("{");
            int m = (int)rnd(r, 4);
            for (int j = 0; j < m; j++) {
                char name[16];
                snprintf(name, sizeof name, "%s\"%c\":", j ? "," : "", "axyb"[rnd(r, 4)]);
                PUT(name);
                gen_schema(r, buf, w, cap, depth + 1);
            }
            PUT("}");
        } else if (!strcmp(k, "anyOf") || !strcmp(k, "oneOf") || !strcmp(k, "allOf") || !strcmp(k, "prefixItems")) {
            PUT("[");
            int m = 1 + (int)rnd(r, 3);
            for (int j = 0; j < m; j++) {
                if (j) PUT(",");
                gen_schema(r, buf, w, cap, depth + 1);
            }
            PUT("]");
        } else if (!strcmp(k, "items") || !strcmp(k, "additionalProperties") || !strcmp(k, "not")) {
            gen_schema(r, buf, w, cap, depth + 1);
        } else if (!strcmp(k, "required")) PUT(rnd(r, 2) ? "[\"a\",\"x\"]" : "[\"b\"]");
        else PUT(VALUES[rnd(r, sizeof VALUES / sizeof *VALUES)]);
    }
    PUT("}");
#undef PUT
}

static int exercise(g4_grammar *g, const g4_token_trie *t, uint64_t *r) {
    g4_matcher *m = g4_matcher_new(g);
    g4_mask_cache *mc = g4_mask_cache_new(g, t);
    uint32_t *mask = malloc(sizeof *mask * (size_t)g4_mask_words(t));
    int32_t end = 0;
    if (!m || !mc || !mask) {
        g4_matcher_free(m);
        g4_mask_cache_free(mc);
        free(mask);
        return -1;
    }
    for (int step = 0; step < 40; step++) {
        if (g4_token_mask(mc, m, &end, 1, mask)) break;
        int32_t pick = -1, seen = 0;
        for (int32_t id = 1; id < t->n_vocab; id++)
            if (mask[id >> 5] >> (id & 31) & 1 && rnd(r, (uint64_t)++seen) == 0) pick = id;
        if (pick < 0) break;
        if (g4_matcher_advance_token(m, t, pick)) {
            printf("allowed token rejected\n");
            break;
        }
        uint8_t junk = (uint8_t)rnd(r, 256);
        (void)g4_matcher_advance(m, &junk, 1); /* usually rejected: the state must stay usable */
        (void)g4_matcher_accepting(m);
    }
    g4_matcher_free(m);
    g4_mask_cache_free(mc);
    free(mask);
    return 0;
}

int main(int argc, char **argv) {
    int iters = argc > 1 ? atoi(argv[1]) : 2000;
    g4_error err = {{0}};
    /* a small vocabulary: every byte, and some JSON-ish fragments */
    static const char *frag[] = {"{\"", "\":",   "\",", "\"}", "true", "null", "12", "-3", ".5",           "e+",
                                 "\\n", "\\u00", "abc", " ",   "[",    "]",    "},", "é",  "\xe6\x97\xa5", "\xf0\x9f"};
    int32_t nv = 256 + (int32_t)(sizeof frag / sizeof *frag);
    const char **tok = calloc((size_t)nv, sizeof *tok);
    uint32_t *len = calloc((size_t)nv, sizeof *len);
    char bytes[256];
    for (int i = 0; i < 256; i++) {
        bytes[i] = (char)i;
        tok[i] = bytes + i;
        len[i] = 1;
    }
    for (int i = 256; i < nv; i++) {
        tok[i] = frag[i - 256];
        len[i] = (uint32_t)strlen(frag[i - 256]);
    }
    tok[0] = NULL; /* id 0 plays EOS */
    g4_token_trie *t;
    if (g4_token_trie_build(tok, len, nv, &t, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 2;
    }
    g4_grammar_limits lim = {200000, 200000, 20000, 5000};
    g4_json_schema_opts jo = {.max_repeat = 300};
    char *corpus[64];
    size_t corpus_len[64];
    int n_corpus = 0;
    for (int i = 2; i < argc && n_corpus < 64; i++)
        if (!g4_read_file(argv[i], 1 << 20, &corpus[n_corpus], &corpus_len[n_corpus], &err)) n_corpus++;
    uint64_t r = 42;
    long compiled = 0, refused = 0;
    double worst = 0;
    char *buf = malloc(1 << 16);
    static const char *RX[] = {"a",   "b", "[a-c]", "[^x]", "(",   ")",  "|", "*", "+", "?", "{2}", "{1,3}", "\\d",
                               "\\w", ".", "^",     "$",    "(?:", "\\", "[", "]", "é", "{", "}",   "(?=",   "\\1"};
    static const char *GB[] = {"root ::= ", "a ::= ", "b ::= ", "\"x\" ", "\"\\n\" ", "[a-z] ", "[^\"] ", "a ",
                               "b ",        "root ",  "( ",     ") ",     "| ",       "* ",     "+ ",     "? ",
                               "{2,3} ",    ". ",     "\n",     "# c\n",  "\"",       "["};
    for (int it = 0; it < iters; it++) {
        size_t w = 0;
        int kind = (int)rnd(&r, 4);
        if (kind == 0 || (kind == 1 && !n_corpus)) gen_schema(&r, buf, &w, (1 << 16) - 1, 0);
        else if (kind == 1) {
            int k = (int)rnd(&r, (uint64_t)n_corpus);
            w = corpus_len[k] < (1 << 16) - 64 ? corpus_len[k] : (1 << 16) - 64;
            memcpy(buf, corpus[k], w);
            for (int m = 1 + (int)rnd(&r, 4); m > 0 && w > 1; m--) {
                size_t at = rnd(&r, w);
                switch (rnd(&r, 3)) {
                case 0: buf[at] = "{}[]\":,0a-\\"[rnd(&r, 11)]; break;
                case 1:
                    memmove(buf + at, buf + at + 1, w - at - 1);
                    w--;
                    break;
                default:
                    memmove(buf + at + 1, buf + at, w - at);
                    buf[at] = "{}[]\":,9z"[rnd(&r, 9)];
                    w++;
                    break;
                }
            }
        } else {
            const char **soup = kind == 2 ? RX : GB;
            size_t ns = kind == 2 ? sizeof RX / sizeof *RX : sizeof GB / sizeof *GB;
            if (kind == 3) {
                memcpy(buf, "root ::= ", 9);
                w = 9;
            }
            for (int m = (int)rnd(&r, 14); m >= 0; m--) {
                const char *s = soup[rnd(&r, ns)];
                memcpy(buf + w, s, strlen(s));
                w += strlen(s);
            }
        }
        buf[w] = 0;
        double t0 = now_s();
        g4_grammar *g = NULL;
        int rc = kind <= 1   ? g4_json_schema_compile(buf, w, &jo, &lim, &g, &err)
                 : kind == 2 ? g4_regex_compile(buf, w, &lim, &g, &err)
                             : g4_gbnf_compile(buf, w, &lim, &g, &err);
        if (rc == 0) {
            compiled++;
            exercise(g, t, &r);
            g4_grammar_free(g);
        } else {
            refused++;
            if (!err.msg[0]) {
                printf("refused without a message: %s\n", buf);
                return 1;
            }
        }
        double dt = now_s() - t0;
        if (dt > worst) worst = dt;
        if (dt > 10.0) {
            printf("TOO SLOW (%.1f s): %s\n", dt, buf);
            return 1;
        }
    }
    printf("%d inputs: %ld compiled and exercised, %ld refused with a message; slowest %.3f s\n", iters, compiled,
           refused, worst);
    for (int i = 0; i < n_corpus; i++) free(corpus[i]);
    free(buf);
    free(tok);
    free(len);
    g4_token_trie_free(t);
    return 0;
}
