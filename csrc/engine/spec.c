/* spec.c — speculative-decoding policy: proposals before a step, acceptance after (see spec.h). */
#include "engine/spec.h"

#include "engine/spec_ngram.h"

/* Weight of the past in a sequence's acceptance estimate, per verification. */
#define G4_SPEC_DECAY 0.7f

int g4_spec_check(const g4_spec_config *c, const g4_executor *draft, int vocab, g4_error *err) {
    if (c->method == G4_SPEC_OFF) return 0;
    if (c->method == G4_SPEC_DRAFT && (!draft || !draft->step || draft->vocab != vocab))
        return g4_fail(err,
                       "speculative decoding: the draft method needs the draft model's executor "
                       "(g4_engine_opts.spec_draft) with the target's vocabulary %d",
                       vocab);
    if (c->method != G4_SPEC_NGRAM && c->method != G4_SPEC_DRAFT)
        return g4_fail(err, "speculative decoding: unknown method %d", (int)c->method);
    if (c->num_speculative_tokens < 1 || c->num_speculative_tokens > G4_SPEC_MAX_TOKENS)
        return g4_fail(err, "speculative decoding: num_speculative_tokens %d must be in 1..%d",
                       c->num_speculative_tokens, G4_SPEC_MAX_TOKENS);
    if (c->method == G4_SPEC_NGRAM && (c->prompt_lookup_min < 1 || c->prompt_lookup_max < c->prompt_lookup_min))
        return g4_fail(err, "speculative decoding: prompt_lookup_min %d must be ≥ 1 and ≤ prompt_lookup_max %d",
                       c->prompt_lookup_min, c->prompt_lookup_max);
    if (c->disable_by_batch_size < 0)
        return g4_fail(err, "speculative decoding: disable_by_batch_size %d must be ≥ 0", c->disable_by_batch_size);
    return 0;
}

int g4_spec_batch_limit(const g4_spec_config *c) {
    if (c->disable_by_batch_size > 0) return c->disable_by_batch_size;
    return G4_SPEC_STEP_TOKENS / (1 + c->num_speculative_tokens) + 1;
}

int g4_spec_seq_len(const g4_seq *q, int k_max) {
    /* no verification yet: optimistic (α = 1) */
    float a = q->spec_tries > 0 ? q->spec_hits / q->spec_tries : 1.0f;
    if (a >= 1.0f) return k_max;
    float run = a / (1.0f - a); /* expected accepted run before the first rejection */
    int k = 1 + (run < (float)k_max ? (int)run : k_max);
    return k < k_max ? k : k_max;
}

void g4_spec_propose(const g4_spec_config *c, g4_scheduler *s) {
    if (c->method == G4_SPEC_OFF) return;
    bool on = s->n_running < g4_spec_batch_limit(c);
    for (int i = 0; i < s->n_running; i++) {
        g4_seq *q = s->running[i];
        q->n_draft = 0;
        if (!on || q->len - q->n_computed != 1) continue;
        int k = g4_spec_seq_len(q, c->num_speculative_tokens);
        if (k > q->cap - q->len - 1) k = q->cap - q->len - 1; /* every output it could become fits */
        if (c->method == G4_SPEC_DRAFT) { /* placeholders until the draft model runs */
            for (int j = 0; j < k; j++) q->tokens[q->len + j] = q->tokens[q->len - 1];
            q->n_draft = k > 0 ? k : 0;
            continue;
        }
        q->n_draft =
            g4_spec_ngram_propose(q->tokens, q->len, c->prompt_lookup_min, c->prompt_lookup_max, k, q->tokens + q->len);
    }
}

void g4_spec_record(g4_engine_stats *st, g4_seq *q, int n_draft, int n_accepted) {
    st->spec_drafts++;
    st->spec_draft_tokens += (uint64_t)n_draft;
    st->spec_accepted_tokens += (uint64_t)n_accepted;
    for (int i = 0; i < n_accepted; i++) st->spec_accepted_per_pos[i]++;
    if (!q) return;
    /* the tokens verified: the accepted ones and the first rejected one, if any (geometric) */
    q->spec_hits = G4_SPEC_DECAY * q->spec_hits + (float)n_accepted;
    q->spec_tries = G4_SPEC_DECAY * q->spec_tries + (float)(n_accepted + (n_accepted < n_draft));
}
