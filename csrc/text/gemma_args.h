/* gemma_args.h - Gemma's tool-call argument syntax -> JSON.
 *
 * The model writes calls as call:NAME{key:value,...}: bare keys (or <|"|>-wrapped keys),
 * strings between <|"|> delimiters taken verbatim (no escapes exist), nested {} and [],
 * bare words true/false, null/none/nil, numbers; any other bare text is a string.
 * Not here: finding the call in a token stream (output_parser.c). */
#ifndef G4_TEXT_GEMMA_ARGS_H
#define G4_TEXT_GEMMA_ARGS_H

#include <stddef.h>

#include "base/strbuf.h"

/* Parses a whole call body "call:NAME{...}" (surrounding whitespace allowed). On success
 * appends NAME to name and the arguments as a compact JSON object to args_json and returns
 * 0; returns -1 when the text is not a well-formed call (nothing is appended then). */
int g4_gemma_parse_call(const char *s, size_t n, g4_strbuf *name, g4_strbuf *args_json);

/* Parses one Gemma value (object, array, string, bare word) filling all of s[0..n) (whitespace
 * around allowed) and appends it as compact JSON. 0 or -1 (malformed). */
int g4_gemma_value_to_json(const char *s, size_t n, g4_strbuf *json);

#endif
