/* mm.h — the images of an engine sequence (multimodal prompts) and the three rules they add:
 *   1. a prefill chunk never ends inside an image's run of soft tokens (the run attends to itself
 *      both ways on sliding layers, so it is computed in one step; g4_seq_mm_chunk);
 *   2. the prefix-cache key of a block holding image tokens folds in the image's content hash, so
 *      the same placeholder ids with another image never share blocks (g4_seq_mm_key);
 *   3. a step's image runs (g4_step_image) come from the encoder-output cache, or from the
 *      executor's encode hook on a miss (g4_engine_mm_step; engine thread, between steps).
 * Not here: the mask and the embedding (model/gemma4.c), what submit refuses (request_check.c). */
#ifndef G4_ENGINE_MM_H
#define G4_ENGINE_MM_H

#include <stdint.h>

#include "base/error.h"
#include "engine/encoder_cache.h"
#include "engine/engine.h"

typedef struct g4_seq_image {
    g4_mm_item item;         /* copied; item.patches points to the owned copy */
    g4_enc_entry *entry;     /* pinned soft tokens while the step being built holds the image */
} g4_seq_image;

typedef struct g4_seq_mm {
    int n;
    g4_seq_image *im;        /* [n] in position order, disjoint */
} g4_seq_mm;

/* *dst = *src with its own copy of the patches (free dst->patches). 0, or −1 when out of memory. */
int g4_mm_item_copy(g4_mm_item *dst, const g4_mm_item *src);

/* Copies the request's images (and their patches). NULL with err when out of memory. */
g4_seq_mm *g4_seq_mm_copy(const g4_mm_item *items, int n, g4_error *err);
void g4_seq_mm_free(g4_seq_mm *mm);

/* The key of block k (tokens [kB, (k+1)B)) given its text key: every image overlapping the block
 * mixed in with its hash and its offset from the block. mm NULL: text_key. */
uint64_t g4_seq_mm_key(const g4_seq_mm *mm, uint64_t text_key, int k, int B);

/* The chunk of tokens [start, start + chunk) cut so that it does not end inside an image's run:
 * it ends before the run, or 0 when it starts in the run and cannot reach the run's end (the run
 * must wait for a step with room). mm NULL: chunk. */
int g4_seq_mm_chunk(const g4_seq_mm *mm, int start, int chunk);

typedef struct g4_engine g4_engine;

/* Adds the image runs of the scheduled batch to st (st->images / n_images, valid until the next
 * call), finding their soft tokens in the encoder cache or encoding them. On failure (the encoder
 * failed, out of memory) −1 with err. */
int g4_engine_mm_step(g4_engine *e, g4_step *st, g4_error *err);
/* After the step: the entries it pinned may be evicted again. */
void g4_engine_mm_step_done(g4_engine *e);

#endif
