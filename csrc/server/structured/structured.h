/* structured.h - structured output for the front-ends: compiled constraints cached by their text,
 * and the per-request constraint the engine applies (engine.h's g4_constraint_iface).
 *
 * A front-end describes a constraint (g4_so_spec: a JSON schema, a regex, a list of choices or a
 * GBNF grammar), gets the compiled grammar from a g4_so_cache on its own thread (compiled on a
 * miss: compile and mask-cache preparation never run on the engine thread), then makes one
 * constraint per engine request (one per choice with n > 1: each has its own matcher) and hands it
 * to g4_engine_submit. The cache is bounded (least recently used entries leave first), shared by
 * every request and thread-safe; entries are reference counted, so an evicted grammar lives on
 * while requests use it. The token masks of a grammar are computed on the engine thread only.
 * Reasoning: a constraint made with `thought` waits for the thought channel to end (<channel|>);
 * when thinking is on but the prompt did not open the channel, the first token may open it.
 * Not here: the grammar engine (csrc/grammar/), reading request fields (server/http/oai_structured.c). */
#ifndef G4_SERVER_STRUCTURED_H
#define G4_SERVER_STRUCTURED_H

#include <stdbool.h>
#include <stddef.h>

#include "base/error.h"
#include "engine/engine.h"
#include "text/tokenizer.h"

typedef enum {
    G4_SO_JSON_SCHEMA = 0, /* text: the schema as JSON */
    G4_SO_REGEX,           /* text: the regex; the whole output must match */
    G4_SO_CHOICE,          /* text: a JSON array of strings; the output is exactly one of them */
    G4_SO_GRAMMAR,         /* text: a GBNF grammar (grammar/gbnf.h), start rule `root` */
    G4_SO_TOOL_CALL,       /* text: a JSON array of {"name", "parameters"}: one Gemma 4 tool call
                              of one of them, arguments following its parameter schema */
} g4_so_kind;

typedef struct g4_so_spec {
    g4_so_kind kind;
    const char *text;
    size_t len;
} g4_so_spec;

typedef struct g4_so_cache g4_so_cache;
typedef struct g4_so_grammar g4_so_grammar; /* one compiled constraint, reference counted */

/* A cache of at most capacity compiled constraints over tok's vocabulary (tok outlives it; its
 * token trie is built on the first compile). NULL on OOM. */
g4_so_cache *g4_so_cache_new(const g4_tokenizer *tok, int capacity);
/* Drops the owner's reference; the memory goes with the last grammar in use. */
void g4_so_cache_free(g4_so_cache *c);

/* The compiled constraint for spec (a new reference), compiled now on a miss. 0, or -1 with err
 * (the compiler's message naming the refused keyword or construct, or OOM). */
int g4_so_cache_get(g4_so_cache *c, const g4_so_spec *spec, g4_so_grammar **out, g4_error *err);
void g4_so_grammar_unref(g4_so_grammar *g);

/* Cache statistics (tests, metrics): entries held, hits, compiles. */
typedef struct g4_so_cache_stats {
    int entries;
    long long hits, compiles;
} g4_so_cache_stats;
g4_so_cache_stats g4_so_cache_stats_get(g4_so_cache *c);

/* The thought channel: thinking on (the first output token may open it), or the prompt already
 * opened it (the constraint starts after its end). */
typedef struct g4_so_thought {
    bool enabled;
    bool started;
} g4_so_thought;

/* A new per-request constraint on g (takes its own reference to g) for engine.h's
 * g4_request_params.constraint / constraint_fn. NULL on OOM. */
void *g4_so_constraint_new(g4_so_grammar *g, const g4_so_thought *thought);
extern const g4_constraint_iface g4_so_constraint_fn;

#endif
