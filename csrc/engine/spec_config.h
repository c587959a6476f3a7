/* spec_config.h — speculative decoding settings: which proposer (n-gram prompt lookup or a draft
 * model), how many tokens it proposes per step, and when speculation switches itself off.
 * vLLM's --speculative-config JSON maps onto this one struct (csrc/server parses it); the engine
 * reads it from g4_engine_opts.spec. Not here: proposing, verifying, KV rollback (engine). */
#ifndef G4_ENGINE_SPEC_CONFIG_H
#define G4_ENGINE_SPEC_CONFIG_H

/* Proposed tokens per sequence and step, at most (sizes the per-position counters). */
#define G4_SPEC_MAX_TOKENS 8

typedef enum {
    G4_SPEC_OFF = 0,
    G4_SPEC_NGRAM,     /* prompt lookup in the request's own prompt + output; no extra model */
    G4_SPEC_DRAFT,     /* a draft checkpoint sharing the target's tokenizer */
} g4_spec_method;

typedef struct g4_spec_config {
    g4_spec_method method;
    int num_speculative_tokens;   /* k, 1..G4_SPEC_MAX_TOKENS: the most tokens proposed per step */
    int prompt_lookup_min;        /* n-gram: shortest suffix matched (≥ 1) */
    int prompt_lookup_max;        /* n-gram: longest suffix matched (≥ prompt_lookup_min) */
    const char *draft_model;      /* draft: checkpoint directory (owned by the caller) */
    int disable_by_batch_size;    /* speculation off for a step with at least this many running
                                     sequences; 0 = the engine's documented default rule */
} g4_spec_config;

#endif
