/* executor.c — the executor seam: g4_executor_local runs each step on one g4_model (N = 1).
 *
 * The engine only ever calls ex->step(ctx, step, logits): one packed step in, rank 0's logits
 * out. With tensor parallelism (g4_executor_tp, parallel/tp.c) the executor holds N workers
 * (one thread per GPU, each with its shard of the model); step() hands the same g4_step to every
 * worker, waits for all of them (they all-reduce inside the forward), and returns the gathered
 * logits, and encode() runs the tower, which rank 0 alone loads — nothing above this seam
 * changes. For N = 1 the worker is the engine thread itself, so step() calls the model directly,
 * and samples on the model's backend (only ids come back) when the backend can, and runs the
 * model's vision tower (encode) when it has one.
 * Not here: scheduling, the sampling parameters (engine). */
#include "engine/engine.h"
#include "model/vision.h"

static int local_step(void *ctx, const g4_step *step, float *logits, g4_error *err) {
    return g4_model_forward((g4_model *)ctx, step, logits, err);
}

static int local_step_sample(void *ctx, const g4_step *step, const g4_sample_params *params, size_t params_bytes,
                             int32_t *tokens, g4_sample_logprobs *logprobs, int n_logprobs, g4_error *err) {
    return g4_model_forward_sample((g4_model *)ctx, step, params, params_bytes, tokens, logprobs, n_logprobs, err);
}

/* The model's vision tower on one image (engine thread, between steps: the backend's one user). */
static int local_encode(void *ctx, const g4_mm_item *item, float *out, g4_error *err) {
    return g4_vision_encode(g4_model_vision((g4_model *)ctx), item->patches, item->ph, item->pw, out, err);
}

void g4_executor_local(g4_executor *ex, g4_model *m) {
    ex->ctx = m;
    ex->n_workers = 1;
    ex->vocab = m->cfg.vocab;
    ex->step = local_step;
    ex->step_sample = g4_model_can_sample(m) ? local_step_sample : NULL;
    ex->encode = g4_model_vision(m) ? local_encode : NULL;
    ex->hidden = m->full_cfg.hidden;
}

void g4_engine_opts_from_model(g4_engine_opts *o, const g4_model *m) {
    *o = (g4_engine_opts){0};
    o->max_running = m->opts.max_seqs;
    o->max_running_per_client = o->max_running > 1 ? o->max_running / 2 : 1;
    o->max_waiting = 1024;
    o->max_model_len = m->opts.max_model_len;
    o->step_token_budget = m->opts.max_step_tokens;
    o->block_size = m->opts.block_size;
    o->n_blocks_sliding = m->opts.n_blocks_sliding;
    o->n_blocks_global = m->opts.n_blocks_global;
    o->sliding_window = m->cfg.sliding_window;
    o->prefix_cache = true;
    o->eos_ids = m->cfg.eos_ids;
    o->n_eos = m->cfg.n_eos;
    o->max_blocks_per_seq = m->max_blocks_per_seq;
    o->vision = g4_model_vision((g4_model *)m) != NULL;
    g4_sampling_default(&o->defaults);
}
