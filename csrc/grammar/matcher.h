/* matcher.h - the byte-level matcher: the incremental state of one request in a compiled grammar.
 *
 * The state is a set of heads; a head is (DFA state, return frame) and frames form a tree of
 * return continuations shared between heads (a graph-structured stack), so ambiguity costs one
 * head per live alternative, not one copy of the stack. Reading a byte first closes the heads
 * (calls push a frame, ends of rules pop to the frame's state), then follows the byte's class.
 * Frames are append-only; the low-level step is also what token_mask.c walks the token trie with
 * (it truncates the frame arena back to a mark afterwards). Rollback is not supported.
 * Not here: token masks (token_mask.h). Threading: one matcher per request, one thread at a time. */
#ifndef G4_GRAMMAR_MATCHER_H
#define G4_GRAMMAR_MATCHER_H

#include <stddef.h>
#include <stdint.h>

#include "grammar/grammar.h"

typedef struct g4_matcher g4_matcher;

/* A matcher at the start of g's automaton. g must be compiled and outlive the matcher. NULL on OOM. */
g4_matcher *g4_matcher_new(const g4_grammar *g);
void g4_matcher_free(g4_matcher *m);

/* Most live heads (and 16x that many closure entries) one step may hold. A highly ambiguous
 * grammar (e.g. x ::= "(" x | "(" | "(" x x) grows its heads exponentially with the input; past
 * this cap the step fails (as on OOM) instead of taking time and memory without bound, and the
 * request using it ends with an error (tests/grammar/test_grammar_units.c). */
#define G4_MATCHER_MAX_HEADS 4096

/* Reads n bytes. 0 when all were accepted; -1 when some byte was not (the state is then as it was
 * before the call), on OOM, or past G4_MATCHER_MAX_HEADS. */
int g4_matcher_advance(g4_matcher *m, const void *bytes, size_t n);

/* 1 when the bytes read so far form a complete string of the grammar (EOS may be sampled). */
int g4_matcher_accepting(g4_matcher *m);

/* Number of live heads (diagnostics, tests). 0 never happens after a successful advance. */
int g4_matcher_n_heads(const g4_matcher *m);

/* ---- low level (token_mask.c) ---- */
typedef struct g4_head {
    int32_t state, frame;
} g4_head; /* frame -1 = the root */

typedef struct g4_frames {
    int32_t *state, *parent;
    int32_t n, cap;
} g4_frames;

/* Scratch for one step: the closure worklist and a dedup table. Zero-initialise; free with
 * g4_step_scratch_free. */
typedef struct g4_step_scratch {
    g4_head *wl;
    int32_t n_wl, cap_wl;
    uint64_t *keys;
    int32_t *vals;
    int32_t cap_tab; /* power of two */
    int32_t *used;
    int32_t n_used, cap_used;
} g4_step_scratch;
void g4_step_scratch_free(g4_step_scratch *sc);

/* Closes in[0..n_in) then reads one byte of class cls; the new heads go to *out (grown as needed,
 * capacity in *cap_out). Returns the number of new heads (0 = byte rejected), -1 on OOM. */
int32_t g4_pda_step(const g4_pda *p, g4_frames *fr, g4_step_scratch *sc, const g4_head *in, int32_t n_in, int32_t cls,
                    g4_head **out, int32_t *cap_out);
/* 1 when the closure of in[0..n_in) can end the whole string; -1 on OOM. */
int g4_pda_can_end(const g4_pda *p, g4_frames *fr, g4_step_scratch *sc, const g4_head *in, int32_t n_in);

/* The matcher's current heads and frames (token_mask.c walks from them). */
const g4_head *g4_matcher_heads(const g4_matcher *m, int32_t *n);
g4_frames *g4_matcher_frames(g4_matcher *m);
g4_step_scratch *g4_matcher_scratch(g4_matcher *m);
const g4_pda *g4_matcher_pda(const g4_matcher *m);

#endif
