/* strbuf.h - a growable byte string owned by its caller (the text layer's output type).
 *
 * Always NUL-terminated after any successful append, yet binary safe (len counts the bytes).
 * Zero-initialise (`g4_strbuf b = {0};`) before first use; g4_strbuf_free releases it. */
#ifndef G4_TEXT_STRBUF_H
#define G4_TEXT_STRBUF_H

#include <stddef.h>

typedef struct g4_strbuf {
    char *data;  /* NULL until the first append; NUL-terminated afterwards */
    size_t len;  /* bytes used, excluding the terminator */
    size_t cap;  /* bytes allocated */
} g4_strbuf;

/* Each returns 0, or -1 when memory runs out (the buffer keeps its old contents). */
int g4_strbuf_append(g4_strbuf *b, const char *s, size_t n);
int g4_strbuf_puts(g4_strbuf *b, const char *s);
int g4_strbuf_putc(g4_strbuf *b, char c);
int g4_strbuf_printf(g4_strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int g4_strbuf_reserve(g4_strbuf *b, size_t extra);
void g4_strbuf_clear(g4_strbuf *b);  /* len = 0, keeps the allocation */
void g4_strbuf_free(g4_strbuf *b);   /* releases memory, leaves the buffer zeroed */

#endif
