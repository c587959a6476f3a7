/* spec_config_json.h — vLLM's --speculative-config JSON ⇄ g4_spec_config (engine/spec_config.h).
 *
 * Accepted (every other field, type or range is refused, naming the field):
 *   {"method": "ngram", "num_speculative_tokens": K, "prompt_lookup_max": N, "prompt_lookup_min": M}
 *   {"model": "DIR", "num_speculative_tokens": K}            (method "draft_model", or absent)
 *   {"model": "[ngram]" | "ngram", ...}                       (vLLM's older spelling of ngram)
 *   plus "disable_by_batch_size": B on either (speculation off for steps with ≥ B running
 *   sequences; vLLM's speculative_disable_by_batch_size, ≥ 2 as there).
 * K is 1..G4_SPEC_MAX_TOKENS and required. n-gram lookup sizes follow vLLM: neither given = 5
 * and 5, one given = the other too, each ≥ 1, min ≤ max. DIR is a local directory (no URI); that
 * it holds a checkpoint is checked when the stack opens it. null stands for an absent field, as in
 * vLLM. Methods g4serve does not have (eagle, eagle3, medusa, mlp_speculator, mtp, suffix, ...)
 * are refused by name.
 * Not here: where the text comes from (the flag or G4_SPECULATIVE_CONFIG, main.c), proposing. */
#ifndef G4_SERVER_SPEC_CONFIG_JSON_H
#define G4_SERVER_SPEC_CONFIG_JSON_H

#include <stddef.h>

#include "base/error.h"
#include "engine/spec_config.h"

/* Parses `json` into *out (G4_SPEC_OFF for an empty or all-blank text). The draft model's
 * directory is copied into path_buf[path_cap], which out->draft_model then points to: the caller
 * keeps the buffer as long as the config. −1 with err naming the field ("num_speculative_tokens:
 * expected an integer 1..8, got 0"). */
int g4_spec_config_from_json(const char *json, g4_spec_config *out, char *path_buf, size_t path_cap, g4_error *err);

/* A draft model's directory must hold a config.json (checked before any weights load); 0 for the
 * other methods. −1 with err naming the field ("model: DIR/config.json does not exist"). */
int g4_spec_config_check_draft(const g4_spec_config *c, g4_error *err);

/* The effective setting as one line of JSON in vLLM's field names (defaults filled in), or "off";
 * for the start-up log. Returns buf. */
const char *g4_spec_config_describe(const g4_spec_config *c, char *buf, size_t n);

#endif
