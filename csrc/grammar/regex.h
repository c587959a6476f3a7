/* regex.h - regular expressions (the JSON Schema `pattern` / vLLM guided_regex subset) as grammar
 * expressions. The supported syntax and what is refused are listed in regex.c's header. */
#ifndef G4_GRAMMAR_REGEX_H
#define G4_GRAMMAR_REGEX_H

#include <stddef.h>

#include "grammar/grammar.h"

/* The language of re[0..len) with every character in encoding enc (G4_ENC_UTF8 or G4_ENC_JSON,
 * charset.h). search = 1: JSON Schema semantics (the pattern may match anywhere unless anchored
 * with ^ / $); 0: the whole text must match. -1 on error, with the grammar's error naming the
 * construct (g4_grammar_error). */
g4_gx g4_regex_gx(g4_grammar *g, const char *re, size_t len, int enc, int search);

#endif
