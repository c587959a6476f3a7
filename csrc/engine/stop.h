/* stop.h — when a request ends and which text it may show: stop token ids (the model's eos ids
 * unless ignore_eos), stop strings on detokenized text, max_tokens and min_tokens.
 *
 * Stop strings are matched on the text the detokenizer makes certain, across token boundaries;
 * of several strings completed by one token the first listed wins, as in vLLM.
 * By default text that could still be the start of a stop string is held back until it cannot,
 * and a matched stop string and everything after it are never shown; a stop token id is counted
 * in the usage but neither shown nor delivered as a token. With include_stop_str_in_output
 * (vLLM's) nothing is held back, the matched stop string is shown and only what follows it is
 * cut, and a stop id is delivered as the last token, its text shown as the request's detokenizer
 * renders it (nothing for a special token when special tokens are skipped). No stop (ids, eos or
 * strings) counts until the output has min_tokens tokens before the current one, as in vLLM
 * (whose sampler also masks the stop ids until then: output.c does the same).
 * Not here: detokenization (the text layer, through g4_detok_iface), sampling (sampling.c).
 * One g4_stop per request; engine thread only. */
#ifndef G4_ENGINE_STOP_H
#define G4_ENGINE_STOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "engine/engine.h"

typedef struct g4_stop {
    int32_t *ids;            /* stop ids: rule ids, plus eos ids unless ignore_eos */
    int n_ids;
    char **strings;          /* owned copies */
    size_t *lens;
    int n_strings;
    int max_tokens, min_tokens;
    bool include;            /* include_stop_str_in_output */
    size_t max_len;          /* the longest stop string's length */
    char *held;              /* text a stop string may still match (owned): n_seen bytes already
                                shown (with include, the end of the shown text, where a match may
                                start), then text not shown yet (a possible stop-string start) */
    size_t n_held, cap_held, n_seen;
    char *out;               /* text shown by the last call, NUL-terminated (owned) */
    size_t n_out, cap_out;
} g4_stop;

/* What one token did. */
typedef struct g4_stop_result {
    g4_finish_reason finish;     /* NONE while the request goes on */
    bool deliver;                /* the token is part of the output (false for a stop id unless
                                    include_stop_str_in_output) */
    const char *text;            /* text newly shown (s->out), valid until the next call */
    size_t n_text;
    int stop_string;             /* index of the matched stop string, −1 if none */
    int32_t stop_token;          /* the stop id that matched, −1 if none */
} g4_stop_result;

/* Copies the rules. eos: the model's stop ids (ignored with r->ignore_eos). */
int g4_stop_init(g4_stop *s, const g4_stop_rules *r, const int32_t *eos, int n_eos, g4_error *err);
void g4_stop_free(g4_stop *s);

/* 1 when token ends the request as a stop id at output token number n_out (min_tokens met). */
bool g4_stop_is_stop_id(const g4_stop *s, int32_t token, int n_out);

/* After output token number n_out (1-based) was sampled; text: its newly certain text (NULL or
 * n = 0 when none; ignored for a stop id, whose text, if shown, comes as g4_stop_finish's tail).
 * Returns −1 only when out of memory. */
int g4_stop_token(g4_stop *s, int32_t token, int n_out, const char *text, size_t n, g4_stop_result *res, g4_error *err);

/* At the end of a request that did not end on a stop string: appends the detokenizer's tail,
 * then shows everything held, cut at a stop string if one now completes (res->stop_string).
 * n_out: output tokens so far (for min_tokens). */
int g4_stop_finish(g4_stop *s, int n_out, const char *tail, size_t n, g4_stop_result *res, g4_error *err);

#endif
