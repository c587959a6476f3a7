/* regex.c - the regular-expression subset of JSON Schema `pattern` (ECMA-262) and vLLM
 * guided_regex, compiled to a grammar expression over code points.
 *
 * Supported: literals, escapes (\d \D \w \W \s \S \t \n \r \f \v \0 \xHH \uHHHH \u{H..} and
 * escaped punctuation), classes [...] / [^...] with ranges, '.', groups (...) (?:...) (?<name>...),
 * alternation, quantifiers * + ? {n} {n,} {n,m} (lazy forms: same language), anchors ^ and $ at
 * the start / end of a top-level alternative. Refused by name: backreferences, lookaround, word
 * boundaries, \p{..} classes, \c controls, anchors elsewhere, flags groups.
 * Semantics: `search` = JSON Schema (matches anywhere unless anchored), otherwise the whole text
 * must match. Not here: code point encodings (charset.c). */
#include "grammar/regex.h"

#include <stdlib.h>
#include <string.h>

#include "grammar/charset.h"

typedef struct rx {
    g4_grammar *g;
    const char *s;
    size_t n, i;
    int enc;
    int depth;
    int search;
} rx;

static int fail(rx *r, const char *what) { return g4_grammar_fail(r->g, "regex: %s (at offset %zu)", what, r->i); }

/* Decodes one UTF-8 code point at r->i. */
static uint32_t next_cp(rx *r) {
    const uint8_t *p = (const uint8_t *)r->s + r->i;
    size_t left = r->n - r->i;
    uint32_t c = p[0];
    int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
    if ((size_t)len > left) len = 1;
    if (len == 2) c = ((c & 0x1F) << 6) | (p[1] & 0x3F);
    else if (len == 3) c = ((c & 0x0F) << 12) | ((p[1] & 0x3F) << 6) | (p[2] & 0x3F);
    else if (len == 4) c = ((c & 0x07) << 18) | ((p[1] & 0x3F) << 12) | ((p[2] & 0x3F) << 6) | (p[3] & 0x3F);
    r->i += (size_t)len;
    return c;
}

static int hexval(char c) {
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

static int add_class_escape(g4_cpset *s, char c) {
    int rc = 0;
    switch (c) {
    case 'd':
    case 'D': rc = g4_cpset_add(s, '0', '9'); break;
    case 'w':
    case 'W':
        rc = g4_cpset_add(s, '0', '9') || g4_cpset_add(s, 'A', 'Z') || g4_cpset_add(s, 'a', 'z') ||
             g4_cpset_add(s, '_', '_');
        break;
    case 's':
    case 'S':
        rc = g4_cpset_add(s, 9, 13) || g4_cpset_add(s, ' ', ' ') || g4_cpset_add(s, 0xA0, 0xA0) ||
             g4_cpset_add(s, 0x1680, 0x1680) || g4_cpset_add(s, 0x2000, 0x200A) || g4_cpset_add(s, 0x2028, 0x2029) ||
             g4_cpset_add(s, 0x202F, 0x202F) || g4_cpset_add(s, 0x205F, 0x205F) || g4_cpset_add(s, 0x3000, 0x3000) ||
             g4_cpset_add(s, 0xFEFF, 0xFEFF);
        break;
    }
    if (rc) return -1;
    if (c == 'D' || c == 'W' || c == 'S') return g4_cpset_negate(s);
    return 0;
}

/* Parses an escape after '\' into set s (a class escape) or *cp (a single character).
 * Returns 1 for a set, 0 for a character, -1 on error. in_class: '\b' is backspace there. */
static int parse_escape(rx *r, g4_cpset *s, uint32_t *cp, int in_class) {
    if (r->i >= r->n) return fail(r, "trailing backslash");
    char c = r->s[r->i];
    if (strchr("dDwWsS", c)) {
        r->i++;
        return add_class_escape(s, c) ? g4_grammar_fail(r->g, "out of memory") : 1;
    }
    if (c >= '1' && c <= '9') return fail(r, "backreferences (\\1..\\9) are not supported");
    if (c == 'b' && !in_class) return fail(r, "word boundary \\b is not supported");
    if (c == 'B') return fail(r, "word boundary \\B is not supported");
    if (c == 'k') return fail(r, "named backreference \\k is not supported");
    if (c == 'p' || c == 'P') return fail(r, "unicode property classes \\p{..} / \\P{..} are not supported");
    if (c == 'c') return fail(r, "control escapes \\cX are not supported");
    r->i++;
    switch (c) {
    case 't': *cp = '\t'; return 0;
    case 'n': *cp = '\n'; return 0;
    case 'r': *cp = '\r'; return 0;
    case 'f': *cp = '\f'; return 0;
    case 'v': *cp = '\v'; return 0;
    case 'b': *cp = '\b'; return 0;
    case '0': *cp = 0; return 0;
    case 'x': {
        if (r->i + 2 > r->n || hexval(r->s[r->i]) < 0 || hexval(r->s[r->i + 1]) < 0) return fail(r, "bad \\x escape");
        *cp = (uint32_t)(hexval(r->s[r->i]) * 16 + hexval(r->s[r->i + 1]));
        r->i += 2;
        return 0;
    }
    case 'u': {
        uint32_t v = 0;
        if (r->i < r->n && r->s[r->i] == '{') {
            r->i++;
            int k = 0;
            while (r->i < r->n && hexval(r->s[r->i]) >= 0 && k < 7) {
                v = v * 16 + (uint32_t)hexval(r->s[r->i++]);
                k++;
            }
            if (!k || r->i >= r->n || r->s[r->i] != '}' || v > G4_CP_MAX) return fail(r, "bad \\u{...} escape");
            r->i++;
        } else {
            for (int k = 0; k < 4; k++) {
                if (r->i >= r->n || hexval(r->s[r->i]) < 0) return fail(r, "bad \\u escape");
                v = v * 16 + (uint32_t)hexval(r->s[r->i++]);
            }
            if (v >= 0xD800 && v <= 0xDFFF) return fail(r, "surrogate \\u escapes are not supported");
        }
        *cp = v;
        return 0;
    }
    }
    if ((unsigned char)c < 0x80 && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))) return fail(r, "unknown escape");
    r->i--;
    *cp = next_cp(r);
    return 0;
}

static g4_gx set_gx(rx *r, g4_cpset *s) {
    g4_gx x = g4_cpset_gx(r->g, s, r->enc);
    g4_cpset_free(s);
    return x;
}

static g4_gx parse_class(rx *r) { /* after '[' */
    g4_cpset s = {0};
    int neg = 0;
    if (r->i < r->n && r->s[r->i] == '^') {
        neg = 1;
        r->i++;
    }
    int first = 1;
    for (;;) {
        if (r->i >= r->n) {
            g4_cpset_free(&s);
            return fail(r, "unterminated character class");
        }
        if (r->s[r->i] == ']' && !first) {
            r->i++;
            break;
        }
        if (r->s[r->i] == ']' && first) {
            r->i++;
            break;
        } /* ECMA: [] matches nothing, [^] anything */
        first = 0;
        uint32_t lo;
        int k;
        if (r->s[r->i] == '\\') {
            r->i++;
            k = parse_escape(r, &s, &lo, 1);
            if (k < 0) {
                g4_cpset_free(&s);
                return -1;
            }
            if (k == 1) {
                if (r->i + 1 < r->n && r->s[r->i] == '-' && r->s[r->i + 1] != ']') {
                    g4_cpset_free(&s);
                    return fail(r, "class escape as a range end");
                }
                continue;
            }
        } else if (r->s[r->i] == '[' && r->i + 1 < r->n && r->s[r->i + 1] == ':') {
            g4_cpset_free(&s);
            return fail(r, "POSIX classes [:name:] are not supported");
        } else {
            lo = next_cp(r);
        }
        uint32_t hi = lo;
        if (r->i + 1 < r->n && r->s[r->i] == '-' && r->s[r->i + 1] != ']') {
            r->i++;
            if (r->s[r->i] == '\\') {
                r->i++;
                g4_cpset dummy = {0};
                k = parse_escape(r, &dummy, &hi, 1);
                g4_cpset_free(&dummy);
                if (k != 0) {
                    g4_cpset_free(&s);
                    return k < 0 ? -1 : fail(r, "class escape as a range end");
                }
            } else {
                hi = next_cp(r);
            }
            if (hi < lo) {
                g4_cpset_free(&s);
                return fail(r, "range out of order in character class");
            }
        }
        if (g4_cpset_add(&s, lo, hi)) {
            g4_cpset_free(&s);
            return g4_grammar_fail(r->g, "out of memory");
        }
    }
    if (neg && g4_cpset_negate(&s)) {
        g4_cpset_free(&s);
        return g4_grammar_fail(r->g, "out of memory");
    }
    return set_gx(r, &s);
}

static g4_gx parse_alt(rx *r, int top);

/* Reads {n}, {n,}, {n,m} at r->i (on '{'). Returns 1 when it is a quantifier, 0 when the '{' is a
 * literal (ECMA Annex B), -1 on error. */
static int parse_braces(rx *r, int32_t *mn, int32_t *mx) {
    size_t i = r->i + 1;
    long a = 0, b = -1;
    int da = 0;
    while (i < r->n && r->s[i] >= '0' && r->s[i] <= '9') {
        a = a * 10 + (r->s[i++] - '0');
        da++;
        if (a > 100000) a = 100000;
    }
    if (!da) return 0;
    if (i < r->n && r->s[i] == ',') {
        i++;
        int db = 0;
        long v = 0;
        while (i < r->n && r->s[i] >= '0' && r->s[i] <= '9') {
            v = v * 10 + (r->s[i++] - '0');
            db++;
            if (v > 100000) v = 100000;
        }
        b = db ? v : -1;
    } else {
        b = a;
    }
    if (i >= r->n || r->s[i] != '}') return 0;
    if (b >= 0 && b < a) return fail(r, "quantifier {n,m} with m < n");
    r->i = i + 1;
    *mn = (int32_t)a;
    *mx = (int32_t)b;
    return 1;
}

static g4_gx parse_atom(rx *r) {
    char c = r->s[r->i];
    if (c == '(') {
        r->i++;
        if (r->i < r->n && r->s[r->i] == '?') {
            if (r->i + 1 < r->n && r->s[r->i + 1] == ':') r->i += 2;
            else if (r->i + 1 < r->n && (r->s[r->i + 1] == '=' || r->s[r->i + 1] == '!'))
                return fail(r, "lookahead (?= / (?! is not supported");
            else if (r->i + 2 < r->n && r->s[r->i + 1] == '<' && (r->s[r->i + 2] == '=' || r->s[r->i + 2] == '!'))
                return fail(r, "lookbehind (?<= / (?<! is not supported");
            else if (r->i + 1 < r->n && (r->s[r->i + 1] == '<' || r->s[r->i + 1] == 'P')) {
                const char *e = memchr(r->s + r->i, '>', r->n - r->i);
                if (!e) return fail(r, "unterminated group name");
                r->i = (size_t)(e - r->s) + 1;
            } else {
                return fail(r, "group flags (?...) are not supported");
            }
        }
        if (++r->depth > 500) return fail(r, "groups nested too deeply");
        g4_gx x = parse_alt(r, 0);
        r->depth--;
        if (x < 0) return -1;
        if (r->i >= r->n || r->s[r->i] != ')') return fail(r, "missing )");
        r->i++;
        return x;
    }
    if (c == '[') {
        r->i++;
        return parse_class(r);
    }
    if (c == '.') {
        r->i++;
        g4_cpset s = {0};
        if (g4_cpset_add(&s, '\n', '\n') || g4_cpset_add(&s, '\r', '\r') || g4_cpset_add(&s, 0x2028, 0x2029) ||
            g4_cpset_negate(&s)) {
            g4_cpset_free(&s);
            return g4_grammar_fail(r->g, "out of memory");
        }
        return set_gx(r, &s);
    }
    if (c == '^' || c == '$') return fail(r, "anchors ^ and $ are supported only at the start / end of the pattern");
    if (c == '*' || c == '+' || c == '?') return fail(r, "quantifier without anything to repeat");
    if (c == ')') return fail(r, "unbalanced )");
    g4_cpset s = {0};
    uint32_t cp;
    if (c == '\\') {
        r->i++;
        int k = parse_escape(r, &s, &cp, 0);
        if (k < 0) {
            g4_cpset_free(&s);
            return -1;
        }
        if (k == 1) return set_gx(r, &s);
    } else if (c == '{') {
        int32_t a, b;
        int k = parse_braces(r, &a, &b);
        if (k < 0) return -1;
        if (k) return fail(r, "quantifier without anything to repeat");
        r->i++;
        cp = '{';
    } else {
        cp = next_cp(r);
    }
    if (g4_cpset_add(&s, cp, cp)) return g4_grammar_fail(r->g, "out of memory");
    return set_gx(r, &s);
}

static g4_gx parse_seq(rx *r, int top) {
    g4_gx acc = g4_gx_empty(r->g);
    while (r->i < r->n && r->s[r->i] != '|' && r->s[r->i] != ')') {
        if (top && r->s[r->i] == '$' && (r->i + 1 == r->n || r->s[r->i + 1] == '|')) break;
        g4_gx a = parse_atom(r);
        if (a < 0) return -1;
        for (;;) {
            if (r->i >= r->n) break;
            char q = r->s[r->i];
            int32_t mn, mx;
            if (q == '*') {
                mn = 0;
                mx = -1;
                r->i++;
            } else if (q == '+') {
                mn = 1;
                mx = -1;
                r->i++;
            } else if (q == '?') {
                mn = 0;
                mx = 1;
                r->i++;
            } else if (q == '{') {
                int k = parse_braces(r, &mn, &mx);
                if (k < 0) return -1;
                if (!k) break;
            } else break;
            if (r->i < r->n && r->s[r->i] == '?') r->i++; /* lazy: same language */
            if (r->i < r->n && strchr("*+?", r->s[r->i])) return fail(r, "nested quantifier");
            a = g4_gx_repeat(r->g, a, mn, mx);
            if (a < 0) return -1;
        }
        acc = g4_gx_seq2(r->g, acc, a);
        if (acc < 0) return -1;
    }
    return acc;
}

/* top: a top-level alternative, where ^ / $ at the ends are anchors. */
static g4_gx parse_alt(rx *r, int top) {
    g4_gx *alts = NULL;
    int32_t n = 0, cap = 0;
    g4_gx result = -1;
    for (;;) {
        int anchored_start = 0, anchored_end = 0;
        if (top && r->i < r->n && r->s[r->i] == '^') {
            anchored_start = 1;
            r->i++;
        }
        g4_gx x = parse_seq(r, top);
        if (x < 0) goto out;
        if (top && r->i < r->n && r->s[r->i] == '$') {
            anchored_end = 1;
            r->i++;
        }
        if (top && r->search) {
            g4_gx any = g4_gx_star(r->g, g4_any_char_gx(r->g, r->enc));
            if (!anchored_start) x = g4_gx_seq2(r->g, any, x);
            if (!anchored_end) x = g4_gx_seq2(r->g, x, any);
            if (x < 0) goto out;
        }
        if (n == cap) {
            int32_t nc = cap ? cap * 2 : 8;
            void *q = realloc(alts, (size_t)nc * sizeof *alts);
            if (!q) {
                g4_grammar_fail(r->g, "out of memory");
                goto out;
            }
            alts = q;
            cap = nc;
        }
        alts[n++] = x;
        if (r->i < r->n && r->s[r->i] == '|') {
            r->i++;
            continue;
        }
        break;
    }
    result = g4_gx_alt(r->g, alts, n);
out:
    free(alts);
    return result;
}

g4_gx g4_regex_gx(g4_grammar *g, const char *re, size_t len, int enc, int search) {
    rx r = {g, re, len, 0, enc, 0, search};
    g4_gx x = parse_alt(&r, 1);
    if (x < 0) return -1;
    if (r.i != r.n) return fail(&r, r.s[r.i] == ')' ? "unbalanced )" : "unexpected character");
    return x;
}
