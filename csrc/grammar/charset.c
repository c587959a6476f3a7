/* charset.c - code point sets; UTF-8 range splitting as in Russ Cox's RE2 / regex-syntax's
 * Utf8Sequences: split a range until each piece is a sequence of byte ranges. */
#include "grammar/charset.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int g4_cpset_add(g4_cpset *s, uint32_t lo, uint32_t hi) {
    if (lo > hi) return 0;
    if (s->n == s->cap) {
        int32_t nc = s->cap ? s->cap * 2 : 8;
        void *q = realloc(s->r, (size_t)nc * sizeof *s->r);
        if (!q) return -1;
        s->r = q;
        s->cap = nc;
    }
    s->r[s->n][0] = lo;
    s->r[s->n][1] = hi > G4_CP_MAX ? G4_CP_MAX : hi;
    s->n++;
    return 0;
}

int g4_cpset_add_set(g4_cpset *s, const g4_cpset *o) {
    for (int32_t i = 0; i < o->n; i++)
        if (g4_cpset_add(s, o->r[i][0], o->r[i][1])) return -1;
    return 0;
}

static int cmp_range(const void *a, const void *b) {
    const uint32_t *x = a, *y = b;
    return (x[0] > y[0]) - (x[0] < y[0]);
}

void g4_cpset_normalize(g4_cpset *s) {
    if (!s->n) return;
    qsort(s->r, (size_t)s->n, sizeof *s->r, cmp_range);
    int32_t w = 0;
    for (int32_t i = 0; i < s->n; i++) {
        if (w && s->r[i][0] <= s->r[w - 1][1] + 1) {
            if (s->r[i][1] > s->r[w - 1][1]) s->r[w - 1][1] = s->r[i][1];
        } else {
            s->r[w][0] = s->r[i][0];
            s->r[w][1] = s->r[i][1];
            w++;
        }
    }
    s->n = w;
}

int g4_cpset_negate(g4_cpset *s) {
    g4_cpset_normalize(s);
    g4_cpset o = {0};
    uint32_t next = 0;
    for (int32_t i = 0; i < s->n; i++) {
        if (s->r[i][0] > next && g4_cpset_add(&o, next, s->r[i][0] - 1)) goto oom;
        next = s->r[i][1] + 1;
    }
    if (next <= G4_CP_MAX && g4_cpset_add(&o, next, G4_CP_MAX)) goto oom;
    g4_cpset_free(s);
    *s = o;
    return 0;
oom:
    g4_cpset_free(&o);
    return -1;
}

int g4_cpset_contains(const g4_cpset *s, uint32_t cp) {
    for (int32_t i = 0; i < s->n; i++)
        if (cp >= s->r[i][0] && cp <= s->r[i][1]) return 1;
    return 0;
}

void g4_cpset_free(g4_cpset *s) {
    free(s->r);
    memset(s, 0, sizeof *s);
}

static int utf8_len(uint32_t cp) { return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4; }

static void utf8_enc(uint32_t cp, uint8_t *o) {
    int n = utf8_len(cp);
    if (n == 1) {
        o[0] = (uint8_t)cp;
        return;
    }
    if (n == 2) {
        o[0] = (uint8_t)(0xC0 | (cp >> 6));
        o[1] = (uint8_t)(0x80 | (cp & 0x3F));
        return;
    }
    if (n == 3) {
        o[0] = (uint8_t)(0xE0 | (cp >> 12));
        o[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return;
    }
    o[0] = (uint8_t)(0xF0 | (cp >> 18));
    o[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (uint8_t)(0x80 | (cp & 0x3F));
}

/* Appends the UTF-8 byte-range sequences of [lo, hi] (no surrogates inside) to alts. */
static int utf8_range(g4_grammar *g, uint32_t lo, uint32_t hi, g4_gx **alts, int32_t *n, int32_t *cap) {
    static const uint32_t max_of_len[4] = {0x7F, 0x7FF, 0xFFFF, 0x10FFFF};
    for (int i = 0; i < 3; i++)
        if (lo <= max_of_len[i] && hi > max_of_len[i])
            return utf8_range(g, lo, max_of_len[i], alts, n, cap) || utf8_range(g, max_of_len[i] + 1, hi, alts, n, cap)
                       ? -1
                       : 0;
    int len = utf8_len(lo);
    for (int i = 1; i < len; i++) {
        uint32_t m = (1u << (6 * i)) - 1;
        if ((lo & ~m) != (hi & ~m)) {
            if (lo & m)
                return utf8_range(g, lo, lo | m, alts, n, cap) || utf8_range(g, (lo | m) + 1, hi, alts, n, cap) ? -1
                                                                                                                : 0;
            if ((hi & m) != m)
                return utf8_range(g, lo, (hi & ~m) - 1, alts, n, cap) || utf8_range(g, hi & ~m, hi, alts, n, cap) ? -1
                                                                                                                  : 0;
        }
    }
    uint8_t a[4], b[4];
    utf8_enc(lo, a);
    utf8_enc(hi, b);
    g4_gx parts[4];
    for (int i = 0; i < len; i++) parts[i] = g4_gx_range(g, a[i], b[i]);
    g4_gx x = g4_gx_seq(g, parts, len);
    if (x < 0) return -1;
    if (*n == *cap) {
        int32_t nc = *cap ? *cap * 2 : 16;
        void *q = realloc(*alts, (size_t)nc * sizeof **alts);
        if (!q) return g4_grammar_fail(g, "out of memory");
        *alts = q;
        *cap = nc;
    }
    (*alts)[(*n)++] = x;
    return 0;
}

int g4_json_escape_cp(uint32_t cp, char *out) {
    switch (cp) {
    case '"': strcpy(out, "\\\""); return 2;
    case '\\': strcpy(out, "\\\\"); return 2;
    case '\b': strcpy(out, "\\b"); return 2;
    case '\f': strcpy(out, "\\f"); return 2;
    case '\n': strcpy(out, "\\n"); return 2;
    case '\r': strcpy(out, "\\r"); return 2;
    case '\t': strcpy(out, "\\t"); return 2;
    }
    if (cp < 0x20) return snprintf(out, 7, "\\u%04x", (unsigned)cp);
    return 0; /* not escaped */
}

g4_gx g4_cpset_gx(g4_grammar *g, g4_cpset *s, int enc) {
    g4_cpset_normalize(s);
    g4_gx *alts = NULL;
    int32_t n = 0, cap = 0;
    for (int32_t i = 0; i < s->n; i++) {
        uint32_t lo = s->r[i][0], hi = s->r[i][1];
        /* split out surrogates, and in JSON the escaped characters */
        for (uint32_t a = lo; a <= hi;) {
            uint32_t b = hi;
            if (a >= 0xD800 && a <= 0xDFFF) {
                a = 0xE000;
                continue;
            }
            if (a < 0xD800 && b >= 0xD800) b = 0xD7FF;
            if (enc == G4_ENC_JSON) {
                char esc[8];
                if (g4_json_escape_cp(a, esc)) {
                    if (n == cap) {
                        int32_t nc = cap ? cap * 2 : 16;
                        void *q = realloc(alts, (size_t)nc * sizeof *alts);
                        if (!q) {
                            free(alts);
                            return g4_grammar_fail(g, "out of memory");
                        }
                        alts = q;
                        cap = nc;
                    }
                    alts[n++] = g4_gx_str(g, esc);
                    a++;
                    continue;
                }
                /* the next escaped code point above a bounds this raw run */
                uint32_t stop = a < 0x20 ? 0x1F : a < '"' ? '"' - 1 : a < '\\' ? '\\' - 1 : b;
                if (stop < b) b = stop;
            }
            if (utf8_range(g, a, b, &alts, &n, &cap)) {
                free(alts);
                return -1;
            }
            if (b == G4_CP_MAX) break;
            a = b + 1;
        }
    }
    g4_gx r = g4_gx_alt(g, alts, n);
    free(alts);
    return r;
}

g4_gx g4_any_char_gx(g4_grammar *g, int enc) {
    g4_cpset s = {0};
    if (g4_cpset_add(&s, 0, G4_CP_MAX)) return g4_grammar_fail(g, "out of memory");
    g4_gx r = g4_cpset_gx(g, &s, enc);
    g4_cpset_free(&s);
    return r;
}

g4_gx g4_json_lit_gx(g4_grammar *g, const char *s, size_t n) {
    char *buf = malloc(n * 6 + 1);
    if (!buf) return g4_grammar_fail(g, "out of memory");
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = (uint8_t)s[i];
        int k = c < 0x80 ? g4_json_escape_cp(c, buf + w) : 0;
        if (k) w += (size_t)k;
        else buf[w++] = (char)c;
    }
    g4_gx r = g4_gx_lit(g, buf, w);
    free(buf);
    return r;
}
