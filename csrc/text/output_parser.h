/* output_parser.h - splits generated Gemma 4 text into content, reasoning and tool calls.
 *
 * An incremental state machine over the detokenized output (special tokens rendered as text,
 * i.e. a detokenizer without G4_DECODE_SKIP_SPECIAL):
 *
 *   CONTENT --<|channel>--> REASONING --<channel|>--> CONTENT
 *   CONTENT | REASONING --<|tool_call>--> CALL --<tool_call|>--> CONTENT
 *   any --<turn|> | <|tool_response> | <eos> | <|turn>--> DONE (rest ignored)
 *
 * Reasoning drops the channel label "thought\n" and trailing whitespace; content right after
 * <channel|> drops leading whitespace. A call body "call:NAME{...}" becomes a TOOL_CALL event
 * with JSON arguments (gemma_args.h). A call that does not parse, or is cut off by a stop
 * marker / the end of output, comes back verbatim as CONTENT with `malformed` set — never an
 * error. Stray <channel|> / <tool_call|> in content are dropped as noise.
 *
 * Streaming: feed any split of the text; events carry only what is certain. Text that could
 * still be the start of a marker ("<|tool_c") or an incomplete UTF-8 character is held back,
 * so every CONTENT / REASONING delta is complete UTF-8. Concatenating the deltas of a stream
 * gives the same result whatever the split (tests/text/test_output_parser.c checks every byte
 * position). Tool calls are emitted whole, when <tool_call|> arrives.
 *
 * Limitation: markers are recognised by text, so a model that spells "<|channel>" out of
 * ordinary tokens is parsed as if it had produced the control token.
 * Threading: one parser per request, used by one thread at a time. */
#ifndef G4_TEXT_OUTPUT_PARSER_H
#define G4_TEXT_OUTPUT_PARSER_H

#include <stddef.h>

#include "base/error.h"
#include "base/strbuf.h"

typedef enum g4_parse_kind {
    G4_PARSE_CONTENT,    /* text: content delta */
    G4_PARSE_REASONING,  /* text: reasoning delta */
    G4_PARSE_TOOL_CALL,  /* name + arguments (JSON object text) + index */
} g4_parse_kind;

typedef struct g4_parse_event {
    g4_parse_kind kind;
    char *text;          /* CONTENT / REASONING delta, or TOOL_CALL arguments JSON; owned */
    size_t len;
    char *name;          /* TOOL_CALL: function name (owned); NULL otherwise */
    int index;           /* TOOL_CALL: 0-based position among this output's calls */
    int malformed;       /* CONTENT: holds the raw text of a call that could not be parsed */
} g4_parse_event;

/* Events produced by one feed/finish call, in output order; consecutive text deltas of the
 * same kind are merged. Zero-initialise; g4_parse_events_clear empties, _free releases. */
typedef struct g4_parse_events {
    g4_parse_event *ev;
    size_t n, cap;
} g4_parse_events;

void g4_parse_events_clear(g4_parse_events *e);
void g4_parse_events_free(g4_parse_events *e);

typedef struct g4_output_parser g4_output_parser;

enum {
    /* The prompt already opened the thought channel (it ends in "<|channel>thought\n", as the
     * template writes after a tool response with thinking on): output starts as reasoning. */
    G4_PARSE_START_IN_REASONING = 1u << 0,
};

int g4_output_parser_new(unsigned flags, g4_output_parser **out, g4_error *err);
void g4_output_parser_free(g4_output_parser *p);

/* Consumes text[0..len) and appends the events it makes certain to out. 0, or -1 (OOM). */
int g4_output_parser_feed(g4_output_parser *p, const char *text, size_t len, g4_parse_events *out, g4_error *err);

/* End of generation: flushes held text; an unterminated call is parsed if complete, else
 * returned as malformed content. 0, or -1 (OOM). */
int g4_output_parser_finish(g4_output_parser *p, g4_parse_events *out, g4_error *err);

int g4_output_parser_done(const g4_output_parser *p);      /* a stop marker was seen */
int g4_output_parser_n_calls(const g4_output_parser *p);   /* tool calls emitted so far */
int g4_output_parser_malformed(const g4_output_parser *p); /* a call came back as content */

#endif
