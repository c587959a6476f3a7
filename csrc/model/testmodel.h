/* testmodel.h — deterministic tiny random Gemma 4 checkpoints (config.json + model.safetensors).
 *
 * Given a geometry and a seed, writes a real checkpoint directory that the loader reads like
 * any Hugging Face one: BF16 tensors under `model.language_model.` (multimodal config form),
 * values drawn from a seeded generator and scaled so activations stay O(1). Norm weights and
 * layer scalars are random around 1 (never exactly 1), router per-expert scales ≠ 1. Same seed,
 * same bytes. This is test and demo data, not a model that says anything. */
#ifndef G4_MODEL_TESTMODEL_H
#define G4_MODEL_TESTMODEL_H

#include <stdint.h>

#include "base/error.h"
#include "model/config.h"

/* The built-in geometries: "tiny-dense" and "tiny-moe" (vocab 262144, hidden 64, 6 layers with
 * globals at 2 and 5, window 16), and the real "31b" and "26b-a4b" (for header-only checkpoints
 * opened with dummy weights). Returns -1 for an unknown name. */
int g4_testmodel_config(g4_config *cfg, const char *name, g4_error *err);

/* Writes dir/config.json and dir/model.safetensors (dir is created if missing). */
int g4_testmodel_write(const g4_config *cfg, uint64_t seed, const char *dir, g4_error *err);

/* The same checkpoint with headers only (a sparse file: no values, no disk space) — open it with
 * g4_model_opts.dummy_seed set. A 31B one is written in milliseconds. */
int g4_testmodel_write_sparse(const g4_config *cfg, const char *dir, g4_error *err);

#endif
