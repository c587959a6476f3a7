/* fuzz_gbnf.c - fuzz target: a GBNF grammar through g4_gbnf_compile (csrc/grammar/gbnf.c),
 * compiled into a pushdown automaton (csrc/grammar/grammar.c) under small limits (the server's
 * defaults allow far bigger grammars; a fuzzer wants many small compiles per second); what
 * compiles is then matched against the input's own bytes (csrc/grammar/matcher.c).
 * Checks: no crash or sanitizer report, and a refusal always says why. */
#include <stdlib.h>

#include "fuzz_target.h"
#include "grammar/gbnf.h"
#include "grammar/matcher.h"

#define G4_FUZZ_MAX_HEADS 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    g4_grammar_limits lim = {20000, 20000, 2000, 500};
    g4_grammar *g = NULL;
    g4_error err = {{0}};
    int rc = g4_gbnf_compile((const char *)data, size, &lim, &g, &err);
    if (rc != 0) {
        if (!err.msg[0]) abort();
        return 0;
    }
    g4_matcher *m = g4_matcher_new(g);
    if (m) {
        /* Known: on a highly ambiguous grammar the heads grow exponentially with the input
         * (fixed: the matcher fails past G4_MATCHER_MAX_HEADS, test_grammar_units); stop there too. */
        for (size_t i = 0;
             i < size && g4_matcher_n_heads(m) <= G4_FUZZ_MAX_HEADS && g4_matcher_advance(m, data + i, 1) == 0; i++)
            (void)g4_matcher_accepting(m);
        g4_matcher_free(m);
    }
    g4_grammar_free(g);
    return 0;
}
