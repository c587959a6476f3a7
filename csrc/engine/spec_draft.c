/* spec_draft.c — the draft-model proposer (see spec_draft.h). */
#include "engine/spec_draft.h"

#include <stdlib.h>
#include <string.h>

int g4_spec_draft_init(g4_spec_draft *d, const g4_executor *ex, int step_budget, int max_running, g4_error *err) {
    memset(d, 0, sizeof *d);
    d->ex = *ex;
    d->cap = step_budget > max_running ? step_budget : max_running;
    d->ids = malloc((size_t)d->cap * 7 * sizeof *d->ids);
    d->logit_rows = max_running;
    if (!ex->step_sample) d->logits = malloc((size_t)max_running * (size_t)ex->vocab * sizeof *d->logits);
    d->params = malloc(g4_sample_params_bytes(d->cap, 0));
    if (!d->ids || (!ex->step_sample && !d->logits) || !d->params) {
        g4_spec_draft_free(d);
        return g4_fail(err, "speculative decoding: out of memory for the draft model's steps");
    }
    d->pos = d->ids + d->cap;
    d->seq = d->pos + d->cap;
    d->rows = d->seq + d->cap;
    d->row_batch = d->rows + d->cap;
    d->tokens = d->row_batch + d->cap;
    d->first = d->tokens + d->cap;
    return 0;
}

void g4_spec_draft_free(g4_spec_draft *d) {
    free(d->ids);
    free(d->logits);
    free(d->params);
    memset(d, 0, sizeof *d);
}

/* Runs one pass of n tokens; the greedy token of each of its nr rows goes to d->tokens. */
static int pass(g4_spec_draft *d, const g4_scheduler *s, int n, int nr, g4_error *err) {
    g4_step st = {.n_tokens = n,
                  .token_ids = d->ids,
                  .pos = d->pos,
                  .seq = d->seq,
                  .n_seqs = s->n_seqs,
                  .blocks_sliding = s->kv->table[G4_POOL_SLIDING],
                  .blocks_global = s->kv->table[G4_POOL_GLOBAL],
                  .n_rows = nr,
                  .rows = d->rows};
    if (nr == 0) return d->ex.step(d->ex.ctx, &st, NULL, err);
    int V = d->ex.vocab;
    if (d->ex.step_sample) {
        g4_sample_params *P = d->params;
        *P = (g4_sample_params){.n_rows = nr, .vocab = V, .mask_words = (V + 31) / 32};
        g4_sample_row_params *R = g4_sample_rows(P);
        for (int r = 0; r < nr; r++)
            R[r] = (g4_sample_row_params){.repetition_penalty = 1.0f, .top_p = 1.0f, .n_logprobs = -1, .lp_slot = -1};
        return d->ex.step_sample(d->ex.ctx, &st, P, g4_sample_params_bytes(nr, 0), d->tokens, NULL, 0, err);
    }
    if (d->ex.step(d->ex.ctx, &st, d->logits, err)) return -1;
    for (int r = 0; r < nr; r++) { /* argmax, lowest id on ties */
        const float *l = d->logits + (size_t)r * V;
        int best = 0;
        for (int v = 1; v < V; v++)
            if (l[v] > l[best]) best = v;
        d->tokens[r] = best;
    }
    return 0;
}

int g4_spec_draft_run(g4_spec_draft *d, g4_scheduler *s, g4_error *err) {
    /* pass 0: the step's tokens without the proposals (a batch entry's proposals follow its
     * other tokens), a row at each speculating sequence's last token */
    int n = 0, nr = 0, off = 0, most = 0;
    for (int b = 0; b < s->n_batch; b++) {
        const g4_seq *q = s->batch[b];
        d->first[b] = off + q->chunk - q->n_draft; /* where its proposals sit in the step */
        for (int j = 0; j < q->chunk - q->n_draft; j++, n++)
            d->ids[n] = s->ids[off + j], d->pos[n] = s->pos[off + j], d->seq[n] = s->seq[off + j];
        if (q->n_draft) d->rows[nr] = n - 1, d->row_batch[nr++] = b;
        if (q->n_draft > most) most = q->n_draft;
        off += q->chunk;
    }
    /* pass i ≥ 1 feeds proposal i − 1 and gives proposal i while the sequence wants more */
    for (int i = 0; i <= most; i++) {
        if (i > 0) {
            n = nr = 0;
            for (int b = 0; b < s->n_batch; b++) {
                const g4_seq *q = s->batch[b];
                if (q->n_draft < i) continue;
                d->ids[n] = q->tokens[q->len + i - 1], d->pos[n] = q->len - 1 + i, d->seq[n] = q->slot;
                if (i < q->n_draft) d->rows[nr] = n, d->row_batch[nr++] = b;
                n++;
            }
        }
        if (pass(d, s, n, nr, err)) return -1;
        for (int r = 0; r < nr; r++) {
            int b = d->row_batch[r];
            g4_seq *q = s->batch[b];
            q->tokens[q->len + i] = d->tokens[r];
            s->ids[d->first[b] + i] = d->tokens[r];
        }
    }
    return 0;
}

int g4_spec_draft_check(const g4_model *t, const g4_model *d, g4_error *err) {
    if (d->cfg.vocab != t->cfg.vocab || d->opts.block_size != t->opts.block_size ||
        d->cfg.sliding_window != t->cfg.sliding_window || d->opts.n_blocks_sliding != t->opts.n_blocks_sliding ||
        d->opts.n_blocks_global != t->opts.n_blocks_global || d->opts.max_seqs != t->opts.max_seqs ||
        d->max_blocks_per_seq != t->max_blocks_per_seq || d->opts.max_step_tokens < t->opts.max_step_tokens)
        return g4_fail(err,
                       "speculative decoding: the draft model must share the target's block tables: vocab %d/%d, "
                       "block size %d/%d, window %d/%d, pools %d+%d/%d+%d, slots %d/%d, table width %d/%d, step "
                       "tokens %d ≥ %d (draft/target)",
                       d->cfg.vocab, t->cfg.vocab, d->opts.block_size, t->opts.block_size, d->cfg.sliding_window,
                       t->cfg.sliding_window, d->opts.n_blocks_sliding, d->opts.n_blocks_global,
                       t->opts.n_blocks_sliding, t->opts.n_blocks_global, d->opts.max_seqs, t->opts.max_seqs,
                       d->max_blocks_per_seq, t->max_blocks_per_seq, d->opts.max_step_tokens, t->opts.max_step_tokens);
    return 0;
}
