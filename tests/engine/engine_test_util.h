/* engine_test_util.h — shared helpers for the engine tests: a per-request event recorder, a
 * deterministic PRNG and a fake detokenizer (token t → "<t>" text, with tokens divisible by 7
 * held back until the next token, as a UTF-8 byte run would be). Test code only. */
#ifndef G4_TESTS_ENGINE_TEST_UTIL_H
#define G4_TESTS_ENGINE_TEST_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/rng.h"
#include "engine/engine.h"

#define REC_MAX_TOKENS 512

typedef struct rec {
    uint64_t id;
    int32_t toks[REC_MAX_TOKENS];
    float logprob[REC_MAX_TOKENS];
    int n;
    int n_events, n_finish;
    g4_finish_reason finish;
    int32_t stop_token;
    char stop_string[64];
    char text[4096];
    size_t n_text;
    int prompt_tokens, completion_tokens, cached_tokens;
    int spec_draft, spec_accepted; /* speculation, from the last event */
    double queue_s;
    int n_plp;                 /* prompt logprobs, in arrival order */
    g4_prompt_logprob plp[64];
    int plp_after_token;       /* a prompt logprob came after a token (must not happen) */
    char error[256];
    int order;                 /* 1, 2, ...: when its last event came, across all recs */
} rec;

static int rec_finish_counter;

static inline void rec_on_event(void *user, const g4_event *ev) {
    rec *r = user;
    r->n_events++;
    for (int i = 0; i < ev->n_prompt_lp; i++) {
        if (r->n) r->plp_after_token = 1;
        if (r->n_plp < 64) r->plp[r->n_plp++] = ev->prompt_lp[i];
    }
    if (ev->n_tokens == 1 && r->n < REC_MAX_TOKENS) {
        r->logprob[r->n] = ev->logprob;
        r->toks[r->n++] = ev->token;
    }
    if (ev->text) {
        size_t L = strlen(ev->text);
        if (r->n_text + L < sizeof r->text) {
            memcpy(r->text + r->n_text, ev->text, L + 1);
            r->n_text += L;
        }
    }
    if (ev->finish != G4_FINISH_NONE) {
        r->n_finish++;
        r->order = ++rec_finish_counter;
        r->finish = ev->finish;
        r->stop_token = ev->stop_token;
        if (ev->stop_string) snprintf(r->stop_string, sizeof r->stop_string, "%s", ev->stop_string);
        if (ev->error) snprintf(r->error, sizeof r->error, "%s", ev->error);
        r->prompt_tokens = ev->prompt_tokens;
        r->completion_tokens = ev->completion_tokens;
        r->cached_tokens = ev->cached_tokens;
        r->spec_draft = ev->spec_draft_tokens;
        r->spec_accepted = ev->spec_accepted_tokens;
        r->queue_s = ev->queue_s;
    }
}

static inline uint64_t rng_next(uint64_t *s) { return g4_splitmix64(s); }
static inline int rng_int(uint64_t *s, int lo, int hi) { return lo + (int)(rng_next(s) % (uint64_t)(hi - lo + 1)); }

/* --- fake detokenizer ---------------------------------------------------------------------- */

typedef struct fake_detok_state {
    char held[64];
    int n_opened;
} fake_detok_state;

static inline void *fake_open(void *ctx, unsigned flags) {
    (void)flags;
    (void)ctx;
    return calloc(1, sizeof(fake_detok_state));
}
static inline int fake_push(void *state, int32_t token, char *out, size_t cap) {
    fake_detok_state *s = state;
    char piece[32];
    snprintf(piece, sizeof piece, "<%d>", (int)token);
    if (token % 7 == 0) { /* held back until the next token */
        strncat(s->held, piece, sizeof s->held - strlen(s->held) - 1);
        out[0] = 0;
        return 0;
    }
    int n = snprintf(out, cap, "%s%s", s->held, piece);
    s->held[0] = 0;
    return n;
}
static inline int fake_finish(void *state, char *out, size_t cap) {
    fake_detok_state *s = state;
    int n = snprintf(out, cap, "%s", s->held);
    s->held[0] = 0;
    return n;
}
static inline void fake_close(void *state) { free(state); }
static inline g4_detok_iface fake_detok(void) {
    return (
        g4_detok_iface){.ctx = NULL, .open = fake_open, .push = fake_push, .close = fake_close, .finish = fake_finish};
}
/* The full text of a token sequence under the fake detokenizer. */
static inline void fake_text(const int32_t *t, int n, char *out, size_t cap) {
    size_t k = 0;
    out[0] = 0;
    for (int i = 0; i < n && k < cap; i++) k += (size_t)snprintf(out + k, cap - k, "<%d>", (int)t[i]);
}

#endif
