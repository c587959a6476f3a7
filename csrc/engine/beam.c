/* beam.c — beam search as a driver over the engine's public API (the algorithm and the output
 * events: beam.h).
 *
 * Threads: g4_beam_start submits the first step on the caller's thread; every later step is
 * submitted from the engine thread, in the event callback of the step's last finished request
 * (the engine holds no lock there, engine.h). `mu` guards the search's state against
 * g4_beam_cancel and g4_beam_release from other threads; the outputs' events are delivered
 * with `mu` released, since a front-end may release the search from inside its last callback.
 * Not here: the engine's scheduling of the steps' requests (engine.c), front-end shapes. */
#include "engine/beam.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "engine/mm.h"

enum { CAND_MAX = 2 * G4_BEAM_MAX_WIDTH, TEXT_CAP = 64 << 10 };

/* One hypothesis: the tokens generated after the prompt and their logprobs. */
typedef struct beam_seq {
    int32_t *tokens;
    float *lps;
    int n, cap;                 /* generated tokens (an end id that completed it included); room */
    double cum;
    int32_t end;                /* the end id that completed it, −1 while live / cut by length */
    double score;               /* completed: its ranking score */
    uint64_t order;             /* completed: when (ties in the ranking go to the earlier) */
} beam_seq;

/* One step request of one live beam. */
typedef struct beam_slot {
    struct g4_beam *b;
    int index;                  /* its beam in b->live */
    uint64_t id;                /* engine request id, 0 once its last event arrived */
    int n_cand;
    int32_t cand_ids[CAND_MAX];
    float cand_lps[CAND_MAX];
} beam_slot;

typedef struct beam_cand {
    double score;
    int beam, rank;
} beam_cand;

struct g4_beam {
    pthread_mutex_t mu;
    int refs;                   /* the caller's and, until the outputs are out, the search's */
    g4_engine *e;
    int width, max_tokens, n_prompt, n_mm;
    float length_penalty;
    g4_request_params base;     /* the step requests' fixed part (prompt, images: owned copies) */
    int32_t *ids;               /* [n_prompt + max_tokens] a step request's prompt */
    int32_t *end_ids;           /* the model's eos ids (unless ignore_eos) and the request's stop ids */
    int n_end;
    g4_beam_out outs[G4_BEAM_MAX_WIDTH];
    beam_seq live[G4_BEAM_MAX_WIDTH], next[G4_BEAM_MAX_WIDTH];
    int n_live;
    /* The W best completed beams by (score, completion order): a completed beam's score never
     * changes and the ranking breaks ties by completion, so one outside them never reaches the
     * outputs — the rest are dropped as they come (a long search completes W per end id and step). */
    beam_seq done[G4_BEAM_MAX_WIDTH];
    int n_done;
    uint64_t n_completed;
    beam_slot slots[G4_BEAM_MAX_WIDTH];
    int pending;                /* step requests whose last event has not arrived */
    int steps;
    bool cancelled, aborted, over;
    g4_error err;               /* a step request's error, or the driver's own */
    double queue_s;             /* the first step request's queue time */
    int submit_code;            /* G4_ERR_* of a refused step request */
    unsigned detok_flags;
};

/* --- checks ------------------------------------------------------------------------------ */

int g4_beam_check(const g4_request_params *p, int width, g4_error *err) {
    const g4_sampling *s = &p->sampling;
    const char *what = NULL;
    if (width < 1 || width > G4_BEAM_MAX_WIDTH)
        return g4_fail(err, "beam search: width %d is outside 1..%d", width, G4_BEAM_MAX_WIDTH), G4_ERR_INVALID;
    if (s->logprobs >= 0 || p->n_logprob_ids || p->prompt_logprobs) what = "logprobs";
    else if (p->stop.n_stop_strings) what = "stop strings";
    else if (p->stop.min_tokens > 0) what = "min_tokens";
    else if ((s->repetition_penalty > 0 && s->repetition_penalty != 1.0f) || s->presence_penalty != 0 ||
             s->frequency_penalty != 0)
        what = "penalties";
    else if (p->n_logit_bias || p->n_allowed_ids) what = "logit_bias / allowed_token_ids";
    else if (p->constraint) what = "structured output";
    if (what) return g4_fail(err, "beam search with %s is not supported yet", what), G4_ERR_INVALID;
    return 0;
}

/* --- lifetime ---------------------------------------------------------------------------- */

static void seq_free(beam_seq *s) {
    free(s->tokens);
    free(s->lps);
    memset(s, 0, sizeof *s);
}

static void beam_free(g4_beam *b) {
    for (int i = 0; i < G4_BEAM_MAX_WIDTH; i++) {
        seq_free(&b->live[i]);
        seq_free(&b->next[i]);
    }
    for (int i = 0; i < b->n_done; i++) seq_free(&b->done[i]);
    for (int i = 0; i < b->n_mm; i++) free((void *)b->base.mm[i].patches);
    free((void *)b->base.mm);
    free(b->ids);
    free(b->end_ids);
    pthread_mutex_destroy(&b->mu);
    free(b);
}

void g4_beam_release(g4_beam *b) {
    if (!b) return;
    pthread_mutex_lock(&b->mu);
    int left = --b->refs;
    pthread_mutex_unlock(&b->mu);
    if (!left) beam_free(b);
}

/* --- one step ---------------------------------------------------------------------------- */

static void on_step_event(void *user, const g4_event *ev);

/* Under mu: submits one request per live beam. Returns how many went in; on a refusal the ones
 * already in are cancelled (they come back as ABORT) and b->err says why. */
static int submit_step(g4_beam *b) {
    g4_request_params q = b->base;
    q.continuation = b->steps > 0; /* admitted with its first step */
    b->pending = b->n_live;
    int in = 0;
    for (int i = 0; i < b->n_live; i++) {
        const beam_seq *s = &b->live[i];
        if (s->n) memcpy(b->ids + b->n_prompt, s->tokens, (size_t)s->n * sizeof *s->tokens);
        q.n_prompt = b->n_prompt + s->n;
        beam_slot *sl = &b->slots[i];
        *sl = (beam_slot){.b = b, .index = i};
        q.user = sl;
        int code = 0;
        g4_error err = {{0}};
        sl->id = g4_engine_submit(b->e, &q, &code, &err);
        if (!sl->id) {
            b->pending -= b->n_live - i;
            b->submit_code = code;
            if (code == G4_ERR_STOPPED) b->aborted = true;
            else g4_fail(&b->err, "beam search: %s", err.msg);
            for (int k = 0; k < i; k++) g4_engine_cancel(b->e, b->slots[k].id);
            break;
        }
        in++;
    }
    return in;
}

static bool is_end(const g4_beam *b, int32_t t) {
    for (int i = 0; i < b->n_end; i++)
        if (b->end_ids[i] == t) return true;
    return false;
}

static int by_score(const void *x, const void *y) {
    const beam_cand *a = x, *c = y;
    if (a->score != c->score) return a->score > c->score ? -1 : 1;
    if (a->beam != c->beam) return a->beam < c->beam ? -1 : 1;
    return a->rank < c->rank ? -1 : a->rank > c->rank;
}

static double rank_score(const g4_beam *b, int n, double cum) {
    return cum / pow((double)(n > 1 ? n : 1), (double)b->length_penalty);
}

/* dst = src + (t, lp). dst's arrays grow geometrically (live beams, reused step after step), or
 * to exactly the length (exact: a completed beam, kept as it is). */
static int extend(const g4_beam *b, beam_seq *dst, const beam_seq *src, int32_t t, float lp, double cum, bool exact) {
    int need = src->n + 1;
    if (dst->cap < need) {
        int cap = exact ? need : dst->cap * 2 > need ? dst->cap * 2 : need < 16 ? 16 : need;
        if (cap > b->max_tokens) cap = b->max_tokens; /* need ≤ max_tokens */
        int32_t *tk = realloc(dst->tokens, (size_t)cap * sizeof *tk);
        if (tk) dst->tokens = tk;
        float *lps = realloc(dst->lps, (size_t)cap * sizeof *lps);
        if (lps) dst->lps = lps;
        if (!tk || !lps) return -1;
        dst->cap = cap;
    }
    if (src->n) {
        memcpy(dst->tokens, src->tokens, (size_t)src->n * sizeof *src->tokens);
        memcpy(dst->lps, src->lps, (size_t)src->n * sizeof *src->lps);
    }
    dst->tokens[src->n] = t;
    dst->lps[src->n] = lp;
    dst->n = need;
    dst->cum = cum;
    dst->end = -1;
    return 0;
}

/* src + the end id t completes: kept if it is among the W best completed so far. */
static int complete(g4_beam *b, const beam_seq *src, int32_t t, float lp, double cum) {
    double score = rank_score(b, src->n + 1, cum);
    int at = b->n_done;
    while (at > 0 && b->done[at - 1].score < score) at--; /* equal scores: the earlier first */
    b->n_completed++;
    if (at >= b->width) return 0;
    beam_seq d = {0};
    if (extend(b, &d, src, t, lp, cum, true)) {
        seq_free(&d);
        return -1;
    }
    d.end = t;
    d.score = score;
    d.order = b->n_completed;
    if (b->n_done == b->width) seq_free(&b->done[--b->n_done]);
    memmove(&b->done[at + 1], &b->done[at], (size_t)(b->n_done - at) * sizeof *b->done);
    b->done[at] = d;
    b->n_done++;
    return 0;
}

/* Under mu, every step request in: the next beams (vLLM's rule, beam.h). 0, or −1 (out of memory). */
static int select_next(g4_beam *b) {
    beam_cand c[G4_BEAM_MAX_WIDTH * CAND_MAX];
    int n = 0;
    for (int i = 0; i < b->n_live; i++) {
        const beam_slot *sl = &b->slots[i];
        const beam_seq *s = &b->live[i];
        for (int r = 0; r < sl->n_cand; r++) {
            double score = s->cum + (double)sl->cand_lps[r];
            if (is_end(b, sl->cand_ids[r])) {
                if (complete(b, s, sl->cand_ids[r], sl->cand_lps[r], score)) return -1;
            } else if (!isnan(score)) { /* −inf stays a candidate, as in vLLM */
                c[n++] = (beam_cand){score, i, r};
            }
        }
    }
    qsort(c, (size_t)n, sizeof *c, by_score);
    int k = n < b->width ? n : b->width;
    for (int j = 0; j < k; j++) {
        const beam_slot *sl = &b->slots[c[j].beam];
        if (extend(b, &b->next[j], &b->live[c[j].beam], sl->cand_ids[c[j].rank], sl->cand_lps[c[j].rank], c[j].score,
                   false))
            return -1;
    }
    for (int j = 0; j < G4_BEAM_MAX_WIDTH; j++) { /* swap, keeping every allocation */
        beam_seq t = b->live[j];
        b->live[j] = b->next[j];
        b->next[j] = t;
    }
    b->n_live = k;
    b->steps++;
    return 0;
}

/* --- the outputs ------------------------------------------------------------------------- */

typedef struct ranked {
    const beam_seq *s;
    double score;
    uint64_t order;
} ranked;

static int by_rank(const void *x, const void *y) {
    const ranked *a = x, *c = y;
    if (a->score != c->score) return a->score > c->score ? -1 : 1;
    return a->order < c->order ? -1 : 1;
}

/* One output's events (engine thread, mu not held). */
static void emit(const g4_beam *b, const g4_beam_out *out, const beam_seq *s, char *text) {
    const g4_detok_iface *dt = g4_engine_detok(b->e);
    void *st = dt ? dt->open(dt->ctx, b->detok_flags) : NULL;
    int n_out = s->end >= 0 ? s->n - 1 : s->n; /* the end id is not shown */
    g4_event ev = {.stop_token = -1, .prompt_tokens = b->n_prompt, .completion_tokens = n_out, .queue_s = b->queue_s};
    if (dt && !st) {
        ev.finish = G4_FINISH_ERROR;
        ev.error = "detokenizer: cannot open a stream";
        ev.text = "";
        out->on_event(out->user, &ev);
        return;
    }
    for (int i = 0; i < n_out; i++) {
        bool last = i == n_out - 1 && s->end < 0;
        int len = 0;
        text[0] = 0;
        if (st) {
            len = dt->push(st, s->tokens[i], text, TEXT_CAP / 2);
            if (len < 0) len = 0, text[0] = 0;
            if (last && dt->finish) {
                int tail = dt->finish(st, text + len, TEXT_CAP - (size_t)len);
                if (tail < 0) text[len] = 0;
            }
        }
        g4_event t = last ? ev : (g4_event){.stop_token = -1}; /* the last one carries the usage */
        t.n_tokens = 1;
        t.token = s->tokens[i];
        t.logprob = s->lps[i];
        t.text = st ? text : NULL;
        if (last) t.finish = G4_FINISH_LENGTH;
        out->on_event(out->user, &t);
    }
    if (s->end >= 0 || n_out == 0) {
        text[0] = 0;
        if (st && dt->finish && dt->finish(st, text, TEXT_CAP) < 0) text[0] = 0;
        ev.text = st ? text : NULL;
        ev.finish = s->end >= 0 ? G4_FINISH_STOP : G4_FINISH_LENGTH;
        ev.stop_token = s->end;
        out->on_event(out->user, &ev);
    }
    if (st && dt->close) dt->close(st);
}

/* The search is over (mu released by the caller): every output's events, then the search's own
 * reference goes. */
static void finish(g4_beam *b) {
    g4_finish_reason why = b->cancelled    ? G4_FINISH_ABORT
                           : b->err.msg[0] ? G4_FINISH_ERROR
                           : b->aborted    ? G4_FINISH_ABORT
                                           : G4_FINISH_NONE;
    ranked *r = NULL;
    char *text = NULL;
    int n = b->n_done + b->n_live;
    if (why == G4_FINISH_NONE) {
        r = malloc((size_t)(n ? n : 1) * sizeof *r);
        text = malloc(TEXT_CAP);
        if (!r || !text) {
            why = G4_FINISH_ERROR;
            g4_fail(&b->err, "beam search: out of memory");
        }
    }
    if (why == G4_FINISH_NONE) {
        for (int i = 0; i < b->n_done; i++) r[i] = (ranked){&b->done[i], b->done[i].score, b->done[i].order};
        for (int i = 0; i < b->n_live; i++) /* after every completed one on equal scores */
            r[b->n_done + i] =
                (ranked){&b->live[i], rank_score(b, b->live[i].n, b->live[i].cum), b->n_completed + 1 + (uint64_t)i};
        qsort(r, (size_t)n, sizeof *r, by_rank);
    }
    for (int i = 0; i < b->width; i++) {
        if (why == G4_FINISH_NONE && i < n) {
            emit(b, &b->outs[i], r[i].s, text);
            continue;
        }
        g4_event ev = {.finish = why == G4_FINISH_NONE ? G4_FINISH_ERROR : why,
                       .stop_token = -1,
                       .prompt_tokens = b->n_prompt,
                       .queue_s = b->queue_s,
                       .text = ""};
        ev.error = why == G4_FINISH_NONE ? "beam search: fewer distinct beams than the width" : b->err.msg;
        if (ev.finish != G4_FINISH_ERROR) ev.error = NULL;
        b->outs[i].on_event(b->outs[i].user, &ev);
    }
    free(r);
    free(text);
    g4_beam_release(b);
}

/* Engine thread: an event of one step request. */
static void on_step_event(void *user, const g4_event *ev) {
    beam_slot *sl = user;
    g4_beam *b = sl->b;
    pthread_mutex_lock(&b->mu);
    if (ev->n_tokens > 0) {
        int k = ev->n_top < CAND_MAX ? ev->n_top : CAND_MAX;
        sl->n_cand = k;
        if (k > 0) {
            memcpy(sl->cand_ids, ev->top_ids, (size_t)k * sizeof *sl->cand_ids);
            memcpy(sl->cand_lps, ev->top_logprobs, (size_t)k * sizeof *sl->cand_lps);
        }
    }
    if (ev->finish == G4_FINISH_NONE) {
        pthread_mutex_unlock(&b->mu);
        return;
    }
    if (b->steps == 0 && sl->index == 0) b->queue_s = ev->queue_s;
    sl->id = 0;
    if (ev->finish == G4_FINISH_ABORT) b->aborted = true;
    else if (ev->finish == G4_FINISH_ERROR && !b->err.msg[0])
        g4_fail(&b->err, "%s", ev->error ? ev->error : "beam search: a step failed");
    else if (sl->n_cand == 0 && !b->err.msg[0]) g4_fail(&b->err, "beam search: a step gave no candidates");
    bool over = false;
    if (--b->pending == 0) {
        if (b->cancelled || b->aborted || b->err.msg[0]) over = true;
        else if (select_next(b)) {
            g4_fail(&b->err, "beam search: out of memory");
            over = true;
        } else if (b->steps == b->max_tokens || b->n_live == 0) {
            over = true;
        } else if (submit_step(b) == 0) {
            over = true;
        }
    }
    b->over |= over;
    pthread_mutex_unlock(&b->mu);
    if (over) finish(b);
}

/* --- API --------------------------------------------------------------------------------- */

static int copy_request(g4_beam *b, const g4_request_params *p, const int32_t *eos, int n_eos) {
    b->ids = malloc((size_t)(p->n_prompt + p->stop.max_tokens) * sizeof *b->ids);
    b->end_ids = malloc((size_t)(n_eos + p->stop.n_stop_ids + 1) * sizeof *b->end_ids);
    if (!b->ids || !b->end_ids) return -1;
    memcpy(b->ids, p->prompt, (size_t)p->n_prompt * sizeof *b->ids);
    if (p->stop.ignore_eos) n_eos = 0; /* the request's stop ids still end a beam */
    if (n_eos) memcpy(b->end_ids, eos, (size_t)n_eos * sizeof *eos);
    if (p->stop.n_stop_ids) memcpy(b->end_ids + n_eos, p->stop.stop_ids, (size_t)p->stop.n_stop_ids * sizeof *eos);
    b->n_end = n_eos + p->stop.n_stop_ids;
    if (p->n_mm) {
        g4_mm_item *mm = calloc((size_t)p->n_mm, sizeof *mm);
        if (!mm) return -1;
        b->base.mm = mm;
        for (; b->n_mm < p->n_mm; b->n_mm++)
            if (g4_mm_item_copy(&mm[b->n_mm], &p->mm[b->n_mm])) return -1;
    }
    return 0;
}

g4_beam *g4_beam_start(g4_engine *e, const g4_request_params *p, int width, float length_penalty,
                       const g4_beam_out *outs, int *code, g4_error *err) {
    g4_request_params whole = *p; /* the engine's checks of the request as a whole */
    whole.on_event = on_step_event;
    if ((*code = g4_beam_check(p, width, err)) || (*code = g4_engine_check(e, &whole, err))) return NULL;
    *code = G4_ERR_INVALID;
    if (!isfinite(length_penalty)) return g4_fail(err, "beam search: length_penalty must be finite"), NULL;
    g4_beam *b = calloc(1, sizeof *b);
    if (!b) return g4_fail(err, "beam search: out of memory"), NULL;
    pthread_mutex_init(&b->mu, NULL);
    b->refs = 2;
    b->e = e;
    b->width = width;
    b->max_tokens = p->stop.max_tokens;
    b->n_prompt = p->n_prompt;
    b->length_penalty = length_penalty;
    b->detok_flags = p->detok_flags;
    memcpy(b->outs, outs, (size_t)width * sizeof *outs);
    const int32_t *eos;
    int n_eos = g4_engine_eos_ids(e, &eos);
    if (copy_request(b, p, eos, n_eos)) {
        beam_free(b);
        return g4_fail(err, "beam search: out of memory"), NULL;
    }
    /* The step requests: greedy rows with the 2·W most likely next tokens, one token each. */
    g4_request_params *q = &b->base;
    q->prompt = b->ids;
    q->n_mm = p->n_mm;
    g4_sampling_default(&q->sampling);
    q->sampling.temperature = 0;
    q->sampling.logprobs = 2 * width;
    g4_stop_rules_default(&q->stop);
    q->stop.max_tokens = 1;
    q->stop.ignore_eos = true;
    q->priority = p->priority;
    q->client = p->client;
    q->on_event = on_step_event;
    b->n_live = 1; /* the prompt, nothing generated */
    pthread_mutex_lock(&b->mu);
    int in = submit_step(b);
    if (in == 0) {
        pthread_mutex_unlock(&b->mu);
        *code = b->submit_code ? b->submit_code : G4_ERR_INVALID;
        g4_fail(err, "%s", b->aborted ? "engine: stopped" : b->err.msg);
        beam_free(b);
        return NULL;
    }
    pthread_mutex_unlock(&b->mu);
    *code = 0;
    return b;
}

void g4_beam_cancel(g4_beam *b) {
    uint64_t ids[G4_BEAM_MAX_WIDTH];
    int n = 0;
    pthread_mutex_lock(&b->mu);
    if (!b->over && !b->cancelled) {
        b->cancelled = true;
        for (int i = 0; i < b->n_live; i++)
            if (b->slots[i].id) ids[n++] = b->slots[i].id;
    }
    pthread_mutex_unlock(&b->mu);
    for (int i = 0; i < n; i++) g4_engine_cancel(b->e, ids[i]);
}
