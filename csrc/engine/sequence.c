/* sequence.c — creating, growing and freeing an engine sequence (see sequence.h). */
#include "engine/sequence.h"

#include <stdlib.h>
#include <string.h>

#include "engine/mm.h"
#include "engine/prefix_cache.h"

static void add_keys(g4_seq *s, int B) {
    while ((s->n_keys + 1) * B <= s->len) {
        uint64_t parent = s->n_keys ? s->keys[s->n_keys - 1] : G4_PREFIX_ROOT;
        uint64_t key = g4_prefix_hash(parent, s->tokens + (size_t)s->n_keys * B, B);
        s->keys[s->n_keys] = g4_seq_mm_key(s->mm, key, s->n_keys, B); /* images by content */
        s->n_keys++;
    }
}

g4_seq *g4_seq_create(const g4_request_params *p, int block_size, const int32_t *eos, int n_eos, g4_error *err) {
    g4_seq *s = calloc(1, sizeof *s);
    if (!s) {
        if (p->constraint) p->constraint_fn->free(p->constraint);
        g4_fail(err, "engine: out of memory for a request");
        return NULL;
    }
    s->constraint_fn = p->constraint ? p->constraint_fn : NULL;
    s->constraint = p->constraint;
    s->cap = p->n_prompt + p->stop.max_tokens;
    s->tokens = malloc((size_t)s->cap * sizeof *s->tokens);
    s->keys = malloc((size_t)(s->cap / block_size + 1) * sizeof *s->keys);
    if (!s->tokens || !s->keys) {
        g4_fail(err, "engine: out of memory for a request of %d tokens", s->cap);
        g4_seq_free(s);
        return NULL;
    }
    if (g4_stop_init(&s->stop, &p->stop, eos, n_eos, err)) {
        g4_seq_free(s);
        return NULL;
    }
    if (p->n_mm > 0 && !(s->mm = g4_seq_mm_copy(p->mm, p->n_mm, err))) {
        g4_seq_free(s);
        return NULL;
    }
    memcpy(s->tokens, p->prompt, (size_t)p->n_prompt * sizeof *s->tokens);
    s->n_prompt = s->len = p->n_prompt;
    add_keys(s, block_size);
    s->priority = p->priority;
    s->slot = -1;
    s->heap_idx = -1;
    s->sampling = p->sampling;
    if (p->n_logit_bias > 0) {
        s->logit_bias = malloc((size_t)p->n_logit_bias * sizeof *s->logit_bias);
        if (!s->logit_bias) {
            g4_fail(err, "engine: out of memory for logit_bias");
            g4_seq_free(s);
            return NULL;
        }
        memcpy(s->logit_bias, p->logit_bias, (size_t)p->n_logit_bias * sizeof *s->logit_bias);
        s->n_logit_bias = p->n_logit_bias;
    }
    if (p->n_allowed_ids > 0) {
        s->allowed_ids = malloc((size_t)p->n_allowed_ids * sizeof *s->allowed_ids);
        if (!s->allowed_ids) {
            g4_fail(err, "engine: out of memory for allowed token ids");
            g4_seq_free(s);
            return NULL;
        }
        memcpy(s->allowed_ids, p->allowed_ids, (size_t)p->n_allowed_ids * sizeof *s->allowed_ids);
        s->n_allowed_ids = p->n_allowed_ids;
    }
    if (p->n_logprob_ids > 0) {
        s->logprob_ids = malloc((size_t)p->n_logprob_ids * sizeof *s->logprob_ids);
        s->logprob_id_values = malloc((size_t)p->n_logprob_ids * sizeof *s->logprob_id_values);
        if (!s->logprob_ids || !s->logprob_id_values) {
            g4_fail(err, "engine: out of memory for logprob token ids");
            g4_seq_free(s);
            return NULL;
        }
        memcpy(s->logprob_ids, p->logprob_ids, (size_t)p->n_logprob_ids * sizeof *s->logprob_ids);
        s->n_logprob_ids = p->n_logprob_ids;
    }
    s->want_plp = p->prompt_logprobs;
    s->plp_top = p->prompt_logprobs_top;
    s->plp_next = 1;
    s->detok_flags = p->detok_flags;
    s->on_event = p->on_event;
    s->user = p->user;
    return s;
}

void g4_seq_free(g4_seq *s) {
    if (!s) return;
    g4_stop_free(&s->stop);
    if (s->constraint) s->constraint_fn->free(s->constraint);
    free(s->logit_bias);
    free(s->allowed_ids);
    free(s->logprob_ids);
    free(s->logprob_id_values);
    free(s->tokens);
    free(s->keys);
    g4_seq_mm_free(s->mm);
    free(s);
}

void g4_seq_append(g4_seq *s, int32_t token, int block_size) {
    s->tokens[s->len++] = token;
    add_keys(s, block_size);
}
