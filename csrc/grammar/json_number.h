/* json_number.h - JSON numbers within bounds as grammar expressions, exact on the written digits.
 * Not here: reading the bounds from a schema (json_schema.c). */
#ifndef G4_GRAMMAR_JSON_NUMBER_H
#define G4_GRAMMAR_JSON_NUMBER_H

#include "grammar/grammar.h"

typedef struct g4_num_bound {
    int have;  /* 0: no bound on this side */
    int incl;  /* 1: the bound itself is allowed */
    double v;  /* |v| < 1e17 */
} g4_num_bound;

/* integer = 1: canonical integers (optionally with the zero fraction ".0"); 0: numbers. Without
 * bounds a number may have an exponent; with bounds it is written without one. Empty range:
 * the empty language. -1 on failure (the grammar's sticky error). */
g4_gx g4_json_number_gx(g4_grammar *g, int integer, g4_num_bound lo, g4_num_bound hi);

#endif
