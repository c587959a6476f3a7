/* stack.h — the composition root: everything a served model needs, built from options in one
 * place and torn down in reverse order.
 *
 * g4_stack_open builds, in this order: the checkpoint directory (a given one, or the embedded
 * default model written to a directory, default_model.h), the tokenizer (an explicit file, else
 * the checkpoint's tokenizer.json; a missing one is a startup error naming the file, reported
 * before the weights load), the backend or the tensor-parallel group, the model (its vocabulary
 * must hold every tokenizer id), the engine options (the model's limits and
 * eos ids, generation_config.json's sampling defaults, plus Gemma 4's chat stop ids found in the
 * tokenizer), the executor (one model or the group), the detokenizer seam, the engine, and a
 * warm-up request. g4serve, the serving benchmark's offline mode and g4-bench-offline all start
 * their model here, so what the tests exercise is what ships.
 * Not here: flags and environment (the executables), the HTTP and gRPC front-ends (they borrow
 * the engine, tokenizer and engine options from a stack and must stop before it closes). */
#ifndef G4_SERVER_STACK_H
#define G4_SERVER_STACK_H

#include <stdbool.h>
#include <stdint.h>

#include "backend/backend.h"
#include "backend/options.h"
#include "base/error.h"
#include "engine/engine.h"
#include "model/gemma4.h"
#include "parallel/tp.h"
#include "text/tokenizer.h"

#define G4_STACK_MAX_EOS 16
#define G4_STACK_PATH_MAX 4096

typedef struct g4_stack_opts {
    const char *model_dir;          /* checkpoint directory; NULL = the embedded default model */
    const char *default_model;      /* its geometry: "tiny-dense" (default) or "tiny-moe" */
    const char *default_model_dir;  /* where it is written if missing and kept; NULL = a temporary
                                       directory, removed at close */
    const char *tokenizer;          /* tokenizer.json; NULL = <checkpoint>/tokenizer.json */
    bool no_tokenizer;              /* token ids in, ids out (benchmarks): no tokenizer, no
                                       detokenizer, no chat stop ids, no warm-up */
    const char *backend;            /* "cpu" (default) or "cuda" */
    g4_backend_options backend_opts; /* device and kernel paths (default: all zero) */
    int tp;                         /* tensor-parallel ranks (default 1) */
    g4_model_opts model;            /* sequence slots (= max running), step tokens, length, ... */
    int max_waiting;                /* queued requests (0: none wait); -1 = the engine's default */
    int max_running_per_client;     /* fair admission's cap (engine.h; 0: FCFS); -1 = the engine's
                                       default, half of the running sequences */
    int prefix_cache;               /* 1 on, 0 off, -1 = the engine's default */
    bool warm_up;                   /* one short request through the engine before returning */
    g4_spec_config spec;            /* speculative decoding (default off); a draft model's
                                       directory must hold a config.json */
} g4_stack_opts;

/* Defaults: the embedded tiny-dense model in a temporary directory, cpu, one rank, the model's
 * defaults (g4_model_opts_default), engine defaults, no warm-up. */
void g4_stack_opts_default(g4_stack_opts *o);

typedef struct g4_stack {
    char dir[G4_STACK_PATH_MAX];            /* the checkpoint served */
    char tokenizer_path[G4_STACK_PATH_MAX]; /* "" with no_tokenizer */
    bool dir_is_temporary;                  /* removed at close */
    g4_backend *backend;                    /* one rank; NULL with a group */
    g4_tp *tp;                              /* the group when tp > 1, else NULL */
    int tp_size;
    g4_model *model;                        /* rank 0's model (full_cfg: the checkpoint's geometry) */
    g4_tokenizer *tok;                      /* NULL with no_tokenizer */
    int32_t eos[G4_STACK_MAX_EOS];          /* eo.eos_ids points here */
    g4_engine_opts eo;                      /* what the engine runs with; front-ends report it */
    g4_executor ex;
    g4_model *draft;                        /* speculative decoding's draft model (method draft),
                                               on the target's backend; NULL otherwise */
    g4_executor draft_ex;                   /* eo.spec_draft points here */
    g4_detok_iface detok;
    g4_engine *engine;
} g4_stack;

/* Builds the stack (see the top of this file). On failure everything built so far is torn
 * down and err names what is wrong (a missing tokenizer.json, a vocabulary mismatch, ...). */
int g4_stack_open(g4_stack **out, const g4_stack_opts *o, g4_error *err);

/* Engine (aborting what still runs), tokenizer, model or group, backend, temporary directory.
 * Front-ends that borrow from the stack must be stopped first. NULL is a no-op. */
void g4_stack_close(g4_stack *s);

#endif
