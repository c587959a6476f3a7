/* output.c — from a row of logits (or a token sampled on the backend) to a request's events:
 * sample, append, detokenize, apply stop rules, deliver. Also the last event of requests that end
 * any other way, and the sample op's parameter block for a step's rows. Engine thread only.
 * Host sampling goes through the sample op's CPU implementation (backend/cpu/cpu_sample.c) over
 * the executor's host logits, which it overwrites.
 * Not here: the sampler itself (backend/cpu/cpu_sample.c; sampling.c keeps the reference and gives
 * the logprob ids' values, g4_sample_id_logprobs), stop matching (stop.c), the loop (engine.c). */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/engine_impl.h"
#include "engine/spec.h"

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void usage(const g4_seq *q, g4_event *ev) {
    ev->prompt_tokens = q->n_prompt;
    ev->completion_tokens = g4_seq_n_output(q);
    ev->cached_tokens = q->cached_tokens;
    ev->spec_draft_tokens = q->spec_drafted;
    ev->spec_accepted_tokens = q->spec_accepted;
    ev->queue_s = q->t_scheduled > 0 ? q->t_scheduled - q->t_submit : now_s() - q->t_submit;
}

/* Takes q out everywhere and frees it; its last event has been delivered. */
static void retire(g4_engine *e, g4_seq *q, g4_finish_reason why) {
    g4_sched_remove(&e->sched, q);
    if (q->detok && e->detok.close) e->detok.close(q->detok);
    e->st.finished[why]++;
    g4_seq_free(q);
}

void g4_engine_finish(g4_engine *e, g4_seq *q, g4_finish_reason why, const char *error) {
    g4_event ev = {.id = q->id, .finish = why, .stop_token = -1, .error = error, .text = e->has_detok ? "" : NULL};
    usage(q, &ev);
    q->on_event(q->user, &ev);
    retire(e, q, why);
}

/* Detokenizer push (or finish) into e->text; returns its length, or −1. A push cannot be
 * repeated, so e->text is sized generously (64 KiB) up front. */
static int detok_call(g4_engine *e, g4_seq *q, int32_t token, bool finish) {
    e->text[0] = 0;
    if (finish) return e->detok.finish ? e->detok.finish(q->detok, e->text, e->text_cap) : 0;
    return e->detok.push(q->detok, token, e->text, e->text_cap);
}

/* The text a stop id ends the output with, into e->text: what the detokenizer still held, after
 * the id's own text when the request shows it (include_stop_str_in_output). Length, or −1. */
static int detok_stop_id(g4_engine *e, g4_seq *q, int32_t token) {
    if (!q->stop.include) return detok_call(e, q, token, true);
    int n = detok_call(e, q, token, false);
    if (n < 0 || !e->detok.finish) return n;
    int m = e->detok.finish(q->detok, e->text + n, e->text_cap - (size_t)n);
    return m < 0 ? m : n + m;
}

/* q's row of the sample op's parameter block: R, and its penalty entries at pe (distinct
 * prompt ∪ output tokens, output counts capped at 65535) when it has penalties. Returns the
 * number of penalty entries. lp_slot: its logprob record, −1 when it asks for none. ahead: the
 * row samples the output token after q's first `ahead` proposals (tokens[len, len + ahead)),
 * which count as output for the penalties and the random draw's index. */
static int row_params(g4_engine *e, g4_seq *q, int ahead, g4_sample_row_params *R, g4_sample_penalty *pe, int pen_first,
                      int lp_slot) {
    const g4_sampling *sp = &q->sampling;
    int n_out = g4_seq_n_output(q) + ahead, n_hist = q->n_prompt + n_out, n = 0;
    *R = g4_sampling_row(sp, q->seed, (uint64_t)n_out);
    R->lp_slot = lp_slot;
    if (!g4_engine_row_has_penalty(q)) return 0;
    uint8_t *seen = e->sampler.seen;
    uint16_t *count = e->sampler.count;
    for (int i = 0; i < n_hist; i++) {
        int32_t t = q->tokens[i];
        if (i >= q->n_prompt && count[t] < UINT16_MAX) count[t]++;
        if (!seen[t]) seen[t] = 1, pe[n++].token = t;
    }
    for (int j = 0; j < n; j++) pe[j].count = count[pe[j].token], seen[pe[j].token] = 0, count[pe[j].token] = 0;
    R->pen_first = pen_first;
    R->n_pen = n;
    return n;
}

int g4_engine_row_has_penalty(const g4_seq *q) {
    const g4_sampling *sp = &q->sampling;
    return (sp->repetition_penalty > 0 && sp->repetition_penalty != 1.0f) || sp->presence_penalty != 0 ||
           sp->frequency_penalty != 0;
}

int g4_engine_sample_params(g4_engine *e, g4_seq *const *rows, const int32_t *ahead, int n_rows, int *n_logprobs,
                            g4_error *err) {
    size_t n_pen_max = 0;
    for (int r = 0; r < n_rows; r++)
        if (g4_engine_row_has_penalty(rows[r])) n_pen_max += (size_t)(rows[r]->len + (ahead ? ahead[r] : 0));
    size_t need = g4_sample_params_bytes(n_rows, (int)n_pen_max);
    if (need > e->sample_params_cap) {
        void *p = realloc(e->sample_params, need);
        if (!p) return g4_fail(err, "engine: out of memory for sampling parameters");
        e->sample_params = p, e->sample_params_cap = need;
    }
    g4_sample_params *P = e->sample_params;
    *P = (g4_sample_params){.n_rows = n_rows, .vocab = e->ex.vocab, .mask_words = (e->ex.vocab + 31) / 32};
    g4_sample_row_params *R = g4_sample_rows(P);
    g4_sample_penalty *pe = (g4_sample_penalty *)(R + n_rows);
    int n_pen = 0, n_lp = 0;
    for (int r = 0; r < n_rows; r++) {
        int slot = rows[r]->sampling.logprobs >= 0 ? n_lp++ : -1;
        n_pen += row_params(e, rows[r], ahead ? ahead[r] : 0, &R[r], pe + n_pen, n_pen, slot);
    }
    P->n_pen = n_pen;
    *n_logprobs = n_lp;
    e->sample_params_bytes = g4_sample_params_bytes(n_rows, n_pen);
    return 0;
}

void g4_engine_result(g4_sample_result *out, int32_t token, const g4_sample_logprobs *lp) {
    out->token = token;
    out->logprob = 0, out->n_top = 0;
    if (lp) {
        out->logprob = lp->logprob, out->n_top = lp->n_top;
        memcpy(out->top_ids, lp->top_ids, (size_t)lp->n_top * sizeof *lp->top_ids);
        memcpy(out->top_logprobs, lp->top_logprobs, (size_t)lp->n_top * sizeof *lp->top_logprobs);
    }
}

/* q's logit processors on its raw host row: biases added, the allowed ids and the constraint's
 * mask (both: their intersection), less the stop ids while min_tokens is pending, as the sample
 * op's mask row (the op then gives −inf to every other token). *mask gets the mask or NULL. 1 when
 * the mask allows no token, −1 on error. */
static int logit_processors(g4_engine *e, const g4_seq *q, float *logits, const uint32_t **mask, g4_error *err) {
    int W = (e->ex.vocab + 31) / 32;
    *mask = NULL;
    for (int i = 0; i < q->n_logit_bias; i++) logits[q->logit_bias[i].token] += q->logit_bias[i].bias;
    int constrained = 0;
    bool min_pending = g4_seq_min_tokens_pending(q); /* stop ids may not end the output yet (stop.h) */
    if (q->constraint) {
        constrained = q->constraint_fn->mask(q->constraint, min_pending ? NULL : q->stop.ids,
                                             min_pending ? 0 : q->stop.n_ids, e->constraint_mask, err);
        if (constrained < 0) return -1;
    }
    if (!q->n_allowed_ids && !constrained && !min_pending) return 0;
    uint32_t *m = e->allowed_mask;
    if (q->n_allowed_ids) {
        memset(m, 0, (size_t)W * sizeof *m);
        for (int i = 0; i < q->n_allowed_ids; i++) m[q->allowed_ids[i] / 32] |= 1u << (q->allowed_ids[i] % 32);
        if (constrained)
            for (int w = 0; w < W; w++) m[w] &= e->constraint_mask[w];
    } else if (constrained) {
        m = e->constraint_mask;
    } else {
        memset(m, 0xff, (size_t)W * sizeof *m); /* bits past the vocabulary are never read */
    }
    if (min_pending)
        for (int i = 0; i < q->stop.n_ids; i++) {
            int32_t t = q->stop.ids[i]; /* request ids are checked at submit; a model's eos may lie outside */
            if (t >= 0 && t < e->ex.vocab) m[t / 32] &= ~(1u << (t % 32));
        }
    uint32_t any = 0;
    for (int w = 0; w < W; w++) any |= m[w];
    if (!any) return 1;
    g4_sample_rows(e->sample_params)[0].flags |= G4_SAMPLE_MASKED;
    *mask = m;
    return 0;
}

/* One row through the sample op's CPU implementation over host logits (which it may
 * overwrite). Same result as g4_sample_row. 1 (no sample) when the row's mask allows nothing. */
static int sample_one(g4_engine *e, g4_seq *q, float *logits, g4_sample_result *out, g4_error *err) {
    int n_lp = 0;
    if (g4_engine_sample_params(e, &q, NULL, 1, &n_lp, err)) return -1;
    g4_sample_logprobs lp;
    int32_t tok;
    const uint32_t *mask;
    int rc = logit_processors(e, q, logits, &mask, err);
    if (rc) return rc;
    g4_sample_args a = {.logits = logits,
                        .ld = e->ex.vocab,
                        .vocab = e->ex.vocab,
                        .max_rows = 1,
                        .params = e->sample_params,
                        .mask = mask,
                        .tokens = &tok,
                        .logprobs = &lp};
    if (g4_cpu_sample_host(e->sample_scratch, &a, err)) return -1;
    if (tok < 0) /* no allowed token with a finite logit (NaN logits, or only -inf ones left) */
        return g4_fail(err, "sampling: no token could be sampled (no allowed token has a finite logit)");
    g4_engine_result(out, tok, n_lp ? &lp : NULL);
    /* logits is now the op's prepared row (mask and penalties applied in place) */
    if (q->n_logprob_ids)
        g4_sample_id_logprobs(logits, &q->sampling, tok, out->logprob, q->logprob_ids, q->n_logprob_ids,
                              q->logprob_id_values);
    return 0;
}

/* The request's constraint allows no further token (complete, and no stop id may end it): it ends
 * with STOP, showing the text the detokenizer and the stop-string matcher still hold. */
static void finish_complete(g4_engine *e, g4_seq *q) {
    g4_error err = {{0}};
    g4_stop_result res = {.stop_string = -1, .stop_token = -1};
    int n_tail = e->has_detok ? detok_call(e, q, -1, true) : 0;
    if (n_tail < 0) n_tail = 0;
    if (g4_stop_finish(&q->stop, g4_seq_n_output(q), e->has_detok ? e->text : NULL, (size_t)n_tail, &res, &err)) {
        g4_engine_finish(e, q, G4_FINISH_ERROR, err.msg);
        return;
    }
    g4_event ev = {.id = q->id, .finish = G4_FINISH_STOP, .stop_token = -1};
    if (e->has_detok) ev.text = res.text ? res.text : "";
    if (res.stop_string >= 0) ev.stop_string = q->stop.strings[res.stop_string];
    usage(q, &ev);
    q->on_event(q->user, &ev);
    retire(e, q, G4_FINISH_STOP);
}

/* Samples q's host row into *r; false when that ended q (an error, or nothing allowed). */
static bool sample_host(g4_engine *e, g4_seq *q, float *logits, g4_sample_result *r) {
    double t0 = now_s();
    g4_error serr = {{0}};
    int src = sample_one(e, q, logits, r, &serr);
    e->st.sample_seconds += now_s() - t0;
    if (src < 0) g4_engine_finish(e, q, G4_FINISH_ERROR, serr.msg);
    if (src > 0) finish_complete(e, q);
    return src == 0;
}

bool g4_engine_emit_row(g4_engine *e, g4_seq *q, float *logits) {
    g4_sample_result r;
    return sample_host(e, q, logits, &r) && g4_engine_emit_token(e, q, &r);
}

void g4_engine_emit_verified(g4_engine *e, g4_seq *q, int r0, bool on_device) {
    int nd = q->n_draft, acc = 0;
    int32_t d[G4_SPEC_MAX_TOKENS];
    memcpy(d, q->tokens + q->len, (size_t)nd * sizeof *d);
    q->spec_drafted += nd;
    bool alive = true;
    /* Row j was sampled (or is sampled now, after tokens 0..j−1 were emitted) exactly as the
     * token after q's first j proposals would be without speculation; it is q's next token as
     * long as every proposal before it was accepted, so emission stops at the first mismatch. */
    for (int j = 0; j <= nd && alive; j++) {
        g4_sample_result res;
        int r = r0 + j;
        if (on_device) {
            int slot = q->sampling.logprobs >= 0 ? g4_sample_rows(e->sample_params)[r].lp_slot : -1;
            g4_engine_result(&res, e->sampled[r], slot >= 0 ? &e->sampled_lp[slot] : NULL);
        } else if (!sample_host(e, q, e->logits + (size_t)r * e->ex.vocab, &res)) {
            alive = false;
            break;
        }
        bool accepted = j < nd && res.token == d[j];
        if (accepted) acc++, q->spec_accepted++; /* before the event: the last one reports it */
        alive = g4_engine_emit_token(e, q, &res);
        if (!accepted) break;
    }
    g4_spec_record(&e->st, alive ? q : NULL, nd, acc);
    if (alive) g4_sched_accept(&e->sched, q, acc);
}

bool g4_engine_emit_token(g4_engine *e, g4_seq *q, const g4_sample_result *rp) {
    const g4_sample_result r = *rp;
    g4_error cerr = {{0}};
    if (r.token < 0 || r.token >= e->ex.vocab) { /* never embedded in a step: check_step trusts ids */
        g4_engine_finish(e, q, G4_FINISH_ERROR, "sampling produced no valid token");
        return false;
    }
    if (q->constraint && q->constraint_fn->advance(q->constraint, r.token, &cerr)) {
        g4_engine_finish(e, q, G4_FINISH_ERROR, cerr.msg);
        return false;
    }
    g4_seq_append(q, r.token, e->o.block_size);
    e->st.output_tokens++;
    int n_out = g4_seq_n_output(q);

    g4_error err = {{0}};
    int n_text = 0;
    /* a stop id ends the text: the detokenizer gives back what it held (a byte run), after the
     * id's own text only with include_stop_str_in_output */
    bool stop_id = g4_stop_is_stop_id(&q->stop, r.token, n_out);
    if (e->has_detok && (n_text = stop_id ? detok_stop_id(e, q, r.token) : detok_call(e, q, r.token, false)) < 0) {
        g4_engine_finish(e, q, G4_FINISH_ERROR, "detokenizer failed");
        return false;
    }
    g4_stop_result res;
    if (g4_stop_token(&q->stop, r.token, n_out, e->has_detok ? e->text : NULL, (size_t)n_text, &res, &err)) {
        g4_engine_finish(e, q, G4_FINISH_ERROR, err.msg);
        return false;
    }
    g4_finish_reason why = res.finish;
    if (why == G4_FINISH_LENGTH || (why == G4_FINISH_STOP && res.stop_string < 0)) {
        /* ends without a stop string so far: show what was held, plus the detokenizer's tail
         * (for a stop id, what detok_stop_id above gave back) */
        int n_tail = stop_id ? n_text : e->has_detok ? detok_call(e, q, -1, true) : 0;
        if (n_tail < 0) n_tail = 0;
        int stop_token = res.stop_token;
        bool deliver = res.deliver;
        if (g4_stop_finish(&q->stop, n_out, e->text, (size_t)n_tail, &res, &err)) {
            g4_engine_finish(e, q, G4_FINISH_ERROR, err.msg);
            return false;
        }
        if (res.stop_string >= 0) why = G4_FINISH_STOP;
        res.stop_token = stop_token;
        res.deliver = deliver;
    }
    g4_event ev = {.id = q->id, .finish = why, .stop_token = res.stop_token};
    if (res.deliver) {
        ev.n_tokens = 1;
        ev.token = r.token;
        if (q->sampling.logprobs >= 0) {
            ev.logprob = r.logprob;
            if (q->n_logprob_ids) { /* in place of the top: sample_one filled them for this token */
                ev.n_top = q->n_logprob_ids;
                ev.top_ids = q->logprob_ids;
                ev.top_logprobs = q->logprob_id_values;
            } else {
                ev.n_top = r.n_top;
                ev.top_ids = r.top_ids;
                ev.top_logprobs = r.top_logprobs;
            }
        }
    }
    if (e->has_detok) ev.text = res.text;
    if (res.stop_string >= 0) ev.stop_string = q->stop.strings[res.stop_string];
    if (why != G4_FINISH_NONE) usage(q, &ev);
    q->on_event(q->user, &ev);
    if (why == G4_FINISH_NONE) return true;
    retire(e, q, why);
    return false;
}
