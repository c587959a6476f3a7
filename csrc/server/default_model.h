/* default_model.h — the embedded default model: what g4serve serves when no checkpoint is given.
 *
 * A deterministic tiny random Gemma 4 checkpoint (model/testmodel.h, seed 1) with the synthetic
 * test tokenizer that matches it (tests/text/data/tokenizer.json, built into the binary) written
 * beside it as tokenizer.json, so the directory loads like any Hugging Face checkpoint. Demo and
 * test data, not a model that says anything. Not here: choosing a tokenizer for a real
 * checkpoint (stack.c never does: a real checkpoint brings its own). */
#ifndef G4_SERVER_DEFAULT_MODEL_H
#define G4_SERVER_DEFAULT_MODEL_H

#include <stdbool.h>

#include "base/error.h"

/* Writes the parts of the default model that dir lacks: config.json + model.safetensors of
 * geometry ("tiny-dense" or "tiny-moe"), and tokenizer.json when with_tokenizer. dir and its
 * parents are created. Existing files are kept; a tokenizer is never added beside an existing
 * checkpoint of another geometry (-1). Returns 0, or -1 with err naming the path. */
int g4_default_model_write(const char *dir, const char *geometry, bool with_tokenizer, g4_error *err);

#endif
