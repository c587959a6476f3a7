/* fuzz_output_parser.c - fuzz target: generated text through the output parser
 * (csrc/text/output_parser.c), fed whole and fed in chunks.
 *
 * Input: byte 0 picks the chunk size (1..16) and bit 7 G4_PARSE_START_IN_REASONING; the rest is
 * the model's text. Checks what output_parser.h promises: the concatenated content, reasoning and
 * tool calls are the same whatever the split, and with valid UTF-8 input every delta is valid. */
#include <stdlib.h>
#include <string.h>

#include "base/strbuf.h"
#include "fuzz_target.h"
#include "text/output_parser.h"
#include "text/utf8.h"

typedef struct summary {
    g4_strbuf content, reasoning, calls; /* calls: "name\0args\0" per call */
} summary;

static void summary_free(summary *s) {
    g4_strbuf_free(&s->content);
    g4_strbuf_free(&s->reasoning);
    g4_strbuf_free(&s->calls);
}

static int add_events(summary *s, g4_parse_events *ev, int check_utf8) {
    for (size_t i = 0; i < ev->n; i++) {
        const g4_parse_event *e = &ev->ev[i];
        if (e->kind != G4_PARSE_TOOL_CALL && check_utf8 && !g4_utf8_valid(e->text, e->len)) abort();
        int rc = 0;
        if (e->kind == G4_PARSE_CONTENT) rc = g4_strbuf_append(&s->content, e->text, e->len);
        else if (e->kind == G4_PARSE_REASONING) rc = g4_strbuf_append(&s->reasoning, e->text, e->len);
        else
            rc = g4_strbuf_append(&s->calls, e->name, strlen(e->name) + 1) ||
                 g4_strbuf_append(&s->calls, e->text, e->len) || g4_strbuf_putc(&s->calls, '\0');
        if (rc) return -1;
    }
    g4_parse_events_clear(ev);
    return 0;
}

/* Parses text in chunks of `chunk` bytes; -1 when out of memory. */
static int parse(const char *text, size_t len, size_t chunk, unsigned flags, int check_utf8, summary *s) {
    g4_output_parser *p = NULL;
    g4_error err;
    if (g4_output_parser_new(flags, &p, &err)) return -1;
    g4_parse_events ev = {0};
    int rc = 0;
    for (size_t off = 0; off < len && !rc; off += chunk) {
        size_t n = len - off < chunk ? len - off : chunk;
        rc = g4_output_parser_feed(p, text + off, n, &ev, &err) || add_events(s, &ev, check_utf8);
    }
    if (!rc) rc = g4_output_parser_finish(p, &ev, &err) || add_events(s, &ev, check_utf8);
    g4_parse_events_free(&ev);
    g4_output_parser_free(p);
    return rc ? -1 : 0;
}

static int same(const g4_strbuf *a, const g4_strbuf *b) {
    return a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    size_t chunk = 1 + (data[0] & 15);
    unsigned flags = data[0] & 0x80 ? G4_PARSE_START_IN_REASONING : 0;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    int utf8 = g4_utf8_valid(text, len);
    summary whole = {0}, split = {0};
    if (parse(text, len, len ? len : 1, flags, utf8, &whole) == 0 &&
        parse(text, len, chunk, flags, utf8, &split) == 0) {
        if (!same(&whole.content, &split.content) || !same(&whole.reasoning, &split.reasoning) ||
            !same(&whole.calls, &split.calls))
            abort();
    }
    summary_free(&whole);
    summary_free(&split);
    return 0;
}
