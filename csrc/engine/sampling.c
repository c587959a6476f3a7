/* sampling.c — penalties, temperature, min-p / top-k / top-p, seeded draw and logprobs for one
 * row of logits on the host, and the logprobs of a request's logprob ids in the same distribution
 * (see sampling.h for the exact order and formulas).
 * Not here: stop rules (stop.c), generation_config.json defaults (sampling_defaults.c). */
#include "base/rng.h"
#include "base/select.h"
#include "engine/sampling.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

void g4_sampling_default(g4_sampling *s) {
    memset(s, 0, sizeof *s);
    s->temperature = 0.0f;
    s->top_k = 0;
    s->top_p = 1.0f;
    s->min_p = 0.0f;
    s->repetition_penalty = 1.0f;
    s->logprobs = -1;
}

int g4_sampler_init(g4_sampler *s, int vocab, g4_error *err) {
    memset(s, 0, sizeof *s);
    s->vocab = vocab;
    s->z = malloc((size_t)vocab * sizeof *s->z);
    s->idx = malloc((size_t)vocab * sizeof *s->idx);
    s->count = calloc((size_t)vocab, sizeof *s->count);
    s->seen = calloc((size_t)vocab, 1);
    s->vals = malloc((size_t)vocab * sizeof *s->vals);
    s->cand = malloc((size_t)vocab * sizeof *s->cand);
    if (!s->vals || !s->cand || !s->z || !s->idx || !s->count || !s->seen) {
        g4_sampler_free(s);
        return g4_fail(err, "sampler: out of memory for vocab %d", vocab);
    }
    return 0;
}

void g4_sampler_free(g4_sampler *s) {
    free(s->z);
    free(s->idx);
    free(s->count);
    free(s->seen);
    free(s->vals);
    free(s->cand);
    memset(s, 0, sizeof *s);
}


/* the op's generator (backend.h), so the host sampler and every backend draw the same u */
double g4_sample_uniform(uint64_t seed, uint64_t i) { return g4_sample_draw_u(seed, i); }

/* Step 1: repetition, presence and frequency penalties, in place on z. */
static void apply_penalties(g4_sampler *s, const g4_sampling *sp, const g4_sample_history *h) {
    float *z = s->z;
    float rp = sp->repetition_penalty;
    if (rp > 0 && rp != 1.0f) {
        for (int pass = 0; pass < 2; pass++) {
            const int32_t *t = pass ? h->output : h->prompt;
            int n = pass ? h->n_output : h->n_prompt;
            for (int i = 0; i < n; i++) {
                if (s->seen[t[i]]) continue;
                s->seen[t[i]] = 1;
                z[t[i]] = z[t[i]] > 0 ? z[t[i]] / rp : z[t[i]] * rp;
            }
        }
        for (int i = 0; i < h->n_prompt; i++) s->seen[h->prompt[i]] = 0;
        for (int i = 0; i < h->n_output; i++) s->seen[h->output[i]] = 0;
    }
    if (sp->presence_penalty != 0 || sp->frequency_penalty != 0) {
        for (int i = 0; i < h->n_output; i++)
            if (s->count[h->output[i]] < UINT16_MAX) s->count[h->output[i]]++;
        for (int i = 0; i < h->n_output; i++) {
            int32_t t = h->output[i];
            if (!s->count[t]) continue; /* already applied */
            z[t] -= sp->presence_penalty + sp->frequency_penalty * (float)s->count[t];
            s->count[t] = 0;
        }
    }
}

/* Step 3's factor: logprobs are log_softmax of fl(z · scale), z the penalised row: 1 / temperature,
 * or 1 when greedy (z as it is: fl(z · 1) = z). */
static float logit_scale(const g4_sampling *sp) { return sp->temperature > 0 ? 1.0f / sp->temperature : 1.0f; }

static int argmax(const float *z, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (z[i] > z[best]) best = i;
    return best;
}

/* Logprob of `token` and the top-n (n ≤ 20) from log_softmax(z). Ties → lower id first. */
static void logprobs(const float *z, int V, int32_t token, int n, g4_sample_result *out) {
    float m = z[argmax(z, V)];
    double sum = 0;
    for (int i = 0; i < V; i++) sum += exp((double)z[i] - m);
    float lse = m + (float)log(sum);
    out->logprob = z[token] - lse;
    if (n > G4_MAX_TOP_LOGPROBS) n = G4_MAX_TOP_LOGPROBS;
    int k = 0;
    for (int i = 0; i < V && n > 0; i++) {
        if (k == n && z[i] <= z[out->top_ids[k - 1]]) continue;
        int j = k < n ? k++ : k - 1;
        while (j > 0 && z[out->top_ids[j - 1]] < z[i]) {
            out->top_ids[j] = out->top_ids[j - 1];
            j--;
        }
        out->top_ids[j] = i;
    }
    out->n_top = k;
    for (int i = 0; i < k; i++) out->top_logprobs[i] = z[out->top_ids[i]] - lse;
}

void g4_prompt_logprob_row(const float *logits, int V, int32_t token, int top, g4_prompt_logprob *out) {
    g4_sample_result r;
    logprobs(logits, V, token, top, &r);
    int rank = 1;
    for (int i = 0; i < V; i++) rank += logits[i] > logits[token];
    out->token = token;
    out->logprob = r.logprob;
    out->rank = rank;
    out->n_top = r.n_top;
    memcpy(out->top_ids, r.top_ids, (size_t)r.n_top * sizeof *r.top_ids);
    memcpy(out->top_logprobs, r.top_logprobs, (size_t)r.n_top * sizeof *r.top_logprobs);
}


static int by_p_desc(const void *a, const void *b) {
    const g4_sample_cand *x = a, *y = b;
    if (x->p != y->p) return x->p > y->p ? -1 : 1;
    return x->id < y->id ? -1 : 1;
}
static int by_id(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

void g4_sample_row(g4_sampler *s, const float *logits, const g4_sampling *sp, uint64_t seed, const g4_sample_history *h,
                   g4_sample_result *out) {
    int V = s->vocab;
    float *z = s->z;
    out->n_top = 0;
    out->logprob = 0;
    bool penalised = (sp->repetition_penalty > 0 && sp->repetition_penalty != 1.0f) || sp->presence_penalty != 0 ||
                     sp->frequency_penalty != 0;
    if (sp->temperature <= 0 && !penalised) { /* plain greedy reads the row in place */
        out->token = argmax(logits, V);
        if (sp->logprobs >= 0) logprobs(logits, V, out->token, sp->logprobs, out);
        return;
    }
    memcpy(z, logits, (size_t)V * sizeof *z);
    apply_penalties(s, sp, h);
    if (sp->temperature <= 0) {
        out->token = argmax(z, V);
        if (sp->logprobs >= 0) logprobs(z, V, out->token, sp->logprobs, out);
        return;
    }
    float inv_t = logit_scale(sp);
    for (int i = 0; i < V; i++) z[i] *= inv_t;
    float m = z[argmax(z, V)];
    /* z becomes unnormalised probabilities exp(z − max) ∈ (0, 1]; min-p keeps p ≥ min_p · 1 */
    int n = 0;
    float min_keep = sp->min_p > 0 ? sp->min_p : 0;
    for (int i = 0; i < V; i++) {
        z[i] = expf(z[i] - m);
        if (z[i] >= min_keep) s->idx[n++] = i;
    }
    if (sp->top_k > 0 && sp->top_k < n) {
        {
            float *v = s->vals;
            for (int i = 0; i < n; i++) v[i] = z[s->idx[i]];
            float th = g4_kth_largest(v, n, sp->top_k);
            int above = 0;
            for (int i = 0; i < n; i++) above += z[s->idx[i]] > th;
            int ties = sp->top_k - above, w = 0;
            for (int i = 0; i < n; i++) {
                float p = z[s->idx[i]];
                if (p > th || (p == th && ties-- > 0)) s->idx[w++] = s->idx[i];
            }
            n = w;
        }
    }
    if (sp->top_p > 0 && sp->top_p < 1 && n > 1) {
        double total = 0;
        for (int i = 0; i < n; i++) total += z[s->idx[i]];
        for (int i = 0; i < n; i++) s->cand[i] = (g4_sample_cand){z[s->idx[i]], s->idx[i]};
        qsort(s->cand, (size_t)n, sizeof *s->cand, by_p_desc);
        double cum = 0, goal = sp->top_p * total;
        int keep = 0;
        while (keep < n && cum < goal) cum += s->cand[keep++].p;
        n = keep > 0 ? keep : 1;
        for (int i = 0; i < n; i++) s->idx[i] = s->cand[i].id;
        qsort(s->idx, (size_t)n, sizeof *s->idx, by_id);
    }
    double total = 0;
    for (int i = 0; i < n; i++) total += z[s->idx[i]];
    double target = g4_sample_uniform(seed, (uint64_t)h->n_output) * total, cum = 0;
    out->token = s->idx[n - 1];
    for (int i = 0; i < n; i++) {
        cum += z[s->idx[i]];
        if (cum > target) {
            out->token = s->idx[i];
            break;
        }
    }
    if (sp->logprobs >= 0) {
        /* z now holds probabilities; recompute the log form from the logits (no exp underflow) */
        memcpy(z, logits, (size_t)V * sizeof *z);
        apply_penalties(s, sp, h);
        for (int i = 0; i < V; i++) z[i] *= inv_t;
        logprobs(z, V, out->token, sp->logprobs, out);
    }
}

void g4_sample_id_logprobs(const float *z, const g4_sampling *sp, int32_t token, float token_logprob,
                           const int32_t *ids, int n, float *out) {
    float scale = logit_scale(sp);
    float lse = z[token] * scale - token_logprob;
    for (int i = 0; i < n; i++) out[i] = ids[i] == token ? token_logprob : z[ids[i]] * scale - lse;
}

g4_sample_row_params g4_sampling_row(const g4_sampling *sp, uint64_t seed, uint64_t step) {
    return (g4_sample_row_params){.temperature = sp->temperature,
                                  .top_p = sp->top_p,
                                  .min_p = sp->min_p,
                                  .repetition_penalty = sp->repetition_penalty,
                                  .presence_penalty = sp->presence_penalty,
                                  .frequency_penalty = sp->frequency_penalty,
                                  .top_k = sp->top_k,
                                  .n_logprobs = sp->logprobs,
                                  .seed = seed,
                                  .step = step};
}
