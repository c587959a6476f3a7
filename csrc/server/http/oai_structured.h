/* oai_structured.h - the structured-output fields of an OpenAI request body: OpenAI's
 * `response_format` (json_object, json_schema), vLLM's `structured_outputs` {json, regex, choice,
 * grammar, json_object} and its older `guided_json` / `guided_regex` / `guided_choice` /
 * `guided_grammar`, read into one constraint description (server/structured.h). More than one
 * constraint in a request is refused (400); so is every option that would change the constraint
 * and is not built (whitespace patterns, structural tags): never silently ignored.
 * Not here: compiling (server/structured.c), the engine hook (generate.c). */
#ifndef G4_SERVER_HTTP_OAI_STRUCTURED_H
#define G4_SERVER_HTTP_OAI_STRUCTURED_H

#include <stdbool.h>

#include <cjson/cJSON.h>

#include "server/structured/structured.h"

struct g4_http_error;

typedef struct g4_oai_structured {
    bool set;              /* a constraint was asked for */
    g4_so_spec spec;       /* spec.text points into owned */
    char *owned;           /* malloc'ed compact JSON (schema, choices) or a copy of the text */
    char param[64];        /* the field it came from, for errors */
} g4_oai_structured;

/* Reads the fields of body o into *s (zeroed first). 0, or -1 with e filled (400). */
int g4_oai_structured_parse(const cJSON *o, g4_oai_structured *s, struct g4_http_error *e);
void g4_oai_structured_free(g4_oai_structured *s);

/* tool_choice "required" (named NULL: a call of any tool) or a named function: one Gemma 4 tool
 * call whose arguments follow the tool's parameter schema, as the constraint of s (a second
 * constraint in the request → 400). tools: the request's validated OpenAI tools array. 0, or -1
 * with e filled (400 naming tool_choice). */
int g4_oai_structured_tool_choice(g4_oai_structured *s, const cJSON *tools, const char *named, struct g4_http_error *e);

/* The compiled constraint of s from cache (compiled now on a miss), a new reference in *out.
 * 0, or -1 with e filled: 400 naming s's field with the compiler's message (the refused keyword),
 * 500 without a cache. */
int g4_oai_structured_compile(g4_so_cache *cache, const g4_oai_structured *s, g4_so_grammar **out,
                              struct g4_http_error *e);

#endif
