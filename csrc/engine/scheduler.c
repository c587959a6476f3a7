/* scheduler.c — token-budget batching, admission (FCFS, or fair across clients) with prefix
 * lookup, preemption by recompute (see scheduler.h). Engine thread only. Not here: limits at
 * submit, sampling. */
#include "engine/scheduler.h"

#include <stdlib.h>
#include <string.h>

#include "engine/mm.h"

/* (priority, arrival) order: a before b. */
static inline int before(const g4_seq *a, const g4_seq *b) {
    return a->priority != b->priority ? a->priority < b->priority : a->arrival < b->arrival;
}

/* --- clients --------------------------------------------------------------------------------- */

static inline g4_sched_client *client_of(const g4_scheduler *s, const g4_seq *q) { return &s->clients[q->client_ix]; }

/* Gives a new sequence its client's entry: the one with its key, else a free one, else a new one.
 * −1 only when out of memory. */
static int client_attach(g4_scheduler *s, g4_seq *q) {
    int spare = -1;
    for (int i = 0; i < s->n_clients; i++) {
        const g4_sched_client *c = &s->clients[i];
        if (c->running + c->waiting == 0) {
            if (spare < 0) spare = i;
        } else if (c->key == q->client) {
            q->client_ix = i;
            return 0;
        }
    }
    if (spare < 0) {
        if (s->n_clients == s->cap_clients) {
            int cap = s->cap_clients ? 2 * s->cap_clients : 16;
            g4_sched_client *c = realloc(s->clients, (size_t)cap * sizeof *c);
            if (!c) return -1;
            s->clients = c;
            s->cap_clients = cap;
        }
        spare = s->n_clients++;
    }
    s->clients[spare] = (g4_sched_client){.key = q->client};
    q->client_ix = spare;
    return 0;
}

/* --- waiting heap ---------------------------------------------------------------------------- */

static void heap_set(g4_scheduler *s, int i, g4_seq *q) {
    s->waiting[i] = q;
    q->heap_idx = i;
}

static void sift_up(g4_scheduler *s, int i) {
    g4_seq *q = s->waiting[i];
    while (i > 0 && before(q, s->waiting[(i - 1) / 2])) {
        heap_set(s, i, s->waiting[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    heap_set(s, i, q);
}

static void sift_down(g4_scheduler *s, int i) {
    g4_seq *q = s->waiting[i];
    for (;;) {
        int c = 2 * i + 1;
        if (c >= s->n_waiting) break;
        if (c + 1 < s->n_waiting && before(s->waiting[c + 1], s->waiting[c])) c++;
        if (!before(s->waiting[c], q)) break;
        heap_set(s, i, s->waiting[c]);
        i = c;
    }
    heap_set(s, i, q);
}

/* Pushes q (its client attached); −1 only when out of memory. */
static int heap_push(g4_scheduler *s, g4_seq *q) {
    if (s->n_waiting == s->cap_waiting) {
        int cap = s->cap_waiting ? 2 * s->cap_waiting : 64;
        g4_seq **w = realloc(s->waiting, (size_t)cap * sizeof *w);
        if (!w) return -1;
        s->waiting = w;
        s->cap_waiting = cap;
    }
    q->state = G4_SEQ_WAITING;
    client_of(s, q)->waiting++;
    heap_set(s, s->n_waiting++, q);
    sift_up(s, s->n_waiting - 1);
    return 0;
}

static void heap_remove(g4_scheduler *s, int i) {
    client_of(s, s->waiting[i])->waiting--;
    s->waiting[i]->heap_idx = -1;
    g4_seq *last = s->waiting[--s->n_waiting];
    if (i == s->n_waiting) return;
    heap_set(s, i, last);
    sift_up(s, i);
    sift_down(s, last->heap_idx);
}

/* --- running list ------------------------------------------------------------------------------ */

static void running_insert(g4_scheduler *s, g4_seq *q) {
    int i = s->n_running;
    while (i > 0 && before(q, s->running[i - 1])) {
        s->running[i] = s->running[i - 1];
        i--;
    }
    s->running[i] = q;
    s->n_running++;
    q->state = G4_SEQ_RUNNING;
    client_of(s, q)->running++;
}

static void running_remove(g4_scheduler *s, g4_seq *q) {
    int i = 0;
    while (i < s->n_running && s->running[i] != q) i++;
    if (i == s->n_running) return;
    memmove(s->running + i, s->running + i + 1, (size_t)(s->n_running - i - 1) * sizeof *s->running);
    s->n_running--;
    client_of(s, q)->running--;
}

static void release_slot(g4_scheduler *s, g4_seq *q) {
    if (q->slot < 0) return;
    g4_kvcache_release_slot(s->kv, q->slot);
    s->free_slots[s->n_free_slots++] = q->slot;
    q->slot = -1;
    q->n_computed = 0;
    q->n_registered = 0;
    q->n_draft = 0;
}

/* --- init ------------------------------------------------------------------------------------- */

int g4_sched_init(g4_scheduler *s, g4_kvcache *kv, g4_prefix_cache *pc, int max_running, int max_per_client,
                  int token_budget, g4_error *err) {
    memset(s, 0, sizeof *s);
    if (max_running < 1 || max_running > kv->n_slots || token_budget < 1 || max_per_client < 0)
        return g4_fail(err,
                       "scheduler: max_running %d must be in 1..%d, the token budget %d ≥ 1 and the per-client "
                       "cap %d ≥ 0",
                       max_running, kv->n_slots, token_budget, max_per_client);
    s->kv = kv;
    s->pc = pc;
    s->max_running = max_running;
    s->max_per_client = max_per_client;
    s->token_budget = token_budget;
    s->running = malloc((size_t)max_running * sizeof *s->running);
    s->batch = malloc((size_t)max_running * sizeof *s->batch);
    s->free_slots = malloc((size_t)max_running * sizeof *s->free_slots);
    /* rows ≤ tokens: a prompt-logprob row is a prompt token, a sampling row a sequence's last one */
    int rows_cap = token_budget > max_running ? token_budget : max_running;
    s->row_batch = malloc((size_t)rows_cap * 3 * sizeof *s->row_batch);
    s->ids = malloc((size_t)token_budget * 4 * sizeof *s->ids);
    if (!s->running || !s->batch || !s->free_slots || !s->row_batch || !s->ids) {
        g4_sched_free(s);
        return g4_fail(err, "scheduler: out of memory");
    }
    s->pos = s->ids + token_budget;
    s->seq = s->pos + token_budget;
    s->rows = s->seq + token_budget;
    s->row_plp = s->row_batch + rows_cap;
    s->row_draft = s->row_plp + rows_cap;
    for (int i = 0; i < max_running; i++) s->free_slots[i] = max_running - 1 - i;
    s->n_free_slots = max_running;
    return 0;
}

void g4_sched_free(g4_scheduler *s) {
    free(s->waiting);
    free(s->running);
    free(s->clients);
    free(s->batch);
    free(s->free_slots);
    free(s->row_batch);
    free(s->ids);
    memset(s, 0, sizeof *s);
}

int g4_sched_add(g4_scheduler *s, g4_seq *q) {
    if (q->state == G4_SEQ_NEW && client_attach(s, q)) return -1;
    return heap_push(s, q);
}

void g4_sched_remove(g4_scheduler *s, g4_seq *q) {
    if (q->state == G4_SEQ_WAITING && q->heap_idx >= 0) heap_remove(s, q->heap_idx);
    if (q->state == G4_SEQ_RUNNING) running_remove(s, q);
    release_slot(s, q);
    q->state = G4_SEQ_NEW;
}

/* --- one step --------------------------------------------------------------------------------- */

static void preempt(g4_scheduler *s, g4_seq *q) {
    running_remove(s, q);
    release_slot(s, q);
    s->preemptions++;
    /* cannot fail for lack of memory: the heap has room for every sequence it ever held... */
    if (heap_push(s, q)) q->cancelled = true; /* ...and if it does, the engine aborts it */
}

/* Blocks for q's next `chunk` tokens, preempting the newest unscheduled running sequences.
 * Returns 0, or −1 when q itself was preempted. */
static int ensure_blocks(g4_scheduler *s, g4_seq *q, int chunk) {
    for (;;) {
        if (!g4_kvcache_reserve(s->kv, q->slot, q->n_computed, q->n_computed + chunk)) return 0;
        g4_seq *victim = NULL;
        for (int i = s->n_running - 1; i >= 0 && !victim; i--)
            if (s->running[i]->mark != s->step_no) victim = s->running[i];
        if (!victim || victim == q) {
            preempt(s, q);
            return -1;
        }
        preempt(s, victim);
    }
}

/* Whether the token at position pos of q gives a prompt-logprob row: it predicts a prompt
 * position not yet reported. */
static bool plp_row(const g4_seq *q, int pos) { return q->want_plp && pos + 1 >= q->plp_next && pos + 1 < q->n_prompt; }

/* q's chunk cut so that its prompt-logprob rows fit in what is left of this step's. */
static int plp_chunk(const g4_scheduler *s, const g4_seq *q, int chunk) {
    if (!g4_seq_plp_pending(q)) return chunk;
    int rows = 0, c = 0;
    for (; c < chunk; c++) {
        bool need = plp_row(q, q->n_computed + c);
        if (need && s->n_plp_rows + rows == G4_SCHED_LP_ROWS) break;
        rows += need;
    }
    return c;
}

static void add_to_batch(g4_scheduler *s, g4_seq *q, int chunk) {
    q->mark = s->step_no;
    q->chunk = chunk;
    int b = s->n_batch++;
    s->batch[b] = q;
    for (int j = 0; j < chunk; j++) {
        int t = s->n_tokens++;
        s->ids[t] = q->tokens[q->n_computed + j];
        s->pos[t] = q->n_computed + j;
        s->seq[t] = q->slot;
        if (plp_row(q, q->n_computed + j)) {
            s->row_batch[s->n_rows] = b;
            s->row_plp[s->n_rows] = q->n_computed + j + 1;
            s->row_draft[s->n_rows] = 0;
            s->rows[s->n_rows++] = t;
            s->n_plp_rows++;
        }
    }
    /* the last token's row, and with proposals one before each of them (its verification rows) */
    if (q->n_computed + chunk == q->len + q->n_draft)
        for (int j = 0; j <= q->n_draft; j++) {
            s->row_batch[s->n_rows] = b;
            s->row_plp[s->n_rows] = 0;
            s->row_draft[s->n_rows] = j;
            s->rows[s->n_rows++] = s->n_tokens - 1 - q->n_draft + j;
        }
    if (q->slot + 1 > s->n_seqs) s->n_seqs = q->slot + 1;
}

/* Pass over running sequences that decode (want_decode) or prefill. Returns 1 if it preempted. */
static int schedule_running(g4_scheduler *s, int want_decode, int *budget) {
    int preempted = 0;
    /* proposals get the budget beyond one token per decoding sequence, first come first */
    int spare = *budget;
    for (int i = 0; want_decode && i < s->n_running; i++) spare -= s->running[i]->len - s->running[i]->n_computed == 1;
    for (int i = 0; i<s->n_running && * budget> 0;) {
        g4_seq *q = s->running[i];
        int left = q->len - q->n_computed;
        if (q->mark == s->step_no || (left == 1) != want_decode) {
            i++;
            continue;
        }
        int chunk = plp_chunk(s, q, left < *budget ? left : *budget);
        int whole = g4_seq_mm_chunk(q->mm, q->n_computed, chunk); /* an image's run stays whole */
        s->image_held += whole == 0 && chunk > 0;
        chunk = whole;
        if (chunk == 0) { /* this step's prompt-logprob rows are taken, or the image run does not fit */
            i++;
            continue;
        }
        if (want_decode && q->n_draft) {
            int nd = q->n_draft < spare ? q->n_draft : spare > 0 ? spare : 0;
            if (nd && g4_kvcache_reserve(s->kv, q->slot, q->n_computed, q->n_computed + 1 + nd)) nd = 0;
            q->n_draft = nd;
            spare -= nd;
            chunk += nd;
        }
        uint64_t before_p = s->preemptions;
        int self = ensure_blocks(s, q, chunk);
        preempted |= s->preemptions != before_p;
        if (self) continue; /* q left the list; i now names the next one */
        add_to_batch(s, q, chunk);
        *budget -= chunk;
        i++;
    }
    return preempted;
}

/* --- admission order -------------------------------------------------------------------------- */

/* Fair order between waiting sequences: priority, then the fewer running sequences of its client,
 * then arrival. */
static bool fair_before(const g4_scheduler *s, const g4_seq *a, const g4_seq *b) {
    if (a->priority != b->priority) return a->priority < b->priority;
    int ra = client_of(s, a)->running, rb = client_of(s, b)->running;
    return ra != rb ? ra < rb : a->arrival < b->arrival;
}

/* The waiting sequence admission takes next, NULL when none (scheduler.h). Priority comes first:
 * the cap only chooses among the sequences of the best waiting priority. */
static g4_seq *next_waiting(const g4_scheduler *s) {
    if (!s->n_waiting) return NULL;
    int cap = s->max_per_client;
    if (!cap) return s->waiting[0];
    int pri = s->waiting[0]->priority;
    for (int i = 1; i < s->n_waiting; i++)
        if (s->waiting[i]->priority < pri) pri = s->waiting[i]->priority;
    bool capped = false; /* a client below the cap waits: those at or above it are passed over */
    for (int i = 0; i < s->n_waiting && !capped; i++)
        capped = s->waiting[i]->priority == pri && client_of(s, s->waiting[i])->running < cap;
    g4_seq *best = NULL;
    for (int i = 0; i < s->n_waiting; i++) {
        g4_seq *q = s->waiting[i];
        if (q->priority != pri || (capped && client_of(s, q)->running >= cap)) continue;
        if (!best || fair_before(s, q, best)) best = q;
    }
    return best;
}

/* Whether q, admitted now, would get a slot and the blocks of a first chunk as big as the budget
 * (counted without a prefix hit: an upper bound). */
static bool first_chunk_fits(const g4_scheduler *s, const g4_seq *q) {
    if (s->n_running >= s->max_running || !s->n_free_slots) return false;
    int chunk = q->len < s->token_budget ? q->len : s->token_budget, need[G4_N_POOLS];
    g4_kvcache_need(s->kv, s->free_slots[s->n_free_slots - 1], 0, chunk, need);
    for (int p = 0; p < G4_N_POOLS; p++)
        if (need[p] > g4_kv_pool_available(&s->kv->pool[p])) return false;
    return true;
}

/* The newest running sequence of the client furthest above the cap among those that do not
 * outrank q (priority: lower runs first), NULL when there is none. */
static g4_seq *fair_victim(const g4_scheduler *s, const g4_seq *q) {
    g4_seq *victim = NULL;
    int most = s->max_per_client;
    for (int i = s->n_running - 1; i >= 0; i--) { /* newest first: a tie keeps the newest */
        g4_seq *r = s->running[i];
        int n = client_of(s, r)->running;
        if (n > most && r->priority >= q->priority) most = n, victim = r;
    }
    return victim;
}

/* Fair room, before anything of the step is scheduled (scheduler.h). */
static void make_room(g4_scheduler *s) {
    if (!s->max_per_client) return;
    g4_seq *q = next_waiting(s), *victim;
    if (!q || client_of(s, q)->running >= s->max_per_client) return;
    while (!first_chunk_fits(s, q) && (victim = fair_victim(s, q))) preempt(s, victim);
}

static void admit(g4_scheduler *s, int *budget) {
    while (s->n_waiting && *budget > 0 && s->n_running < s->max_running && s->n_free_slots) {
        g4_seq *q = next_waiting(s);
        q->slot = s->free_slots[--s->n_free_slots];
        /* prompt logprobs need every prompt position computed: no prefix-cache hit */
        int hit = g4_seq_plp_pending(q) ? 0 : g4_prefix_lookup(s->pc, q->slot, q->keys, q->len);
        q->n_computed = hit;
        q->n_registered = hit / s->kv->block_size;
        int left = q->len - hit, chunk = plp_chunk(s, q, left < *budget ? left : *budget);
        chunk = g4_seq_mm_chunk(q->mm, q->n_computed, chunk); /* an image's run stays whole */
        if (chunk == 0 || g4_kvcache_reserve(s->kv, q->slot, q->n_computed, q->n_computed + chunk)) {
            release_slot(s, q); /* the hit blocks go back to the cache */
            break;
        }
        if (!q->admitted_once) q->cached_tokens = hit < q->n_prompt ? hit : q->n_prompt;
        q->admitted_once = true;
        heap_remove(s, q->heap_idx);
        running_insert(s, q);
        add_to_batch(s, q, chunk);
        *budget -= chunk;
    }
}

int g4_sched_next(g4_scheduler *s) {
    s->step_no++;
    s->n_batch = s->n_tokens = s->n_rows = s->n_seqs = s->n_plp_rows = s->image_held = 0;
    int budget = s->token_budget;
    make_room(s); /* its preemptions do not hold admission back: they were made for it */
    int preempted = schedule_running(s, 1, &budget);
    preempted |= schedule_running(s, 0, &budget);
    if (!preempted && !s->image_held) admit(s, &budget);
    return s->n_tokens;
}

void g4_sched_step_view(const g4_scheduler *s, g4_step *st) {
    *st = (g4_step){.n_tokens = s->n_tokens,
                    .token_ids = s->ids,
                    .pos = s->pos,
                    .seq = s->seq,
                    .n_seqs = s->n_seqs,
                    .blocks_sliding = s->kv->table[G4_POOL_SLIDING],
                    .blocks_global = s->kv->table[G4_POOL_GLOBAL],
                    .n_rows = s->n_rows,
                    .rows = s->rows};
}

/* Registers q's newly full computed blocks in the prefix cache and releases the sliding blocks
 * below the window of its next query: both follow n_computed, never a proposal. */
static void settle(g4_scheduler *s, g4_seq *q) {
    int B = s->kv->block_size;
    for (; (q->n_registered + 1) * B <= q->n_computed; q->n_registered++)
        g4_prefix_register(s->pc, q->slot, q->n_registered, q->keys[q->n_registered]);
    g4_kvcache_release_window(s->kv, q->slot, q->n_computed);
}

void g4_sched_commit(g4_scheduler *s) {
    for (int b = 0; b < s->n_batch; b++) {
        g4_seq *q = s->batch[b];
        q->n_computed += q->chunk - q->n_draft; /* proposals count once accepted */
        q->chunk = 0;
        settle(s, q);
    }
}

void g4_sched_accept(g4_scheduler *s, g4_seq *q, int n_accepted) {
    q->n_computed += n_accepted;
    q->n_draft = 0;
    settle(s, q);
}
