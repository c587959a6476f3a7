/* spec.h — the engine's speculative-decoding policy (docs/engine.md, "Speculative decoding"):
 * which decoding sequences get proposals before a step and how many (a per-sequence length that
 * follows its acceptance rate, none when the step has too many running sequences), and the
 * acceptance bookkeeping after it (the engine's counters, the request's own).
 * Not here: the proposer (spec_ngram.c), scheduling the proposals (scheduler.c), verifying
 * them (output.c: g4_engine_emit_verified). Engine thread only. */
#ifndef G4_ENGINE_SPEC_H
#define G4_ENGINE_SPEC_H

#include "base/error.h"
#include "engine/engine.h"
#include "engine/scheduler.h"
#include "engine/sequence.h"

/* The default switch-off rule (disable_by_batch_size 0): speculate while
 * running × (1 + num_speculative_tokens) ≤ G4_SPEC_STEP_TOKENS. */
#define G4_SPEC_STEP_TOKENS 256

/* Refuses a configuration the engine cannot run: ranges; the draft method without a draft
 * executor, or one with another vocabulary. */
int g4_spec_check(const g4_spec_config *c, const g4_executor *draft, int vocab, g4_error *err);

/* Running sequences at or above which a step does not speculate. */
int g4_spec_batch_limit(const g4_spec_config *c);

/* Proposals a sequence asks for next: 1 + ⌊α / (1 − α)⌋ for its acceptance estimate α, at most
 * k_max. */
int g4_spec_seq_len(const g4_seq *q, int k_max);

/* Before a step: sets n_draft of every running sequence — proposals (at tokens[len, …)) for those
 * that decode, 0 for the others and for all when the step should not speculate. The draft method
 * only asks for a number (its tokens come after scheduling: spec_draft.h). */
void g4_spec_propose(const g4_spec_config *c, g4_scheduler *s);

/* After a sequence's verification: n_draft proposed, n_accepted of them accepted. Updates the
 * engine's counters and q's acceptance estimate (q NULL: it has ended). The request's own totals
 * are kept while emitting, so that its last event carries them. */
void g4_spec_record(g4_engine_stats *st, g4_seq *q, int n_draft, int n_accepted);

#endif
