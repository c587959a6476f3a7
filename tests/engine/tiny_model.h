/* tiny_model.h — the engine tests' real model: a tiny test checkpoint (model/testmodel.h) written
 * to a directory and opened on a backend with the pool and step sizes a test asks for.
 * Not here: the engines built on it (each test's own). */
#ifndef G4_TESTS_ENGINE_TINY_MODEL_H
#define G4_TESTS_ENGINE_TINY_MODEL_H

#include "model/gemma4.h"
#include "model/testmodel.h"

typedef struct tiny_model_opts {
    const char *kind;            /* "tiny-dense", "tiny-moe" */
    uint64_t seed;               /* of the weights */
    int vocab;                   /* > 0: replaces the config's vocabulary */
    int max_seqs, max_model_len; /* step tokens: 256 */
    int n_blocks_sliding, n_blocks_global; /* 0: the model's default pools */
} tiny_model_opts;

/* Writes the checkpoint to dir and opens it; NULL with err. */
static inline g4_model *tiny_model_open(const tiny_model_opts *t, const char *dir, g4_backend *be, g4_error *err) {
    g4_config cfg;
    if (g4_testmodel_config(&cfg, t->kind, err)) return NULL;
    if (t->vocab > 0) cfg.vocab = t->vocab;
    if (g4_testmodel_write(&cfg, t->seed, dir, err)) return NULL;
    g4_model_opts o;
    g4_model_opts_default(&o);
    o.max_seqs = t->max_seqs;
    o.max_step_tokens = 256;
    o.max_model_len = t->max_model_len;
    o.n_blocks_sliding = t->n_blocks_sliding;
    o.n_blocks_global = t->n_blocks_global;
    g4_model *m = NULL;
    return g4_model_open(&m, dir, be, &o, err) ? NULL : m;
}

#endif
