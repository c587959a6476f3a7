/* strbuf.c - growable byte string (see strbuf.h). */
#include "base/strbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int g4_strbuf_reserve(g4_strbuf *b, size_t extra) {
    size_t need = b->len + extra + 1;
    if (need <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) cap *= 2;
    if (b->tracking) {
        unsigned char *u = realloc(b->user, cap);
        if (!u) return -1;
        b->user = u;
    }
    char *p = realloc(b->data, cap);
    if (!p) return -1;
    b->data = p;
    b->cap = cap;
    return 0;
}

/* Marks the n bytes just appended at b->data[b->len - n ..]. */
static void mark(g4_strbuf *b, size_t n) {
    if (b->tracking && n) memset(b->user + b->len - n, b->user_depth > 0, n);
}

int g4_strbuf_track_user(g4_strbuf *b) {
    if (b->tracking) return 0;
    size_t cap = b->cap ? b->cap : 64;
    unsigned char *u = calloc(cap, 1);
    if (!u) return -1;
    if (!b->cap) {
        char *p = malloc(cap);
        if (!p) {
            free(u);
            return -1;
        }
        p[0] = 0;
        b->data = p;
        b->cap = cap;
    }
    b->user = u;
    b->tracking = 1;
    return 0;
}

int g4_strbuf_append_from(g4_strbuf *b, const g4_strbuf *src, size_t off, size_t n) {
    if (g4_strbuf_append(b, n ? src->data + off : "", n)) return -1;
    if (b->tracking && src->tracking && b->user_depth <= 0 && n) memcpy(b->user + b->len - n, src->user + off, n);
    return 0;
}

int g4_strbuf_append(g4_strbuf *b, const char *s, size_t n) {
    if (g4_strbuf_reserve(b, n)) return -1;
    if (n) memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = 0;
    mark(b, n);
    return 0;
}

int g4_strbuf_puts(g4_strbuf *b, const char *s) { return g4_strbuf_append(b, s, strlen(s)); }

int g4_strbuf_putc(g4_strbuf *b, char c) { return g4_strbuf_append(b, &c, 1); }

int g4_strbuf_printf(g4_strbuf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || g4_strbuf_reserve(b, (size_t)n)) return -1;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    mark(b, (size_t)n);
    return 0;
}

void g4_strbuf_clear(g4_strbuf *b) {
    b->len = 0;
    if (b->data) b->data[0] = 0;
}

void g4_strbuf_free(g4_strbuf *b) {
    free(b->data);
    free(b->user);
    memset(b, 0, sizeof *b);
}
