/* grammar_cli.c - a debugging tool: compile a JSON schema (-s) or regex (-r) and match texts.
 * Prints "accept" / "reject" per text and the automaton size. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grammar/charset.h"
#include "grammar/json_schema.h"
#include "grammar/matcher.h"
#include "grammar/regex.h"

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s -s SCHEMA|-r REGEX TEXT...\n", argv[0]);
        return 2;
    }
    g4_error err = {{0}};
    g4_grammar *g = NULL;
    if (!strcmp(argv[1], "-s")) {
        if (g4_json_schema_compile(argv[2], strlen(argv[2]), NULL, NULL, &g, &err)) {
            printf("refused: %s\n", err.msg);
            return 1;
        }
    } else {
        g = g4_grammar_new(NULL);
        int32_t r = g4_grammar_rule_new(g, "root");
        g4_grammar_rule_set(g, r, g4_regex_gx(g, argv[2], strlen(argv[2]), G4_ENC_UTF8, 0));
        if (g4_grammar_compile(g, r, &err)) {
            printf("refused: %s\n", err.msg);
            g4_grammar_free(g);
            return 1;
        }
    }
    const g4_pda *p = g4_grammar_pda(g);
    printf("states %d classes %d\n", p->n_states, p->n_classes);
    for (int i = 3; i < argc; i++) {
        g4_matcher *m = g4_matcher_new(g);
        int ok = g4_matcher_advance(m, argv[i], strlen(argv[i])) == 0 && g4_matcher_accepting(m);
        printf("%s %s\n", ok ? "accept" : "reject", argv[i]);
        g4_matcher_free(m);
    }
    g4_grammar_free(g);
    return 0;
}
