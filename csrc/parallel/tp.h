/* tp.h — a tensor-parallel group: t ranks of one model, one worker thread (and one backend)
 * per rank, stepping together (docs/architecture.md, "Tensor parallelism").
 *
 * g4_tp_step() hands the same step to every worker, each runs g4_model_forward on its slice
 * (all-reducing inside through the group's g4_comm), and the vocabulary slices of the logits are
 * gathered into one full-width array. Everything above sees one model. */
#ifndef G4_PARALLEL_TP_H
#define G4_PARALLEL_TP_H

#include "backend/options.h"
#include "base/error.h"
#include "engine/engine.h"
#include "model/gemma4.h"

typedef struct g4_tp g4_tp; /* opaque */

/* Opens dir on t ranks of backend kind `backend` ("cpu", "cuda"; backend/registry.h), rank r
 * created with backend_opts (NULL = defaults) on device r; the kind supplies the communicator.
 * opts: as for g4_model_open (its tp_* and comm fields are set here). */
g4_tp *g4_tp_open(const char *dir, const char *backend, const g4_backend_options *backend_opts, int t,
                  const g4_model_opts *opts, g4_error *err);
void g4_tp_close(g4_tp *tp);

int g4_tp_size(const g4_tp *tp);
/* Rank r's model (its cfg is the local geometry; full_cfg the checkpoint's). */
g4_model *g4_tp_model(g4_tp *tp, int rank);

/* One step on all ranks; logits: host f32 [n_rows, V] (full vocabulary). Matches g4_step_fn. */
int g4_tp_step(void *tp, const g4_step *step, float *logits, g4_error *err);

/* One image through the vision tower (loaded on rank 0 only, which runs it on its worker
 * thread): out f32 [item->n_tokens, H], host memory. Matches g4_executor.encode. The soft
 * tokens then travel in the step's image runs (host rows), which every rank uploads itself. */
int g4_tp_encode(void *tp, const g4_mm_item *item, float *out, g4_error *err);

/* The engine's executor seam over the group: n_workers = t, steps through g4_tp_step, images
 * encoded through g4_tp_encode when the checkpoint has a vision tower. */
void g4_executor_tp(g4_executor *ex, g4_tp *tp);

#endif
