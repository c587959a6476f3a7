/* tf_compare.h — teacher-forced whole-model logits and the rule that compares two runs of them,
 * shared by the CPU-only demonstration (tests/backend/test_bf16_oracle.c) and the GPU tests
 * (tests/gpu/test_gpu_model.c, test_gpu_dummy.c, test_gpu_tp.c).
 *
 * Teacher forcing: both runs are fed the same token stream — prompts prefilled in one step (every
 * row's logits kept), then a fixed continuation, one token per sequence per decode step — so a
 * rounding difference can change logits but never the tokens that follow, and every position is
 * compared. Greedy identity is not asked for: bf16 against any reference flips near-ties.
 *
 * Conditioning: random tiny models amplify rounding. Attention has scale 1.0 over RMS-normed q
 * and k, so a score is ~ Σ_d q_i k_i with |q|, |k| ~ √d: softmaxes are nearly one-hot and one
 * bf16 step in q or k moves scores by ~d·2^-9. tf_condition_dir() scales the q_norm and k_norm
 * weights of a written checkpoint by TF_QK_SCALE (scores × TF_QK_SCALE²); tf_wrap with
 * dummy_qk_scale does the same to dummy weights as a backend fills them. The model is still a
 * Gemma 4 in every op; only its weights are tamer.
 *
 * Routing replay (MoE): the router's top-k is discrete. A last-bit difference in its input
 * (bf16 rounding cascades differently under another f32 summation order) picks the other
 * expert at a near-tie, and that token's logits move by up to ~50 % — on the CPU alone, with
 * no bug anywhere (test_bf16_oracle.c measures it). So the run under test records its routing
 * (TF_ROUTE_RECORD) and the bf16 reference replays it (TF_ROUTE_REPLAY): where the recorded
 * experts differ from the reference's own choice, the reference checks that the choice was a
 * near-tie (every recorded expert's probability ≥ (1 − TF_TIE) × the reference's k-th largest)
 * and then uses the recorded experts, with weights recomputed from its own probabilities. A
 * choice that is not a near-tie counts as a routing violation, which fails the comparison.
 *
 * Planted bugs (tf_bug): realistic kernel errors injected into one run through a wrapped op
 * table, so a test can show that the comparison rejects them: one attention head's output
 * zeroed in one layer, the sliding window one key short, proportional RoPE rotating every pair
 * on the global layers. The wrapper lives here, in the tests, never in the product. */
#ifndef G4_TESTS_BACKEND_TF_COMPARE_H
#define G4_TESTS_BACKEND_TF_COMPARE_H

#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/backend.h"
#include "base/bf16.h"
#include "base/dummy.h"
#include "model/runner.h"
#include "model/safetensors.h"

/* q_norm / k_norm weights × 0.5: attention scores × 0.25 (see the measurements in
 * test_bf16_oracle.c for what this buys). */
#define TF_QK_SCALE 0.5f

/* The backend options whole-model comparisons run under: the bf16 reference rounds where the
 * simple MoE path rounds (gate and up outputs); the default fast path (moe_decode.cu) keeps them
 * in f32 and has its own op-level test (test_gpu_moe_fast). The CPU backend ignores them. */
static const g4_backend_options tf_backend_opts = {.moe_path = G4_MOE_PATH_SIMPLE};

/* --- the token stream -------------------------------------------------------------------- */

#define TF_MAX_PROMPT 24
#define TF_MAX_DEC 8

typedef struct tf_stream {
    int n_seqs;                          /* 1 or 2 */
    int n_prompt[2];                     /* ≤ TF_MAX_PROMPT */
    int32_t prompt[2][TF_MAX_PROMPT];
    int n_dec;                           /* decode steps, ≤ TF_MAX_DEC */
    int32_t cont[2][TF_MAX_DEC];         /* token fed to sequence s at decode step i */
} tf_stream;

static inline uint64_t tf_next_(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Seeded random tokens in [3, V). */
static inline void tf_stream_make(tf_stream *st, int V, uint64_t seed, int n_seqs, int n0, int n1, int n_dec) {
    memset(st, 0, sizeof *st);
    st->n_seqs = n_seqs;
    st->n_prompt[0] = n0;
    st->n_prompt[1] = n1;
    st->n_dec = n_dec;
    for (int s = 0; s < n_seqs; s++) {
        for (int i = 0; i < st->n_prompt[s]; i++) st->prompt[s][i] = 3 + (int32_t)(tf_next_(&seed) % (uint64_t)(V - 3));
        for (int i = 0; i < n_dec; i++) st->cont[s][i] = 3 + (int32_t)(tf_next_(&seed) % (uint64_t)(V - 3));
    }
}

/* Logit rows a run produces: every prompt position, then every decode step of every sequence. */
static inline int tf_rows(const tf_stream *st) {
    int r = st->n_dec * st->n_seqs;
    for (int s = 0; s < st->n_seqs; s++) r += st->n_prompt[s];
    return r;
}

/* Runs the stream through a fresh runner on m (fn: optional step function, e.g. a tensor-parallel
 * group), writing tf_rows() × V logits: prefill rows in sequence order, then per decode step one
 * row per sequence. 0, or -1 with err set. */
static inline int tf_run(g4_model *m, g4_step_fn fn, void *fn_ctx, const tf_stream *st, float *logits, g4_error *err) {
    g4_runner *r = g4_runner_create(m, err);
    if (!r) return -1;
    if (fn) g4_runner_set_step_fn(r, fn, fn_ctx);
    int V = m->full_cfg.vocab, seq[2] = {-1, -1}, rc = 0;
    for (int s = 0; s < st->n_seqs && rc == 0; s++)
        if ((seq[s] = g4_runner_seq_open(r, err)) < 0) rc = -1;
    g4_runner_chunk ch[2];
    for (int s = 0; s < st->n_seqs; s++) ch[s] = (g4_runner_chunk){seq[s], st->n_prompt[s], st->prompt[s], 1};
    if (rc == 0) rc = g4_runner_step(r, ch, st->n_seqs, logits, err);
    size_t row = 0;
    for (int s = 0; s < st->n_seqs; s++) row += (size_t)st->n_prompt[s];
    for (int i = 0; i < st->n_dec && rc == 0; i++) {
        for (int s = 0; s < st->n_seqs; s++) ch[s] = (g4_runner_chunk){seq[s], 1, &st->cont[s][i], 0};
        rc = g4_runner_step(r, ch, st->n_seqs, logits + row * V, err);
        row += (size_t)st->n_seqs;
    }
    g4_runner_free(r);
    return rc;
}

/* --- the comparison ---------------------------------------------------------------------- */

/* Per row r: e_r = rms_v(got − ref) / rms_v(ref). The rule is max_r e_r ≤ tol. An RMS over the
 * 262144-wide vocabulary measures the whole distribution; a max over rows keeps one bad position
 * (a dropped key at p ≥ W, one decode step) from hiding in an average.
 *
 * TF_TOL = 5 %. Reasoning (numbers from test_bf16_oracle.c, which re-measures them in CI): the
 * GPU and the bf16-mode reference round at the same points, so they differ only where f32
 * summation order (cuBLASLt, block reductions, rsqrtf/sincosf vs libm) tips a bf16 rounding the
 * other way; that one-ulp difference then cascades through the layers. Replacing the CPU's dot
 * order by three others (sum_order 1–3) moves the conditioned tiny models' logits by at most
 * 2.35 % per row (dense, 10 seeds × 6 order pairs) and 3.2 % (MoE with routing replayed, on a
 * seed chosen because near-ties flip). The weakest planted bug (p-RoPE on the global layers,
 * dense) moves them by ≥ 10 %, the others by ≥ 30 %. 5 % sits 1.5–2× above the noise and 2×
 * below the weakest bug. bf16 vs fp32 is 2.6–6.3 % (dense)
 * and up to 94 % (MoE) on the same models, which is why the fp32 oracle is not the reference. */
#define TF_TOL 0.05
typedef struct tf_stats {
    double worst;      /* max_r e_r */
    double mean;       /* mean_r e_r */
    int worst_row;
    double max_abs;    /* max |got − ref| over everything (printed, not judged) */
    int argmax_same;   /* rows whose argmax agrees */
    int n_nan;
} tf_stats;

static inline tf_stats tf_measure(const float *got, const float *ref, int rows, int V) {
    tf_stats s = {0};
    for (int r = 0; r < rows; r++) {
        const float *g = got + (size_t)r * V, *f = ref + (size_t)r * V;
        double se = 0, sr = 0;
        int ag = 0, af = 0;
        for (int v = 0; v < V; v++) {
            double d = (double)g[v] - f[v];
            if (isnan(g[v]) || isnan(f[v])) s.n_nan++;
            se += d * d;
            sr += (double)f[v] * f[v];
            if (fabs(d) > s.max_abs) s.max_abs = fabs(d);
            if (g[v] > g[ag]) ag = v;
            if (f[v] > f[af]) af = v;
        }
        double e = sr > 0 ? sqrt(se / sr) : INFINITY;
        s.mean += e / rows;
        if (e > s.worst || isnan(e)) {
            s.worst = isnan(e) ? INFINITY : e;
            s.worst_row = r;
        }
        s.argmax_same += ag == af;
    }
    if (s.n_nan) s.worst = INFINITY;
    return s;
}

/* Prints one line; returns 1 when max_r e_r ≤ tol. */
static inline int tf_compare(const char *what, const float *got, const float *ref, int rows, int V, double tol) {
    tf_stats s = tf_measure(got, ref, rows, V);
    int ok = s.worst <= tol;
    printf("%-52s rows=%-3d worst row %6.3f%% (row %d)  mean %6.3f%%  max|d| %.3g  argmax same %d/%d  [tol %.2f%%] %s\n",
           what, rows, 100 * s.worst, s.worst_row, 100 * s.mean, s.max_abs, s.argmax_same, rows, 100 * tol,
           ok ? "pass" : "REJECTED");
    return ok;
}

/* --- conditioning ------------------------------------------------------------------------ */

static inline int tf_ends_with_(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !memcmp(s + n - m, suffix, m);
}

/* Multiplies every *.q_norm.weight and *.k_norm.weight (bf16) of dir/model.safetensors by scale,
 * in place. The data region's first tensor starts at its offset 0 (safetensors has no holes),
 * so a tensor's file offset is 8 + header + (data − lowest data pointer). */
static inline int tf_condition_dir(const char *dir, float scale, g4_error *err) {
    char path[512];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    g4_safetensors *st = g4_st_open(path, err);
    if (!st) return -1;
    int fd = open(path, O_RDWR), rc = 0;
    uint64_t hdr = 0;
    if (fd < 0 || pread(fd, &hdr, 8, 0) != 8) {
        g4_st_close(st);
        if (fd >= 0) close(fd);
        return g4_fail(err, "condition %s: cannot open for writing", path);
    }
    const char *lowest = NULL;
    for (int i = 0; i < g4_st_count(st); i++) {
        const char *p = g4_st_at(st, i)->data;
        if (!lowest || p < lowest) lowest = p;
    }
    for (int i = 0; i < g4_st_count(st) && rc == 0; i++) {
        const g4_st_tensor *t = g4_st_at(st, i);
        if (!tf_ends_with_(t->name, ".q_norm.weight") && !tf_ends_with_(t->name, ".k_norm.weight")) continue;
        if (t->dtype != G4_DT_BF16) {
            rc = g4_fail(err, "condition: %s is not bf16", t->name);
            break;
        }
        size_t n = t->nbytes / 2;
        uint16_t *buf = malloc(t->nbytes);
        if (!buf) {
            rc = g4_fail(err, "condition: out of memory");
            break;
        }
        memcpy(buf, t->data, t->nbytes);
        for (size_t j = 0; j < n; j++) buf[j] = g4_f32_to_bf16(g4_bf16_to_f32(buf[j]) * scale);
        off_t off = (off_t)(8 + hdr + (size_t)((const char *)t->data - lowest));
        if (pwrite(fd, buf, t->nbytes, off) != (ssize_t)t->nbytes) rc = g4_fail(err, "condition: write %s", t->name);
        free(buf);
    }
    close(fd);
    g4_st_close(st);
    return rc;
}

/* --- the op-table wrapper: dummy-weight conditioning and planted bugs ---------------------- */

typedef enum {
    TF_BUG_NONE = 0,
    TF_BUG_HEAD_ZERO,   /* attention output of head tf_cfg.head zeroed on layer tf_cfg.layer */
    TF_BUG_WINDOW,      /* sliding layers attend to W−1 keys (lo = p − W + 2): off by one */
    TF_BUG_PROPE,       /* global layers (tf_cfg.layer, or all when < 0) rotate all d/2 pairs, not
                         * the p-RoPE share (q, cached keys and keys formed from U alike) */
} tf_bug;

static inline const char *tf_bug_name(tf_bug b) {
    switch (b) {
    case TF_BUG_HEAD_ZERO: return "one head zeroed in one layer";
    case TF_BUG_WINDOW: return "sliding window one key short";
    case TF_BUG_PROPE: return "p-RoPE: all pairs rotated on global layers";
    default: return "none";
    }
}

/* One wrapped backend: the same ctx, an op table whose wrapped slots forward to `inner`. */
typedef struct tf_wrap {
    g4_backend be;               /* pass &be to g4_model_open; not destroyed by its owner */
    g4_backend_ops ops;
    const g4_backend_ops *inner;
    g4_backend *target;          /* tf_wrap_in_place: the backend whose ops were replaced */
    size_t cursor;               /* replay: this backend's position in the routing log */
} tf_wrap;

typedef enum { TF_ROUTE_OFF = 0, TF_ROUTE_RECORD, TF_ROUTE_REPLAY } tf_route_mode;

/* A recorded near-tie is one where every recorded expert's probability is at least (1 − TF_TIE)
 * times the reference's k-th largest. 2 %: the measured gaps of order-induced flips are below
 * 0.5 % (printed by test_bf16_oracle.c); a router bug picks experts far below the k-th. */
#define TF_TIE 0.02

/* What the wrappers do now (one process-wide setting: the tests run one model at a time). */
static struct {
    tf_bug bug;
    int layer, head;
    float dummy_qk_scale;   /* ≠ 0: q_norm / k_norm dummy weights scaled by it */
    tf_route_mode route;
    void *record_ctx;       /* record / count only this backend ctx's calls (a tensor-parallel rank 0:
                             * all ranks route alike, each replays the whole log); NULL = any */
    int32_t *log;           /* recorded expert ids, calls in order, [T, k] each */
    size_t log_n, log_cap, cursor; /* cursor: the counted backend's replay position */
    long decisions, mismatches, violations; /* replay: tokens routed, differing, not near-ties */
    double worst_gap;       /* replay: max (p_k − p_e) / p_k over recorded experts e */
    tf_wrap *wraps[8];
    int n_wraps;
} tf_cfg;

/* Clears the routing log and counters (keeps bug and dummy settings). */
static inline void tf_route_reset(void) {
    free(tf_cfg.log);
    tf_cfg.log = NULL;
    tf_cfg.log_n = tf_cfg.log_cap = tf_cfg.cursor = 0;
    tf_cfg.decisions = tf_cfg.mismatches = tf_cfg.violations = 0;
    tf_cfg.worst_gap = 0;
    tf_cfg.route = TF_ROUTE_OFF;
    tf_cfg.record_ctx = NULL;
}

static inline tf_wrap *tf_find_(void *ctx) {
    for (int i = 0; i < tf_cfg.n_wraps; i++)
        if (tf_cfg.wraps[i]->be.ctx == ctx) return tf_cfg.wraps[i];
    return NULL;
}
static inline const g4_backend_ops *tf_inner_(void *ctx) { return tf_find_(ctx)->inner; }

/* Starts a run: routing mode, counters and replay positions back to zero (a record run also
 * empties the log). */
static inline void tf_route_begin(tf_route_mode route) {
    tf_cfg.route = route;
    tf_cfg.cursor = 0;
    tf_cfg.decisions = tf_cfg.mismatches = tf_cfg.violations = 0;
    tf_cfg.worst_gap = 0;
    if (route == TF_ROUTE_RECORD) tf_cfg.log_n = 0;
    for (int i = 0; i < tf_cfg.n_wraps; i++) tf_cfg.wraps[i]->cursor = 0;
}

static inline int tf_prope_hit_(const g4_attn_geom *g) {
    return tf_cfg.bug == TF_BUG_PROPE && g->window == 0 && (tf_cfg.layer < 0 || g->layer == tf_cfg.layer);
}

static inline int tf_qk_wrap_(void *ctx, void *q_out, const void *q, const void *k, const void *v, int64_t ld,
                              const g4_weight *q_norm, const g4_weight *k_norm, const g4_attn_geom *g,
                              const g4_kv_layer *kv, const g4_step_dev *s, g4_error *err) {
    g4_attn_geom gg = *g;
    if (tf_prope_hit_(g)) gg.rope.rotated_pairs = g->head_dim / 2;
    return tf_inner_(ctx)->qk_norm_rope_cache(ctx, q_out, q, k, v, ld, q_norm, k_norm, &gg, kv, s, err);
}

static inline int tf_attn_wrap_(void *ctx, void *out, const void *q, const g4_weight *k_norm, const g4_attn_geom *g,
                                const g4_kv_layer *kv, const g4_step_dev *s, g4_error *err) {
    const g4_backend_ops *in = tf_inner_(ctx);
    g4_attn_geom gg = *g;
    if (tf_prope_hit_(g)) gg.rope.rotated_pairs = g->head_dim / 2;
    if (tf_cfg.bug == TF_BUG_WINDOW && g->window > 1) gg.window = g->window - 1;
    if (in->attention(ctx, out, q, k_norm, &gg, kv, s, err)) return -1;
    if (tf_cfg.bug == TF_BUG_HEAD_ZERO && g->layer == tf_cfg.layer) {
        /* zero head `head` of every token: download, clear, upload (works on any backend) */
        size_t es = in->act_dtype == G4_DT_F32 ? 4 : 2, row = (size_t)g->n_heads * g->head_dim * es;
        size_t bytes = (size_t)s->n_tokens * row;
        char *h = malloc(bytes ? bytes : 1);
        if (!h) return g4_fail(err, "planted bug: out of memory");
        int rc = in->download(ctx, h, out, bytes, err);
        for (int t = 0; t < s->n_tokens && rc == 0; t++)
            memset(h + t * row + (size_t)tf_cfg.head * g->head_dim * es, 0, (size_t)g->head_dim * es);
        if (rc == 0) rc = in->upload(ctx, out, h, bytes, err);
        free(h);
        return rc;
    }
    return 0;
}

static inline float tf_weight_at_(const g4_weight *w, int i) { /* host-resident weight (CPU backend) */
    const void *p = w->data ? w->data : w->host;
    switch (w->data ? (g4_dtype)w->data_dtype : w->dtype) {
    case G4_DT_F32: return ((const float *)p)[i];
    case G4_DT_BF16: return g4_bf16_to_f32(((const uint16_t *)p)[i]);
    default: return NAN;
    }
}

/* Replay on the reference (the CPU backend: its dev memory is host memory, so ids / weights /
 * expert_scale are read in place). */
static inline int tf_route_replay_(void *ctx, const g4_backend_ops *in, int32_t *ids, float *weights, const void *h1,
                                   const g4_weight *proj, const g4_weight *scale, const g4_weight *es, int T, int k,
                                   float eps, g4_error *err) {
    tf_wrap *w = tf_find_(ctx);
    int counted = !tf_cfg.record_ctx || tf_cfg.record_ctx == ctx;
    if (w->cursor + (size_t)T * k > tf_cfg.log_n)
        return g4_fail(err, "routing replay: the recorded run routed fewer tokens (log %zu, need %zu)", tf_cfg.log_n,
                       w->cursor + (size_t)T * k);
    const int32_t *rec = tf_cfg.log + w->cursor;
    w->cursor += (size_t)T * k;
    if (counted) tf_cfg.cursor = w->cursor, tf_cfg.decisions += T;
    int E = (int)proj->shape[0];
    int32_t *all_ids = NULL;
    float *all_w = NULL;
    int rc = 0;
    for (int t = 0; t < T && rc == 0; t++) {
        if (!memcmp(ids + (size_t)t * k, rec + (size_t)t * k, (size_t)k * sizeof(int32_t))) continue;
        if (!all_ids) { /* every expert's probability: route with k = E (weights = p_e·scale_e) */
            all_ids = malloc((size_t)T * E * sizeof *all_ids);
            all_w = malloc((size_t)T * E * sizeof *all_w);
            if (!all_ids || !all_w) rc = g4_fail(err, "routing replay: out of memory");
            else rc = in->moe_route(ctx, all_ids, all_w, h1, proj, scale, es, T, E, eps, err);
            if (rc) break;
        }
        if (counted) tf_cfg.mismatches++;
        double p[256], pk = 0, sum = 0;
        for (int j = 0; j < E && j < 256; j++) {
            int e = all_ids[(size_t)t * E + j];
            p[e] = (double)all_w[(size_t)t * E + j] / tf_weight_at_(es, e);
            if (j == k - 1) pk = p[e];
        }
        int bad = 0;
        for (int j = 0; j < k; j++) {
            int e = rec[(size_t)t * k + j];
            if (e < 0 || e >= E) {
                bad = 1;
                continue;
            }
            double gap = pk > 0 ? (pk - p[e]) / pk : 1;
            if (counted && gap > tf_cfg.worst_gap) tf_cfg.worst_gap = gap;
            bad |= gap > TF_TIE;
            sum += p[e];
        }
        if (counted) tf_cfg.violations += bad;
        for (int j = 0; j < k && !bad; j++) {
            int e = rec[(size_t)t * k + j];
            ids[(size_t)t * k + j] = e;
            weights[(size_t)t * k + j] = (float)(p[e] / sum) * tf_weight_at_(es, e);
        }
    }
    free(all_ids);
    free(all_w);
    return rc;
}

static inline int tf_route_wrap_(void *ctx, int32_t *ids, float *weights, const void *h1, const g4_weight *proj,
                                 const g4_weight *scale, const g4_weight *es, int T, int k, float eps, g4_error *err) {
    const g4_backend_ops *in = tf_inner_(ctx);
    if (in->moe_route(ctx, ids, weights, h1, proj, scale, es, T, k, eps, err)) return -1;
    if (tf_cfg.route == TF_ROUTE_REPLAY)
        return tf_route_replay_(ctx, in, ids, weights, h1, proj, scale, es, T, k, eps, err);
    if (tf_cfg.route != TF_ROUTE_RECORD || (tf_cfg.record_ctx && tf_cfg.record_ctx != ctx)) return 0;
    size_t n = (size_t)T * k;
    if (tf_cfg.log_n + n > tf_cfg.log_cap) {
        size_t cap = (tf_cfg.log_n + n) * 2;
        int32_t *nl = realloc(tf_cfg.log, cap * sizeof *nl);
        if (!nl) return g4_fail(err, "routing record: out of memory");
        tf_cfg.log = nl;
        tf_cfg.log_cap = cap;
    }
    if (in->download(ctx, tf_cfg.log + tf_cfg.log_n, ids, n * sizeof(int32_t), err)) return -1;
    tf_cfg.log_n += n;
    return 0;
}

/* Prints the replay's routing summary; returns 1 when every differing choice was a near-tie. */
static inline int tf_route_ok(const char *what) {
    if (tf_cfg.decisions == 0) return 1;
    printf("%-52s routing: %ld tokens x layers, %ld took the recorded experts (worst gap %.3g%%), %ld not near-ties%s\n",
           what, tf_cfg.decisions, tf_cfg.mismatches, 100 * tf_cfg.worst_gap, tf_cfg.violations,
           tf_cfg.violations ? "  REJECTED" : "");
    return tf_cfg.violations == 0 && tf_cfg.cursor == tf_cfg.log_n;
}

static inline int tf_dummy_wrap_(void *ctx, g4_weight *w, uint64_t seed, float mean, float amp, g4_error *err) {
    if (tf_cfg.dummy_qk_scale != 0 && w->name &&
        (tf_ends_with_(w->name, ".q_norm.weight") || tf_ends_with_(w->name, ".k_norm.weight"))) {
        mean *= tf_cfg.dummy_qk_scale;
        amp *= tf_cfg.dummy_qk_scale;
    }
    return tf_inner_(ctx)->load_dummy_weight(ctx, w, seed, mean, amp, err);
}

/* Wraps b (which keeps owning its ctx; destroy b after the models using w are closed). */
static inline g4_backend *tf_wrap_backend(tf_wrap *w, g4_backend *b) {
    memset(w, 0, sizeof *w);
    w->inner = b->ops;
    w->ops = *b->ops;
    w->ops.qk_norm_rope_cache = tf_qk_wrap_;
    w->ops.attention = tf_attn_wrap_;
    w->ops.moe_route = tf_route_wrap_;
    if (b->ops->load_dummy_weight) w->ops.load_dummy_weight = tf_dummy_wrap_;
    w->be.ops = &w->ops;
    w->be.ctx = b->ctx;
    w->be.destroy = NULL;
    if (tf_cfg.n_wraps < 8) tf_cfg.wraps[tf_cfg.n_wraps++] = w;
    return &w->be;
}

/* Wraps a backend someone else created and uses (a tensor-parallel rank's) by pointing its op
 * table at the wrapper; tf_unwrap puts the original back. Weights already loaded stay as they are. */
static inline void tf_wrap_in_place(tf_wrap *w, g4_backend *b) {
    tf_wrap_backend(w, b);
    b->ops = &w->ops;
    w->target = b;
}

static inline void tf_unwrap(tf_wrap *w) {
    if (w->target) w->target->ops = w->inner;
    for (int i = 0; i < tf_cfg.n_wraps; i++)
        if (tf_cfg.wraps[i] == w) {
            tf_cfg.wraps[i] = tf_cfg.wraps[--tf_cfg.n_wraps];
            break;
        }
}

#endif
