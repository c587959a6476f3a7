/* output_parser.c - the streaming content / reasoning / tool-call splitter (see output_parser.h).
 *
 * Three buffers: `in` holds input not yet scanned (at most a partial marker between feeds),
 * `pend` holds scanned CONTENT/REASONING text not yet emitted (an incomplete UTF-8 tail, an
 * undecided "thought\n" label, trailing reasoning whitespace), `call` holds the body of the
 * open tool call. Scanning only stops at '<', so ordinary text passes through in one copy. */
#include "text/output_parser.h"

#include <stdlib.h>
#include <string.h>

#include "text/gemma_args.h"
#include "text/utf8.h"

enum state { ST_CONTENT, ST_REASONING, ST_CALL, ST_DONE };

enum marker {
    M_NONE = -1,
    M_PARTIAL = -2,
    M_CH_OPEN = 0,
    M_CH_CLOSE,
    M_CALL_OPEN,
    M_CALL_CLOSE,
    M_STOP_TURN_END,
    M_STOP_TOOL_RESPONSE,
    M_STOP_EOS,
    M_STOP_TURN_START,
    M_COUNT
};

static const char *const MARKERS[M_COUNT] = {"<|channel>", "<channel|>",       "<|tool_call>", "<tool_call|>",
                                             "<turn|>",    "<|tool_response>", "<eos>",        "<|turn>"};

static const char LABEL[] = "thought\n";
#define LABEL_LEN 8

struct g4_output_parser {
    enum state state;
    g4_strbuf in, pend, call;
    int label_pending;   /* REASONING: the "thought\n" label is not decided yet */
    int skip_ws;         /* CONTENT: drop leading whitespace (just after <channel|>) */
    int n_calls, malformed, done;
    int oom;
};

/* ---- events ----------------------------------------------------------------------------- */

void g4_parse_events_clear(g4_parse_events *e) {
    for (size_t i = 0; i < e->n; i++) {
        free(e->ev[i].text);
        free(e->ev[i].name);
    }
    e->n = 0;
}

void g4_parse_events_free(g4_parse_events *e) {
    g4_parse_events_clear(e);
    free(e->ev);
    e->ev = NULL;
    e->cap = 0;
}

static g4_parse_event *new_event(g4_parse_events *e) {
    if (e->n == e->cap) {
        size_t cap = e->cap ? e->cap * 2 : 8;
        g4_parse_event *p = realloc(e->ev, cap * sizeof *p);
        if (!p) return NULL;
        e->ev = p;
        e->cap = cap;
    }
    g4_parse_event *ev = &e->ev[e->n++];
    memset(ev, 0, sizeof *ev);
    return ev;
}

static char *dup_bytes(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (d) {
        if (n) memcpy(d, s, n);
        d[n] = 0;
    }
    return d;
}

static int add_text(g4_output_parser *p, g4_parse_events *out, g4_parse_kind kind, const char *s, size_t n,
                    int malformed) {
    if (!n) return 0;
    g4_parse_event *last = out->n ? &out->ev[out->n - 1] : NULL;
    if (last && last->kind == kind && last->malformed == malformed) {
        char *t = realloc(last->text, last->len + n + 1);
        if (!t) return p->oom = -1;
        memcpy(t + last->len, s, n);
        last->len += n;
        t[last->len] = 0;
        last->text = t;
        return 0;
    }
    g4_parse_event *ev = new_event(out);
    if (!ev || !(ev->text = dup_bytes(s, n))) {
        if (ev) out->n--;
        return p->oom = -1;
    }
    ev->kind = kind;
    ev->len = n;
    ev->malformed = malformed;
    return 0;
}

/* ---- text routing ----------------------------------------------------------------------- */

static int is_ws(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; }

static void route(g4_output_parser *p, const char *s, size_t n) {
    if (p->state == ST_CONTENT && p->skip_ws) {
        while (n && is_ws(*s)) s++, n--;
        if (n) p->skip_ws = 0;
    }
    if (n && g4_strbuf_append(&p->pend, s, n)) p->oom = -1;
}

static void drop_front(g4_strbuf *b, size_t k) {
    if (!k) return;
    memmove(b->data, b->data + k, b->len - k);
    b->len -= k;
}

/* Emits what is certain of pend. closing: the segment ends here (emit all; reasoning drops
 * its trailing whitespace and an unfinished label). */
static void flush_pend(g4_output_parser *p, g4_parse_events *out, int closing) {
    g4_strbuf *b = &p->pend;
    if (p->state == ST_REASONING && p->label_pending) {
        size_t k = b->len < LABEL_LEN ? b->len : LABEL_LEN;
        int prefix = !memcmp(b->data ? b->data : "", LABEL, k);
        if (prefix && b->len >= LABEL_LEN) {
            drop_front(b, LABEL_LEN);
            p->label_pending = 0;
        } else if (prefix && !closing) {
            return; /* still could be the label */
        } else {
            if (prefix && b->len == LABEL_LEN - 1) b->len = 0; /* "thought" then <channel|> */
            p->label_pending = 0;
        }
    }
    size_t n = b->len;
    if (p->state == ST_REASONING)
        while (n && is_ws(b->data[n - 1])) n--;
    if (!closing) n = g4_utf8_complete_prefix(b->data, n);
    add_text(p, out, p->state == ST_REASONING ? G4_PARSE_REASONING : G4_PARSE_CONTENT, b->data, n, 0);
    if (closing) b->len = 0;
    else drop_front(b, n);
}

/* ---- tool calls ------------------------------------------------------------------------- */

static void end_call(g4_output_parser *p, g4_parse_events *out, int terminated) {
    g4_strbuf name = {0}, args = {0};
    const char *body = p->call.data ? p->call.data : "";
    if (g4_gemma_parse_call(body, p->call.len, &name, &args) == 0 && g4_strbuf_reserve(&name, 0) == 0) {
        g4_parse_event *ev = new_event(out);
        if (!ev) {
            p->oom = -1;
        } else {
            ev->kind = G4_PARSE_TOOL_CALL;
            ev->name = name.data, name.data = NULL;
            ev->text = args.data, args.data = NULL;
            ev->len = args.len;
            ev->index = p->n_calls++;
        }
    } else {
        g4_strbuf raw = {0};
        if (g4_strbuf_puts(&raw, "<|tool_call>") || g4_strbuf_append(&raw, body, p->call.len) ||
            (terminated && g4_strbuf_puts(&raw, "<tool_call|>")))
            p->oom = -1;
        else add_text(p, out, G4_PARSE_CONTENT, raw.data, raw.len, 1);
        p->malformed = 1;
        g4_strbuf_free(&raw);
    }
    g4_strbuf_free(&name);
    g4_strbuf_free(&args);
    g4_strbuf_clear(&p->call);
}

static enum marker match_marker(const char *s, size_t n) {
    enum marker partial = M_NONE;
    for (int m = 0; m < M_COUNT; m++) {
        size_t ml = strlen(MARKERS[m]);
        if (n >= ml ? !memcmp(s, MARKERS[m], ml) : 0) return (enum marker)m;
        if (n < ml && !memcmp(s, MARKERS[m], n)) partial = M_PARTIAL;
    }
    return partial;
}

static void stop(g4_output_parser *p, g4_parse_events *out) {
    if (p->state == ST_CALL) end_call(p, out, 0);
    else flush_pend(p, out, 1);
    p->state = ST_DONE;
    p->done = 1;
}

/* A marker while in CONTENT or REASONING. */
static void on_marker(g4_output_parser *p, g4_parse_events *out, enum marker m) {
    switch (m) {
    case M_CH_OPEN:
        if (p->state == ST_CONTENT) {
            flush_pend(p, out, 1);
            p->state = ST_REASONING;
            p->label_pending = 1;
        }
        break;
    case M_CH_CLOSE:
        if (p->state == ST_REASONING) {
            flush_pend(p, out, 1);
            p->state = ST_CONTENT;
            p->skip_ws = 1;
        }
        break;
    case M_CALL_OPEN:
        flush_pend(p, out, 1);
        p->state = ST_CALL;
        g4_strbuf_clear(&p->call);
        break;
    case M_CALL_CLOSE: break; /* stray closer: noise */
    default: stop(p, out);
    }
}

static void process(g4_output_parser *p, g4_parse_events *out, int final) {
    g4_strbuf *in = &p->in;
    size_t i = 0;
    while (i < in->len && p->state != ST_DONE && !p->oom) {
        const char *lt = memchr(in->data + i, '<', in->len - i);
        size_t j = lt ? (size_t)(lt - in->data) : in->len;
        if (p->state == ST_CALL) {
            if (g4_strbuf_append(&p->call, in->data + i, j - i)) p->oom = -1;
        } else {
            route(p, in->data + i, j - i);
        }
        i = j;
        if (!lt) break;
        enum marker m = match_marker(in->data + j, in->len - j);
        if (m == M_PARTIAL && !final) break; /* wait for more input */
        if (m == M_PARTIAL || m == M_NONE || (p->state == ST_CALL && (m == M_CH_OPEN || m == M_CH_CLOSE))) {
            if (p->state == ST_CALL) {
                if (g4_strbuf_putc(&p->call, '<')) p->oom = -1;
            } else {
                route(p, "<", 1);
            }
            i = j + 1;
            continue;
        }
        i = j + strlen(MARKERS[m]);
        if (p->state == ST_CALL) {
            if (m == M_CALL_CLOSE) {
                end_call(p, out, 1);
                p->state = ST_CONTENT;
            } else if (m == M_CALL_OPEN) {
                end_call(p, out, 0); /* unterminated call followed by a new one */
            } else {
                stop(p, out);
            }
        } else {
            on_marker(p, out, m);
        }
    }
    if (p->state == ST_DONE) i = in->len;
    drop_front(in, i);
    if (in->data) in->data[in->len] = 0;
    if (p->state == ST_CONTENT || p->state == ST_REASONING) flush_pend(p, out, 0);
}

/* ---- public ----------------------------------------------------------------------------- */

int g4_output_parser_new(unsigned flags, g4_output_parser **out, g4_error *err) {
    g4_output_parser *p = calloc(1, sizeof *p);
    if (!p) return g4_fail(err, "output parser: out of memory");
    if (flags & G4_PARSE_START_IN_REASONING) {
        p->state = ST_REASONING;
        p->label_pending = 0; /* the prompt already carried "thought\n" */
    }
    *out = p;
    return 0;
}

void g4_output_parser_free(g4_output_parser *p) {
    if (!p) return;
    g4_strbuf_free(&p->in);
    g4_strbuf_free(&p->pend);
    g4_strbuf_free(&p->call);
    free(p);
}

int g4_output_parser_feed(g4_output_parser *p, const char *text, size_t len, g4_parse_events *out, g4_error *err) {
    if (p->state == ST_DONE) return 0;
    if (g4_strbuf_append(&p->in, text, len)) return g4_fail(err, "output parser: out of memory");
    process(p, out, 0);
    return p->oom ? g4_fail(err, "output parser: out of memory") : 0;
}

int g4_output_parser_finish(g4_output_parser *p, g4_parse_events *out, g4_error *err) {
    if (p->state != ST_DONE) {
        process(p, out, 1);
        if (p->state == ST_CALL) end_call(p, out, 0);
        else if (p->state != ST_DONE) flush_pend(p, out, 1);
        p->state = ST_DONE;
    }
    return p->oom ? g4_fail(err, "output parser: out of memory") : 0;
}

int g4_output_parser_done(const g4_output_parser *p) { return p->done; }
int g4_output_parser_n_calls(const g4_output_parser *p) { return p->n_calls; }
int g4_output_parser_malformed(const g4_output_parser *p) { return p->malformed; }
