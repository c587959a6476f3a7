/* token_trie.c - building the preorder byte trie of a vocabulary (sort the byte strings, then
 * one pass: the common prefix with the previous token is already on the path). */
#include "grammar/token_trie.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/rng.h"

typedef struct sort_ctx {
    const uint8_t *bytes;
    const int64_t *off;
} sort_ctx;

static int cmp_tok(const void *a, const void *b, void *arg) {
    const sort_ctx g_sort = *(const sort_ctx *)arg;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    int64_t lx = g_sort.off[x + 1] - g_sort.off[x], ly = g_sort.off[y + 1] - g_sort.off[y];
    int c = memcmp(g_sort.bytes + g_sort.off[x], g_sort.bytes + g_sort.off[y], (size_t)(lx < ly ? lx : ly));
    if (c) return c;
    if (lx != ly) return lx < ly ? -1 : 1;
    return (x > y) - (x < y);
}

int g4_token_trie_build(const char *const *tok, const uint32_t *len, int32_t n_vocab, g4_token_trie **out,
                        g4_error *err) {
    *out = NULL;
    g4_token_trie *t = calloc(1, sizeof *t);
    if (!t) return g4_fail(err, "out of memory building the token trie");
    t->n_vocab = n_vocab;
    int64_t total = 0;
    for (int32_t i = 0; i < n_vocab; i++) total += tok[i] ? len[i] : 0;
    t->bytes = malloc((size_t)total + 1);
    t->bytes_off = malloc(sizeof(int64_t) * ((size_t)n_vocab + 1));
    int32_t *order = malloc(sizeof(int32_t) * (size_t)(n_vocab + 1));
    /* nodes: at most total + 1 */
    t->byte = malloc((size_t)total + 1);
    t->depth = malloc(sizeof(uint16_t) * ((size_t)total + 1));
    t->end = malloc(sizeof(int32_t) * ((size_t)total + 1));
    t->tok_off = malloc(sizeof(int32_t) * ((size_t)total + 2));
    t->tok_ids = malloc(sizeof(int32_t) * ((size_t)n_vocab + 1));
    int32_t *path = malloc(sizeof(int32_t) * 65536);
    if (!t->bytes || !t->bytes_off || !order || !t->byte || !t->depth || !t->end || !t->tok_off || !t->tok_ids ||
        !path) {
        free(order);
        free(path);
        g4_token_trie_free(t);
        return g4_fail(err, "out of memory building the token trie");
    }
    int64_t w = 0;
    int32_t n_order = 0;
    for (int32_t i = 0; i < n_vocab; i++) {
        t->bytes_off[i] = w;
        uint32_t l = tok[i] ? len[i] : 0;
        if (l > 65000) l = 0; /* absurd token: excluded */
        if (l) {
            memcpy(t->bytes + w, tok[i], l);
            w += l;
            order[n_order++] = i;
        }
    }
    t->bytes_off[n_vocab] = w;
    sort_ctx sc = {t->bytes, t->bytes_off};
    qsort_r(order, (size_t)n_order, sizeof *order, cmp_tok, &sc);
    /* preorder construction */
    int32_t n = 1, depth = 0, n_ids = 0;
    t->byte[0] = 0;
    t->depth[0] = 0;
    t->tok_off[0] = 0;
    path[0] = 0;
    const uint8_t *prev = NULL;
    int64_t prev_len = 0;
    for (int32_t k = 0; k < n_order; k++) {
        int32_t id = order[k];
        const uint8_t *b = t->bytes + t->bytes_off[id];
        int64_t l = t->bytes_off[id + 1] - t->bytes_off[id];
        int64_t common = 0;
        while (prev && common < l && common < prev_len && b[common] == prev[common]) common++;
        while (depth > common) {
            t->end[path[depth]] = n;
            depth--;
        }
        for (int64_t i = common; i < l; i++) {
            t->byte[n] = b[i];
            t->depth[n] = (uint16_t)(i + 1);
            t->tok_off[n] = n_ids;
            path[++depth] = n++;
        }
        t->tok_ids[n_ids++] = id; /* ends at path[depth]; sorted order keeps a node's tokens together */
        if (depth > t->max_depth) t->max_depth = depth;
        prev = b;
        prev_len = l;
    }
    while (depth >= 0) {
        t->end[path[depth]] = n;
        depth--;
    }
    t->tok_off[n] = n_ids;
    t->n_nodes = n;
    free(order);
    free(path);
    *out = t;
    return 0;
}

int g4_token_trie_from_tokenizer(const g4_tokenizer *tk, g4_token_trie **out, g4_error *err) {
    int32_t n = g4_tokenizer_n_vocab(tk);
    char **tok = calloc((size_t)n, sizeof *tok);
    uint32_t *len = calloc((size_t)n, sizeof *len);
    int rc = -1;
    if (!tok || !len) {
        g4_fail(err, "out of memory building the token trie");
        goto out;
    }
    for (int32_t id = 0; id < n; id++) {
        size_t l;
        const char *s = g4_tokenizer_token_text(tk, id, &l);
        if (!s || g4_tokenizer_is_special(tk, id)) continue;
        tok[id] = malloc(l + 1);
        if (!tok[id]) {
            g4_fail(err, "out of memory building the token trie");
            goto out;
        }
        uint32_t w = 0;
        if (l == 6 && s[0] == '<' && s[1] == '0' && s[2] == 'x' && s[5] == '>') { /* byte fallback */
            tok[id][w++] = (char)strtol((char[]){s[3], s[4], 0}, NULL, 16);
        } else {
            for (size_t i = 0; i < l; i++) {
                if (i + 2 < l && (uint8_t)s[i] == 0xE2 && (uint8_t)s[i + 1] == 0x96 && (uint8_t)s[i + 2] == 0x81) {
                    tok[id][w++] = ' ';
                    i += 2;
                } else tok[id][w++] = s[i];
            }
        }
        len[id] = w;
    }
    rc = g4_token_trie_build((const char *const *)tok, len, n, out, err);
out:
    if (tok)
        for (int32_t id = 0; id < n; id++) free(tok[id]);
    free(tok);
    free(len);
    return rc;
}

void g4_token_trie_free(g4_token_trie *t) {
    if (!t) return;
    free(t->byte);
    free(t->depth);
    free(t->end);
    free(t->tok_off);
    free(t->tok_ids);
    free(t->bytes);
    free(t->bytes_off);
    free(t);
}

int g4_token_trie_with_specials(const g4_tokenizer *t, const int32_t *ids, int n, g4_token_trie **out, g4_error *err) {
    *out = NULL;
    g4_token_trie *base = NULL;
    if (g4_token_trie_from_tokenizer(t, &base, err)) return -1;
    int32_t V = base->n_vocab;
    const char **tok = malloc((size_t)V * sizeof *tok);
    uint32_t *len = malloc((size_t)V * sizeof *len);
    int rc = -1;
    if (!tok || !len) {
        g4_fail(err, "out of memory");
        goto done;
    }
    for (int32_t i = 0; i < V; i++) {
        tok[i] = (const char *)base->bytes + base->bytes_off[i];
        len[i] = (uint32_t)(base->bytes_off[i + 1] - base->bytes_off[i]);
    }
    for (int k = 0; k < n; k++) {
        size_t L = 0;
        const char *text = ids[k] >= 0 && ids[k] < V ? g4_tokenizer_token_text(t, ids[k], &L) : NULL;
        if (!text) {
            g4_fail(err, "token trie: special token id %d is not in the vocabulary", ids[k]);
            goto done;
        }
        tok[ids[k]] = text;
        len[ids[k]] = (uint32_t)L;
    }
    rc = g4_token_trie_build(tok, len, V, out, err);
done:
    free(tok);
    free(len);
    g4_token_trie_free(base);
    return rc;
}

const uint8_t *g4_token_trie_token(const g4_token_trie *t, int32_t id, size_t *len) {
    if (id < 0 || id >= t->n_vocab) {
        *len = 0;
        return NULL;
    }
    *len = (size_t)(t->bytes_off[id + 1] - t->bytes_off[id]);
    return *len ? t->bytes + t->bytes_off[id] : NULL;
}

/* ---- a synthetic vocabulary (benchmarks and tests; no real Gemma 4 tokenizer in the repository) */

static size_t put_utf8(char *o, uint32_t cp) {
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | cp >> 6);
        o[1] = (char)(0x80 | (cp & 63));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | cp >> 12);
        o[1] = (char)(0x80 | (cp >> 6 & 63));
        o[2] = (char)(0x80 | (cp & 63));
        return 3;
    }
    o[0] = (char)(0xF0 | cp >> 18);
    o[1] = (char)(0x80 | (cp >> 12 & 63));
    o[2] = (char)(0x80 | (cp >> 6 & 63));
    o[3] = (char)(0x80 | (cp & 63));
    return 4;
}

int g4_token_trie_synthetic(int32_t n, uint64_t seed, g4_token_trie **out, g4_error *err) {
    char **tok = calloc((size_t)n, sizeof *tok);
    uint32_t *len = calloc((size_t)n, sizeof *len);
    if (!tok || !len) {
        free(tok);
        free(len);
        return g4_fail(err, "out of memory building the token trie");
    }
    uint64_t rng = seed;
    static const char *syl[] = {"th", "e",  "an", "in", "er", "on", "re", "at", "en", "nd", "ti", "es", "or", "te",
                                "of", "ed", "is", "it", "al", "ar", "st", "to", "nt", "ng", "se", "ha", "as", "ou",
                                "io", "le", "ve", "co", "me", "de", "hi", "ri", "ro", "ic", "ne", "ea", "ra", "ce",
                                "li", "ch", "ll", "be", "ma", "si", "om", "ur", "a",  "o",  "i",  "u",  "s",  "t",
                                "n",  "r",  "l",  "d",  "m",  "p",  "c",  "g",  "y",  "k"};
    const int nsyl = (int)(sizeof syl / sizeof *syl);
    static const char punct[] = "{}[]\":,.-_/\\()<>=+*!?#@';`|&%$^~";
    for (int32_t i = 0; i < n; i++) {
        char buf[64];
        size_t l = 0;
        uint64_t r = g4_splitmix64(&rng);
        if (i < 256) {
            buf[l++] = (char)i;
        } else if (i < 1256) {
            l = (size_t)snprintf(buf, sizeof buf, "%s%d", i & 1 ? " " : "", (i - 256) / 2);
        } else if (r % 100 < 62) { /* words */
            if (r >> 8 & 1) buf[l++] = ' ';
            int ns = 1 + (int)((r >> 9) % 4) + (int)((r >> 12) % 3 == 0);
            for (int k = 0; k < ns && l < 40; k++) {
                const char *s = syl[g4_splitmix64(&rng) % (uint64_t)nsyl];
                memcpy(buf + l, s, strlen(s));
                l += strlen(s);
            }
            if ((r >> 16) % 7 == 0)
                buf[(r >> 8 & 1)] =
                    (char)(buf[(r >> 8 & 1)] - 32 * (buf[(r >> 8 & 1)] >= 'a' && buf[(r >> 8 & 1)] <= 'z'));
        } else if (r % 100 < 74) { /* punctuation, code and JSON fragments */
            int np = 1 + (int)((r >> 8) % 4);
            if ((r >> 12) % 3 == 0) buf[l++] = ' ';
            for (int k = 0; k < np; k++) buf[l++] = punct[g4_splitmix64(&rng) % (sizeof punct - 1)];
            if ((r >> 14) % 4 == 0) {
                const char *s = syl[(r >> 20) % (uint64_t)nsyl];
                memcpy(buf + l, s, strlen(s));
                l += strlen(s);
            }
        } else if (r % 100 < 78) { /* whitespace runs */
            int nw = 1 + (int)((r >> 8) % 16);
            char c = (r >> 13) % 3 == 0 ? '\n' : (r >> 13) % 3 == 1 ? '\t' : ' ';
            for (int k = 0; k < nw; k++) buf[l++] = c;
        } else if (r % 100 < 82) { /* numbers */
            l = (size_t)snprintf(buf, sizeof buf, "%s%llu", (r >> 8) & 1 ? " " : "",
                                 (unsigned long long)((r >> 10) % 1000));
        } else if (r % 100 < 92) { /* CJK, one to three characters */
            int nc = 1 + (int)((r >> 8) % 3);
            for (int k = 0; k < nc; k++) l += put_utf8(buf + l, 0x4E00 + (uint32_t)(g4_splitmix64(&rng) % 20000));
        } else if (r % 100 < 98) { /* accented / Cyrillic words */
            if (r >> 8 & 1) buf[l++] = ' ';
            int nc = 2 + (int)((r >> 9) % 6);
            uint32_t base = (r >> 12) & 1 ? 0x430 : 0xE0;
            for (int k = 0; k < nc; k++) l += put_utf8(buf + l, base + (uint32_t)(g4_splitmix64(&rng) % 32));
        } else { /* emoji */
            l += put_utf8(buf + l, 0x1F600 + (uint32_t)((r >> 8) % 80));
        }
        tok[i] = malloc(l + 1);
        if (!tok[i]) {
            for (int32_t k = 0; k < i; k++) free(tok[k]);
            free(tok);
            free(len);
            return g4_fail(err, "out of memory building the token trie");
        }
        memcpy(tok[i], buf, l);
        len[i] = (uint32_t)l;
    }
    int rc = g4_token_trie_build((const char *const *)tok, len, n, out, err);
    for (int32_t i = 0; i < n; i++) free(tok[i]);
    free(tok);
    free(len);
    return rc;
}
