/* fuzz_regex.c - fuzz target: a regular expression through g4_regex_compile (csrc/grammar/regex.c),
 * compiled into a pushdown automaton (csrc/grammar/grammar.c) under small limits; what compiles is
 * then matched against the input's own bytes (fuzz_grammar.h).
 * Checks: no crash or sanitizer report, and a refusal always says why. */
#include "fuzz_grammar.h"
#include "fuzz_target.h"
#include "grammar/gbnf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    g4_grammar_limits lim = g4_fuzz_grammar_limits();
    g4_grammar *g = NULL;
    g4_error err = {{0}};
    int rc = g4_regex_compile((const char *)data, size, &lim, &g, &err);
    return g4_fuzz_grammar_match(rc, g, &err, data, size);
}
