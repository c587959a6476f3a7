/* shard.h — tensor-parallel slicing of a mapped checkpoint for one rank (docs/architecture.md, "Tensor parallelism").
 *
 * For rank r of t: query heads, MLP and expert intermediate columns and the LM head's vocabulary
 * are split evenly; q/k/v/gate/up (and the experts' gate_up) are sliced by output rows, o/down
 * by input columns (their partial outputs are all-reduced in the forward pass); norms, router,
 * layer scalars and the embedding are replicated. KV heads are split when t divides them and
 * replicated when they divide t (26B-A4B global layers have 2 KV heads: t = 4 or 8 gives each
 * rank one of them, the one its query heads use). Row slices point into the mapping; column
 * slices are copied into buffers owned by the g4_shard. Not here: the collectives (parallel/). */
#ifndef G4_MODEL_SHARD_H
#define G4_MODEL_SHARD_H

#include "base/error.h"
#include "model/config.h"
#include "model/weights.h"

typedef struct g4_shard {
    int rank, size;
    int vocab_offset, vocab_local; /* this rank's LM-head rows */
    g4_weight lm_head; /* [vocab_local, H] slice of embed_tokens */
    void **owned; /* copies made for column slices */
    int n_owned, cap_owned;
} g4_shard;

/* Says whether cfg splits over t ranks; fails naming what does not divide. */
int g4_shard_check(const g4_config *cfg, int t, g4_error *err);

/* Rewrites cfg (full → this rank's local geometry) and w (full → local slices) in place. */
int g4_shard_apply(g4_shard *s, g4_config *cfg, g4_weights *w, int rank, int t, g4_error *err);
void g4_shard_free(g4_shard *s);

#endif
