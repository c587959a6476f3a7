/* engine.h — the serving engine: many concurrent requests → a stream of model steps → per-request
 * event streams (docs/engine.md).
 *
 * Front-ends (HTTP, gRPC, the offline throughput tool, tests) submit requests from any thread;
 * one engine thread schedules iteration-level batches (running decodes first, then chunked
 * prefills, then admission: fair across clients, FCFS within a client and priority), manages
 * the paged KV pools and the prefix cache, hands each step to the executor, samples, applies stop
 * rules and delivers events through the request's callback. Cancellation travels the same way.
 * The engine decides time and memory; the model (through the executor) only computes a step. */
#ifndef G4_ENGINE_ENGINE_H
#define G4_ENGINE_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "base/error.h"
#include "base/mm_item.h"
#include "base/rng.h"
#include "engine/spec_config.h"
#include "model/gemma4.h"

/* --- request parameters ---------------------------------------------------------------- */

#define G4_MAX_TOP_LOGPROBS 20 /* top alternatives per token (logprobs, prompt logprobs) */
#define G4_MAX_LOGPROB_IDS 128 /* g4_request_params.logprob_ids (vLLM's MAX_LOGPROB_TOKEN_IDS) */

typedef struct g4_sampling {
    float temperature;          /* 0 = greedy (argmax, lowest id on ties) */
    int top_k;                  /* ≤ 0 = off */
    float top_p;                /* 1 = off; keep the smallest set with cumulative prob ≥ top_p */
    float min_p;                /* 0 = off; drop tokens with p < min_p · p_max */
    float repetition_penalty;   /* 1 = off; logits of tokens seen in prompt or output: >0 ÷ rp, <0 × rp */
    float presence_penalty;     /* 0 = off; − pp for every token already in the output */
    float frequency_penalty;    /* 0 = off; − fp × count in the output */
    bool has_seed;
    uint64_t seed;              /* with has_seed: the same request gives the same tokens in any batch */
    int logprobs;               /* −1 = none; 0 = the chosen token's; n = plus the top-n (≤ 20) */
} g4_sampling;

#define G4_MAX_STOP_STRING_BYTES 4096

typedef struct g4_stop_rules {
    int max_tokens;             /* ≥ 1; prompt + max_tokens ≤ max model length (else refused) */
    int min_tokens;             /* no stop (ids, eos, strings) before this many tokens */
    bool ignore_eos;            /* do not stop on the model's eos ids */
    const int32_t *stop_ids;    /* extra stop token ids (copied at submit) */
    int n_stop_ids;
    const char *const *stop_strings; /* matched on detokenized text, excluded from output (copied);
                                        each at most G4_MAX_STOP_STRING_BYTES */
    int n_stop_strings;
    bool include_stop_str_in_output; /* vLLM's: the output keeps the matched stop string, and a stop
                                        id is delivered as the last token with its text */
} g4_stop_rules;

/* Generation defaults: greedy unless the model's generation_config.json says otherwise. */
void g4_sampling_default(g4_sampling *s);
void g4_stop_rules_default(g4_stop_rules *s);

/* --- events ---------------------------------------------------------------------------- */

typedef enum {
    G4_FINISH_NONE = 0,
    G4_FINISH_STOP,             /* eos, a stop id or a stop string */
    G4_FINISH_LENGTH,           /* max_tokens or max model length */
    G4_FINISH_ABORT,            /* cancelled (client hang-up, g4_engine_cancel) */
    G4_FINISH_ERROR,            /* the request could not run (message in event.error) */
} g4_finish_reason;

/* The logprob of one prompt token given the tokens before it (prompt logprobs): raw
 * log_softmax of the model's logits (no penalty, bias or temperature), as vLLM reports them. */
typedef struct g4_prompt_logprob {
    int pos;                    /* the prompt position, 1 .. n_prompt − 1 (position 0 has none) */
    int32_t token;              /* the prompt token there */
    float logprob;
    int rank;                   /* 1 + the number of tokens with a larger logit */
    int n_top;                  /* the top n_top alternatives (prompt_logprobs_top) */
    int32_t top_ids[G4_MAX_TOP_LOGPROBS];
    float top_logprobs[G4_MAX_TOP_LOGPROBS];
} g4_prompt_logprob;

typedef struct g4_event {
    uint64_t id;
    int n_tokens;               /* new tokens in this event (0 or 1 today) */
    int32_t token;
    const char *text;           /* detokenized text newly certain (may be "" while a stop string or a
                                   UTF-8 sequence is held back); NULL without a detokenizer */
    float logprob;              /* of `token`, when requested */
    int n_top;                  /* top logprobs (when requested): at most G4_MAX_TOP_LOGPROBS, or the
                                   request's logprob ids (at most G4_MAX_LOGPROB_IDS) */
    const int32_t *top_ids;
    const float *top_logprobs;
    g4_finish_reason finish;    /* set on the request's last event */
    const char *stop_string;    /* the stop string that matched, if any */
    int32_t stop_token;         /* the stop id that matched, −1 if none */
    const char *error;          /* with G4_FINISH_ERROR */
    int spec_draft_tokens;      /* on the last event: tokens proposed for this request (speculation) */
    int spec_accepted_tokens;   /* of them, accepted by the target */
    int prompt_tokens;          /* usage, on the last event */
    int completion_tokens;
    int cached_tokens;          /* prompt tokens served from the prefix cache */
    double queue_s;             /* on the last event: submit → its first step (the whole life when it
                                   never ran), seconds */
    int n_prompt_lp;            /* prompt logprobs: an event of its own (no token, finish NONE) */
    const g4_prompt_logprob *prompt_lp; /* per prefill step, positions in order, each once */
} g4_event;

/* Called on the engine thread for every event of a request, with no engine lock held; must not
 * block, and may call back into the engine only to submit or cancel (a driver's next requests,
 * beam.h). After the event with finish != NONE the request is gone and `user` is not used again.
 * Pointers inside the event are valid only during the call. */
typedef void (*g4_event_fn)(void *user, const g4_event *ev);

/* An additive bias on one token's logit (OpenAI logit_bias). */
typedef struct g4_logit_bias {
    int32_t token;
    float bias;                 /* added to the raw logit, before penalties and temperature */
} g4_logit_bias;

/* A per-request token constraint (structured output: a grammar matcher; csrc/server/structured/structured.h
 * makes them). The engine calls it on its thread only: mask before sampling each output token,
 * advance after. The engine owns the object from g4_engine_submit on (success or not) and calls
 * free when the request is gone. A constrained request is sampled from host logits. */
typedef struct g4_constraint_iface {
    /* Fills mask (one bit per token id, 32 per word, (vocab + 31) / 32 words) with the tokens
     * allowed next; end_ids (the request's stop ids) are to be allowed only where the output may
     * end. Returns 1 (mask filled), 0 (no constraint on this token: e.g. inside the thought
     * channel) or −1 with err. */
    int (*mask)(void *c, const int32_t *end_ids, int n_end, uint32_t *mask, g4_error *err);
    /* The token sampled (any id, stop ids included). 0, or −1 with err (a token the mask forbade). */
    int (*advance)(void *c, int32_t token, g4_error *err);
    void (*free)(void *c);
} g4_constraint_iface;

/* Images (g4_mm_item, base/mm_item.h: a run of placeholder positions whose input embeddings are
 * the vision tower's soft tokens, model/vision.h). Submit copies the items and their patches and
 * refuses (G4_ERR_INVALID) runs outside the prompt, out of order or overlapping, a patch grid that
 * does not give n_tokens, or any image for an engine without a vision tower; (G4_ERR_TOO_LONG) a
 * run longer than the step token budget, since a run is computed in one step (docs/engine.md,
 * "Images"). */

typedef struct g4_request_params {
    const int32_t *prompt;      /* copied at submit */
    int n_prompt;
    g4_sampling sampling;
    /* Logit processors, applied to the raw logits before the sampler (as vLLM: before penalties).
     * A request that has either is sampled from host logits: a step holding one runs the
     * executor's host-logits path even where the backend samples on the device. Both copied. */
    const g4_logit_bias *logit_bias;  /* n_logit_bias entries, tokens in the vocabulary */
    int n_logit_bias;
    const int32_t *allowed_ids; /* only these tokens can be sampled (vLLM allowed_token_ids); */
    int n_allowed_ids;          /* 0 = every token */
    /* vLLM logprob_token_ids: these ids' logprobs (same distribution as the sampled token's;
     * −inf where the mask excludes one) are reported at every output position in place of the
     * top alternatives (event top_ids/top_logprobs, in this order). Needs sampling.logprobs ≥ 0;
     * at most G4_MAX_LOGPROB_IDS; copied; the request is sampled from host logits. */
    const int32_t *logprob_ids;
    int n_logprob_ids;
    /* Prompt logprobs: every prompt token after the first gets a g4_prompt_logprob (events with
     * n_prompt_lp, before the first token's event). Such a request skips the prefix cache, its
     * prefill runs at most G4_SCHED_LP_ROWS positions a step, and its steps return host logits. */
    bool prompt_logprobs;
    int prompt_logprobs_top;    /* 0..20 alternatives per position */
    /* Token constraint (NULL = none); owned by the engine from submit on. A request whose
     * constraint allows no token ends with G4_FINISH_STOP. */
    const g4_constraint_iface *constraint_fn;
    void *constraint;
    const g4_mm_item *mm;       /* images in the prompt, in position order (n_mm); NULL = text only */
    int n_mm;
    g4_stop_rules stop;
    int priority;               /* lower runs first (vLLM convention); FCFS within a priority */
    bool continuation;          /* a driver's next request for work already admitted (beam.h: a
                                   search's later steps): never refused for a full waiting queue */
    uint64_t client;            /* who sent it (g4_client_key): requests with equal keys are one client
                                   for fair admission (g4_engine_opts.max_running_per_client); 0 is a
                                   client like any other (tools and tests that send as one) */
    unsigned detok_flags;       /* G4_DETOK_*: how this request's text is rendered (0: every token's
                                   text, special tokens included — what the output parser needs) */
    g4_event_fn on_event;
    void *user;
} g4_request_params;

/* The HTTP header / gRPC metadata key a front-end takes the client's name from when the operator
 * trusts it (a gateway in front sets it); otherwise the peer's address names the client. */
#define G4_CLIENT_ID_HEADER "x-g4-client-id"

static inline uint64_t g4_client_key_fnv(uint64_t h, const char *p, size_t n) {
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)p[i]) * 1099511628211ull;
    return h;
}

/* The client key of a request (g4_request_params.client), the one rule for every front end: the
 * trusted client id when there is one (id_len > 0; its first 255 bytes), else the peer's address
 * text without port or brackets (an IPv4-mapped "::ffff:192.0.2.1" counts as "192.0.2.1", so one host
 * is one client whichever protocol or socket family it came by). The two kinds are hashed with
 * different prefixes so they never meet: FNV-1a, mixed. Equal inputs, equal keys; not a secret. */
static inline uint64_t g4_client_key(const char *id, size_t id_len, const char *addr, size_t addr_len) {
    uint64_t h = 1469598103934665603ull;
    if (id && id_len)
        return g4_mix64(g4_client_key_fnv(g4_client_key_fnv(h, "id:", 3), id, id_len < 255 ? id_len : 255));
    if (!addr) addr_len = 0;
    if (addr_len > 7 && !memcmp(addr, "::ffff:", 7) && memchr(addr + 7, '.', addr_len - 7)) addr += 7, addr_len -= 7;
    return g4_mix64(g4_client_key_fnv(g4_client_key_fnv(h, "ip:", 3), addr, addr_len));
}

/* --- detokenizer seam (filled by the text layer; optional) ------------------------------ */

/* Per-request detokenizer flags (g4_request_params.detok_flags). Stop strings are matched on the
 * text so rendered. */
enum {
    G4_DETOK_SKIP_SPECIAL = 1u << 0,            /* special tokens render as nothing */
    G4_DETOK_SPACES_BETWEEN_SPECIAL = 1u << 1,  /* a space between a special token and the text next to it */
};

typedef struct g4_detok_iface {
    void *ctx;
    void *(*open)(void *ctx, unsigned flags);               /* per-request streaming state (G4_DETOK_*) */
    /* Appends the text newly certain after `token` to out (NUL-terminated, ≤ cap−1 bytes);
     * returns its length or −1. */
    int (*push)(void *state, int32_t token, char *out, size_t cap);
    void (*close)(void *state);
    /* Optional (NULL = nothing held back): at the end of the stream, writes the text still held
     * (e.g. an unfinished byte run) to out like push; returns its length or −1. Added by the engine. */
    int (*finish)(void *state, char *out, size_t cap);
} g4_detok_iface;

/* --- executor seam ---------------------------------------------------------------------- */

/* One step's computation: forward on every worker, f32 logits [n_rows, vocab] of rank 0 back.
 * Optional step_sample (NULL: the engine samples host logits from step): the same step with the
 * rows sampled on the backend (g4_model_forward_sample): tokens [n_rows] and the logprob records
 * of the rows that ask come back instead of the logits. g4_executor_local wraps one g4_model
 * (N = 1) and samples on its backend when the backend can; tests pass a null model. */
typedef struct g4_executor {
    void *ctx;
    int n_workers;
    int vocab;
    int (*step)(void *ctx, const g4_step *step, float *logits, g4_error *err);
    int (*step_sample)(void *ctx, const g4_step *step, const g4_sample_params *params, size_t params_bytes,
                       int32_t *tokens, g4_sample_logprobs *logprobs, int n_logprobs, g4_error *err);
    /* Optional (NULL: no vision tower; requests with images are refused): the vision tower on one
     * image, out f32 [item->n_tokens, hidden]. Called on the engine thread between steps, so the
     * backend is used by one thread. g4_executor_local and g4_executor_tp (parallel/tp.h) set it
     * when the model has a tower. */
    int (*encode)(void *ctx, const g4_mm_item *item, float *out, g4_error *err);
    int hidden;                 /* width of encode's rows (the text model's H) */
} g4_executor;

void g4_executor_local(g4_executor *ex, g4_model *m);

/* --- the engine ------------------------------------------------------------------------- */

typedef struct g4_engine_opts {
    int max_running;            /* running sequences (≤ the model's sequence slots) */
    int max_running_per_client; /* fair admission (scheduler.h): a client with this many running
                                   sequences is not admitted more while a client below it waits, and
                                   gives its newest ones back (recomputed later) to make room for
                                   it; 0 = off, strictly FCFS. g4_engine_opts_from_model: half of
                                   max_running */
    int max_waiting;            /* queue length; beyond it submit fails with G4_ERR_QUEUE_FULL */
    int max_model_len;          /* prompt + max_tokens limit */
    int step_token_budget;      /* tokens per step (≤ the model's max_step_tokens) */
    int block_size;
    int n_blocks_sliding, n_blocks_global;  /* the model's pools */
    int sliding_window;
    bool prefix_cache;
    const int32_t *eos_ids;     /* model stop ids (copied) */
    int n_eos;
    /* Added by the engine: */
    int max_blocks_per_seq;     /* block-table columns the executor expects (the model's
                                   max_blocks_per_seq); 0 = ceil(max_model_len / block_size) */
    uint64_t seed;              /* seeds requests without has_seed; 0 = from the clock */
    g4_sampling defaults;       /* what front-ends start a request's sampling from: greedy, or the
                                   model's generation_config.json (g4_sampling_load_defaults) */
    g4_spec_config spec;        /* speculative decoding; method G4_SPEC_OFF = none */
    bool vision;                /* images accepted (the model has a vision tower); the engine itself
                                   goes by its executor's encode hook */
    size_t mm_cache_bytes;      /* bound of the encoder-output cache; 0 = G4_MM_CACHE_DEFAULT */
    /* Method G4_SPEC_DRAFT: the draft model's executor (g4_executor_local over a model opened from
     * spec.draft_model by the caller, who keeps it alive; g4_spec_draft_check in spec_draft.h
     * says whether it fits: it shares the engine's block tables, with its own KV bytes). */
    const g4_executor *spec_draft;
} g4_engine_opts;

#define G4_MM_CACHE_DEFAULT ((size_t)256 << 20)

/* Fills opts from a loaded model (its pools, window, eos ids and limits). */
void g4_engine_opts_from_model(g4_engine_opts *o, const g4_model *m);

typedef struct g4_engine g4_engine; /* opaque */

enum { G4_ERR_INVALID = 1, G4_ERR_QUEUE_FULL = 2, G4_ERR_TOO_LONG = 3, G4_ERR_STOPPED = 4 };

/* detok may be NULL (then stop strings are refused at submit and events carry no text). */
g4_engine *g4_engine_create(const g4_engine_opts *o, const g4_executor *ex, const g4_detok_iface *detok, g4_error *err);
/* Stops the loop: running and waiting requests finish with G4_FINISH_ABORT first. */
void g4_engine_destroy(g4_engine *e);

/* Thread-safe. Returns the request id (> 0), or 0 with *code (G4_ERR_*) and err set; on failure
 * no event is ever delivered. */
uint64_t g4_engine_submit(g4_engine *e, const g4_request_params *p, int *code, g4_error *err);
/* Thread-safe; the request ends with G4_FINISH_ABORT (no-op for unknown / finished ids). */
void g4_engine_cancel(g4_engine *e, uint64_t id);

/* For drivers built on submit (beam.h): the model's end ids (copied at create; *ids valid for the
 * engine's life) and the detokenizer (NULL when the engine has none). */
int g4_engine_eos_ids(const g4_engine *e, const int32_t **ids);
const g4_detok_iface *g4_engine_detok(const g4_engine *e);
/* g4_engine_check_request with this engine's options (thread-safe). */
int g4_engine_check(const g4_engine *e, const g4_request_params *p, g4_error *err);

#define G4_STEP_TOKEN_BUCKETS 13
#define G4_STEP_TOKEN_BUCKET_BOUNDS \
    { 1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384 }

typedef struct g4_engine_stats {
    int running, waiting;
    int blocks_sliding_used, blocks_sliding_total;
    int blocks_global_used, blocks_global_total;
    uint64_t prefix_hit_tokens, prefix_query_tokens;
    uint64_t preemptions;
    uint64_t steps, step_tokens;
    int blocks_cached;          /* refcount 0 but kept for the prefix cache (free under pressure) */
    double sched_seconds;       /* engine CPU time in steps, model time excluded */
    uint64_t finished[5];       /* by g4_finish_reason */
    /* Added by the engine: */
    double model_seconds;       /* wall time inside executor steps */
    double sample_seconds;      /* part of sched_seconds spent sampling */
    uint64_t output_tokens;     /* tokens sampled (all requests) */
    /* Steps by tokens in the step: step_tokens_le[b] counts steps with bound[b-1] < tokens ≤ bound[b]
     * (bounds G4_STEP_TOKEN_BUCKET_BOUNDS, vLLM's iteration_tokens_total buckets); the steps above
     * the last bound are steps − Σ. */
    uint64_t step_tokens_le[G4_STEP_TOKEN_BUCKETS];
    /* Speculative decoding (vLLM's spec_decode counters): proposals made (one per sequence and
     * step that speculated), tokens proposed, tokens accepted, and accepted[i] = proposals whose
     * token at position i (0-based) was accepted. */
    uint64_t spec_drafts, spec_draft_tokens, spec_accepted_tokens;
    uint64_t spec_accepted_per_pos[G4_SPEC_MAX_TOKENS];
    /* Images: encoder runs, and image uses served by the encoder-output cache instead. */
    uint64_t mm_encoded, mm_cache_hits;
} g4_engine_stats;

void g4_engine_stats_get(g4_engine *e, g4_engine_stats *s);

/* Blocks until no request is running or waiting (tests, offline tool). */
void g4_engine_wait_idle(g4_engine *e);

/* Added by the engine: a request that can never run with these options (too long for
 * max_model_len, or more blocks at its full length than a pool has) — G4_ERR_TOO_LONG — or
 * invalid parameters — G4_ERR_INVALID; 0 when it can be admitted. What submit checks first. */
int g4_engine_check_request(const g4_engine_opts *o, int vocab, bool has_detok, const g4_request_params *p,
                            g4_error *err);

#endif
