/* runner.h — a minimal sequence runner over g4_model: block tables, block free lists and
 * step packing for a few sequences. Used by the offline generate tool and the golden tests;
 * it is not the serving engine (no scheduling, no prefix cache, no preemption). Sliding-pool
 * blocks are returned as soon as they fall out of every future query's window. */
#ifndef G4_MODEL_RUNNER_H
#define G4_MODEL_RUNNER_H

#include <stdint.h>

#include "base/error.h"
#include "model/gemma4.h"

typedef struct g4_runner g4_runner; /* opaque */

/* One sequence's share of a step: n new tokens appended at its current length. */
typedef struct g4_runner_chunk {
    int seq;                 /* slot from g4_runner_seq_open */
    int n;                   /* tokens, ≥ 1 */
    const int32_t *ids;
    int all_logits;          /* 1: logits for every token of the chunk; 0: only the last */
} g4_runner_chunk;

g4_runner *g4_runner_create(g4_model *m, g4_error *err);
void g4_runner_free(g4_runner *r);

/* Runs steps through fn instead of g4_model_forward (e.g. a tensor-parallel group whose rank 0
 * is the runner's model); fn returns full-vocabulary logits. NULL restores the default. */
typedef int (*g4_step_fn)(void *ctx, const g4_step *step, float *logits, g4_error *err);
void g4_runner_set_step_fn(g4_runner *r, g4_step_fn fn, void *ctx);

/* Opens an empty sequence; returns its slot or -1 (err) when all slots are in use. */
int g4_runner_seq_open(g4_runner *r, g4_error *err);
/* Releases a sequence's blocks and its slot. */
void g4_runner_seq_close(g4_runner *r, int seq);
int g4_runner_seq_len(const g4_runner *r, int seq);

/* Runs one step made of the chunks (distinct sequences). logits: host f32, rows in chunk order
 * (n rows for an all_logits chunk, else 1), each V wide. Fails, changing nothing, when the
 * pools or the model length cannot take the tokens. */
int g4_runner_step(g4_runner *r, const g4_runner_chunk *chunks, int n_chunks, float *logits, g4_error *err);
/* The same with image soft-token runs (gemma4.h g4_step_image; `first` indexes the step's tokens:
 * the chunks' tokens in chunk order). */
int g4_runner_step_images(g4_runner *r, const g4_runner_chunk *chunks, int n_chunks, const g4_step_image *images,
                          int n_images, float *logits, g4_error *err);

/* Blocks currently in use in each pool (for leak checks). */
void g4_runner_blocks_used(const g4_runner *r, int *sliding, int *global);

/* Index of the largest logit (lowest index on ties). */
int g4_argmax(const float *x, int n);

#endif
