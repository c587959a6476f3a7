/* gbnf.h - a small EBNF grammar language (llama.cpp's GBNF subset), regexes and choices as
 * whole-output constraints.
 *
 * Grammar text: rules `name ::= alternatives`, one after another (a rule ends where the next
 * `name ::=` starts); the start rule is `root`. Elements: "literal" (escapes \n \r \t \\ \" \xHH
 * \uHHHH \UHHHHHHHH), character classes [a-z0-9_] / [^"\\] over Unicode code points (UTF-8), `.`
 * (any character), rule names, ( ... ) groups, postfix * + ? {m} {m,} {m,n}, `|`, # comments.
 * Refused with the line: undefined rules, left recursion (grammar.c), unknown syntax.
 * Not here: JSON Schema (json_schema.h). */
#ifndef G4_GRAMMAR_GBNF_H
#define G4_GRAMMAR_GBNF_H

#include <stddef.h>

#include "grammar/grammar.h"

/* Each compiles a new grammar into *out (free with g4_grammar_free). NULL limits = defaults.
 * 0, or -1 with err naming the problem. */
int g4_gbnf_compile(const char *text, size_t len, const g4_grammar_limits *lim, g4_grammar **out, g4_error *err);
/* The whole output matches the regex (regex.h's subset, anchors optional). */
int g4_regex_compile(const char *re, size_t len, const g4_grammar_limits *lim, g4_grammar **out, g4_error *err);
/* The whole output is exactly one of the n strings (n >= 1). */
int g4_choice_compile(const char *const *choices, int n, const g4_grammar_limits *lim, g4_grammar **out, g4_error *err);

#endif
