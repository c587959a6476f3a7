/* gemma4.h — the Gemma 4 text decoder: load a checkpoint onto a backend and run steps.
 *
 * A step is a packed batch of tokens from any number of sequences (prefill chunks and decode
 * tokens mixed), each with its absolute position and its sequence's block tables into the
 * paged KV pools owned by the model. g4_model_forward() writes the step's keys and values into
 * the cache, runs every layer and returns f32 logits for the rows that ask. It decides nothing
 * about which tokens run or where their blocks are (engine/ and runner.h do that). */
#ifndef G4_MODEL_GEMMA4_H
#define G4_MODEL_GEMMA4_H

#include <stdint.h>

#include "backend/backend.h"
#include "base/error.h"
#include "model/config.h"
#include "model/safetensors.h"
#include "model/fuse.h"
#include "model/shard.h"
#include "model/weights.h"
#include "base/comm.h"

typedef struct g4_model_opts {
    int max_step_tokens;   /* largest T of one step (activation buffers); default 512 */
    int max_seqs;          /* sequence slots (block-table rows); default 64 */
    int block_size;        /* tokens per KV block; default 16 */
    int n_blocks_sliding;  /* blocks in the sliding pool; default: enough for max_seqs full windows */
    int n_blocks_global;   /* blocks in the global pool; default: max_seqs × 4096 tokens / B */
    int max_model_len;     /* longest sequence; default min(max_position_embeddings, 4096) */
    int tp_rank, tp_size;  /* tensor parallel: this model holds rank tp_rank's slice (size 0 = 1) */
    g4_comm *comm;         /* all-reduce among the tp_size ranks (required when tp_size > 1) */
    /* Non-zero: "dummy weights" — every weight is filled on the backend with seeded random values
     * (base/dummy.h) and the checkpoint's bytes are never read, so a header-only (sparse)
     * checkpoint of a full-size model serves benchmarks and tests at real scale. */
    uint64_t dummy_seed;
    /* Called after each weight is on the backend (NULL = silent): bytes done of total. */
    void (*progress)(void *user, int rank, size_t done, size_t total);
    void *progress_user;
    /* Non-zero: never replay decode steps from recorded graphs (backends with graphs record
     * and replay them by default; G4_DEBUG_SYNC also turns them off). */
    int no_graphs;
    /* Non-zero: pad pure-decode steps to their batch bucket even when no graph replays them (the
     * default pads only steps replayed from graphs): tests the padding on backends without graphs. */
    int pad_decode;
    /* Non-zero: leave the vision tower out (g4_model_vision NULL): its tensors are recognised and
     * skipped like the audio ones. A tensor-parallel group sets it on every rank but the one that
     * encodes (parallel/tp.c), which saves the tower's bytes on each other device. */
    int no_vision;
} g4_model_opts;

typedef struct g4_model {
    g4_config cfg;           /* this rank's geometry (heads, widths divided by tp_size) */
    g4_config full_cfg;      /* the checkpoint's geometry */
    g4_safetensors *st;
    g4_weights w;
    g4_backend *be;          /* not owned */
    g4_model_opts opts;
    int max_blocks_per_seq;  /* block-table columns: ceil(max_model_len / block_size) */
    float embed_scale;       /* bf16(√H) */
    g4_shard shard;          /* tensor-parallel slice; shard.lm_head is the (local) LM head */
    g4_fused_layer fused[G4_MAX_LAYERS]; /* per layer: qkv and gate_up, one GEMM each (fuse.h) */
    size_t weight_bytes;     /* bytes of this rank's weights as stored in the checkpoint */
    double load_seconds;     /* wall time of g4_model_open */
    int debug_sync;          /* G4_DEBUG_SYNC=1 at open: sync and check after every op (fault localising) */
    g4_kv_layer kv[G4_MAX_LAYERS];
    struct g4_model_scratch *scratch; /* activation buffers and the dev copy of the step */
    struct g4_vision *vision;         /* the vision tower (model/vision.h), NULL for text-only models
                                         and with opts.no_vision */
    int image_steps;                  /* the checkpoint has a tower (here or, with opts.no_vision, on
                                         another rank): steps may carry image runs */
} g4_model;

/* A run of image soft tokens in a step (prefill only). Tokens first .. first + n − 1 are
 * consecutive positions of one sequence and end at the last soft token of their image, so on
 * sliding layers each of them also sees the later ones (bidirectional attention inside an image,
 * spec §2.4.5); global layers and every other token stay causal. The run may begin after the
 * image's first soft token when the tokens before are already in the cache (a prefix hit). */
typedef struct g4_step_image {
    int first;                      /* step token index of its first token */
    int n;                          /* tokens */
    const float *embed;             /* host f32 [n, H]: their input embeddings, the vision tower's soft
                                       tokens (not scaled by √H; the token ids are not read) */
} g4_step_image;

/* The step as the caller builds it on the host. */
typedef struct g4_step {
    int n_tokens;
    const int32_t *token_ids;       /* [T] */
    const int32_t *pos;             /* [T] */
    const int32_t *seq;             /* [T] slot in [0, n_seqs) */
    int n_seqs;
    const int32_t *blocks_sliding;  /* [n_seqs, model->max_blocks_per_seq] */
    const int32_t *blocks_global;   /* [n_seqs, model->max_blocks_per_seq] */
    int n_rows;
    const int32_t *rows;            /* [n_rows] tokens whose logits are wanted */
    int n_images;                   /* image soft-token runs in the step (0: text only) */
    const g4_step_image *images;    /* [n_images], disjoint */
} g4_step;

void g4_model_opts_default(g4_model_opts *o);

/* Opens dir/config.json and the checkpoint in dir, maps and checks every tensor, loads the
 * weights onto be and allocates the KV pools. opts NULL = defaults. */
int g4_model_open(g4_model **out, const char *dir, g4_backend *be, const g4_model_opts *opts, g4_error *err);
void g4_model_close(g4_model *m);

/* Runs one step. logits: host f32 [n_rows, shard.vocab_local] (V unless tensor parallel; may be
 * NULL when n_rows == 0). With tp_size > 1 every rank must run the same step concurrently.
 * A failing op's message names the op, its layer and its shapes ("layer 3 attention [T=7 ...]:
 * ..."). Backends that queue work (CUDA) report a kernel fault only at a later sync, far from its
 * cause; with G4_DEBUG_SYNC=1 in the environment when the model is opened, every op is followed
 * by ops->sync and the fault is pinned on the op that caused it (slow: debugging only). */
int g4_model_forward(g4_model *m, const g4_step *step, float *logits, g4_error *err);

/* Decode-step graphs so far: recorded, replayed, keys that could not be recorded, and steps run
 * padded to their batch bucket (those a graph records or replays, or every decode step with
 * opts.pad_decode). */
typedef struct g4_model_graph_stats {
    long recorded, replays, record_failures, padded;
} g4_model_graph_stats;
void g4_model_graph_stats_get(const g4_model *m, g4_model_graph_stats *out);

/* 1 when g4_model_forward_sample works here: one rank (no tensor parallelism) and a backend
 * with the sample op. */
int g4_model_can_sample(const g4_model *m);

/* Runs one step and samples its logit rows on the backend with the sample op (backend.h), so
 * only token ids — and the logprob records of the rows that ask — come back to the host:
 * 4 bytes a row instead of 4·V. params: the host parameter block (g4_sample_params_bytes;
 * n_rows = step->n_rows, vocab = V), uploaded in one copy. tokens: host [n_rows];
 * logprobs: host [n_logprobs] (the rows' lp_slot index it; NULL when n_logprobs = 0). */
int g4_model_forward_sample(g4_model *m, const g4_step *step, const g4_sample_params *params, size_t params_bytes,
                            int32_t *tokens, g4_sample_logprobs *logprobs, int n_logprobs, g4_error *err);

#endif
