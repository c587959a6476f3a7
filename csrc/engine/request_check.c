/* request_check.c — what submit refuses before a request enters the queue: invalid parameters
 * (G4_ERR_INVALID) and requests that could never run with the engine's limits and pools
 * (G4_ERR_TOO_LONG). Everything else runs eventually: lack of memory at run time only delays a
 * request (preemption), it never fails it. Not here: the queue-length limit (engine.c). */
#include <math.h>
#include <string.h>

#include "engine/engine.h"
#include "engine/kvcache.h"

/* The images of a request (g4_mm_item): each a run inside the prompt, in order, disjoint, whose
 * patch grid gives its soft-token count, computed in one step (so no longer than the budget). */
static int g4_engine_check_images(const g4_engine_opts *o, const g4_request_params *p, g4_error *err) {
    if (p->n_mm < 0 || (p->n_mm && !p->mm))
        return g4_fail(err, "request: %d images without an array", p->n_mm), G4_ERR_INVALID;
    if (p->n_mm == 0) return 0;
    if (!o->vision)
        return g4_fail(err, "request: this model has no vision tower: image inputs are not supported"), G4_ERR_INVALID;
    if (p->prompt_logprobs)
        return g4_fail(err, "request: prompt_logprobs with images is not supported"), G4_ERR_INVALID;
    for (int i = 0, end = 0; i < p->n_mm; i++) {
        const g4_mm_item *it = &p->mm[i];
        if (it->n_tokens < 1 || it->pos < end || it->pos > p->n_prompt - it->n_tokens)
            return g4_fail(err,
                           "request: image %d has soft tokens %d..%d, expected a run inside the prompt (%d tokens) "
                           "after the previous image's",
                           i, it->pos, it->pos + it->n_tokens - 1, p->n_prompt),
                   G4_ERR_INVALID;
        if (!it->patches || it->ph < 3 || it->pw < 3 || it->ph % 3 || it->pw % 3 ||
            (long long)(it->ph / 3) * (it->pw / 3) != it->n_tokens)
            return g4_fail(err, "request: image %d: a %d × %d patch grid does not give its %d soft tokens", i, it->ph,
                           it->pw, it->n_tokens),
                   G4_ERR_INVALID;
        for (int t = it->pos; t < it->pos + it->n_tokens; t++)
            if (p->prompt[t] != p->prompt[it->pos])
                return g4_fail(err, "request: image %d: prompt[%d] is not its placeholder token", i, t), G4_ERR_INVALID;
        if (it->n_tokens > o->step_token_budget)
            return g4_fail(err,
                           "request: image %d has %d soft tokens, more than the step token budget of %d (an image's "
                           "tokens are computed in one step)",
                           i, it->n_tokens, o->step_token_budget),
                   G4_ERR_TOO_LONG;
        end = it->pos + it->n_tokens;
    }
    return 0;
}

int g4_engine_check_request(const g4_engine_opts *o, int vocab, bool has_detok, const g4_request_params *p,
                            g4_error *err) {
    const g4_sampling *s = &p->sampling;
    const g4_stop_rules *r = &p->stop;
    if (!p->on_event) return g4_fail(err, "request: on_event is NULL"), G4_ERR_INVALID;
    if (!p->prompt || p->n_prompt < 1) return g4_fail(err, "request: prompt is empty"), G4_ERR_INVALID;
    for (int i = 0; i < p->n_prompt; i++)
        if (p->prompt[i] < 0 || p->prompt[i] >= vocab)
            return g4_fail(err, "request: prompt[%d] = %d is outside the vocabulary 0..%d", i, p->prompt[i], vocab - 1),
                   G4_ERR_INVALID;
    if (r->max_tokens < 1) return g4_fail(err, "request: max_tokens %d must be ≥ 1", r->max_tokens), G4_ERR_INVALID;
    if (r->min_tokens < 0 || r->min_tokens > r->max_tokens)
        return g4_fail(err, "request: min_tokens %d must be in 0..max_tokens (%d)", r->min_tokens, r->max_tokens),
               G4_ERR_INVALID;
    if (r->n_stop_ids < 0 || (r->n_stop_ids && !r->stop_ids))
        return g4_fail(err, "request: %d stop ids without an array", r->n_stop_ids), G4_ERR_INVALID;
    for (int i = 0; i < r->n_stop_ids; i++)
        if (r->stop_ids[i] < 0 || r->stop_ids[i] >= vocab)
            return g4_fail(err, "request: stop_ids[%d] = %d is outside the vocabulary 0..%d", i, r->stop_ids[i],
                           vocab - 1),
                   G4_ERR_INVALID;
    if (r->n_stop_strings < 0 || (r->n_stop_strings && !r->stop_strings))
        return g4_fail(err, "request: %d stop strings without an array", r->n_stop_strings), G4_ERR_INVALID;
    if (r->n_stop_strings > 0 && !has_detok)
        return g4_fail(err, "request: stop strings need a detokenizer, and this engine has none"), G4_ERR_INVALID;
    for (int i = 0; i < r->n_stop_strings; i++) {
        if (!r->stop_strings[i] || !r->stop_strings[i][0])
            return g4_fail(err, "request: stop_strings[%d] is empty", i), G4_ERR_INVALID;
        /* Each choice copies its stop strings and holds back as much text as the longest one,
         * so a megabyte stop string costs megabytes per choice and streams nothing. */
        size_t len = strlen(r->stop_strings[i]);
        if (len > G4_MAX_STOP_STRING_BYTES)
            return g4_fail(err, "request: stop_strings[%d] is %zu bytes; at most %d", i, len, G4_MAX_STOP_STRING_BYTES),
                   G4_ERR_INVALID;
    }
    if (!(s->temperature >= 0) || s->temperature > 100)
        return g4_fail(err, "request: temperature %g must be in [0, 100]", s->temperature), G4_ERR_INVALID;
    if (!(s->top_p > 0 && s->top_p <= 1))
        return g4_fail(err, "request: top_p %g must be in (0, 1]", s->top_p), G4_ERR_INVALID;
    if (!(s->min_p >= 0 && s->min_p <= 1))
        return g4_fail(err, "request: min_p %g must be in [0, 1]", s->min_p), G4_ERR_INVALID;
    if (!(s->repetition_penalty > 0 && s->repetition_penalty <= 100))
        return g4_fail(err, "request: repetition_penalty %g must be in (0, 100]", s->repetition_penalty),
               G4_ERR_INVALID;
    if (!(s->presence_penalty >= -2 && s->presence_penalty <= 2) ||
        !(s->frequency_penalty >= -2 && s->frequency_penalty <= 2))
        return g4_fail(err, "request: presence/frequency penalties must be in [-2, 2]"), G4_ERR_INVALID;
    if (p->n_logit_bias < 0 || (p->n_logit_bias && !p->logit_bias))
        return g4_fail(err, "request: %d logit biases without an array", p->n_logit_bias), G4_ERR_INVALID;
    for (int i = 0; i < p->n_logit_bias; i++)
        if (p->logit_bias[i].token < 0 || p->logit_bias[i].token >= vocab || !(fabsf(p->logit_bias[i].bias) <= 100))
            return g4_fail(err,
                           "request: logit_bias[%d] (token %d, bias %g) needs a token in 0..%d and a bias in "
                           "[-100, 100]",
                           i, p->logit_bias[i].token, p->logit_bias[i].bias, vocab - 1),
                   G4_ERR_INVALID;
    if (p->n_allowed_ids < 0 || (p->n_allowed_ids && !p->allowed_ids))
        return g4_fail(err, "request: %d allowed ids without an array", p->n_allowed_ids), G4_ERR_INVALID;
    for (int i = 0; i < p->n_allowed_ids; i++)
        if (p->allowed_ids[i] < 0 || p->allowed_ids[i] >= vocab)
            return g4_fail(err, "request: allowed_ids[%d] = %d is outside the vocabulary 0..%d", i, p->allowed_ids[i],
                           vocab - 1),
                   G4_ERR_INVALID;
    if (p->n_logprob_ids < 0 || p->n_logprob_ids > G4_MAX_LOGPROB_IDS || (p->n_logprob_ids && !p->logprob_ids) ||
        (p->n_logprob_ids && s->logprobs < 0))
        return g4_fail(err, "request: %d logprob ids need an array, at most %d, and logprobs >= 0", p->n_logprob_ids,
                       G4_MAX_LOGPROB_IDS),
               G4_ERR_INVALID;
    for (int i = 0; i < p->n_logprob_ids; i++)
        if (p->logprob_ids[i] < 0 || p->logprob_ids[i] >= vocab)
            return g4_fail(err, "request: logprob_ids[%d] = %d is outside the vocabulary 0..%d", i, p->logprob_ids[i],
                           vocab - 1),
                   G4_ERR_INVALID;
    if (p->constraint &&
        (!p->constraint_fn || !p->constraint_fn->mask || !p->constraint_fn->advance || !p->constraint_fn->free))
        return g4_fail(err, "request: a constraint without its functions"), G4_ERR_INVALID;
    if (p->prompt_logprobs && (p->prompt_logprobs_top < 0 || p->prompt_logprobs_top > G4_MAX_TOP_LOGPROBS))
        return g4_fail(err, "request: prompt_logprobs_top %d must be in 0..%d", p->prompt_logprobs_top,
                       G4_MAX_TOP_LOGPROBS),
               G4_ERR_INVALID;
    if (s->logprobs < -1 || s->logprobs > G4_MAX_TOP_LOGPROBS)
        return g4_fail(err, "request: logprobs %d must be in -1..%d", s->logprobs, G4_MAX_TOP_LOGPROBS), G4_ERR_INVALID;
    int rc = g4_engine_check_images(o, p, err);
    if (rc) return rc;
    long long L = (long long)p->n_prompt + r->max_tokens;
    if (L > o->max_model_len)
        return g4_fail(err, "request: prompt (%d tokens) + max_tokens (%d) = %lld exceeds the maximum model length %d",
                       p->n_prompt, r->max_tokens, L, o->max_model_len),
               G4_ERR_TOO_LONG;
    g4_kvcache geo = {.block_size = o->block_size, .window = o->sliding_window};
    int chunk = o->step_token_budget < (int)L ? o->step_token_budget : (int)L;
    int need_g = g4_kvcache_seq_blocks(&geo, G4_POOL_GLOBAL, (int)L, chunk);
    int need_s = g4_kvcache_seq_blocks(&geo, G4_POOL_SLIDING, (int)L, chunk);
    if (need_g > o->n_blocks_global || need_s > o->n_blocks_sliding)
        return g4_fail(err, "request: %lld tokens need %d global and %d sliding KV blocks, the pools have %d and %d", L,
                       need_g, need_s, o->n_blocks_global, o->n_blocks_sliding),
               G4_ERR_TOO_LONG;
    if (err) err->msg[0] = 0;
    return 0;
}
