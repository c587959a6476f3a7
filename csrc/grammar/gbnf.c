/* gbnf.c - the GBNF-like grammar language (gbnf.h), plus the regex and choice constraints, each
 * compiled to a grammar with one start rule. */
#include "grammar/gbnf.h"

#include <stdlib.h>
#include <string.h>

#include "grammar/charset.h"
#include "grammar/regex.h"

typedef struct gp {
    g4_grammar *g;
    const char *s;
    size_t n, i;
    int line, depth;
    uint8_t *defined;
    int32_t cap_defined; /* rules whose definition was seen */
} gp;

/* Marks rule r defined; 1 when it already was, -1 on OOM. */
static int defined_mark(gp *p, int32_t r) {
    if (r >= p->cap_defined) {
        int32_t nc = (r + 1) * 2;
        uint8_t *d = realloc(p->defined, (size_t)nc);
        if (!d) return -1;
        memset(d + p->cap_defined, 0, (size_t)(nc - p->cap_defined));
        p->defined = d;
        p->cap_defined = nc;
    }
    if (p->defined[r]) return 1;
    p->defined[r] = 1;
    return 0;
}

static int gfail(gp *p, const char *what) { return g4_grammar_fail(p->g, "grammar line %d: %s", p->line, what); }

static void skip_ws(gp *p) {
    while (p->i < p->n) {
        char c = p->s[p->i];
        if (c == '#') {
            while (p->i < p->n && p->s[p->i] != '\n') p->i++;
        } else if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
            if (c == '\n') p->line++;
            p->i++;
        } else break;
    }
}

static int is_name(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

static size_t name_len(const gp *p, size_t at) {
    size_t k = at;
    while (k < p->n && is_name(p->s[k])) k++;
    return k - at;
}

/* 1 when a rule definition `name ::=` starts at p->i. */
static int at_definition(const gp *p) {
    size_t k = name_len(p, p->i);
    if (!k) return 0;
    size_t j = p->i + k;
    while (j < p->n && (p->s[j] == ' ' || p->s[j] == '\t')) j++;
    return j + 3 <= p->n && !memcmp(p->s + j, "::=", 3);
}

static int32_t rule_named(gp *p, const char *name, size_t len) {
    char buf[256];
    if (len >= sizeof buf) return gfail(p, "rule name too long");
    memcpy(buf, name, len);
    buf[len] = 0;
    int32_t r = g4_grammar_rule_find(p->g, buf);
    return r >= 0 ? r : g4_grammar_rule_new(p->g, buf);
}

static int hex(char c) {
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* One (possibly escaped) code point at p->i; -1 on error. */
static int64_t char_at(gp *p) {
    if (p->i >= p->n) return gfail(p, "unexpected end");
    unsigned char c = (unsigned char)p->s[p->i];
    if (c == '\\') {
        p->i++;
        if (p->i >= p->n) return gfail(p, "trailing backslash");
        char e = p->s[p->i++];
        int digits = e == 'x' ? 2 : e == 'u' ? 4 : e == 'U' ? 8 : 0;
        if (digits) {
            int64_t v = 0;
            for (int k = 0; k < digits; k++) {
                if (p->i >= p->n || hex(p->s[p->i]) < 0) return gfail(p, "bad hex escape");
                v = v * 16 + hex(p->s[p->i++]);
            }
            if (v > G4_CP_MAX || (v >= 0xD800 && v <= 0xDFFF)) return gfail(p, "escape out of the Unicode range");
            return v;
        }
        switch (e) {
        case 'n': return '\n';
        case 'r': return '\r';
        case 't': return '\t';
        case '\\':
        case '"':
        case '[':
        case ']':
        case '-':
        case '^':
        case '/': return e;
        }
        return gfail(p, "unknown escape");
    }
    int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (!len || p->i + (size_t)len > p->n) return gfail(p, "invalid UTF-8");
    uint32_t v = len == 1 ? c : len == 2 ? c & 0x1F : len == 3 ? c & 0x0F : c & 0x07;
    for (int k = 1; k < len; k++) {
        unsigned char x = (unsigned char)p->s[p->i + (size_t)k];
        if ((x & 0xC0) != 0x80) return gfail(p, "invalid UTF-8");
        v = (v << 6) | (x & 0x3F);
    }
    p->i += (size_t)len;
    return v;
}

static g4_gx parse_alts(gp *p);

static g4_gx parse_primary(gp *p) {
    g4_grammar *g = p->g;
    char c = p->s[p->i];
    if (c == '"') {
        p->i++;
        g4_gx acc = g4_gx_empty(g);
        while (p->i < p->n && p->s[p->i] != '"') {
            if (p->s[p->i] == '\n') return gfail(p, "newline inside a literal");
            int64_t cp = char_at(p);
            if (cp < 0) return -1;
            g4_cpset one = {0};
            g4_cpset_add(&one, (uint32_t)cp, (uint32_t)cp);
            acc = g4_gx_seq2(g, acc, g4_cpset_gx(g, &one, G4_ENC_UTF8));
            g4_cpset_free(&one);
        }
        if (p->i >= p->n) return gfail(p, "unterminated literal");
        p->i++;
        return acc;
    }
    if (c == '[') {
        p->i++;
        g4_cpset set = {0};
        int neg = 0;
        if (p->i < p->n && p->s[p->i] == '^') {
            neg = 1;
            p->i++;
        }
        while (p->i < p->n && p->s[p->i] != ']') {
            int64_t lo = char_at(p), hi;
            if (lo < 0) {
                g4_cpset_free(&set);
                return -1;
            }
            hi = lo;
            if (p->i + 1 < p->n && p->s[p->i] == '-' && p->s[p->i + 1] != ']') {
                p->i++;
                hi = char_at(p);
                if (hi < 0) {
                    g4_cpset_free(&set);
                    return -1;
                }
                if (hi < lo) {
                    g4_cpset_free(&set);
                    return gfail(p, "range out of order in a character class");
                }
            }
            if (g4_cpset_add(&set, (uint32_t)lo, (uint32_t)hi)) {
                g4_cpset_free(&set);
                return gfail(p, "out of memory");
            }
        }
        if (p->i >= p->n) {
            g4_cpset_free(&set);
            return gfail(p, "unterminated character class");
        }
        p->i++;
        if (neg && g4_cpset_negate(&set)) {
            g4_cpset_free(&set);
            return gfail(p, "out of memory");
        }
        g4_gx x = g4_cpset_gx(g, &set, G4_ENC_UTF8);
        g4_cpset_free(&set);
        return x;
    }
    if (c == '.') {
        p->i++;
        return g4_any_char_gx(g, G4_ENC_UTF8);
    }
    if (c == '(') {
        p->i++;
        if (++p->depth > 200) return gfail(p, "groups nested too deeply");
        g4_gx x = parse_alts(p);
        p->depth--;
        skip_ws(p);
        if (x < 0) return -1;
        if (p->i >= p->n || p->s[p->i] != ')') return gfail(p, "missing )");
        p->i++;
        return x;
    }
    size_t k = name_len(p, p->i);
    if (k) {
        int32_t r = rule_named(p, p->s + p->i, k);
        p->i += k;
        return r < 0 ? -1 : g4_gx_ref(g, r);
    }
    return gfail(p, "unexpected character");
}

static g4_gx parse_seq(gp *p) {
    g4_gx acc = g4_gx_empty(p->g);
    for (;;) {
        skip_ws(p);
        if (p->i >= p->n || p->s[p->i] == '|' || p->s[p->i] == ')' || at_definition(p)) return acc;
        g4_gx x = parse_primary(p);
        if (x < 0) return -1;
        for (;;) {
            if (p->i >= p->n) break;
            char q = p->s[p->i];
            int32_t mn, mx;
            if (q == '*') {
                mn = 0;
                mx = -1;
                p->i++;
            } else if (q == '+') {
                mn = 1;
                mx = -1;
                p->i++;
            } else if (q == '?') {
                mn = 0;
                mx = 1;
                p->i++;
            } else if (q == '{') {
                p->i++;
                long a = 0, b;
                int da = 0;
                while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9' && a < 100000) {
                    a = a * 10 + (p->s[p->i++] - '0');
                    da++;
                }
                if (!da) return gfail(p, "bad {m,n}");
                b = a;
                if (p->i < p->n && p->s[p->i] == ',') {
                    p->i++;
                    int db = 0;
                    b = 0;
                    while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9' && b < 100000) {
                        b = b * 10 + (p->s[p->i++] - '0');
                        db++;
                    }
                    if (!db) b = -1;
                }
                if (p->i >= p->n || p->s[p->i] != '}') return gfail(p, "bad {m,n}");
                p->i++;
                mn = (int32_t)a;
                mx = (int32_t)b;
            } else break;
            x = g4_gx_repeat(p->g, x, mn, mx);
            if (x < 0) return -1;
        }
        acc = g4_gx_seq2(p->g, acc, x);
        if (acc < 0) return -1;
    }
}

static g4_gx parse_alts(gp *p) {
    g4_gx acc = parse_seq(p);
    for (;;) {
        if (acc < 0) return -1;
        skip_ws(p);
        if (p->i >= p->n || p->s[p->i] != '|') return acc;
        p->i++;
        acc = g4_gx_alt2(p->g, acc, parse_seq(p));
    }
}

static int finish(g4_grammar *g, int32_t start, g4_grammar **out, g4_error *err) {
    if (g4_grammar_compile(g, start, err)) {
        g4_grammar_free(g);
        return -1;
    }
    *out = g;
    return 0;
}

int g4_gbnf_compile(const char *text, size_t len, const g4_grammar_limits *lim, g4_grammar **out, g4_error *err) {
    *out = NULL;
    g4_grammar *g = g4_grammar_new(lim);
    if (!g) return g4_fail(err, "out of memory");
    gp p = {g, text, len, 0, 1, 0, NULL, 0};
    for (;;) {
        skip_ws(&p);
        if (p.i >= p.n) break;
        if (!at_definition(&p)) {
            gfail(&p, "expected a rule definition `name ::= ...`");
            break;
        }
        size_t k = name_len(&p, p.i);
        int32_t r = rule_named(&p, p.s + p.i, k);
        if (r < 0) break;
        if (defined_mark(&p, r)) {
            gfail(&p, "rule defined twice");
            break;
        }
        p.i += k;
        while (p.s[p.i] != ':') p.i++;
        p.i += 3;
        g4_gx body = parse_alts(&p);
        if (body < 0) break;
        skip_ws(&p);
        if (p.i < p.n && !at_definition(&p)) {
            gfail(&p, p.s[p.i] == ')' ? "unbalanced )" : "unexpected character");
            break;
        }
        if (g4_grammar_rule_set(g, r, body)) break;
    }
    free(p.defined);
    int32_t root = g4_grammar_rule_find(g, "root");
    if (!g4_grammar_failed(g) && root < 0) g4_grammar_fail(g, "grammar has no `root` rule");
    if (g4_grammar_failed(g)) {
        g4_fail(err, "%s", g4_grammar_error(g));
        g4_grammar_free(g);
        return -1;
    }
    return finish(g, root, out, err);
}

int g4_regex_compile(const char *re, size_t len, const g4_grammar_limits *lim, g4_grammar **out, g4_error *err) {
    *out = NULL;
    g4_grammar *g = g4_grammar_new(lim);
    if (!g) return g4_fail(err, "out of memory");
    int32_t r = g4_grammar_rule_new(g, "root");
    g4_grammar_rule_set(g, r, g4_regex_gx(g, re, len, G4_ENC_UTF8, 0));
    return finish(g, r, out, err);
}

int g4_choice_compile(const char *const *choices, int n, const g4_grammar_limits *lim, g4_grammar **out,
                      g4_error *err) {
    *out = NULL;
    if (n < 1) return g4_fail(err, "choice: at least one string is needed");
    g4_grammar *g = g4_grammar_new(lim);
    if (!g) return g4_fail(err, "out of memory");
    g4_gx *alts = calloc((size_t)n, sizeof *alts);
    if (!alts) {
        g4_grammar_free(g);
        return g4_fail(err, "out of memory");
    }
    for (int i = 0; i < n; i++) alts[i] = g4_gx_str(g, choices[i]);
    int32_t r = g4_grammar_rule_new(g, "root");
    g4_grammar_rule_set(g, r, g4_gx_alt(g, alts, n));
    free(alts);
    return finish(g, r, out, err);
}
