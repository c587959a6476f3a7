/* fuzz_grammar.h - the part the three grammar fuzz targets share (fuzz_gbnf.c, fuzz_regex.c,
 * fuzz_json_schema.c): small compile limits (the server's defaults allow far bigger grammars; a
 * fuzzer wants many small compiles per second), and what happens after the compile: a refusal
 * must say why; what compiles is matched against the input's own bytes (csrc/grammar/matcher.c)
 * until a byte is refused, the matcher's head cap (G4_MATCHER_MAX_HEADS) bounding each step.
 * Not here: the compile itself (each target calls its own compiler).
 * Speed (issue 20's 1M executions per target): the fuzz build compiles the automaton builder and
 * the matcher (csrc/grammar/grammar.c, matcher.c) without libFuzzer's compare tracing, which only
 * saw state numbers there (tests/fuzz/CMakeLists.txt); their edge coverage and every check stay.
 * The limits below are not lowered for speed (at 1,000 states two more seed schemas, sentiment
 * and tree, would only reach the refusal). */
#ifndef G4_FUZZ_GRAMMAR_H
#define G4_FUZZ_GRAMMAR_H

#include <stdint.h>
#include <stdlib.h>

#include "base/error.h"
#include "grammar/grammar.h"
#include "grammar/matcher.h"

static inline g4_grammar_limits g4_fuzz_grammar_limits(void) {
    return (g4_grammar_limits){.max_expr = 20000, .max_nfa = 20000, .max_states = 2000, .max_rules = 500};
}

/* rc and err: the compile's result; g: what it built (freed here). Always returns 0. */
static inline int g4_fuzz_grammar_match(int rc, g4_grammar *g, const g4_error *err, const uint8_t *data, size_t size) {
    if (rc != 0) {
        if (!err->msg[0]) abort(); /* a refusal always says why */
        return 0;
    }
    g4_matcher *m = g4_matcher_new(g);
    if (m) {
        for (size_t i = 0; i < size && g4_matcher_advance(m, data + i, 1) == 0; i++) (void)g4_matcher_accepting(m);
        g4_matcher_free(m);
    }
    g4_grammar_free(g);
    return 0;
}

#endif
