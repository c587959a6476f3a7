/* spec_draft.h — the draft-model proposer of speculative decoding: a second, smaller model with
 * the target's tokenizer proposes each speculating sequence's next tokens greedily.
 *
 * The draft shares the engine's block tables and block accounting (so it must have the target's
 * block size, window and pool sizes: g4_spec_draft_check), with its own KV bytes, and computes
 * exactly the positions the target computes: every step, before the target, it runs the step's
 * tokens except the proposals (pass 0, a row at each speculating sequence's last token), then
 * one single-token pass per proposal (pass i feeds proposal i − 1 and, while more are wanted,
 * gives proposal i). The proposals are then written into the sequence and into the target's
 * step. Its KV therefore holds the same positions as the target's, rejected proposals included
 * (overwritten later like the target's). Correctness never depends on the draft's KV, only
 * acceptance does.
 * Not here: which sequences speculate and how many tokens (spec.c), verification (output.c).
 * Engine thread only. */
#ifndef G4_ENGINE_SPEC_DRAFT_H
#define G4_ENGINE_SPEC_DRAFT_H

#include "base/error.h"
#include "engine/engine.h"
#include "engine/scheduler.h"

typedef struct g4_spec_draft {
    g4_executor ex;
    int cap;                 /* tokens / rows per pass (the step budget) */
    int32_t *ids, *pos, *seq, *rows; /* [cap] a pass's step */
    int32_t *row_batch;      /* [cap] the batch entry of each row */
    int32_t *tokens;         /* [cap] greedy tokens of a pass's rows */
    int32_t *first;          /* [cap] where each batch entry's proposals sit in the step */
    float *logits;           /* [max_running, V] host rows when the executor cannot sample */
    int logit_rows;
    g4_sample_params *params; /* greedy rows for step_sample */
} g4_spec_draft;

int g4_spec_draft_init(g4_spec_draft *d, const g4_executor *ex, int step_budget, int max_running, g4_error *err);
void g4_spec_draft_free(g4_spec_draft *d);

/* After g4_sched_next: runs the draft over the step (see above) and fills every scheduled
 * sequence's n_draft proposals (q->tokens[len, len + n_draft) and the step's token ids). */
int g4_spec_draft_run(g4_spec_draft *d, g4_scheduler *s, g4_error *err);

/* Whether draft can serve as target's draft model: same vocabulary, block size, window, pool
 * sizes, sequence slots and block-table width (what sharing the block tables needs). */
int g4_spec_draft_check(const g4_model *target, const g4_model *draft, g4_error *err);

#endif
