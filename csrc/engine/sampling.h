/* sampling.h — choosing one token from one row of logits on the host.
 *
 * Order of processing (as vLLM's sampler):
 *   1. penalties on the raw logits z: repetition (tokens in prompt or output: z>0 → z/rp,
 *      z<0 → z·rp), then z −= presence·[count>0] + frequency·count (output counts)
 *   2. greedy (temperature 0): argmax, lowest id on ties — filters below do not apply
 *   3. z /= temperature; p = softmax(z)
 *   4. min-p: drop p < min_p · max p;  top-k: keep the k largest;  top-p: keep the smallest set of
 *      largest p (ties → lower id first) whose mass ≥ top_p; renormalise what is kept
 *   5. draw u = U[0,1) from a counter-based generator keyed by (seed, output index) and take the
 *      first kept token (in id order) whose cumulative mass exceeds u · kept mass
 * Step 5 depends only on the row and (seed, index), so a seeded request gives the same tokens in
 * any batch. Logprobs come from log_softmax of the logits after steps 1 and 3 (penalties and
 * temperature applied, before the truncating filters), so every reported value is finite.
 * Not here: stop rules (stop.c), request defaults (g4_sampling_default in engine.h). */
#ifndef G4_ENGINE_SAMPLING_H
#define G4_ENGINE_SAMPLING_H

#include <stdint.h>

#include "base/error.h"
#include "engine/engine.h"

typedef struct g4_sample_cand {
    float p;
    int32_t id;
} g4_sample_cand;

typedef struct g4_sampler {
    int vocab;
    float *z;           /* [V] processed logits */
    int32_t *idx;       /* [V] candidate ids */
    uint16_t *count;    /* [V] output counts of the current row (kept all-zero between rows) */
    uint8_t *seen;      /* [V] prompt/output membership of the current row (kept zero) */
    float *vals;        /* [V] top-k selection scratch */
    g4_sample_cand *cand; /* [V] top-p sort scratch */
} g4_sampler;

/* The tokens a row's penalties look at. */
typedef struct g4_sample_history {
    const int32_t *prompt;
    int n_prompt;
    const int32_t *output;
    int n_output;       /* also the output index keying the random draw */
} g4_sample_history;

typedef struct g4_sample_result {
    int32_t token;
    float logprob;      /* when want_logprobs */
    int n_top;
    int32_t top_ids[G4_MAX_TOP_LOGPROBS];
    float top_logprobs[G4_MAX_TOP_LOGPROBS];
} g4_sample_result;

int g4_sampler_init(g4_sampler *s, int vocab, g4_error *err);
void g4_sampler_free(g4_sampler *s);

/* Samples from logits [V] (not modified). seed: the request's seed (the engine draws one for
 * requests without has_seed). */
void g4_sample_row(g4_sampler *s, const float *logits, const g4_sampling *sp, uint64_t seed, const g4_sample_history *h,
                   g4_sample_result *out);

/* The logprobs of ids[0..n) in the distribution the sampled token's logprob comes from (vLLM's
 * logprob_token_ids), read off z, the row after step 1 (penalties applied, masked tokens at −inf) as
 * the sample op leaves a host row: step 3's scaling (the one g4_sample_row applies), then log_softmax,
 * whose log-sum-exp is recovered from the sampled token (lse = z'[token] − token_logprob), so no pass
 * over the vocabulary is needed and the token's own entry is exactly token_logprob. A masked id gets
 * −inf. */
void g4_sample_id_logprobs(const float *z, const g4_sampling *sp, int32_t token, float token_logprob,
                           const int32_t *ids, int n, float *out);

/* A prompt position's logprob from its logits row [V] (raw log_softmax): the token's, its rank
 * and the top `top` (≤ 20). */
void g4_prompt_logprob_row(const float *logits, int V, int32_t token, int top, g4_prompt_logprob *out);

/* A request's sampling settings as a row of the sample op's parameter block (backend.h): the
 * engine's rows (output.c) and the sample-op tests build them here. The penalty range, logprob
 * slot and flags are left zero for the caller. */
g4_sample_row_params g4_sampling_row(const g4_sampling *sp, uint64_t seed, uint64_t step);

/* u ∈ [0, 1) for output index i of a request with this seed. */
double g4_sample_uniform(uint64_t seed, uint64_t i);

/* Reads model_dir/generation_config.json (temperature, top_k, top_p, min_p, repetition_penalty,
 * as vLLM does, without consulting do_sample) into s when the file exists; 0 also when it does
 * not, −1 naming the field on a malformed file. */
int g4_sampling_load_defaults(g4_sampling *s, const char *model_dir, g4_error *err);

#endif
