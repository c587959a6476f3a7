/* strbuf.h - a growable byte string owned by its caller (the text layer's and the servers' output type).
 *
 * Always NUL-terminated after any successful append, yet binary safe (len counts the bytes).
 * Zero-initialise (`g4_strbuf b = {0};`) before first use; g4_strbuf_free releases it. */
#ifndef G4_BASE_STRBUF_H
#define G4_BASE_STRBUF_H

#include <stddef.h>
#include <string.h>

typedef struct g4_strbuf {
    char *data;  /* NULL until the first append; NUL-terminated afterwards */
    size_t len;  /* bytes used, excluding the terminator */
    size_t cap;  /* bytes allocated */
    /* Optional provenance (the chat renderer's): after g4_strbuf_track_user, user[i] is 1 when
     * data[i] came from caller-supplied text (message content, names, arguments, ...) and 0 when
     * the template wrote it. The tokenizer matches control tokens only in template bytes. */
    unsigned char *user; /* [cap] while tracking, else NULL */
    int tracking;        /* 1 after g4_strbuf_track_user */
    int user_depth;      /* > 0: bytes appended now are marked user text (g4_strbuf_user_begin/end) */
} g4_strbuf;

/* Each returns 0, or -1 when memory runs out (the buffer keeps its old contents). */
int g4_strbuf_append(g4_strbuf *b, const char *s, size_t n);
int g4_strbuf_puts(g4_strbuf *b, const char *s);
int g4_strbuf_putc(g4_strbuf *b, char c);
int g4_strbuf_printf(g4_strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int g4_strbuf_reserve(g4_strbuf *b, size_t extra);
/* Starts provenance tracking (bytes already present count as template text). 0, or -1. */
int g4_strbuf_track_user(g4_strbuf *b);
static inline void g4_strbuf_user_begin(g4_strbuf *b) { b->user_depth++; }
static inline void g4_strbuf_user_end(g4_strbuf *b) { b->user_depth--; }
/* Appends caller-supplied text marked as user text: the encoder never turns a control-token
 * spelling inside it into the control token. 0, or -1. */
static inline int g4_strbuf_append_user(g4_strbuf *b, const char *s, size_t n) {
    g4_strbuf_user_begin(b);
    int rc = g4_strbuf_append(b, s, n);
    g4_strbuf_user_end(b);
    return rc;
}
static inline int g4_strbuf_puts_user(g4_strbuf *b, const char *s) { return g4_strbuf_append_user(b, s, strlen(s)); }
/* Appends src->data[off..off+n), keeping src's provenance when both buffers track it (a source
 * without tracking counts as template text, or user text inside a begin/end pair). */
int g4_strbuf_append_from(g4_strbuf *b, const g4_strbuf *src, size_t off, size_t n);
void g4_strbuf_clear(g4_strbuf *b);  /* len = 0, keeps the allocation */
void g4_strbuf_free(g4_strbuf *b);   /* releases memory, leaves the buffer zeroed */

#endif
