/* gemma4.c — the Gemma 4 text-decoder forward pass, written once over the backend op table.
 *
 * Per layer (spec §2.3, §2.6), on the packed rows x [T, H]:
 *   a = RMSNorm_in(x); q,k,(v) = a·W (one GEMM); q/k norm + RoPE + cache write; attention; o = ·W_o
 *   x += RMSNorm_post_attn(o)                                        (= h1)
 *   dense:  x += RMSNorm_post_ffn(MLP(RMSNorm_pre_ffn(x)))
 *   MoE:    x += RMSNorm_post_ffn( RMSNorm_post_ffn_1(MLP(RMSNorm_pre_ffn(h1)))
 *                                + RMSNorm_post_ffn_2(Experts(RMSNorm_pre_ffn_2(h1), route(h1))) )
 *   x *= layer_scalar
 * then logits = softcap(RMSNorm_final(x[rows]) · Eᵀ). Loading and buffer planning are here
 * too; block bookkeeping is the caller's (runner.c, engine/). */
#include "model/gemma4.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/bf16.h"
#include "base/bucket.h"
#include "base/dummy.h"
#include "model/vision.h"

/* A recorded decode step (compute_step): at most one per (batch bucket, position bound, sampling),
 * so ~9 buckets × a few bounds × 2. */
#define G4_MODEL_GRAPHS 64
typedef struct g4_graph_slot {
    int T, max_pos, with_sample; /* the key */
    int seen, failed;
    void *graph;                 /* backend graph, NULL until recorded */
    uint64_t generation;         /* scratch generation when recorded */
} g4_graph_slot;

/* Activation buffers (backend memory) sized for opts.max_step_tokens, and the step in dev memory. */
typedef struct g4_model_scratch {
    void *x, *a, *qkv, *q, *att, *o, *gu, *act, *f, *m;
    int32_t *moe_ids;
    float *moe_w;
    /* The step as the ops read it: int32 ids, pos, seq, rows, two block tables (embed_row,
     * key_end), then (8-byte aligned) the sample op's parameter block and the image soft tokens
     * (stage_step). */
    void *step_dev;            /* backend memory */
    void *step_stage;          /* the same bytes packed on the host (staging memory): one upload_async */
    size_t step_cap;           /* bytes of each */
    int stage_pending;         /* an upload from step_stage may still be queued (stage_step) */
    float *logits;
    size_t logits_cap;         /* floats */
    void *sample_tokens, *sample_lp; /* the sample op's outputs */
    size_t sample_tokens_cap, sample_lp_cap; /* bytes */
    uint64_t generation;       /* bumped when any buffer above moves (recorded graphs hold pointers) */
    g4_graph_slot graphs[G4_MODEL_GRAPHS];
    int n_graphs;
    g4_model_graph_stats stats;
} g4_model_scratch;

void g4_model_opts_default(g4_model_opts *o) {
    memset(o, 0, sizeof *o);
    o->max_step_tokens = 512;
    o->max_seqs = 64;
    o->block_size = 16;
}

static int max_i(int a, int b) { return a > b ? a : b; }
static size_t align8(size_t n) { return (n + 7) & ~(size_t)7; }

/* The largest decode step: one token for each of max_seqs sequences, within max_step_tokens. */
static int decode_cap(const g4_model *m) {
    return m->opts.max_seqs < m->opts.max_step_tokens ? m->opts.max_seqs : m->opts.max_step_tokens;
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct {
    g4_model *m;
    g4_error *err;
    size_t done, total;
} load_ctx;
static size_t weight_bytes(const g4_weight *w) {
    size_t n = g4_dtype_size(w->dtype);
    for (int i = 0; i < w->ndim; i++) n *= (size_t)w->shape[i];
    return n;
}
static int count_weight_cb(g4_weight *w, void *user) {
    ((load_ctx *)user)->total += weight_bytes(w);
    return 0;
}
static int load_weight_cb(g4_weight *w, void *user) {
    load_ctx *lc = user;
    g4_model *m = lc->m;
    const g4_backend_ops *ops = m->be->ops;
    int rc;
    if (m->opts.dummy_seed) {
        float mean, amp;
        g4_dummy_init(w->name, w->ndim, w->shape, &mean, &amp);
        rc = g4_backend_supports(m->be, G4_OP_LOAD_DUMMY_WEIGHT, w->dtype)
                 ? ops->load_dummy_weight(m->be->ctx, w, g4_dummy_tensor_seed(m->opts.dummy_seed, w->name), mean, amp,
                                          lc->err)
                 : g4_fail(lc->err, "backend %s has no dummy-weights mode", ops->name);
    } else if (!g4_backend_supports(m->be, G4_OP_LOAD_WEIGHT, w->dtype)) {
        rc = g4_fail(lc->err, "backend %s cannot load a %s weight", ops->name, g4_dtype_name(w->dtype));
    } else {
        rc = ops->load_weight(m->be->ctx, w, lc->err);
    }
    if (rc) return g4_fail_prefix(lc->err, "loading %s", w->name);
    lc->done += weight_bytes(w);
    if (m->opts.progress) m->opts.progress(m->opts.progress_user, m->opts.tp_rank, lc->done, lc->total);
    return 0;
}
/* The fused projections (fuse.h), one layer at a time: the concatenated host bytes of a layer
 * live only while the backend copies them (dummy weights need none). */
/* One fused weight: its concatenated bytes made, loaded, and let go (fuse.h). */
static int load_fused_cb(g4_fused_weight *fw, void *user) {
    load_ctx *lc = user;
    if (!lc->m->opts.dummy_seed && g4_fuse_fill(fw, lc->err)) return -1;
    int rc = load_weight_cb(&fw->w, lc);
    g4_fuse_drop_bytes(fw);
    return rc ? -1 : 0;
}

static int count_fused_cb(g4_fused_weight *fw, void *user) { return count_weight_cb(&fw->w, user); }

static int unload_fused_cb(g4_fused_weight *fw, void *user);

static int load_fused(g4_model *m, load_ctx *lc) {
    for (int l = 0; l < m->cfg.n_layers; l++)
        if (load_fused_cb(&m->fused[l].qkv, lc) || load_fused_cb(&m->fused[l].gate_up, lc)) return -1;
    return m->vision ? g4_vision_for_each_fused(m->vision, load_fused_cb, lc) : 0;
}

static int unload_weight_cb(g4_weight *w, void *user) {
    g4_model *m = user;
    if (w->data) m->be->ops->unload_weight(m->be->ctx, w);
    return 0;
}

static int unload_fused_cb(g4_fused_weight *fw, void *user) { return unload_weight_cb(&fw->w, user); }

static void *scratch_alloc(g4_model *m, size_t bytes, int *failed) {
    void *p = m->be->ops->alloc(m->be->ctx, bytes);
    if (!p) *failed = 1;
    return p;
}

static int plan_buffers(g4_model *m, g4_error *err) {
    const g4_config *c = &m->cfg;
    const g4_backend_ops *ops = m->be->ops;
    size_t es = g4_dtype_size(ops->act_dtype);
    size_t T = (size_t)m->opts.max_step_tokens;
    size_t qw = (size_t)c->n_heads * max_i(c->head_dim, c->global_head_dim);
    size_t kw = (size_t)max_i(c->n_kv_heads * c->head_dim, c->n_global_kv_heads * c->global_head_dim);
    size_t iw = (size_t)c->intermediate;
    g4_model_scratch *s = calloc(1, sizeof *s);
    if (!s) return g4_fail(err, "model: out of memory");
    m->scratch = s;
    int failed = 0;
    s->x = scratch_alloc(m, T * c->hidden * es, &failed);
    s->a = scratch_alloc(m, T * c->hidden * es, &failed);
    s->o = scratch_alloc(m, T * c->hidden * es, &failed);
    s->f = scratch_alloc(m, T * c->hidden * es, &failed);
    s->qkv = scratch_alloc(m, T * (qw + 2 * kw) * es, &failed); /* the fused QKV GEMM's rows */
    s->q = scratch_alloc(m, T * qw * es, &failed);
    s->att = scratch_alloc(m, T * qw * es, &failed);
    s->gu = scratch_alloc(m, T * 2 * iw * es, &failed); /* the fused gate|up GEMM's rows */
    s->act = scratch_alloc(m, T * iw * es, &failed);
    if (c->moe) {
        s->m = scratch_alloc(m, T * c->hidden * es, &failed);
        s->moe_ids = scratch_alloc(m, T * c->top_k * sizeof(int32_t), &failed);
        s->moe_w = scratch_alloc(m, T * c->top_k * sizeof(float), &failed);
    }
    /* the largest step's int32s (stage_step), a sample block for T rows without penalties and,
     * with image steps, T rows of image soft tokens: so no usual step moves step_dev (recorded
     * graphs hold it) */
    s->step_cap = align8((6 * T + 2 * (size_t)m->opts.max_seqs * m->max_blocks_per_seq) * sizeof(int32_t)) +
                  align8(g4_sample_params_bytes((int)T, 0)) + (m->image_steps ? T * c->hidden * sizeof(float) : 0);
    s->step_dev = scratch_alloc(m, s->step_cap, &failed);
    /* the logits and the sample op's outputs for the largest decode step, so that no decode step
     * moves them (recorded graphs hold them); only a prefill step with more logit rows grows them */
    size_t R = (size_t)decode_cap(m), V = (size_t)m->shard.vocab_local;
    s->logits = scratch_alloc(m, R * V * sizeof(float), &failed);
    s->logits_cap = R * V;
    s->sample_tokens = scratch_alloc(m, R * sizeof(int32_t), &failed);
    s->sample_tokens_cap = R * sizeof(int32_t);
    s->sample_lp = scratch_alloc(m, R * sizeof(g4_sample_logprobs), &failed);
    s->sample_lp_cap = R * sizeof(g4_sample_logprobs);
    s->step_stage = ops->staging_alloc(m->be->ctx, s->step_cap);
    if (!s->step_stage) failed = 1;
    if (failed) return g4_fail(err, "model: cannot allocate activation buffers for %zu tokens", T);
    return 0;
}

static void free_buffers(g4_model *m) {
    g4_model_scratch *s = m->scratch;
    if (!s) return;
    if (s->stage_pending) { /* a failed step may have left its copy from the staging queued */
        g4_error ignored = {{0}};
        (void)m->be->ops->sync(m->be->ctx, &ignored);
    }
    for (int i = 0; i < s->n_graphs; i++)
        if (s->graphs[i].graph) m->be->ops->graph_free(m->be->ctx, s->graphs[i].graph);
    void *all[] = {s->x,        s->a,     s->qkv,      s->q,      s->att,
                   s->o,        s->gu,    s->act,      s->f,      s->m,
                   s->moe_ids,  s->moe_w, s->step_dev, s->logits, s->sample_tokens,
                   s->sample_lp};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) m->be->ops->free(m->be->ctx, all[i]);
    m->be->ops->staging_free(m->be->ctx, s->step_stage); /* no copy pending: synced above */
    free(s);
    m->scratch = NULL;
}

/* KV pools: one per layer; sliding layers index the sliding pool's block ids, global layers the
 * global pool's (kv_layout.h). Each pool has one block more than opts.n_blocks_*: the pad block,
 * id opts.n_blocks_*, which no caller may name (check_step refuses it, so no engine hands it out)
 * and which only the pad tokens of bucketed decode steps write (stage_step). */
static int plan_kv(g4_model *m, g4_error *err) {
    const g4_config *c = &m->cfg;
    g4_model_opts *o = &m->opts;
    int B = o->block_size;
    /* A sequence holds the blocks of its last W−1 positions plus its chunk of this step (+1 for
     * alignment), and the chunks of one step add up to at most max_step_tokens. */
    if (!o->n_blocks_sliding)
        o->n_blocks_sliding = o->max_seqs * ((c->sliding_window + B - 2) / B + 2) + (o->max_step_tokens + B - 1) / B;
    if (!o->n_blocks_global) o->n_blocks_global = o->max_seqs * m->max_blocks_per_seq;
    size_t es = g4_dtype_size(m->be->ops->kv_dtype);
    for (int l = 0; l < c->n_layers; l++) {
        g4_kv_layer *kv = &m->kv[l];
        int global = g4_layer_is_global(c, l);
        kv->n_blocks = (global ? o->n_blocks_global : o->n_blocks_sliding) + 1; /* + the pad block */
        kv->block_size = B;
        kv->n_kv_heads = g4_layer_kv_heads(c, l);
        kv->head_dim = g4_layer_head_dim(c, l);
        kv->single = g4_layer_k_eq_v(c, l);
        size_t bytes = (size_t)kv->n_blocks * g4_kv_block_elems(kv) * es;
        kv->base = m->be->ops->alloc(m->be->ctx, bytes);
        if (!kv->base) return g4_fail(err, "model: cannot allocate %zu bytes of KV cache for layer %d", bytes, l);
    }
    return 0;
}

int g4_model_open(g4_model **out, const char *dir, g4_backend *be, const g4_model_opts *opts, g4_error *err) {
    *out = NULL;
    if (!be || !be->ops || be->ops->api_version != G4_BACKEND_API_VERSION)
        return g4_fail(err, "model: backend missing or of another API version");
    double t_start = now_seconds();
    g4_model *m = calloc(1, sizeof *m);
    if (!m) return g4_fail(err, "model: out of memory");
    m->be = be;
    const char *dbg = getenv("G4_DEBUG_SYNC"); /* read once here, never per op */
    m->debug_sync = dbg && *dbg && strcmp(dbg, "0") != 0;
    if (opts) m->opts = *opts;
    else g4_model_opts_default(&m->opts);
    g4_model_opts def;
    g4_model_opts_default(&def);
    if (m->opts.max_step_tokens <= 0) m->opts.max_step_tokens = def.max_step_tokens;
    if (m->opts.max_seqs <= 0) m->opts.max_seqs = def.max_seqs;
    if (m->opts.block_size <= 0) m->opts.block_size = def.block_size;

    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (g4_config_load(&m->cfg, path, err)) goto fail;
    if (!m->opts.max_model_len) m->opts.max_model_len = m->cfg.max_positions < 4096 ? m->cfg.max_positions : 4096;
    if (m->opts.max_model_len > m->cfg.max_positions) {
        g4_fail(err, "model: max_model_len %d exceeds max_position_embeddings %d", m->opts.max_model_len,
                m->cfg.max_positions);
        goto fail;
    }
    m->max_blocks_per_seq = (m->opts.max_model_len + m->opts.block_size - 1) / m->opts.block_size;
    m->embed_scale = g4_round_bf16(sqrtf((float)m->cfg.hidden));
    m->st = g4_st_open(dir, err);
    if (!m->st) goto fail;
    if (g4_weights_map(&m->w, &m->cfg, m->st, err)) goto fail;
    m->full_cfg = m->cfg;
    int t = m->opts.tp_size > 0 ? m->opts.tp_size : 1;
    if (t > 1 && (!m->opts.comm || m->opts.comm->size != t)) {
        g4_fail(err, "model: tensor parallel size %d needs a communicator of that size", t);
        goto fail;
    }
    if (g4_shard_apply(&m->shard, &m->cfg, &m->w, m->opts.tp_rank, t, err)) goto fail;
    for (int l = 0; l < m->cfg.n_layers; l++)
        if (g4_fuse_take(&m->fused[l], &m->w.layers[l], l, err)) goto fail;
    /* the vision tower is not sharded (vision.c): whole where it encodes, absent elsewhere */
    m->image_steps = g4_vision_in(&m->full_cfg, m->st);
    if (m->image_steps && !m->opts.no_vision &&
        g4_vision_open(&m->vision, &m->full_cfg, m->full_cfg.hidden, m->st, be, err))
        goto fail;
    load_ctx lc = {m, err, 0, 0};
    g4_weights_for_each(&m->w, count_weight_cb, &lc);
    for (int l = 0; l < m->cfg.n_layers; l++)
        lc.total += weight_bytes(&m->fused[l].qkv.w) + weight_bytes(&m->fused[l].gate_up.w);
    if (m->vision) g4_vision_for_each_weight(m->vision, count_weight_cb, &lc);
    if (m->vision) g4_vision_for_each_fused(m->vision, count_fused_cb, &lc);
    if (t > 1) lc.total += weight_bytes(&m->shard.lm_head);
    if (g4_weights_for_each(&m->w, load_weight_cb, &lc) || load_fused(m, &lc)) goto fail;
    if (m->vision && g4_vision_for_each_weight(m->vision, load_weight_cb, &lc)) goto fail;
    if (t == 1) { /* the LM head is the embedding itself: share its backend copy */
        m->shard.lm_head.data = m->w.embed.data;
        m->shard.lm_head.data_dtype = m->w.embed.data_dtype;
    } else if (load_weight_cb(&m->shard.lm_head, &lc)) {
        goto fail;
    }
    if (plan_buffers(m, err) || plan_kv(m, err)) goto fail;
    m->weight_bytes = lc.done;
    m->load_seconds = now_seconds() - t_start;
    *out = m;
    return 0;
fail:
    g4_fail_prefix(err, "%s", dir);
    g4_model_close(m);
    return -1;
}

void g4_model_close(g4_model *m) {
    if (!m) return;
    if (m->be) {
        free_buffers(m);
        for (int l = 0; l < m->cfg.n_layers; l++) m->be->ops->free(m->be->ctx, m->kv[l].base);
        g4_weights_for_each(&m->w, unload_weight_cb, m);
        for (int l = 0; l < m->cfg.n_layers; l++) {
            unload_weight_cb(&m->fused[l].qkv.w, m);
            unload_weight_cb(&m->fused[l].gate_up.w, m);
        }
        if (m->shard.size > 1) unload_weight_cb(&m->shard.lm_head, m);
        if (m->vision) g4_vision_for_each_weight(m->vision, unload_weight_cb, m);
        if (m->vision) g4_vision_for_each_fused(m->vision, unload_fused_cb, m);
    }
    g4_vision_free(m->vision);
    for (int l = 0; l < m->cfg.n_layers; l++) {
        g4_fuse_free(&m->fused[l].qkv);
        g4_fuse_free(&m->fused[l].gate_up);
    }
    g4_shard_free(&m->shard);
    g4_st_close(m->st);
    free(m);
}

/* The step's image runs (g4_step_image): checks them, fills embed_row [T] (−1, or the token's row
 * of the soft tokens) and key_end [T] (pos, or the run's last position) and copies the soft tokens,
 * run after run, to rows (f32 [Σ n, H] in the step's staging buffer: they reach the backend with
 * the step's one upload). */
static int pack_images(g4_model *m, const g4_step *st, int32_t *embed_row, int32_t *key_end, float *rows,
                       g4_error *err) {
    int T = st->n_tokens, H = m->cfg.hidden;
    size_t n_rows = 0;
    for (int t = 0; t < T; t++) embed_row[t] = -1, key_end[t] = st->pos[t];
    for (int i = 0; i < st->n_images; i++) {
        const g4_step_image *im = &st->images[i];
        if (im->first < 0 || im->n < 1 || im->first > T - im->n || !im->embed)
            return g4_fail(err, "step: image %d has tokens %d..%d of %d (or no soft tokens)", i, im->first,
                           im->first + im->n - 1, T);
        int t0 = im->first, last = st->pos[t0 + im->n - 1];
        for (int k = 0; k < im->n; k++) {
            int t = t0 + k;
            if (st->seq[t] != st->seq[t0] || st->pos[t] != st->pos[t0] + k)
                return g4_fail(err, "step: image %d: token %d is not the next position of its sequence", i, t);
            if (embed_row[t] >= 0) return g4_fail(err, "step: token %d is in two images", t);
            embed_row[t] = (int32_t)(n_rows + (size_t)k);
            key_end[t] = last;
        }
        memcpy(rows + n_rows * (size_t)H, im->embed, (size_t)im->n * H * sizeof(float));
        n_rows += (size_t)im->n;
    }
    return 0;
}

/* --- the step's upload -------------------------------------------------------------------
 *
 * One staging buffer (backend staging memory, pinned on CUDA) holds everything a step sends:
 *   [ids Tp | pos Tp | seq Tp | rows Tp | sliding table S×nb | global table S×nb (| embed_row T |
 *    key_end T)] int32, then at the next 8-byte boundary the sample op's parameter block, then
 *   at the next 8-byte boundary the image soft tokens f32 [Σ n, H] (steps with images only),
 * and reaches s->step_dev, the same layout, with ONE upload_async: no host synchronisation
 * until the step's final download. For a graph key (bucket Tp, S = Tp) every offset is fixed,
 * so a replayed graph reads the new contents at the addresses it recorded.
 *
 * The staging rule: the host packs step_stage only when no copy from it can still be queued.
 * Every step ends with a sync (g4_model_forward / _forward_sample) after its download, so the
 * copy of step N has run before step N+1 packs; stage_pending is set when the copy is queued
 * and cleared by that sync, and a step that finds it set (the previous one failed between its
 * upload and its sync) syncs first. One buffer suffices while steps do not overlap; an engine
 * that prepares step N+1 during step N needs two, alternating, each guarded by an event.
 *
 * Bucketed decode steps: a pure-decode step (one token per sequence, every token a logit row, no
 * images) that a graph records or replays runs at Tp = decode_bucket(T) tokens, so one graph
 * serves every batch size of its bucket; one that runs eagerly (graphs off, its key not
 * recordable, the graph table full) runs at T, as the pads would only cost (step_plan). Pad
 * token k (t = T + k) has id 0, position 0, its own sequence slot n_seqs + k whose tables
 * hold the pool's pad block (plan_kv) at column 0 and −1 elsewhere, and logit row T + k. Its
 * cache writes land in the pad block (all pads share its slot 0: racing garbage no real token
 * reads, as no real table names that block); it reads only that block;
 * every op is row-independent otherwise, so the real rows' results are the unpadded step's
 * (tests/model/decode_buckets.h). On CUDA two choices shape a row's arithmetic by the row count —
 * cuBLASLt's algorithm and the decode attention's split count — and both take g4_bucket of it
 * (base/bucket.h), equal for T and Tp (gemm.cu, attention_decode.cu). Its logits row is never
 * downloaded and the sample op skips it (the parameter block's n_rows is the real count). */

static int graphs_on(const g4_model *m) {
    return g4_backend_supports(m->be, G4_OP_GRAPH, G4_DT_F32) && !m->debug_sync && m->shard.size == 1 &&
           !m->opts.no_graphs;
}

/* T rounded up to a power of two (base/bucket.h), capped at the step's capacity for one token a
 * sequence. */
static int decode_bucket(const g4_model *m, int T) {
    int cap = decode_cap(m), b = g4_bucket(T);
    return b < cap ? b : cap;
}

/* A recorded decode step's slot for its key (what its launches bake in — T, the position bound,
 * whether it samples), made on first sight; NULL when the table is full. */
static g4_graph_slot *graph_slot(g4_model *m, int T, int max_pos, int with_sample) {
    g4_model_scratch *s = m->scratch;
    for (int i = 0; i < s->n_graphs; i++) {
        g4_graph_slot *g = &s->graphs[i];
        if (g->T == T && g->max_pos == max_pos && g->with_sample == with_sample) return g;
    }
    if (s->n_graphs == G4_MODEL_GRAPHS) return NULL;
    g4_graph_slot *g = &s->graphs[s->n_graphs++];
    *g = (g4_graph_slot){.T = T, .max_pos = max_pos, .with_sample = with_sample};
    return g;
}

/* How a checked step runs. A pure-decode step (one token a sequence, each wanting its row, no
 * images) on a backend with graphs is keyed by its bucket Tp, its position bound (max_pos rounded
 * up to a power of two: an upper bound every kernel accepts) and whether it samples; unless that
 * key failed to record (or the table is full) it runs padded to Tp with the bound as *max_pos and
 * *slot its graph slot (compute_step warms, records or replays it). Every other step runs at its
 * own T and max_pos, eagerly (*slot NULL) — padded only with opts.pad_decode (tests). A key that
 * cannot be recorded costs two padded steps (the warm-up and the failed recording), then none. */
static void step_plan(g4_model *m, const g4_step *st, int with_sample, int *Tp, int *max_pos, g4_graph_slot **slot) {
    int T = st->n_tokens, decode = T == st->n_seqs && st->n_rows == T && !st->n_images;
    *slot = NULL;
    *Tp = T;
    if (!decode) return;
    if (graphs_on(m)) {
        int bound = g4_bucket(*max_pos + 1);
        if (bound > m->opts.max_model_len) bound = m->opts.max_model_len;
        g4_graph_slot *g = graph_slot(m, decode_bucket(m, T), bound - 1, with_sample);
        if (g && !g->failed) *slot = g, *max_pos = bound - 1;
    }
    if (*slot || m->opts.pad_decode) *Tp = decode_bucket(m, T);
}

/* Checks the host step; fails with nothing changed. *max_pos = its largest position. */
static int check_step(const g4_model *m, const g4_step *st, int *max_pos, g4_error *err) {
    int T = st->n_tokens, nb = m->max_blocks_per_seq;
    if (T < 1 || T > m->opts.max_step_tokens)
        return g4_fail(err, "step: %d tokens, expected 1..%d", T, m->opts.max_step_tokens);
    if (st->n_seqs < 1 || st->n_seqs > m->opts.max_seqs)
        return g4_fail(err, "step: %d sequences, expected 1..%d", st->n_seqs, m->opts.max_seqs);
    if (st->n_rows < 0 || st->n_rows > T) return g4_fail(err, "step: %d logit rows for %d tokens", st->n_rows, T);
    *max_pos = 0;
    for (int t = 0; t < T; t++) {
        if (st->seq[t] < 0 || st->seq[t] >= st->n_seqs)
            return g4_fail(err, "step: token %d has sequence slot %d, expected 0..%d", t, st->seq[t], st->n_seqs - 1);
        if (st->pos[t] < 0 || st->pos[t] >= m->opts.max_model_len)
            return g4_fail(err, "step: token %d at position %d, model length is %d", t, st->pos[t],
                           m->opts.max_model_len);
        if (st->pos[t] > *max_pos) *max_pos = st->pos[t];
    }
    for (int r = 0; r < st->n_rows; r++)
        if (st->rows[r] < 0 || st->rows[r] >= T)
            return g4_fail(err, "step: logit row %d is token %d, expected 0..%d", r, st->rows[r], T - 1);
    size_t tab = (size_t)st->n_seqs * nb;
    /* every backend reads K/V through these tables: check them once here, not per kernel (the
     * pad block, id n_blocks_*, is out of range for callers) */
    for (size_t i = 0; i < tab; i++) {
        if (st->blocks_sliding[i] < -1 || st->blocks_sliding[i] >= m->opts.n_blocks_sliding)
            return g4_fail(err, "step: sliding block table entry %zu is %d, pool has %d blocks", i,
                           st->blocks_sliding[i], m->opts.n_blocks_sliding);
        if (st->blocks_global[i] < -1 || st->blocks_global[i] >= m->opts.n_blocks_global)
            return g4_fail(err, "step: global block table entry %zu is %d, pool has %d blocks", i, st->blocks_global[i],
                           m->opts.n_blocks_global);
    }
    if (st->n_images < 0 || (st->n_images && !st->images))
        return g4_fail(err, "step: %d images without an array", st->n_images);
    for (int t = 0; t < T; t++) { /* the token's own slot must exist: it is written this step */
        size_t at = (size_t)st->seq[t] * nb + (size_t)(st->pos[t] / m->opts.block_size);
        if (st->blocks_global[at] < 0 && g4_config_count_layers(&m->cfg, G4_LAYER_GLOBAL))
            return g4_fail(err, "step: token %d (position %d) has no global-pool block", t, st->pos[t]);
        if (st->blocks_sliding[at] < 0 && g4_config_count_layers(&m->cfg, G4_LAYER_SLIDING))
            return g4_fail(err, "step: token %d (position %d) has no sliding-pool block", t, st->pos[t]);
    }
    return 0;
}

/* step_stage and step_dev with room for bytes (both move: recorded graphs go stale). */
static int stage_reserve(g4_model *m, size_t bytes, g4_error *err) {
    g4_model_scratch *s = m->scratch;
    const g4_backend_ops *ops = m->be->ops;
    if (bytes <= s->step_cap) return 0;
    size_t cap = bytes > 2 * s->step_cap ? bytes : 2 * s->step_cap;
    ops->staging_free(m->be->ctx, s->step_stage); /* not pending: stage_step synced */
    ops->free(m->be->ctx, s->step_dev);
    s->step_stage = ops->staging_alloc(m->be->ctx, cap);
    s->step_dev = ops->alloc(m->be->ctx, cap);
    s->generation++;
    s->step_cap = s->step_stage && s->step_dev ? cap : 0;
    return s->step_cap ? 0 : g4_fail(err, "model: cannot allocate %zu bytes for the step", cap);
}

/* Checks the step and packs it at Tp tokens (step_plan; with_sample: part of its graph key) into
 * step_stage, with extra (the sample parameter block, extra_bytes; may be 0) after it, fills *d
 * with its step_dev pointers, *extra_dev with extra's and *slot with its graph slot (NULL: run
 * it eagerly). Queues nothing: *bytes is what the step's one upload copies. */
static int stage_step(g4_model *m, const g4_step *st, const void *extra, size_t extra_bytes, int with_sample,
                      g4_step_dev *d, void **extra_dev, g4_graph_slot **slot, size_t *bytes, g4_error *err) {
    g4_model_scratch *s = m->scratch;
    int max_pos = 0, T = st->n_tokens, nb = m->max_blocks_per_seq, Tp = T;
    if (check_step(m, st, &max_pos, err)) return -1;
    step_plan(m, st, with_sample, &Tp, &max_pos, slot);
    int P = Tp - T, S = st->n_seqs + P, R = st->n_rows + P;
    size_t tab = (size_t)S * nb, n_i32 = 4 * (size_t)Tp + 2 * tab + (st->n_images ? 2 * (size_t)T : 0), n_img = 0;
    for (int i = 0; i < st->n_images; i++) { /* room for each run as far as it fits: pack_images checks them */
        int n = st->images[i].n;
        n_img += n < 0 ? 0 : (size_t)(n < T ? n : T);
    }
    size_t at = align8(n_i32 * sizeof(int32_t)), img_at = align8(at + extra_bytes);
    size_t img_bytes = n_img * (size_t)m->cfg.hidden * sizeof(float);
    if (s->stage_pending && m->be->ops->sync(m->be->ctx, err)) return -1; /* the staging rule (above) */
    s->stage_pending = 0;
    if (stage_reserve(m, img_at + img_bytes, err)) return -1;
    int32_t *h = s->step_stage, *ids = h, *pos = ids + Tp, *seq = pos + Tp, *rows = seq + Tp, *bs = rows + Tp,
            *bg = bs + tab;
    memcpy(ids, st->token_ids, T * sizeof(int32_t));
    memcpy(pos, st->pos, T * sizeof(int32_t));
    memcpy(seq, st->seq, T * sizeof(int32_t));
    if (st->n_rows) memcpy(rows, st->rows, st->n_rows * sizeof(int32_t));
    memset(rows + R, 0, (size_t)(Tp - R) * sizeof(int32_t));
    memcpy(bs, st->blocks_sliding, (size_t)st->n_seqs * nb * sizeof(int32_t));
    memcpy(bg, st->blocks_global, (size_t)st->n_seqs * nb * sizeof(int32_t));
    for (int k = 0; k < P; k++) { /* pad token k: see "Bucketed decode steps" above */
        int t = T + k, sq = st->n_seqs + k;
        ids[t] = 0, pos[t] = 0, seq[t] = sq, rows[st->n_rows + k] = t;
        for (int c = 0; c < nb; c++) bs[(size_t)sq * nb + c] = bg[(size_t)sq * nb + c] = -1;
        bs[(size_t)sq * nb] = m->opts.n_blocks_sliding;
        bg[(size_t)sq * nb] = m->opts.n_blocks_global;
    }
    if (st->n_images && pack_images(m, st, bg + tab, bg + tab + T, (float *)((char *)h + img_at), err)) return -1;
    if (extra_bytes) memcpy((char *)h + at, extra, extra_bytes);
    int32_t *base = s->step_dev;
    *d = (g4_step_dev){.n_tokens = Tp,
                       .token_ids = base,
                       .pos = base + Tp,
                       .seq = base + 2 * Tp,
                       .n_seqs = S,
                       .max_blocks = nb,
                       .blocks_sliding = base + 4 * Tp,
                       .blocks_global = base + 4 * Tp + tab,
                       .n_rows = R,
                       .rows = base + 3 * Tp,
                       .max_pos = max_pos};
    if (st->n_images) {
        d->embed_row = d->blocks_global + tab;
        d->key_end = d->embed_row + T;
        d->embed_rows = (const float *)((char *)s->step_dev + img_at);
    }
    *extra_dev = (char *)s->step_dev + at;
    *bytes = st->n_images ? img_at + img_bytes : at + extra_bytes;
    s->stats.padded += P > 0;
    return 0;
}

/* Ends one op of the forward pass. With m->debug_sync (G4_DEBUG_SYNC) the op is waited for and
 * checked at once, so an asynchronous fault (a CUDA kernel's) is reported by the op that caused
 * it rather than by a later sync. On failure err is prefixed with the layer (layer < 0: outside
 * the layers), the op and its shapes. Returns 0 or -1. */
static int op_end(const g4_model *m, int rc, int layer, const char *op, g4_error *err, const char *shape_fmt, ...)
    __attribute__((format(printf, 6, 7)));
static int op_end(const g4_model *m, int rc, int layer, const char *op, g4_error *err, const char *shape_fmt, ...) {
    if (rc == 0 && m->debug_sync && m->be->ops->sync(m->be->ctx, err)) {
        rc = -1;
        g4_fail_prefix(err, "G4_DEBUG_SYNC: fault at the sync after it");
    }
    if (rc == 0) return 0;
    char shapes[256];
    va_list ap;
    va_start(ap, shape_fmt);
    vsnprintf(shapes, sizeof shapes, shape_fmt, ap);
    va_end(ap);
    if (layer >= 0) return g4_fail_prefix(err, "layer %d %s [%s]", layer, op, shapes);
    return g4_fail_prefix(err, "%s [%s]", op, shapes);
}

/* Runs `call` (an op returning 0/-1) as op `name` of layer `l`; the rest is the shape format.
 * Needs `m` and `err` in scope; returns -1 from the enclosing function on failure. */
#define OP(l, name, call, ...)                                           \
    do {                                                                 \
        if (op_end(m, (call), (l), (name), err, __VA_ARGS__)) return -1; \
    } while (0)

/* y[T,N] = x[T,K] · Wᵀ as op "matmul <W's role>". */
#define MATMUL(l, role, y, x, W, T)                                                                 \
    OP(l, "matmul " role, ops->matmul(cx, (y), (x), (W), (T), err), "x[%d,%lld] W[%lld,%lld]", (T), \
       (long long)(W)->shape[1], (long long)(W)->shape[0], (long long)(W)->shape[1])

/* Sums a partial [rows, n] output over the tensor-parallel ranks (no-op on one rank). */
static int reduce(g4_model *m, void *buf, size_t n, g4_error *err) {
    g4_comm *c = m->opts.comm;
    if (m->shard.size <= 1) return 0;
    return c->all_reduce_sum(c, m->shard.rank, buf, n, m->be->ops->act_dtype, err);
}

/* q, k, v = a·[W_q; W_k; W_v]ᵀ as one GEMM into s->qkv (fuse.h; no v on k_eq_v layers), then
 * q/k norm + RoPE + cache write reading q, k, v at their column offsets of each [T, ld] row
 * (no copies), q written packed to s->q for attention.
 * Roofline, 31B decode row per layer: the same weight bytes as the separate GEMMs (sliding
 * 16384×5376 bf16 = 176 MB, global 18432×5376 = 198 MB, ~55 µs at 3.35 TB/s) and the same FLOPs;
 * one GEMM launch instead of three (sliding) or two (k_eq_v global): −110 launches a token for
 * 31B (50 sliding + 10 global layers), −55 for 26B-A4B. Predicted gain: ~2-3 µs a launch saved
 * on eager steps (~0.3 ms a 31B token), less inside a graph; the GEMM stays bandwidth-bound. */
static int qkv_projection(g4_model *m, int l, const g4_attn_geom *g, const g4_step_dev *d, g4_error *err) {
    const g4_backend_ops *ops = m->be->ops;
    void *cx = m->be->ctx;
    g4_model_scratch *s = m->scratch;
    const g4_fused_weight *fw = &m->fused[l].qkv;
    const g4_layer_weights *lw = &m->w.layers[l];
    size_t es = g4_dtype_size(ops->act_dtype);
    int T = d->n_tokens;
    int64_t ld = fw->w.shape[0];
    const char *y = s->qkv;
    MATMUL(l, "qkv_proj", s->qkv, s->a, &fw->w, T);
    OP(l, "qk_norm_rope_cache",
       ops->qk_norm_rope_cache(cx, s->q, y, y + (size_t)fw->offset[1] * es,
                               g->k_eq_v ? NULL : y + (size_t)fw->offset[2] * es, ld, &lw->q_norm, &lw->k_norm, g,
                               &m->kv[l], d, err),
       "qkv[%d,%lld] q[%d,%d,%d] k[%d,%d,%d] window=%d k_eq_v=%d blocks=%dx%d", T, (long long)ld, T, g->n_heads,
       g->head_dim, T, g->n_kv_heads, g->head_dim, g->window, g->k_eq_v, m->kv[l].n_blocks, m->kv[l].block_size);
    return 0;
}

static int attention_block(g4_model *m, int l, const g4_step_dev *d, g4_error *err) {
    const g4_config *c = &m->cfg;
    const g4_layer_weights *lw = &m->w.layers[l];
    const g4_backend_ops *ops = m->be->ops;
    void *cx = m->be->ctx;
    g4_model_scratch *s = m->scratch;
    int T = d->n_tokens, H = c->hidden, global = g4_layer_is_global(c, l);
    g4_attn_geom g = {.layer = l,
                      .n_heads = c->n_heads,
                      .n_kv_heads = g4_layer_kv_heads(c, l),
                      .head_dim = g4_layer_head_dim(c, l),
                      .window = global ? 0 : c->sliding_window,
                      .rope = global ? c->rope_global : c->rope_sliding,
                      .k_eq_v = g4_layer_k_eq_v(c, l),
                      .eps = c->eps};
    if (qkv_projection(m, l, &g, d, err)) return -1; /* from a = RMSNorm_in(x), left by the previous op */
    OP(l, "attention", ops->attention(cx, s->att, s->q, &lw->k_norm, &g, &m->kv[l], d, err),
       "q[%d,%d,%d] kv_heads=%d window=%d k_eq_v=%d seqs=%d max_pos=%d table=[%d,%d]", T, g.n_heads, g.head_dim,
       g.n_kv_heads, g.window, g.k_eq_v, d->n_seqs, d->max_pos, d->n_seqs, d->max_blocks);
    MATMUL(l, "o_proj", s->o, s->att, &lw->o_proj, T);
    OP(l, "all_reduce o_proj", reduce(m, s->o, (size_t)T * H, err), "[%d,%d] ranks=%d", T, H, m->shard.size);
    OP(l, "add_rmsnorm_norm post_attn_norm pre_ffn_norm",
       ops->add_rmsnorm_norm(cx, s->x, s->o, &lw->post_attn_norm, NULL, s->a, &lw->pre_ffn_norm, T, H, c->eps, err),
       "x[%d,%d]", T, H);
    return 0;
}

/* out = down(gelu_tanh(gate·in) ⊙ up·in), gate and up as one GEMM (fuse.h).
 * Roofline, 31B decode row per layer: the gate|up GEMM reads the same 2·21504·5376 bf16 =
 * 462 MB (~140 µs at 3.35 TB/s) and FLOPs as the two GEMMs; one launch instead of two: −60
 * launches a token for 31B, −30 for 26B-A4B. geglu reads the [T, 2I] rows in place (no copy). */
static int dense_mlp(g4_model *m, int l, void *out, const void *in, const g4_layer_weights *lw, int T, g4_error *err) {
    const g4_backend_ops *ops = m->be->ops;
    void *cx = m->be->ctx;
    g4_model_scratch *s = m->scratch;
    int I = m->cfg.intermediate;
    MATMUL(l, "gate_up_proj", s->gu, in, &m->fused[l].gate_up.w, T);
    OP(l, "geglu", ops->geglu(cx, s->act, s->gu, T, I, err), "gu[%d,%d]", T, 2 * I);
    MATMUL(l, "down_proj", out, s->act, &lw->down_proj, T);
    return 0;
}

static int ffn_block(g4_model *m, int l, const g4_step_dev *d, g4_error *err) {
    const g4_config *c = &m->cfg;
    const g4_layer_weights *lw = &m->w.layers[l];
    const g4_backend_ops *ops = m->be->ops;
    void *cx = m->be->ctx;
    g4_model_scratch *s = m->scratch;
    int T = d->n_tokens, H = c->hidden;
    if (dense_mlp(m, l, s->f, s->a, lw, T, err)) return -1; /* a = RMSNorm_pre_ffn(x), from attention_block */
    OP(l, "all_reduce mlp", reduce(m, s->f, (size_t)T * H, err), "[%d,%d] ranks=%d", T, H, m->shard.size);
    if (c->moe) {
        OP(l, "rmsnorm post_ffn_norm_1", ops->rmsnorm(cx, s->f, s->f, &lw->post_ffn_norm_1, T, H, c->eps, err),
           "x[%d,%d]", T, H);
        OP(l, "moe_route",
           ops->moe_route(cx, s->moe_ids, s->moe_w, s->x, &lw->router_proj, &lw->router_scale, &lw->router_expert_scale,
                          T, c->top_k, c->eps, err),
           "h[%d,%d] experts=%d top_k=%d", T, H, c->n_experts, c->top_k);
        OP(l, "rmsnorm pre_ffn_norm_2", ops->rmsnorm(cx, s->a, s->x, &lw->pre_ffn_norm_2, T, H, c->eps, err),
           "x[%d,%d]", T, H);
        OP(l, "moe_experts",
           ops->moe_experts(cx, s->m, s->a, s->moe_ids, s->moe_w, &lw->experts_gate_up, &lw->experts_down, T, c->top_k,
                            err),
           "x[%d,%d] gate_up[%lld,%lld,%lld] top_k=%d", T, H, (long long)lw->experts_gate_up.shape[0],
           (long long)lw->experts_gate_up.shape[1], (long long)lw->experts_gate_up.shape[2], c->top_k);
        OP(l, "all_reduce moe", reduce(m, s->m, (size_t)T * H, err), "[%d,%d] ranks=%d", T, H, m->shard.size);
        OP(l, "rmsnorm post_ffn_norm_2", ops->rmsnorm(cx, s->m, s->m, &lw->post_ffn_norm_2, T, H, c->eps, err),
           "x[%d,%d]", T, H);
        OP(l, "add", ops->add(cx, s->f, s->f, s->m, (size_t)T * H, err), "[%d,%d]", T, H);
    }
    /* x = (x + RMSNorm_post_ffn(f)) × λ, and a = the next norm of x: the next layer's input
     * norm, or after the last layer the final norm (only when rows want logits) */
    int last = l == c->n_layers - 1;
    const g4_weight *next = last ? &m->w.final_norm : &m->w.layers[l + 1].input_norm;
    void *a = last && d->n_rows == 0 ? NULL : s->a;
    OP(l, "add_rmsnorm_norm post_ffn_norm layer_scalar next norm",
       ops->add_rmsnorm_norm(cx, s->x, s->f, &lw->post_ffn_norm, &lw->layer_scalar, a, next, T, H, c->eps, err),
       "x[%d,%d]", T, H);
    return 0;
}

/* Grows backend buffer *buf to at least bytes; a move bumps s->generation (recorded graphs
 * hold the old pointer). */
static int grow(g4_model *m, void **buf, size_t *cap, size_t bytes, const char *what, g4_error *err) {
    if (bytes <= *cap) return 0;
    m->be->ops->free(m->be->ctx, *buf);
    *buf = m->be->ops->alloc(m->be->ctx, bytes);
    *cap = *buf ? bytes : 0;
    m->scratch->generation++;
    return *buf ? 0 : g4_fail(err, "model: cannot allocate %zu bytes for %s", bytes, what);
}

/* Everything of a step after its upload: embed, the layers, and for the rows that ask the
 * LM head into s->logits and (sa non-NULL) the sample op. Only queued backend work, so it can
 * be recorded as a graph. */
static int compute(g4_model *m, const g4_step_dev *d, const g4_sample_args *sa, g4_error *err) {
    const g4_config *c = &m->cfg;
    const g4_backend_ops *ops = m->be->ops;
    void *cx = m->be->ctx;
    g4_model_scratch *s = m->scratch;
    int T = d->n_tokens, H = c->hidden, V = m->shard.vocab_local;
    OP(-1, "embed", ops->embed(cx, s->x, d, &m->w.embed, m->embed_scale, err), "x[%d,%d] E[%lld,%d]", T, H,
       (long long)m->w.embed.shape[0], H);
    /* every layer starts from a = RMSNorm_in(x): this op for the first, the previous layer's last
     * op (add_rmsnorm_norm) for the others, which also leaves the final norm in a */
    OP(0, "rmsnorm input_norm", ops->rmsnorm(cx, s->a, s->x, &m->w.layers[0].input_norm, T, H, c->eps, err), "x[%d,%d]",
       T, H);
    for (int l = 0; l < c->n_layers; l++) {
        if (attention_block(m, l, d, err) || ffn_block(m, l, d, err)) return -1;
    }
    if (d->n_rows == 0) return 0;
    OP(-1, "lm_head", ops->lm_head(cx, s->logits, s->a, d, &m->shard.lm_head, c->final_softcap, err),
       "x[%d rows of %d,%d] E[%d,%d] logits[%d,%d]", d->n_rows, T, H, V, H, d->n_rows, V);
    if (sa) OP(-1, "sample", ops->sample(cx, sa, err), "logits[%d,%d]", d->n_rows, V);
    return 0;
}

/* Runs a staged step: eagerly without a graph slot (step_plan); with one, the first time its key
 * comes eagerly too (warming plans and scratch at the padded shape), the second time recorded as
 * a graph, then replayed from it — one launch instead of ~1,000. */
static int compute_step(g4_model *m, const g4_step_dev *d, g4_graph_slot *g, const g4_sample_args *sa, g4_error *err) {
    g4_model_scratch *s = m->scratch;
    const g4_backend_ops *ops = m->be->ops;
    void *cx = m->be->ctx;
    if (!g || g->failed) return compute(m, d, sa, err);
    if (g->graph && g->generation != s->generation) { /* a buffer it recorded has moved */
        ops->graph_free(cx, g->graph);
        g->graph = NULL;
    }
    if (g->graph) {
        int r = ops->graph_launch(cx, g->graph, err);
        if (r == 0) {
            s->stats.replays++;
            return 0;
        }
        if (r < 0) return -1;
        ops->graph_free(cx, g->graph); /* stale in the backend: run eagerly now, record next time */
        g->graph = NULL;
        return compute(m, d, sa, err);
    }
    if (!g->seen++) return compute(m, d, sa, err);
    g4_error rec = {{0}};
    if (ops->graph_begin(cx, &rec) == 0) {
        int rc = compute(m, d, sa, &rec);
        void *graph = NULL;
        int re = ops->graph_end(cx, &graph, rc ? &(g4_error){{0}} : &rec);
        if (!rc && !re) {
            g->graph = graph;
            g->generation = s->generation;
            s->stats.recorded++;
            if (ops->graph_launch(cx, g->graph, err)) return -1; /* the recording did not run */
            s->stats.replays++;
            return 0;
        }
    }
    g->failed = 1; /* not recordable (an op synchronised or allocated): eager from now on */
    s->stats.record_failures++;
    fprintf(stderr, "g4 model: decode step T=%d not recordable as a graph, running it eagerly: %s\n", d->n_tokens,
            rec.msg);
    return compute(m, d, sa, err);
}

/* Stages the step with extra (the sample parameter block; extra_bytes may be 0) after it, queues
 * their one upload and sizes the logits for the step's rows. *extra_dev: where extra lands;
 * *slot: the step's graph slot (stage_step). */
static int prepare(g4_model *m, const g4_step *step, const void *extra, size_t extra_bytes, int with_sample,
                   g4_step_dev *d, void **extra_dev, g4_graph_slot **slot, g4_error *err) {
    g4_model_scratch *s = m->scratch;
    const g4_backend_ops *ops = m->be->ops;
    void *cx = m->be->ctx;
    size_t bytes = 0;
    if (stage_step(m, step, extra, extra_bytes, with_sample, d, extra_dev, slot, &bytes, err)) return -1;
    OP(-1, "upload step", ops->upload_async(cx, s->step_dev, s->step_stage, bytes, err), "%zu bytes", bytes);
    s->stage_pending = 1;
    size_t need = (size_t)d->n_rows * m->shard.vocab_local * sizeof(float), cap = s->logits_cap * sizeof(float);
    if (d->n_rows && grow(m, (void **)&s->logits, &cap, need, "logits", err)) return -1;
    s->logits_cap = cap / sizeof(float);
    return 0;
}

/* The step's last op: waits for everything queued, so step_stage may be packed again. */
static int finish(g4_model *m, int T, g4_error *err) {
    OP(-1, "sync", m->be->ops->sync(m->be->ctx, err), "end of step, T=%d", T);
    m->scratch->stage_pending = 0;
    return 0;
}

int g4_model_forward(g4_model *m, const g4_step *step, float *logits, g4_error *err) {
    const g4_backend_ops *ops = m->be->ops;
    void *cx = m->be->ctx;
    g4_step_dev d;
    void *unused;
    g4_graph_slot *g = NULL;
    if (prepare(m, step, NULL, 0, 0, &d, &unused, &g, err) || compute_step(m, &d, g, NULL, err)) return -1;
    int V = m->shard.vocab_local, R = step->n_rows; /* the real rows come first; pad rows stay behind */
    if (R)
        OP(-1, "download logits", ops->download(cx, logits, m->scratch->logits, (size_t)R * V * sizeof(float), err),
           "[%d] of [%d,%d] f32", R, d.n_rows, V);
    return finish(m, d.n_tokens, err);
}

void g4_model_graph_stats_get(const g4_model *m, g4_model_graph_stats *out) { *out = m->scratch->stats; }

int g4_model_can_sample(const g4_model *m) { return m->shard.size == 1 && m->be->ops->sample != NULL; }

int g4_model_forward_sample(g4_model *m, const g4_step *step, const g4_sample_params *params, size_t params_bytes,
                            int32_t *tokens, g4_sample_logprobs *logprobs, int n_logprobs, g4_error *err) {
    const g4_backend_ops *ops = m->be->ops;
    void *cx = m->be->ctx;
    g4_model_scratch *s = m->scratch;
    if (!g4_model_can_sample(m)) return g4_fail(err, "model: this backend or tensor-parallel setup cannot sample");
    if (params->n_rows != step->n_rows || params->vocab != m->shard.vocab_local || n_logprobs < 0 ||
        n_logprobs > step->n_rows || params_bytes < g4_sample_params_bytes(params->n_rows, params->n_pen))
        return g4_fail(err, "model: sample parameters for %d rows of vocab %d (%zu bytes), step has %d rows of %d",
                       params->n_rows, params->vocab, params_bytes, step->n_rows, m->shard.vocab_local);
    g4_step_dev d;
    void *params_dev = NULL;
    g4_graph_slot *g = NULL;
    int with_sample = step->n_rows > 0; /* compute_step's sa below */
    if (prepare(m, step, params, with_sample ? params_bytes : 0, with_sample, &d, &params_dev, &g, err)) return -1;
    if (!d.n_rows) {
        if (compute_step(m, &d, g, NULL, err)) return -1;
    } else {
        int V = m->shard.vocab_local, R = step->n_rows;
        /* every row (pads included) gets a token and a logprob record slot, so the op's arguments
         * depend only on the step's T; the op samples the block's n_rows = R real rows */
        if (grow(m, &s->sample_tokens, &s->sample_tokens_cap, (size_t)d.n_rows * sizeof(int32_t), "tokens", err) ||
            grow(m, &s->sample_lp, &s->sample_lp_cap, (size_t)d.n_rows * sizeof(g4_sample_logprobs), "logprobs", err))
            return -1;
        g4_sample_args a = {.logits = s->logits,
                            .ld = V,
                            .vocab = V,
                            .max_rows = d.n_rows,
                            .params = params_dev,
                            .mask = NULL,
                            .tokens = s->sample_tokens,
                            .logprobs = s->sample_lp};
        if (compute_step(m, &d, g, &a, err)) return -1;
        OP(-1, "download tokens", ops->download(cx, tokens, s->sample_tokens, (size_t)R * sizeof(int32_t), err),
           "[%d] i32", R);
        if (n_logprobs)
            OP(-1, "download logprobs",
               ops->download(cx, logprobs, s->sample_lp, (size_t)n_logprobs * sizeof(g4_sample_logprobs), err),
               "[%d] logprob records", n_logprobs);
    }
    return finish(m, d.n_tokens, err);
}
