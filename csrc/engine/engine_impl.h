/* engine_impl.h — the layout of g4_engine, shared by engine.c (API, queues, loop thread) and
 * output.c (sampled token → stop rules → events). Private to csrc/engine.
 *
 * Threading: fields under "shared" are read and written only with `mu` held; everything else
 * belongs to the engine thread. */
#ifndef G4_ENGINE_ENGINE_IMPL_H
#define G4_ENGINE_ENGINE_IMPL_H

#include <pthread.h>
#include <stdbool.h>

#include "backend/cpu/cpu_backend.h"
#include "engine/engine.h"
#include "engine/encoder_cache.h"
#include "engine/kvcache.h"
#include "engine/prefix_cache.h"
#include "engine/sampling.h"
#include "engine/scheduler.h"
#include "engine/sequence.h"
#include "engine/spec_draft.h"

struct g4_engine {
    g4_engine_opts o;
    int32_t eos[G4_MAX_EOS];
    g4_executor ex;
    g4_detok_iface detok;
    bool has_detok;
    /* engine thread */
    g4_kvcache kv;
    g4_prefix_cache pc;
    g4_scheduler sched;
    g4_sampler sampler;      /* its seen/count arrays build the sample op's penalty entries */
    g4_spec_draft draft;     /* the draft model (speculation method G4_SPEC_DRAFT) */
    bool has_draft;
    g4_cpu_sample_scratch *sample_scratch; /* the sample op on host logits (backend/cpu) */
    g4_sample_params *sample_params;       /* the step's (or one row's) parameter block, grown on demand */
    size_t sample_params_cap;              /* bytes */
    size_t sample_params_bytes;            /* bytes in use */
    int32_t *sampled;                      /* [max_running] tokens from ex.step_sample */
    g4_sample_logprobs *sampled_lp;        /* [max_running] their logprob records */
    g4_seq **row_seqs;                     /* [max_running] the step's rows' sequences */
    float *logits;           /* [logits_rows, V] */
    int logits_rows;         /* max_running, grown for steps with prompt-logprob rows */
    g4_prompt_logprob *plp;  /* [G4_SCHED_LP_ROWS] one sequence's prompt logprobs of a step */
    uint32_t *constraint_mask; /* [(V + 31) / 32] a constrained row's mask (host path) */
    uint32_t *allowed_mask;  /* [(V + 31) / 32] the sample op's mask row for allowed ids (host path) */
    char *text;              /* detokenizer output scratch */
    size_t text_cap;
    g4_engine_stats st;
    g4_enc_cache mm_cache;   /* soft tokens by image hash (mm.c) */
    g4_step_image *mm_step;  /* [cap_mm_step] the step's image runs */
    int cap_mm_step;
    g4_seq **intake;         /* requests taken off the submit queue this iteration */
    uint64_t *cancel_ids;    /* cancellations taken this iteration */
    int cap_intake, cap_cancel;
    /* shared */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t wake;     /* to the engine thread: work or stop */
    pthread_cond_t idle;     /* from the engine thread: nothing left */
    g4_seq **pending;        /* submitted, not yet taken */
    int n_pending, cap_pending;
    uint64_t *cancels;
    int n_cancels, cap_cancels;
    bool stopping;
    bool busy;               /* the engine thread holds requests */
    int n_queued;            /* pending + waiting as of the last publish (for max_waiting) */
    uint64_t next_id;
    uint64_t seed_base;
    g4_engine_stats pub;     /* stats as of the last publish */
};

/* Delivers a request's last event (finish ≠ NONE, no token), takes it out of the scheduler,
 * closes its detokenizer and frees it. */
void g4_engine_finish(g4_engine *e, g4_seq *q, g4_finish_reason why, const char *error);

/* Samples a row of host logits for q, appends the token, applies stop rules and delivers the
 * token's event. Returns false when q ended (it is freed). */
bool g4_engine_emit_row(g4_engine *e, g4_seq *q, float *logits);
/* The same for a token already sampled (by the executor's step_sample). */
bool g4_engine_emit_token(g4_engine *e, g4_seq *q, const g4_sample_result *r);
/* Emits a speculating sequence's verification rows (r0 .. r0 + q->n_draft of the step) one
 * token at a time until a sample differs from the proposal or q ends, then records the
 * acceptance (spec.h) and hands the accepted proposals' KV to the scheduler. */
void g4_engine_emit_verified(g4_engine *e, g4_seq *q, int r0, bool on_device);

/* Builds e->sample_params (e->sample_params_bytes) for the step's rows, in row order;
 * *n_logprobs = rows that ask for logprobs (their lp_slot numbers them in row order).
 * ahead[r] (NULL = all 0): row r samples after that many of its sequence's proposals. */
int g4_engine_sample_params(g4_engine *e, g4_seq *const *rows, const int32_t *ahead, int n_rows, int *n_logprobs,
                            g4_error *err);
int g4_engine_row_has_penalty(const g4_seq *q);
/* A sample result from the op's outputs (lp NULL: no logprobs). */
void g4_engine_result(g4_sample_result *out, int32_t token, const g4_sample_logprobs *lp);

#endif
