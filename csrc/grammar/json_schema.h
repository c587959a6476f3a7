/* json_schema.h - JSON Schema (draft 2020-12 and the common forms of drafts 4-7) -> grammar.
 *
 * The grammar generates / accepts JSON text that validates against the schema, in one canonical
 * layout: compact (no whitespace; opts.ws_max > 0 allows up to that many of [ \t\n] around every
 * ':' ',' and bracket), object properties in the order of `properties` then any additional ones,
 * strings in the canonical escape form (charset.h), integers without exponent (an integer may be
 * written with a zero fraction, "1.0"). Every keyword it cannot honour exactly is refused with an
 * error naming the keyword; nothing is silently ignored (annotations such as title are skipped).
 * The supported keywords are listed in docs/structured-output.md.
 * Not here: matching (matcher.h), the HTTP wiring. */
#ifndef G4_GRAMMAR_JSON_SCHEMA_H
#define G4_GRAMMAR_JSON_SCHEMA_H

#include <stddef.h>

#include "grammar/grammar.h"

typedef struct g4_json_schema_opts {
    int ws_max;         /* 0: compact (default); n > 0: up to n whitespace bytes between tokens */
    int oneof_as_anyof; /* 0 (default): oneOf only when its branches are provably disjoint,
                           otherwise refused; 1: overlapping branches compiled as anyOf */
    int max_repeat;     /* largest minItems/maxItems/minLength/maxLength honoured (default 4096) */
    int gemma_args;     /* 0: JSON text; 1: Gemma 4's tool-call argument syntax (text/gemma_args.h):
                           strings between <|"|> delimiters, verbatim and without '<', property
                           names that are words written bare, the rest as in JSON */
} g4_json_schema_opts;

/* Compiles the schema text into a new grammar (*out, free with g4_grammar_free). NULL opts or
 * limits = defaults. 0, or -1 with err naming the refused keyword / the exceeded limit. */
int g4_json_schema_compile(const char *schema, size_t len, const g4_json_schema_opts *opts,
                           const g4_grammar_limits *lim, g4_grammar **out, g4_error *err);

/* A forced Gemma 4 tool call: "<|tool_call>call:NAME{ARGS}<tool_call|>" for one of the tools
 * (tools: a JSON array of {"name": "...", "parameters": schema or absent}), ARGS following that
 * tool's parameter schema in the Gemma argument syntax (opts->gemma_args is implied). The markers
 * are special tokens: mask it over a trie that holds <|tool_call>, <tool_call|> and <|"|>
 * (g4_token_trie_with_specials). 0, or -1 with err naming the tool and the refused keyword. */
int g4_gemma_tool_call_compile(const char *tools, size_t len, const g4_json_schema_opts *opts,
                               const g4_grammar_limits *lim, g4_grammar **out, g4_error *err);

#endif
