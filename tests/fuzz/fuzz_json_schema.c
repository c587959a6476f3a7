/* fuzz_json_schema.c - fuzz target: a JSON schema through g4_json_schema_compile (csrc/grammar/json_schema.c),
 * compiled into a pushdown automaton (csrc/grammar/grammar.c) under small limits; what compiles is
 * then matched against the input's own bytes (fuzz_grammar.h).
 * Checks: no crash or sanitizer report, and a refusal always says why. */
#include "fuzz_grammar.h"
#include "fuzz_target.h"
#include "grammar/json_schema.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    g4_grammar_limits lim = g4_fuzz_grammar_limits();
    g4_grammar *g = NULL;
    g4_error err = {{0}};
    g4_json_schema_opts opts = {.ws_max = 0, .oneof_as_anyof = 0, .max_repeat = 256};
    int rc = g4_json_schema_compile((const char *)data, size, &opts, &lim, &g, &err);
    return g4_fuzz_grammar_match(rc, g, &err, data, size);
}
