/* utf8.c - strict UTF-8 scanning and whitespace predicates (see utf8.h). */
#include "text/utf8.h"

int g4_utf8_next(const char *s, size_t n, uint32_t *cp) {
    const unsigned char *u = (const unsigned char *)s;
    if (n == 0) return 0;
    unsigned c = u[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    int len;
    uint32_t v, min;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2, v = c & 0x1F, min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3, v = c & 0x0F, min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4, v = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if ((size_t)len > n) return 0;
    for (int i = 1; i < len; i++) {
        if ((u[i] & 0xC0) != 0x80) return 0;
        v = (v << 6) | (u[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
    *cp = v;
    return len;
}

/* 1 when s[0..n) (n < 4) could still be the start of a valid sequence once more bytes come. */
static int could_continue(const unsigned char *u, size_t n) {
    unsigned c = u[0];
    size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
    if (c < 0xC2 || c > 0xF4 || n >= need) return 0;
    for (size_t i = 1; i < n; i++)
        if ((u[i] & 0xC0) != 0x80) return 0;
    if (n >= 2) { /* second-byte ranges exclude overlongs, surrogates and > U+10FFFF */
        unsigned b = u[1];
        if (c == 0xE0 && b < 0xA0) return 0;
        if (c == 0xED && b > 0x9F) return 0;
        if (c == 0xF0 && b < 0x90) return 0;
        if (c == 0xF4 && b > 0x8F) return 0;
    }
    return 1;
}

size_t g4_utf8_complete_prefix(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    size_t back = n < 3 ? n : 3;
    for (size_t k = 1; k <= back; k++) {
        size_t start = n - k;
        if (u[start] >= 0xC0) return could_continue(u + start, k) ? start : n;
        if (u[start] < 0x80) return n;
    }
    return n;
}

int g4_utf8_valid(const char *s, size_t n) {
    size_t i = 0;
    uint32_t cp;
    while (i < n) {
        int l = g4_utf8_next(s + i, n - i, &cp);
        if (!l) return 0;
        i += (size_t)l;
    }
    return 1;
}

int g4_unicode_is_space(uint32_t c) {
    if (c <= 0x20) return c == 0x20 || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F);
    if (c < 0x85) return 0;
    return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
           c == 0x202F || c == 0x205F || c == 0x3000;
}

void g4_utf8_strip(const char *s, size_t n, size_t *begin, size_t *end) {
    size_t b = 0, e = n;
    uint32_t cp;
    while (b < n) {
        int l = g4_utf8_next(s + b, n - b, &cp);
        if (!l || !g4_unicode_is_space(cp)) break;
        b += (size_t)l;
    }
    while (e > b) { /* step back over one character */
        size_t k = e - 1;
        while (k > b && ((unsigned char)s[k] & 0xC0) == 0x80 && e - k < 4) k--;
        int l = g4_utf8_next(s + k, e - k, &cp);
        if (!l || (size_t)l != e - k || !g4_unicode_is_space(cp)) break;
        e = k;
    }
    *begin = b;
    *end = e;
}
