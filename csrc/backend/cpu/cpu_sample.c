/* cpu_sample.c — the sample op on the CPU (contract: "sampling" in backend/backend.h): mask,
 * penalties, temperature, min-p / top-k / top-p, the seeded draw and logprobs, one row at a time.
 *
 * It gives the same tokens and logprobs as the engine's former host sampler (engine/sampling.c,
 * g4_sample_row_params, still there as the reference) without its full-vocabulary work:
 *   greedy        one max pass + a first-index pass; no exp
 *   top-k / min-p a z-space pre-filter: pass 1 takes max z and a 4096-bucket histogram of the
 *                 float bits of z; the bucket holding the k-th largest z (and m + ln min_p) give a
 *                 bound L below which p = expf(z − m) is provably smaller than the k-th p (or than
 *                 min_p): expf runs only for z ≥ L (a few hundred tokens, not V)
 *   top-p         small candidate sets (≤ 2048) are sorted exactly as before; larger ones use a
 *                 3-level radix select on the bits of p carrying each bucket's mass (no sort)
 *   draw          the kept set's mass and running sum in id order, in double, as before
 * Exactness: every value that decides a token is computed by the same float operations as
 * g4_sample_row_params. The one difference: the top-p running sum over a large (> 2048) candidate set is
 * summed bucket by bucket instead of element by element in sorted order, so the nucleus can differ
 * when top_p · mass falls within double rounding (~1e-13 relative) of a partial sum.
 * Not here: building the parameter block (engine), the GPU kernel (cuda/sample.cu). */
#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_internal.h"
#include "base/select.h"

#define SORT_MAX 2048     /* top-p candidate sets up to this size are sorted (exact order) */
#define ZBUCKETS 4096     /* pass-1 histogram: the top 12 bits of the order key of z */

typedef struct cand {
    float p;
    int32_t id;
} cand;

struct g4_cpu_sample_scratch {
    int cap;              /* elements of each [V] array */
    float *cp;            /* [V] candidate p (id order) */
    int32_t *cid;         /* [V] candidate ids */
    float *tmp;           /* [V] quickselect copy */
    int32_t *sub;         /* [V] radix-select subset (positions into cp) */
    cand *srt;            /* [SORT_MAX] */
    uint32_t zhist[ZBUCKETS];
    uint32_t count[2048];
    double mass[2048];
};

g4_cpu_sample_scratch *g4_cpu_sample_scratch_create(void) { return calloc(1, sizeof(g4_cpu_sample_scratch)); }

void g4_cpu_sample_scratch_free(g4_cpu_sample_scratch *s) {
    if (!s) return;
    free(s->cp);
    free(s->cid);
    free(s->tmp);
    free(s->sub);
    free(s->srt);
    free(s);
}

static int scratch_reserve(g4_cpu_sample_scratch *s, int V, g4_error *err) {
    if (s->cap >= V) return 0;
    free(s->cp), free(s->cid), free(s->tmp), free(s->sub), free(s->srt);
    s->cp = malloc((size_t)V * sizeof *s->cp);
    s->cid = malloc((size_t)V * sizeof *s->cid);
    s->tmp = malloc((size_t)V * sizeof *s->tmp);
    s->sub = malloc((size_t)V * sizeof *s->sub);
    s->srt = malloc(SORT_MAX * sizeof *s->srt);
    if (!s->cp || !s->cid || !s->tmp || !s->sub || !s->srt) {
        s->cap = 0;
        return g4_fail(err, "sample: out of memory for vocab %d", V);
    }
    s->cap = V;
    return 0;
}

/* Order key of a float: unsigned order = float order (−inf < … < −0 < +0 < … < +inf). */
static inline uint32_t fkey(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
static inline float key_float(uint32_t k) {
    uint32_t u = (k & 0x80000000u) ? (k & 0x7fffffffu) : ~k;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static inline uint32_t fbits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* max of fl(x[i] · s) over i (NaN ignored; −inf when none); s = 1 reads x as is. Eight lanes so
 * the compares pipeline; max is order-free, so the value equals a serial scan's. */
static float row_max(const float *x, int V, float s) {
    float m[8];
    for (int j = 0; j < 8; j++) m[j] = -INFINITY;
    int i = 0;
    for (; i + 8 <= V; i += 8)
        for (int j = 0; j < 8; j++) {
            float z = x[i + j] * s;
            m[j] = z > m[j] ? z : m[j];
        }
    for (; i < V; i++) {
        float z = x[i] * s;
        m[0] = z > m[0] ? z : m[0];
    }
    float r = m[0];
    for (int j = 1; j < 8; j++) r = m[j] > r ? m[j] : r;
    return r;
}

/* g4_sample_row_params's argmax: the first i with z[i] > every earlier value (lowest id on ties). */
static int row_argmax(const float *x, int V) {
    if (isnan(x[0])) return 0; /* the serial scan never moves off a leading NaN */
    float m = row_max(x, V, 1.0f);
    for (int i = 0; i < V; i++)
        if (x[i] == m) return i;
    return 0; /* all NaN after x[0] */
}

/* Logprob of token and the top n from log_softmax(fl(x · s)) (s = 1: x itself), with exactly the
 * reference's arithmetic: lse = m + (float)log(Σ exp((double)z − m)) summed in id order. */
static void row_logprobs(const float *x, int V, float s, bool scaled, int32_t token, int n, g4_sample_logprobs *out) {
    float m = row_max(x, V, scaled ? s : 1.0f);
    if (isnan(x[0]) && !scaled) m = x[0];
    double sum = 0;
    for (int i = 0; i < V; i++) {
        float z = scaled ? x[i] * s : x[i];
        sum += exp((double)z - m);
    }
    float lse = m + (float)log(sum);
    out->logprob = (token >= 0 ? (scaled ? x[token] * s : x[token]) : -INFINITY) - lse;
    if (n > G4_SAMPLE_MAX_TOP) n = G4_SAMPLE_MAX_TOP;
    int k = 0;
    float kz[G4_SAMPLE_MAX_TOP];
    for (int i = 0; i < V && n > 0; i++) {
        float z = scaled ? x[i] * s : x[i];
        if (k == n && z <= kz[k - 1]) continue;
        int j = k < n ? k++ : k - 1;
        while (j > 0 && kz[j - 1] < z) {
            out->top_ids[j] = out->top_ids[j - 1];
            kz[j] = kz[j - 1];
            j--;
        }
        out->top_ids[j] = i;
        kz[j] = z;
    }
    out->n_top = k;
    for (int i = 0; i < k; i++) out->top_logprobs[i] = kz[i] - lse;
}

static int by_p_desc(const void *a, const void *b) {
    const cand *x = a, *y = b;
    if (x->p != y->p) return x->p > y->p ? -1 : 1;
    return x->id < y->id ? -1 : 1;
}

/* Keeps candidates i with (p, id) before or at the cut in (p desc, id asc) order; returns n. */
static int keep_prefix(float *cp, int32_t *cid, int n, float p_cut, int32_t id_cut) {
    int w = 0;
    for (int i = 0; i < n; i++)
        if (cp[i] > p_cut || (cp[i] == p_cut && cid[i] <= id_cut)) cp[w] = cp[i], cid[w++] = cid[i];
    return w;
}

/* Top-p over a large candidate set: the last element (p_cut, id_cut) of the shortest prefix of the
 * (p desc, id asc) order whose running mass reaches goal. Radix select on the bits of p (p ≥ 0,
 * so bits order like values): levels of 11, 10 and 10 bits; each bucket carries its mass, whole
 * buckets above the boundary are added at once, and the last level holds equal values in id order. */
static void top_p_radix(g4_cpu_sample_scratch *s, const float *cp, const int32_t *cid, int n, double goal, float *p_cut,
                        int32_t *id_cut) {
    static const int shift[3] = {20, 10, 0}, nb[3] = {2048, 1024, 1024};
    int32_t *sub = s->sub;
    int n_sub = n;
    for (int i = 0; i < n; i++) sub[i] = i;
    double cum = 0;
    for (int lv = 0; lv < 3; lv++) {
        uint32_t mask = (uint32_t)nb[lv] - 1;
        memset(s->count, 0, (size_t)nb[lv] * sizeof *s->count);
        memset(s->mass, 0, (size_t)nb[lv] * sizeof *s->mass);
        for (int j = 0; j < n_sub; j++) {
            uint32_t b = (fbits(cp[sub[j]]) >> shift[lv]) & mask;
            s->count[b]++;
            s->mass[b] += cp[sub[j]];
        }
        int b = nb[lv] - 1;
        for (; b >= 0; b--) {
            if (!s->count[b]) continue;
            if (cum + s->mass[b] < goal) cum += s->mass[b];
            else break;
        }
        if (b < 0) { /* the whole subset stays under the goal: keep it all */
            int last = sub[0];
            for (int j = 1; j < n_sub; j++) {
                int i = sub[j];
                if (cp[i] < cp[last] || (cp[i] == cp[last] && cid[i] > cid[last])) last = i;
            }
            *p_cut = cp[last], *id_cut = cid[last];
            return;
        }
        int w = 0;
        for (int j = 0; j < n_sub; j++)
            if (((fbits(cp[sub[j]]) >> shift[lv]) & mask) == (uint32_t)b) sub[w++] = sub[j];
        n_sub = w;
    }
    /* equal values, id order: the reference's walk */
    int last = sub[0];
    for (int j = 0; j < n_sub && cum < goal; j++) {
        cum += cp[sub[j]];
        last = sub[j];
    }
    *p_cut = cp[last], *id_cut = cid[last];
}

/* Applies the mask row and the penalty entries to x in place. */
static void prepare_row(float *x, int V, const g4_sample_row_params *r, const g4_sample_penalty *pen,
                        const uint32_t *mrow) {
    if ((r->flags & G4_SAMPLE_MASKED) && mrow) {
        int W = (V + 31) / 32;
        for (int w = 0; w < W; w++) {
            uint32_t bits = mrow[w];
            if (bits == 0xffffffffu) continue;
            for (int b = 0; b < 32 && w * 32 + b < V; b++)
                if (!(bits >> b & 1u)) x[w * 32 + b] = -INFINITY;
        }
    }
    float rp = r->repetition_penalty;
    bool rep = rp > 0 && rp != 1.0f, pf = r->presence_penalty != 0 || r->frequency_penalty != 0;
    if (!rep && !pf) return;
    for (int j = 0; j < r->n_pen; j++) {
        int32_t t = pen[j].token;
        if (t < 0 || t >= V) continue;
        float z = x[t];
        if (rep) z = z > 0 ? z / rp : z * rp;
        if (pf && pen[j].count > 0) z -= r->presence_penalty + r->frequency_penalty * (float)pen[j].count;
        x[t] = z;
    }
}

/* One row: token and (when asked) logprobs. x is the prepared row (mask, penalties applied). */
static int32_t sample_row(g4_cpu_sample_scratch *s, const float *x, int V, const g4_sample_row_params *r,
                          g4_sample_logprobs *lp) {
    if (r->temperature <= 0) {
        int32_t tok = row_argmax(x, V);
        if (r->flags & G4_SAMPLE_MASKED && x[tok] == -INFINITY) tok = -1;
        if (lp) row_logprobs(x, V, 1.0f, false, tok, r->n_logprobs, lp);
        return tok;
    }
    float inv_t = 1.0f / r->temperature;
    float m;
    int k = r->top_k;
    float min_keep = r->min_p > 0 ? r->min_p : 0;
    double L = -INFINITY; /* z < L cannot survive min-p / top-k (see file header) */
    if (k > 0 && k < V) {
        /* pass 1: max and the histogram of z's order key */
        memset(s->zhist, 0, sizeof s->zhist);
        float mm[8];
        for (int j = 0; j < 8; j++) mm[j] = -INFINITY;
        int i = 0;
        for (; i + 8 <= V; i += 8)
            for (int j = 0; j < 8; j++) {
                float z = x[i + j] * inv_t;
                mm[j] = z > mm[j] ? z : mm[j];
                s->zhist[fkey(z) >> 20]++;
            }
        for (; i < V; i++) {
            float z = x[i] * inv_t;
            mm[0] = z > mm[0] ? z : mm[0];
            s->zhist[fkey(z) >> 20]++;
        }
        m = mm[0];
        for (int j = 1; j < 8; j++) m = mm[j] > m ? mm[j] : m;
        uint32_t c = 0;
        int b = ZBUCKETS - 1;
        for (; b > 0; b--)
            if ((c += s->zhist[b]) >= (uint32_t)k) break;
        float edge = key_float((uint32_t)b << 20); /* every z in buckets ≥ b is ≥ edge */
        /* The k-th largest z is ≥ edge, so the k-th largest p ≥ expf(edge − m). When that p is a
         * normal float, a z at least 1e-3 below edge has a strictly smaller p (fl(z − m) moves by
         * ≥ 1e-3 − 2·ulp(88), far above expf's 2^-23 resolution): it is outside the top k. */
        if (isfinite(edge) && isfinite(m) && expf(edge - m) >= 2 * FLT_MIN) L = (double)edge - 1e-3;
    } else {
        m = row_max(x, V, inv_t);
    }
    if (r->min_p >= 1e-30f && isfinite(m)) {
        double Lp = (double)m + log((double)r->min_p) - 1e-3; /* expf below min_p there */
        if (Lp > L) L = Lp;
    }
    /* pass 2: the one expf pass, over the survivors of the bound only */
    float *cp = s->cp;
    int32_t *cid = s->cid;
    int n = 0;
    for (int i = 0; i < V; i++) {
        float z = x[i] * inv_t;
        if ((double)z >= L) {
            float p = expf(z - m);
            if (p >= min_keep) cp[n] = p, cid[n++] = i;
        }
    }
    int32_t tok = -1;
    if (n > 0) {
        if (k > 0 && k < n) {
            memcpy(s->tmp, cp, (size_t)n * sizeof *cp);
            float th = g4_kth_largest(s->tmp, n, k);
            int above = 0;
            for (int i = 0; i < n; i++) above += cp[i] > th;
            int ties = k - above, w = 0;
            for (int i = 0; i < n; i++)
                if (cp[i] > th || (cp[i] == th && ties-- > 0)) cp[w] = cp[i], cid[w++] = cid[i];
            n = w;
        }
        if (r->top_p > 0 && r->top_p < 1 && n > 1) {
            double total = 0;
            for (int i = 0; i < n; i++) total += cp[i];
            double goal = r->top_p * total;
            float p_cut;
            int32_t id_cut;
            if (n <= SORT_MAX) {
                for (int i = 0; i < n; i++) s->srt[i] = (cand){cp[i], cid[i]};
                qsort(s->srt, (size_t)n, sizeof *s->srt, by_p_desc);
                double cum = 0;
                int keep = 0;
                while (keep < n && cum < goal) cum += s->srt[keep++].p;
                if (keep < 1) keep = 1;
                p_cut = s->srt[keep - 1].p, id_cut = s->srt[keep - 1].id;
            } else {
                top_p_radix(s, cp, cid, n, goal, &p_cut, &id_cut);
            }
            n = keep_prefix(cp, cid, n, p_cut, id_cut);
        }
        double total = 0;
        for (int i = 0; i < n; i++) total += cp[i];
        double target = g4_sample_draw_u(r->seed, r->step) * total, cum = 0;
        tok = cid[n - 1];
        for (int i = 0; i < n; i++) {
            cum += cp[i];
            if (cum > target) {
                tok = cid[i];
                break;
            }
        }
        if (r->flags & G4_SAMPLE_MASKED && x[tok] == -INFINITY) tok = -1;
    }
    if (lp) row_logprobs(x, V, inv_t, true, tok, r->n_logprobs, lp);
    return tok;
}

int g4_cpu_sample_host(g4_cpu_sample_scratch *s, const g4_sample_args *a, g4_error *err) {
    const g4_sample_params *p = a->params;
    int V = a->vocab;
    if (!p || !a->logits || !a->tokens || V < 1 || p->vocab != V || a->ld < V || p->n_rows < 0 ||
        p->n_rows > a->max_rows)
        return g4_fail(err, "sample: bad arguments (vocab %d, params vocab %d, ld %lld, rows %d of %d)", V,
                       p ? p->vocab : -1, (long long)a->ld, p ? p->n_rows : -1, a->max_rows);
    if (scratch_reserve(s, V, err)) return -1;
    const g4_sample_row_params *rows = g4_sample_rows_c(p);
    const g4_sample_penalty *pen = g4_sample_pens_c(p);
    int W = (V + 31) / 32;
    for (int r = 0; r < p->n_rows; r++) {
        const g4_sample_row_params *row = &rows[r];
        if (row->pen_first < 0 || row->n_pen < 0 || row->pen_first + row->n_pen > p->n_pen)
            return g4_fail(err, "sample: row %d penalties [%d, +%d) outside %d", r, row->pen_first, row->n_pen,
                           p->n_pen);
        if ((row->flags & G4_SAMPLE_MASKED) && !a->mask)
            return g4_fail(err, "sample: row %d is masked, mask is NULL", r);
        g4_sample_logprobs *lp = NULL;
        if (row->n_logprobs >= 0) {
            if (!a->logprobs || row->lp_slot < 0) return g4_fail(err, "sample: row %d asks for logprobs, no slot", r);
            lp = &a->logprobs[row->lp_slot];
            memset(lp, 0, sizeof *lp);
        }
        float *x = a->logits + (size_t)r * (size_t)a->ld;
        prepare_row(x, V, row, pen + row->pen_first, a->mask ? a->mask + (size_t)r * W : NULL);
        a->tokens[r] = sample_row(s, x, V, row, lp);
    }
    return 0;
}

/* The op (backend memory is host memory): scratch lives in the backend's ctx. */
int g4_cpu_sample(void *ctx, const g4_sample_args *a, g4_error *err) {
    g4_cpu_ctx *c = ctx;
    if (c) {
        if (!c->sample_scratch && !(c->sample_scratch = g4_cpu_sample_scratch_create()))
            return g4_fail(err, "sample: out of memory");
        return g4_cpu_sample_host(c->sample_scratch, a, err);
    }
    g4_cpu_sample_scratch *s = g4_cpu_sample_scratch_create();
    if (!s) return g4_fail(err, "sample: out of memory");
    int rc = g4_cpu_sample_host(s, a, err);
    g4_cpu_sample_scratch_free(s);
    return rc;
}
