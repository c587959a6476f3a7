/* scheduler.h — iteration-level batching: which tokens of which sequences run in the next step.
 * A chunk never ends inside an image's run of soft tokens (engine/mm.h).
 *
 * Each step has a token budget. Running sequences that decode (one uncomputed token) come first,
 * then running sequences still prefilling (chunks cut to the budget), then waiting sequences.
 * Admission takes one sequence at a time and stops at the first that does not fit. With
 * max_per_client = 0 it goes in (priority, arrival) order, strictly FCFS. With a cap C > 0 it is
 * fair across clients (g4_seq.client) within the best waiting priority: there, a client with C
 * or more running sequences is passed over while a client below C waits; among the rest the next
 * is the best by (the client's running sequences, arrival) — least-running-first, which is
 * round-robin between clients with equal shares — so one client alone still fills every slot,
 * and a request's n choices count as n sequences. Fair room: when the next admission belongs to
 * a client below C and has no slot or no blocks for its first chunk, the newest running
 * sequences of the client furthest above C that do not outrank it (priority) are preempted (as
 * below, but before the step is built, and the step still admits) until it has, so a newcomer
 * runs within a step even while one client holds the whole batch; nobody at or below C is
 * preempted for it, so this settles and never deadlocks.
 * Running sequences are kept in (priority, arrival) order, so "newest" means the last in it. When a
 * running sequence needs blocks and the pools (free + cached) are short, the newest running
 * sequence not yet scheduled in this step is preempted — its blocks are released (full blocks
 * stay in the prefix cache) and it goes back to the waiting queue to be recomputed; a step that
 * preempted admits nobody. Admission looks up the prefix cache first.
 * Speculative decoding: a decoding sequence with proposals (g4_seq.n_draft, made before the
 * step) runs its last token and the proposals, with a logits row for each; the budget beyond one
 * token per decoding sequence pays for them, and proposals that would need blocks the pools do
 * not have are dropped (they never preempt). Commit counts only the last token as computed; the
 * engine reports the accepted proposals with g4_sched_accept.
 * Not here: the admission "can it ever fit" check and limits on the queue (engine.c), sampling.
 * Engine thread only. */
#ifndef G4_ENGINE_SCHEDULER_H
#define G4_ENGINE_SCHEDULER_H

#include <stdint.h>

#include "base/error.h"
#include "engine/kvcache.h"
#include "engine/prefix_cache.h"
#include "engine/sequence.h"
#include "model/gemma4.h"

/* Prompt-logprob rows per step (each is a logits row the step returns to the host). */
#define G4_SCHED_LP_ROWS 64

/* A client's sequences in the scheduler; an entry with none is free for the next new client. */
typedef struct g4_sched_client {
    uint64_t key;
    int running, waiting;
} g4_sched_client;

typedef struct g4_scheduler {
    int max_running;
    int max_per_client;      /* fair admission's cap C; 0 = strictly FCFS */
    int token_budget;
    g4_kvcache *kv;
    g4_prefix_cache *pc;
    g4_seq **waiting;        /* binary heap on (priority, arrival) */
    int n_waiting, cap_waiting;
    g4_seq **running;        /* sorted by (priority, arrival) */
    int n_running;
    g4_sched_client *clients; /* indexed by g4_seq.client_ix; entries [0, n_clients) in use or free */
    int n_clients, cap_clients;
    int32_t *free_slots;     /* stack of block-table rows */
    int n_free_slots;
    uint64_t step_no;
    uint64_t preemptions;
    /* the batch of the current step (valid from g4_sched_next to g4_sched_commit) */
    g4_seq **batch;          /* [max_running] scheduled sequences, in step order */
    int n_batch;
    int32_t *ids, *pos, *seq, *rows; /* [budget] step arrays */
    int32_t *row_batch;      /* [rows cap] batch index of each logits row */
    int32_t *row_plp;        /* [rows cap] the prompt position a row reports (prompt logprobs), 0 for
                                a sampling row */
    int32_t *row_draft;      /* [rows cap] a sampling row's proposals before it in its sequence (the
                                j-th verification row of a speculating sequence), 0 otherwise */
    int n_tokens, n_rows, n_seqs;
    int n_plp_rows;          /* prompt-logprob rows in this step (≤ G4_SCHED_LP_ROWS) */
    int image_held;          /* running prefills held back this step because an image's run did not
                                fit what was left of the budget: nobody is admitted (the decodes
                                ahead of them finish, so the run gets its room) */
} g4_scheduler;

int g4_sched_init(g4_scheduler *s, g4_kvcache *kv, g4_prefix_cache *pc, int max_running, int max_per_client,
                  int token_budget, g4_error *err);
void g4_sched_free(g4_scheduler *s);

/* Queues a new or preempted sequence. −1 only when out of memory. */
int g4_sched_add(g4_scheduler *s, g4_seq *q);
/* Takes a sequence out (finished or cancelled): from the queue or from running, releasing its
 * blocks and slot. */
void g4_sched_remove(g4_scheduler *s, g4_seq *q);

/* Builds the next step; returns its token count (0 when nothing can run). */
int g4_sched_next(g4_scheduler *s);
/* Fills a model step from the batch (pointers into the scheduler and the kv tables). */
void g4_sched_step_view(const g4_scheduler *s, g4_step *st);
/* After the step ran: counts the chunks as computed, registers full blocks in the prefix cache
 * and releases sliding blocks that left the window. */
void g4_sched_commit(g4_scheduler *s);
/* After a speculating sequence's rows were emitted (q still running): n_accepted of its
 * proposals turned out to be its next tokens, so their KV counts as computed; then as commit. */
void g4_sched_accept(g4_scheduler *s, g4_seq *q, int n_accepted);

#endif
