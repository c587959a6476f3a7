/* beam.h — beam search (vLLM's use_beam_search) as a driver over the engine's public API.
 *
 * The algorithm is vLLM's online beam search (0.33), so a vLLM user gets the same beams
 * (docs/engine.md, "Beam search"). W = width. The search starts with one beam: the prompt.
 * Each step every live beam runs as one engine request of max_tokens 1 whose prompt is the
 * request's prompt plus the beam's tokens (with the prefix cache on, it serves the full blocks),
 * asking for its 2·W most likely next tokens with their logprobs. The step requests are greedy
 * rows: the raw log-softmax, as vLLM's temperature-0 search; vLLM at a temperature > 0 adds the
 * token its step sampled as one more candidate, which g4serve does not. Each (beam, candidate)
 * pair scores beam.cum_logprob + logprob; a candidate that is an end id (the model's eos ids
 * unless ignore_eos, and the request's stop ids, which vLLM's search ignores) completes its beam;
 * the W best of the others (ties: beam order, then candidate rank) are the next step's beams.
 * After stop.max_tokens steps, or when no beam is left, completed and live beams are ranked by
 *     cum_logprob / max(generated, 1)^length_penalty     (generated counts a final end id)
 * (ties: completed first, in completion order) and the W best are the W outputs, best first.
 * Later steps are submitted as continuations (engine.h): a full waiting queue refuses a search
 * only at its start.
 *
 * Output i's events arrive when the search ends, on the engine thread, shaped like those of an
 * engine request: one event per generated token (its text from the engine's detokenizer with the
 * request's detok_flags, its logprob; the final end id is not emitted), then one last event
 * (G4_FINISH_STOP with stop_token = the end id, or G4_FINISH_LENGTH; usage: the prompt's tokens
 * and this output's). Refused with G4_ERR_INVALID, naming the parameter: logprobs (sampling.logprobs,
 * logprob ids, prompt logprobs), stop strings, min_tokens, penalties, logit processors and
 * constraints (a constraint stays the caller's: g4_beam_start never frees it). */
#ifndef G4_ENGINE_BEAM_H
#define G4_ENGINE_BEAM_H

#include "engine/engine.h"

#define G4_BEAM_MAX_WIDTH (G4_MAX_TOP_LOGPROBS / 2) /* 2·W candidates per beam must fit the top logprobs */

typedef struct g4_beam_out {
    g4_event_fn on_event;
    void *user;
} g4_beam_out;

typedef struct g4_beam g4_beam; /* opaque; reference-counted (the caller's and the search's own) */

/* Whether p can run as a beam search of this width: 0, or G4_ERR_INVALID with err naming the
 * parameter (what g4_beam_start checks first, before the engine's own request checks). */
int g4_beam_check(const g4_request_params *p, int width, g4_error *err);

/* Starts the search for p (its prompt, images, stop.max_tokens, stop.ignore_eos, stop.stop_ids,
 * priority, client, detok_flags; p->on_event / p->user are not used) with outs[width]: output i
 * gets its events as above and exactly one last event. Returns the search (release it with
 * g4_beam_release), or NULL with *code (G4_ERR_*) and err; then no event is ever delivered. */
g4_beam *g4_beam_start(g4_engine *e, const g4_request_params *p, int width, float length_penalty,
                       const g4_beam_out *outs, int *code, g4_error *err);

/* Thread-safe: stops the search; unless it has already ended, every output ends with
 * G4_FINISH_ABORT (no tokens). */
void g4_beam_cancel(g4_beam *b);

/* Drops the caller's reference (any thread; the search keeps its own until its outputs are out). */
void g4_beam_release(g4_beam *b);

#endif
