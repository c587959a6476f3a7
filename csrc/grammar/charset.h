/* charset.h - sets of Unicode code points and their encodings as grammar expressions.
 *
 * A set is a sorted list of disjoint inclusive ranges. Encoded as raw UTF-8 (regex and choice
 * output) or as one character inside a JSON string in the canonical form a compact serialiser
 * writes: raw UTF-8 except '"' -> \", '\' -> \\, \b \f \n \r \t, other controls -> \u00xx (lower-
 * case hex). Other escapes (\/, \uXXXX of printable characters) are never produced or accepted.
 * Surrogates (U+D800..U+DFFF) are never members. Not here: parsing (regex.c). */
#ifndef G4_GRAMMAR_CHARSET_H
#define G4_GRAMMAR_CHARSET_H

#include <stdint.h>

#include "grammar/grammar.h"

typedef struct g4_cpset {
    uint32_t (*r)[2]; /* [n][lo, hi] */
    int32_t n, cap;
} g4_cpset;

#define G4_CP_MAX 0x10FFFFu

int g4_cpset_add(g4_cpset *s, uint32_t lo, uint32_t hi); /* 0, -1 on OOM; normalises lazily */
int g4_cpset_add_set(g4_cpset *s, const g4_cpset *o);
void g4_cpset_normalize(g4_cpset *s);                    /* sort, merge, drop surrogates */
int g4_cpset_negate(g4_cpset *s);                        /* complement in [0, U+10FFFF] */
int g4_cpset_contains(const g4_cpset *s, uint32_t cp);   /* normalised sets only */
void g4_cpset_free(g4_cpset *s);

enum { G4_ENC_UTF8 = 0, G4_ENC_JSON = 1 };

/* One character of s in the given encoding (s is normalised first). */
g4_gx g4_cpset_gx(g4_grammar *g, g4_cpset *s, int enc);
/* Any one character (all of Unicode) in the encoding. */
g4_gx g4_any_char_gx(g4_grammar *g, int enc);
/* The canonical JSON encoding of the UTF-8 string s[0..n) (without quotes) as a literal. */
g4_gx g4_json_lit_gx(g4_grammar *g, const char *s, size_t n);
/* Appends the canonical JSON escape of one code point to out (at most 6 bytes + NUL). */
int g4_json_escape_cp(uint32_t cp, char *out);

#endif
