/* grammar.h - a context-free grammar over bytes, built from expressions and compiled into a
 * pushdown automaton (one DFA per rule, rules call each other).
 *
 * Front-ends (json_schema.c, regex.c, gbnf.c, choice in gbnf.c) build expressions with the
 * g4_gx_* functions and declare rules; g4_grammar_compile turns every rule body into a DFA over
 * byte classes whose edges are bytes or calls of other rules, prunes every edge that can no longer
 * lead to a complete string (so a matcher that follows the automaton can always finish), and
 * refuses left recursion and grammars that admit no finite string.
 *
 * Expression handles are plain ints; an invalid handle (-1) propagates through every builder, and
 * the first failure (out of memory, over a limit) is kept in the grammar and reported by compile.
 * Not here: matching (matcher.h), token masks (token_mask.h), the front-ends.
 * Threading: build and compile on one thread; a compiled grammar is immutable and shared. */
#ifndef G4_GRAMMAR_GRAMMAR_H
#define G4_GRAMMAR_GRAMMAR_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

typedef struct g4_grammar g4_grammar;
typedef int32_t g4_gx; /* expression handle; -1 = failed */

/* Compile limits: a grammar over them is refused with a message naming the limit. */
typedef struct g4_grammar_limits {
    int32_t max_expr;   /* expression nodes (default 1,000,000) */
    int32_t max_nfa;    /* NFA states summed over all rules (default 2,000,000) */
    int32_t max_states; /* DFA states summed over all rules (default 200,000) */
    int32_t max_rules;  /* rules (default 100,000) */
} g4_grammar_limits;

g4_grammar_limits g4_grammar_default_limits(void);

g4_grammar *g4_grammar_new(const g4_grammar_limits *lim); /* NULL limits = defaults; NULL = OOM */
void g4_grammar_free(g4_grammar *g);

/* Sticky builder error: the first failure while building (front-ends may set their own). */
int g4_grammar_fail(g4_grammar *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int g4_grammar_failed(const g4_grammar *g);
const char *g4_grammar_error(const g4_grammar *g);

/* Expressions. set: 256 bits, bit b set = byte b allowed. */
g4_gx g4_gx_bytes(g4_grammar *g, const uint8_t set[32]);
g4_gx g4_gx_range(g4_grammar *g, int lo, int hi); /* one byte in [lo, hi] */
g4_gx g4_gx_lit(g4_grammar *g, const char *s, size_t n);
g4_gx g4_gx_str(g4_grammar *g, const char *s); /* NUL-terminated literal */
g4_gx g4_gx_empty(g4_grammar *g);              /* the empty string */
g4_gx g4_gx_never(g4_grammar *g);              /* the empty language */
g4_gx g4_gx_seq(g4_grammar *g, const g4_gx *xs, int n);
g4_gx g4_gx_alt(g4_grammar *g, const g4_gx *xs, int n);
g4_gx g4_gx_seq2(g4_grammar *g, g4_gx a, g4_gx b);
g4_gx g4_gx_seq3(g4_grammar *g, g4_gx a, g4_gx b, g4_gx c);
g4_gx g4_gx_alt2(g4_grammar *g, g4_gx a, g4_gx b);
g4_gx g4_gx_repeat(g4_grammar *g, g4_gx x, int32_t min, int32_t max); /* max -1: unbounded */
g4_gx g4_gx_opt(g4_grammar *g, g4_gx x);
g4_gx g4_gx_star(g4_grammar *g, g4_gx x);
g4_gx g4_gx_ref(g4_grammar *g, int32_t rule); /* a call of rule */

/* Rules: declare (the body may be set later, which is how recursion is written). */
int32_t g4_grammar_rule_new(g4_grammar *g, const char *name); /* -1 on failure */
int g4_grammar_rule_set(g4_grammar *g, int32_t rule, g4_gx body);
int32_t g4_grammar_rule_find(const g4_grammar *g, const char *name); /* -1 when absent */
int32_t g4_grammar_n_rules(const g4_grammar *g);

/* Compiles with start as the whole string's rule. 0, or -1 with err naming the problem (a
 * sticky builder error, an unset rule, left recursion, a limit, no finite string). */
int g4_grammar_compile(g4_grammar *g, int32_t start, g4_error *err);

/* ---- The compiled automaton (read by matcher.c and token_mask.c) ---- */
typedef struct g4_pda_call {
    int32_t callee; /* start state of the called rule */
    int32_t ret;    /* state to continue in after the call returns */
} g4_pda_call;

typedef struct g4_pda {
    int32_t n_states;
    int32_t n_classes;     /* byte equivalence classes */
    uint8_t byte_class[256];
    int32_t *next;         /* [n_states * n_classes], -1 = no edge */
    uint8_t *accepting;    /* [n_states] the state's rule may return here */
    uint8_t *simple;       /* [n_states] not accepting and no calls: one table lookup per byte */
    int32_t *call_off;     /* [n_states + 1] into calls */
    g4_pda_call *calls;
    int32_t start;         /* start state of the start rule */
} g4_pda;

const g4_pda *g4_grammar_pda(const g4_grammar *g); /* NULL before a successful compile */

#endif
