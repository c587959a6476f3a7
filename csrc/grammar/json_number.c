/* json_number.c - JSON numbers within bounds (json_number.h): the integer part by digit ranges
 * (the classic range-to-regex construction), the fraction compared digit by digit with the
 * bound's written digits, so every bound is exact. Bounded numbers are written without exponent. */
#include "grammar/json_number.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static g4_gx digits(g4_grammar *g, int min) { return g4_gx_repeat(g, g4_gx_range(g, '0', '9'), min, -1); }

static g4_gx any_number(g4_grammar *g) {
    g4_gx intpart = g4_gx_alt2(g, g4_gx_str(g, "0"), g4_gx_seq2(g, g4_gx_range(g, '1', '9'), digits(g, 0)));
    g4_gx frac = g4_gx_opt(g, g4_gx_seq2(g, g4_gx_str(g, "."), digits(g, 1)));
    uint8_t pm[32] = {0};
    pm['+' >> 3] |= 1u << ('+' & 7);
    pm['-' >> 3] |= 1u << ('-' & 7);
    g4_gx exp = g4_gx_opt(g, g4_gx_seq3(g, g4_gx_alt2(g, g4_gx_str(g, "e"), g4_gx_str(g, "E")),
                                        g4_gx_opt(g, g4_gx_bytes(g, pm)), digits(g, 1)));
    g4_gx xs[4] = {g4_gx_opt(g, g4_gx_str(g, "-")), intpart, frac, exp};
    return g4_gx_seq(g, xs, 4);
}


/* Digit strings of equal length n in [L, H] (positional, leading zeros allowed inside). */
static g4_gx digit_range(g4_grammar *g, const char *L, const char *H, int n) {
    if (n == 0) return g4_gx_empty(g);
    if (L[0] == H[0]) return g4_gx_seq2(g, g4_gx_range(g, L[0], L[0]), digit_range(g, L + 1, H + 1, n - 1));
    int lz = 1, h9 = 1;
    for (int i = 1; i < n; i++) {
        if (L[i] != '0') lz = 0;
        if (H[i] != '9') h9 = 0;
    }
    g4_gx any = g4_gx_repeat(g, g4_gx_range(g, '0', '9'), n - 1, n - 1);
    if (lz && h9) return g4_gx_seq2(g, g4_gx_range(g, L[0], H[0]), any);
    char nines[24], zeros[24];
    memset(nines, '9', sizeof nines);
    memset(zeros, '0', sizeof zeros);
    g4_gx alts[3];
    int k = 0;
    alts[k++] = g4_gx_seq2(g, g4_gx_range(g, L[0], L[0]), digit_range(g, L + 1, nines, n - 1));
    if (L[0] + 1 <= H[0] - 1) alts[k++] = g4_gx_seq2(g, g4_gx_range(g, L[0] + 1, H[0] - 1), any);
    alts[k++] = g4_gx_seq2(g, g4_gx_range(g, H[0], H[0]), digit_range(g, zeros, H + 1, n - 1));
    return g4_gx_alt(g, alts, k);
}

/* Canonical decimal integers in [lo, hi] (unsigned; hi < 0 = unbounded). */
static g4_gx uint_range(g4_grammar *g, long long lo, long long hi) {
    char ls[24], hs[24];
    g4_gx alts[24];
    int k = 0;
    int nlo = snprintf(ls, sizeof ls, "%lld", lo);
    int nhi = hi < 0 ? nlo : snprintf(hs, sizeof hs, "%lld", hi);
    long long p10 = 1;
    for (int i = 1; i < nlo; i++) p10 *= 10;
    for (int len = nlo; len <= nhi; len++, p10 *= 10) {
        long long a = len == 1 ? 0 : p10, b = p10 * 10 - 1;
        if (a < lo) a = lo;
        if (hi >= 0 && b > hi) b = hi;
        if (a > b) continue;
        char as[24], bs[24];
        snprintf(as, sizeof as, "%lld", a);
        snprintf(bs, sizeof bs, "%lld", b);
        alts[k++] = digit_range(g, as, bs, len);
    }
    if (hi < 0) /* every longer number */
        alts[k++] = g4_gx_seq2(g, g4_gx_range(g, '1', '9'), digits(g, nlo));
    return g4_gx_alt(g, alts, k);
}

static g4_gx int_grammar(g4_grammar *g, g4_num_bound lo, g4_num_bound hi) {
    long long a = 0, b = 0;
    if (lo.have) a = (long long)(lo.incl ? ceil(lo.v) : floor(lo.v) + 1);
    if (hi.have) b = (long long)(hi.incl ? floor(hi.v) : ceil(hi.v) - 1);
    if (lo.have && hi.have && a > b) return g4_gx_never(g);
    g4_gx alts[2];
    int k = 0;
    if (!hi.have || b >= 0) alts[k++] = uint_range(g, lo.have && a > 0 ? a : 0, hi.have ? b : -1);
    if (!lo.have || a < 0)
        alts[k++] = g4_gx_seq2(g, g4_gx_str(g, "-"), uint_range(g, hi.have && b < 0 ? -b : 1, lo.have ? -a : -1));
    /* "1.0" is an integer to JSON Schema; one zero digit only, or a sampled integer could go on
     * with zeros for ever ("2.000...") */
    g4_gx zero_frac = g4_gx_opt(g, g4_gx_str(g, ".0"));
    return g4_gx_seq2(g, g4_gx_alt(g, alts, k), zero_frac);
}

/* Decimal bounds. A bound |v| as integer part + fraction digits (shortest round-trip, no trailing
 * zeros), so 1.1 is (1, "1") and the grammar compares the written digits exactly. */
typedef struct dec {
    long long ip;
    char frac[24];
} dec;

static void to_dec(double v, dec *d) {
    v = fabs(v);
    char buf[64];
    for (int p = 0; p <= 20; p++) {
        snprintf(buf, sizeof buf, "%.*f", p, v);
        if (strtod(buf, NULL) == v) break;
    }
    char *dot = strchr(buf, '.');
    d->frac[0] = 0;
    if (dot) {
        *dot = 0;
        snprintf(d->frac, sizeof d->frac, "%s", dot + 1);
        size_t n = strlen(d->frac);
        while (n && d->frac[n - 1] == '0') d->frac[--n] = 0;
    }
    d->ip = atoll(buf);
}

/* Fraction digit strings F (value 0.F) between a lower and an upper constraint. A lower one is
 * NONE, NZ (some nonzero digit still needed: > 0) or the digits L still to match (lo_incl: >=);
 * an upper one NONE, Z (only zeros may follow: <= 0) or the digits H (hi_incl: <=). */
enum { C_NONE, C_NZ, C_Z, C_DIGITS, C_FAIL };
typedef struct fcons {
    int kind;
    const char *d;
    int incl;
} fcons;

static g4_gx frac_full(g4_grammar *g, fcons lo, fcons up, int depth);

/* Constraint after reading digit c. */
static fcons lo_next(fcons lo, char c) {
    fcons n = {C_NONE, NULL, 0};
    if (lo.kind == C_NONE) return n;
    if (lo.kind == C_NZ) {
        if (c == '0') return lo;
        return n;
    }
    if (c > lo.d[0]) return n;
    if (c < lo.d[0]) {
        n.kind = C_FAIL;
        return n;
    }
    if (lo.d[1]) {
        n.kind = C_DIGITS;
        n.d = lo.d + 1;
        n.incl = lo.incl;
        return n;
    }
    n.kind = lo.incl ? C_NONE : C_NZ;
    return n;
}
static fcons up_next(fcons up, char c) {
    fcons n = {C_NONE, NULL, 0};
    if (up.kind == C_NONE) return n;
    if (up.kind == C_Z) {
        if (c == '0') return up;
        n.kind = C_FAIL;
        return n;
    }
    if (c < up.d[0]) return n;
    if (c > up.d[0]) {
        n.kind = C_FAIL;
        return n;
    }
    if (up.d[1]) {
        n.kind = C_DIGITS;
        n.d = up.d + 1;
        n.incl = up.incl;
        return n;
    }
    n.kind = up.incl ? C_Z : C_FAIL;
    return n;
}

/* Nonempty digit strings under (lo, up). */
static g4_gx frac_nonempty(g4_grammar *g, fcons lo, fcons up, int depth) {
    if (lo.kind == C_FAIL || up.kind == C_FAIL) return g4_gx_never(g);
    if (lo.kind == C_NONE && up.kind == C_NONE) return digits(g, 1);
    if (lo.kind == C_NONE && up.kind == C_Z) return g4_gx_repeat(g, g4_gx_str(g, "0"), 1, -1);
    if (lo.kind == C_NZ && up.kind == C_NONE)
        return g4_gx_seq3(g, digits(g, 0), g4_gx_range(g, '1', '9'), digits(g, 0));
    if (lo.kind == C_NZ && up.kind == C_Z) return g4_gx_never(g);
    if (depth > 64) return g4_grammar_fail(g, "numeric bound with too many digits");
    g4_gx alts[10];
    int k = 0;
    for (char c = '0'; c <= '9';) { /* group digits with the same next constraints */
        fcons l1 = lo_next(lo, c), u1 = up_next(up, c);
        char e = c;
        while (e < '9') {
            fcons l2 = lo_next(lo, (char)(e + 1)), u2 = up_next(up, (char)(e + 1));
            if (l2.kind != l1.kind || l2.d != l1.d || u2.kind != u1.kind || u2.d != u1.d) break;
            e++;
        }
        if (l1.kind != C_FAIL && u1.kind != C_FAIL)
            alts[k++] = g4_gx_seq2(g, g4_gx_range(g, c, e), frac_full(g, l1, u1, depth + 1));
        c = (char)(e + 1);
    }
    return g4_gx_alt(g, alts, k);
}

/* 1 when the empty digit string (value 0) satisfies (lo, up). */
static int frac_empty_ok(fcons lo, fcons up) { return (lo.kind == C_NONE) && up.kind != C_FAIL; }

static g4_gx frac_full(g4_grammar *g, fcons lo, fcons up, int depth) {
    g4_gx ne = frac_nonempty(g, lo, up, depth);
    return frac_empty_ok(lo, up) ? g4_gx_alt2(g, g4_gx_empty(g), ne) : ne;
}

/* The written fraction of a number: nothing (value 0) or "." and digits, under (lo, up). */
static g4_gx fraction(g4_grammar *g, fcons lo, fcons up) {
    g4_gx dotted = g4_gx_seq2(g, g4_gx_str(g, "."), frac_nonempty(g, lo, up, 0));
    return frac_empty_ok(lo, up) ? g4_gx_alt2(g, g4_gx_empty(g), dotted) : dotted;
}

/* Magnitudes m = i.F (integer part i, fraction digits F) with A <= m <= B (ends per incl;
 * b_inf: no upper end). */
static g4_gx magnitude(g4_grammar *g, const dec *A, int a_incl, const dec *B, int b_incl, int b_inf) {
    fcons none = {C_NONE, NULL, 0};
    fcons lo = none, up = none;
    if (A->frac[0]) {
        lo.kind = C_DIGITS;
        lo.d = A->frac;
        lo.incl = a_incl;
    } else lo.kind = a_incl ? C_NONE : C_NZ;
    if (!b_inf) {
        if (B->frac[0]) {
            up.kind = C_DIGITS;
            up.d = B->frac;
            up.incl = b_incl;
        } else up.kind = b_incl ? C_Z : C_FAIL;
    }
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", A->ip);
    if (!b_inf && A->ip > B->ip) return g4_gx_never(g);
    if (!b_inf && A->ip == B->ip) return g4_gx_seq2(g, g4_gx_str(g, buf), fraction(g, lo, up));
    g4_gx alts[3];
    int k = 0;
    alts[k++] = g4_gx_seq2(g, g4_gx_str(g, buf), fraction(g, lo, none));
    if (b_inf) alts[k++] = g4_gx_seq2(g, uint_range(g, A->ip + 1, -1), fraction(g, none, none));
    else {
        if (A->ip + 1 <= B->ip - 1)
            alts[k++] = g4_gx_seq2(g, uint_range(g, A->ip + 1, B->ip - 1), fraction(g, none, none));
        snprintf(buf, sizeof buf, "%lld", B->ip);
        alts[k++] = g4_gx_seq2(g, g4_gx_str(g, buf), fraction(g, none, up));
    }
    return g4_gx_alt(g, alts, k);
}

static g4_gx number_grammar(g4_grammar *g, g4_num_bound lo, g4_num_bound hi) {
    if (!lo.have && !hi.have) return any_number(g);
    if (lo.have && hi.have && (lo.v > hi.v || (lo.v == hi.v && !(lo.incl && hi.incl)))) return g4_gx_never(g);
    dec zero = {0, ""}, dl, dh;
    if (lo.have) to_dec(lo.v, &dl);
    if (hi.have) to_dec(hi.v, &dh);
    g4_gx alts[2];
    int k = 0;
    /* x >= 0: magnitude in [max(lo, 0), hi] */
    if (!hi.have || hi.v > 0 || (hi.v == 0 && hi.incl)) {
        int lo_pos = lo.have && lo.v >= 0;
        alts[k++] = magnitude(g, lo_pos ? &dl : &zero, lo_pos ? lo.incl : 1, hi.have ? &dh : &zero, hi.incl, !hi.have);
    }
    /* x < 0: m = -x > 0, m in [max(-hi, 0), -lo] */
    if (!lo.have || lo.v < 0) {
        int hi_neg = hi.have && hi.v < 0;
        alts[k++] = g4_gx_seq2(g, g4_gx_str(g, "-"),
                               magnitude(g, hi_neg ? &dh : &zero, hi_neg ? hi.incl : 0, lo.have ? &dl : &zero, lo.incl,
                                         !lo.have));
    }
    return g4_gx_alt(g, alts, k);
}


g4_gx g4_json_number_gx(g4_grammar *g, int integer, g4_num_bound lo, g4_num_bound hi) {
    return integer ? int_grammar(g, lo, hi) : number_grammar(g, lo, hi);
}
