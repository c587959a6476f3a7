/* sequence.h — one request inside the engine: its tokens (prompt + output), how many have KV
 * in the cache, its block-table slot and prefix-cache keys, and its per-request state (sampling,
 * stop rules, detokenizer, event callback).
 * Owned by the engine thread from the moment the loop takes it off the submit queue.
 * Not here: scheduling decisions (scheduler.c), event delivery (engine.c). */
#ifndef G4_ENGINE_SEQUENCE_H
#define G4_ENGINE_SEQUENCE_H

#include <stdbool.h>
#include <stdint.h>

#include "base/error.h"
#include "engine/engine.h"
#include "engine/stop.h"

typedef enum { G4_SEQ_NEW = 0, G4_SEQ_WAITING, G4_SEQ_RUNNING } g4_seq_state;

typedef struct g4_seq {
    uint64_t id;
    int priority;            /* lower first */
    uint64_t arrival;        /* submit order; FCFS within a priority */
    uint64_t client;         /* who sent it (g4_request_params.client): fair admission */
    int client_ix;           /* its entry in the scheduler's client table while queued or running */
    int32_t *tokens;         /* [cap] prompt then output */
    int n_prompt, len, cap;  /* cap = n_prompt + max_tokens */
    int n_computed;          /* tokens whose KV is in the cache (0 again after preemption) */
    int chunk;               /* tokens scheduled in the current step */
    /* speculative decoding (docs/engine.md): a decoding sequence's proposals for the next step
     * sit at tokens[len, len + n_draft) (len + n_draft < cap); 0 outside a step that verifies */
    int n_draft;
    float spec_hits, spec_tries; /* decayed accepted / verified proposal tokens: its acceptance estimate */
    int spec_drafted, spec_accepted; /* tokens proposed and accepted over the request (last event) */
    int slot;                /* block-table row while running, −1 otherwise */
    uint64_t *keys;          /* [cap / B] prefix-cache keys of the full blocks */
    int n_keys, n_registered;
    g4_seq_state state;
    int heap_idx;            /* position in the waiting heap */
    uint64_t mark;           /* scheduler step that last scheduled it */
    int cached_tokens;       /* prefix-cache hit of the first admission (usage) */
    double t_submit;         /* monotonic seconds at submit */
    double t_scheduled;      /* at the start of its first step, 0 before */
    bool admitted_once;
    bool cancelled;
    /* per-request behaviour */
    g4_sampling sampling;
    g4_logit_bias *logit_bias;   /* [n_logit_bias], NULL when none */
    int n_logit_bias;
    int32_t *allowed_ids;        /* [n_allowed_ids], NULL = every token */
    int n_allowed_ids;
    int32_t *logprob_ids;        /* [n_logprob_ids] reported in place of the top logprobs (engine.h), */
    float *logprob_id_values;    /* [n_logprob_ids] their logprobs at the latest sampled token (the */
    int n_logprob_ids;           /* event points here); NULL when none */
    const g4_constraint_iface *constraint_fn; /* owned constraint, NULL = none */
    void *constraint;
    bool want_plp;               /* prompt logprobs asked */
    int plp_top;
    int plp_next;                /* the next prompt position to report (1 .. n_prompt − 1) */
    uint64_t seed;           /* the request's seed, or one drawn by the engine */
    g4_stop stop;
    void *detok;             /* detokenizer state, NULL without one */
    unsigned detok_flags;    /* G4_DETOK_* it is opened with */
    g4_event_fn on_event;
    void *user;
    struct g4_seq_mm *mm;    /* the prompt's images (engine/mm.h), NULL for a text prompt */
} g4_seq;

/* Copies the request (prompt, stop rules) and takes its constraint (freed with it, also when
 * creation fails). eos: the model's stop ids. */
g4_seq *g4_seq_create(const g4_request_params *p, int block_size, const int32_t *eos, int n_eos, g4_error *err);
void g4_seq_free(g4_seq *s);
/* Appends an output token (len < cap) and the key of a block it completes. */
void g4_seq_append(g4_seq *s, int32_t token, int block_size);
static inline int g4_seq_n_output(const g4_seq *s) { return s->len - s->n_prompt; }
/* Prompt positions still to report (prompt logprobs). */
static inline bool g4_seq_plp_pending(const g4_seq *s) { return s->want_plp && s->plp_next < s->n_prompt; }
/* Its next token may not be a stop id yet (vLLM's min_tokens: stop ids are masked until the
 * output has min_tokens tokens, so the first min_tokens tokens are never one). */
static inline bool g4_seq_min_tokens_pending(const g4_seq *s) {
    return s->stop.n_ids > 0 && g4_seq_n_output(s) < s->stop.min_tokens;
}
/* Has logit processors (bias, allowed ids, a constraint, the min_tokens mask) or logprob ids:
 * sampled from host logits. */
static inline bool g4_seq_host_sampled(const g4_seq *s) {
    return s->n_logit_bias > 0 || s->n_allowed_ids > 0 || s->constraint || s->n_logprob_ids > 0 ||
           g4_seq_min_tokens_pending(s);
}

#endif
