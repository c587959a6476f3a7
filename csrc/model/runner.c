/* runner.c — minimal sequence runner (see runner.h): per-sequence block tables over two free
 * lists, step packing, and release of sliding-pool blocks that left the window. */
#include "model/runner.h"

#include <stdlib.h>
#include <string.h>

typedef struct runner_seq {
    int open;
    int len;                 /* tokens in the cache */
    int32_t *sliding;        /* [max_blocks] */
    int32_t *global;         /* [max_blocks] */
} runner_seq;

typedef struct block_pool {
    int32_t *free_ids;       /* stack of free block ids */
    int n_free, n_total;
} block_pool;

struct g4_runner {
    g4_model *m;
    int max_seqs, max_blocks;
    runner_seq *seqs;
    block_pool sliding, global;
    int32_t *tab_s, *tab_g;  /* packed tables for the step [max_seqs, max_blocks] */
    int32_t *ids, *pos, *seq, *rows;
    g4_step_fn step_fn;      /* NULL: g4_model_forward on m */
    void *step_ctx;
};

void g4_runner_set_step_fn(g4_runner *r, g4_step_fn fn, void *ctx) {
    r->step_fn = fn;
    r->step_ctx = ctx;
}

static int pool_init(block_pool *p, int n) {
    p->free_ids = malloc((size_t)n * sizeof *p->free_ids);
    if (!p->free_ids) return -1;
    for (int i = 0; i < n; i++) p->free_ids[i] = n - 1 - i; /* pop gives 0, 1, 2, ... */
    p->n_free = p->n_total = n;
    return 0;
}

g4_runner *g4_runner_create(g4_model *m, g4_error *err) {
    g4_runner *r = calloc(1, sizeof *r);
    if (!r) {
        g4_fail(err, "runner: out of memory");
        return NULL;
    }
    r->m = m;
    r->max_seqs = m->opts.max_seqs;
    r->max_blocks = m->max_blocks_per_seq;
    int T = m->opts.max_step_tokens;
    size_t tab = (size_t)r->max_seqs * r->max_blocks;
    r->seqs = calloc((size_t)r->max_seqs, sizeof *r->seqs);
    r->tab_s = malloc(tab * sizeof(int32_t));
    r->tab_g = malloc(tab * sizeof(int32_t));
    r->ids = malloc((size_t)T * 4 * sizeof(int32_t));
    int bad = !r->seqs || !r->tab_s || !r->tab_g || !r->ids || pool_init(&r->sliding, m->opts.n_blocks_sliding) ||
              pool_init(&r->global, m->opts.n_blocks_global);
    for (int i = 0; !bad && i < r->max_seqs; i++) {
        r->seqs[i].sliding = malloc((size_t)r->max_blocks * sizeof(int32_t));
        r->seqs[i].global = malloc((size_t)r->max_blocks * sizeof(int32_t));
        bad = !r->seqs[i].sliding || !r->seqs[i].global;
    }
    if (bad) {
        g4_runner_free(r);
        g4_fail(err, "runner: out of memory");
        return NULL;
    }
    r->pos = r->ids + T;
    r->seq = r->pos + T;
    r->rows = r->seq + T;
    return r;
}

void g4_runner_free(g4_runner *r) {
    if (!r) return;
    for (int i = 0; r->seqs && i < r->max_seqs; i++) {
        free(r->seqs[i].sliding);
        free(r->seqs[i].global);
    }
    free(r->seqs);
    free(r->tab_s);
    free(r->tab_g);
    free(r->ids);
    free(r->sliding.free_ids);
    free(r->global.free_ids);
    free(r);
}

int g4_runner_seq_open(g4_runner *r, g4_error *err) {
    for (int i = 0; i < r->max_seqs; i++) {
        runner_seq *s = &r->seqs[i];
        if (s->open) continue;
        s->open = 1;
        s->len = 0;
        for (int b = 0; b < r->max_blocks; b++) s->sliding[b] = s->global[b] = -1;
        return i;
    }
    return g4_fail(err, "runner: all %d sequence slots are in use", r->max_seqs);
}

static void release(block_pool *p, int32_t *entry) {
    if (*entry >= 0) p->free_ids[p->n_free++] = *entry;
    *entry = -1;
}

void g4_runner_seq_close(g4_runner *r, int seq) {
    if (seq < 0 || seq >= r->max_seqs || !r->seqs[seq].open) return;
    runner_seq *s = &r->seqs[seq];
    for (int b = 0; b < r->max_blocks; b++) {
        release(&r->sliding, &s->sliding[b]);
        release(&r->global, &s->global[b]);
    }
    s->open = 0;
}

int g4_runner_seq_len(const g4_runner *r, int seq) { return r->seqs[seq].len; }

void g4_runner_blocks_used(const g4_runner *r, int *sliding, int *global) {
    *sliding = r->sliding.n_total - r->sliding.n_free;
    *global = r->global.n_total - r->global.n_free;
}

int g4_argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* Gives every logical block touched by positions [from, to) a physical block in both pools.
 * Returns the number of blocks taken from each pool through *taken_s / *taken_g (for rollback). */
static int reserve(g4_runner *r, runner_seq *s, int from, int to, g4_error *err) {
    int B = r->m->opts.block_size;
    for (int b = from / B; b <= (to - 1) / B; b++) {
        if (s->sliding[b] < 0) {
            if (!r->sliding.n_free) return g4_fail(err, "runner: sliding KV pool exhausted");
            s->sliding[b] = r->sliding.free_ids[--r->sliding.n_free];
        }
        if (s->global[b] < 0) {
            if (!r->global.n_free) return g4_fail(err, "runner: global KV pool exhausted");
            s->global[b] = r->global.free_ids[--r->global.n_free];
        }
    }
    return 0;
}

/* Undoes reserve() for blocks that lie wholly at or beyond position `len` (new, unwritten). */
static void unreserve(g4_runner *r, runner_seq *s, int len) {
    int B = r->m->opts.block_size;
    for (int b = (len + B - 1) / B; b < r->max_blocks; b++) {
        release(&r->sliding, &s->sliding[b]);
        release(&r->global, &s->global[b]);
    }
}

/* Sliding blocks whose last position is below the next query's window start are dead. */
static void drop_out_of_window(g4_runner *r, runner_seq *s) {
    int B = r->m->opts.block_size, first_needed = s->len - r->m->cfg.sliding_window + 1;
    for (int b = 0; (b + 1) * B - 1 < first_needed; b++) release(&r->sliding, &s->sliding[b]);
}

int g4_runner_step(g4_runner *r, const g4_runner_chunk *chunks, int n_chunks, float *logits, g4_error *err) {
    return g4_runner_step_images(r, chunks, n_chunks, NULL, 0, logits, err);
}

int g4_runner_step_images(g4_runner *r, const g4_runner_chunk *chunks, int n_chunks, const g4_step_image *images,
                          int n_images, float *logits, g4_error *err) {
    g4_model *m = r->m;
    int T = 0, R = 0;
    for (int i = 0; i < n_chunks; i++) {
        const g4_runner_chunk *c = &chunks[i];
        if (c->seq < 0 || c->seq >= r->max_seqs || !r->seqs[c->seq].open)
            return g4_fail(err, "runner: chunk %d names sequence %d, which is not open", i, c->seq);
        for (int j = 0; j < i; j++)
            if (chunks[j].seq == c->seq) return g4_fail(err, "runner: sequence %d appears twice in one step", c->seq);
        if (c->n < 1) return g4_fail(err, "runner: chunk %d is empty", i);
        if (r->seqs[c->seq].len + c->n > m->opts.max_model_len)
            return g4_fail(err, "runner: sequence %d would reach %d tokens, model length is %d", c->seq,
                           r->seqs[c->seq].len + c->n, m->opts.max_model_len);
        T += c->n;
    }
    if (T > m->opts.max_step_tokens)
        return g4_fail(err, "runner: step of %d tokens exceeds %d", T, m->opts.max_step_tokens);
    for (int i = 0; i < n_chunks; i++) {
        runner_seq *s = &r->seqs[chunks[i].seq];
        if (reserve(r, s, s->len, s->len + chunks[i].n, err)) {
            for (int j = 0; j <= i; j++) unreserve(r, &r->seqs[chunks[j].seq], r->seqs[chunks[j].seq].len);
            return -1;
        }
    }
    /* Pack: the step's sequence slot i is chunk i; tables copied in chunk order. */
    int t = 0;
    for (int i = 0; i < n_chunks; i++) {
        const g4_runner_chunk *c = &chunks[i];
        runner_seq *s = &r->seqs[c->seq];
        memcpy(r->tab_s + (size_t)i * r->max_blocks, s->sliding, r->max_blocks * sizeof(int32_t));
        memcpy(r->tab_g + (size_t)i * r->max_blocks, s->global, r->max_blocks * sizeof(int32_t));
        for (int j = 0; j < c->n; j++, t++) {
            r->ids[t] = c->ids[j];
            r->pos[t] = s->len + j;
            r->seq[t] = i;
            if (c->all_logits || j == c->n - 1) r->rows[R++] = t;
        }
    }
    g4_step st = {.n_tokens = T,
                  .token_ids = r->ids,
                  .pos = r->pos,
                  .seq = r->seq,
                  .n_seqs = n_chunks,
                  .blocks_sliding = r->tab_s,
                  .blocks_global = r->tab_g,
                  .n_rows = R,
                  .rows = r->rows,
                  .n_images = n_images,
                  .images = images};
    int rc = r->step_fn ? r->step_fn(r->step_ctx, &st, logits, err) : g4_model_forward(m, &st, logits, err);
    if (rc) {
        for (int i = 0; i < n_chunks; i++) unreserve(r, &r->seqs[chunks[i].seq], r->seqs[chunks[i].seq].len);
        return -1;
    }
    for (int i = 0; i < n_chunks; i++) {
        runner_seq *s = &r->seqs[chunks[i].seq];
        s->len += chunks[i].n;
        drop_out_of_window(r, s);
    }
    return 0;
}
