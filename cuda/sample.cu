/* sample.cu — the sample op on the GPU (contract: "sampling" in backend/backend.h): mask,
 * penalties, temperature, min-p / top-k / top-p, the seeded draw and logprobs, one block per row,
 * with no sort of the vocabulary.
 *
 * Per row (block r, SAMPLE_THREADS threads striding over V):
 *   prepare   mask words with zero bits → −inf; penalty entries (distinct tokens) in place
 *   greedy    block argmax (lowest id on ties)
 *   sample    m = block max of z = fl(x·(1/T)); p_i = expf(z_i − m) recomputed on every pass
 *             (the row is read again rather than stored: no [V] scratch);
 *             top-k: radix select on the bits of p (4 passes × 8 bits, shared histogram) for the
 *               k-th largest value, then the id of the last tie kept (ties → lower id);
 *             top-p: the same radix select, each bucket carrying its mass, walking from the top
 *               until the running mass reaches top_p · kept mass;
 *             draw: u = g4_sample_draw_u(seed, step) (the CPU's uniform), then a block-wide scan
 *               in id order for the first kept id whose cumulative mass exceeds u · kept mass
 *   logprobs  log_softmax of z (T = 1 when greedy), the token's value and the top n by n rounds
 *             of block argmax (n ≤ 20)
 * Masses are 64-bit fixed point (p · 2^44, p ≤ 1): sums are exact and independent of the order
 * atomics land in, so a row gives the same token on every run. They differ from the CPU's double
 * sums by ≤ 2^-44 per element, and expf here is not glibc's: a token can differ from the CPU's
 * when the draw or the nucleus boundary falls that close to a cumulative-mass boundary (the test
 * checks the CDF position, tests/gpu/test_gpu_sample.c). Tokens with p < 2^-44 carry no mass.
 * Launch: grid = max_rows blocks (the capacity; rows ≥ params->n_rows exit at once, so the
 * launch depends on no per-step host value), SAMPLE_THREADS threads, static shared memory only.
 * Twin: g4_cpu_sample (csrc/backend/cpu/cpu_sample.c). Test: tests/gpu/test_gpu_sample.c. */
#include <limits.h>

#include "ctx.cuh"

#define SAMPLE_THREADS 256
#define MASS_SCALE 17592186044416.0 /* 2^44 */

typedef unsigned long long u64;

/* Products and sums the CPU rounds separately must not be fused into an FMA by nvcc, or z (and
 * so the token at a near-tie) would differ from the CPU's by an ulp. */
#ifdef G4_CUDA_EMU
#define MUL_RN(a, b) ((a) * (b))
#define ADD_RN(a, b) ((a) + (b))
#else
#define MUL_RN(a, b) __fmul_rn((a), (b))
#define ADD_RN(a, b) __fadd_rn((a), (b))
#endif

typedef struct sample_smem {
    unsigned hist[256];
    u64 mass[256];
    float fred[32];
    double dred[32];
    int ired[32];
    u64 ured[32];
    float bv[32];
    int bi[32];
    unsigned digit;             /* broadcasts from thread 0 */
    unsigned need;
    unsigned krem;
    int all;
    u64 cum;
    int found;
} sample_smem;

/* What decides whether token i is kept: p_i = expf(x_i·inv_t − m) ≥ min_keep, and (p, i) at or
 * before both cuts (thk, idk) and (thp, idp) in (p desc, id asc) order; −1 = no cut. */
typedef struct row_cut {
    const float *x;
    float inv_t, m, min_keep;
    float thk, thp;
    int idk, idp;
} row_cut;

static __device__ __forceinline__ float cand_p(const row_cut &c, int i) {
    float p = expf(MUL_RN(c.x[i], c.inv_t) - c.m);
    return p >= c.min_keep ? p : -1.0f; /* NaN fails the test too */
}
static __device__ __forceinline__ bool before(float p, int i, float th, int id) {
    return p > th || (p == th && i <= id);
}
static __device__ __forceinline__ bool kept_k(const row_cut &c, float p, int i) {
    return p >= 0.0f && before(p, i, c.thk, c.idk);
}
static __device__ __forceinline__ bool kept(const row_cut &c, float p, int i) {
    return kept_k(c, p, i) && before(p, i, c.thp, c.idp);
}
static __device__ __forceinline__ u64 fix(float p) { return (u64)((double)p * MASS_SCALE); }

/* --- block reductions (every thread gets the result; two barriers each) ------------------------ */

static __device__ float block_max(float v, sample_smem &s) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    for (int o = 16; o > 0; o >>= 1) {
        float w = __shfl_xor_sync(0xffffffffu, v, o);
        v = w > v ? w : v; /* NaN never wins */
    }
    if (lane == 0) s.fred[warp] = v;
    __syncthreads();
    float r = -INFINITY;
    for (int w = 0; w < nw; w++) r = s.fred[w] > r ? s.fred[w] : r;
    __syncthreads();
    return r;
}

static __device__ double block_sum_d(double v, sample_smem &s) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    if (lane == 0) s.dred[warp] = v;
    __syncthreads();
    double r = 0;
    for (int w = 0; w < nw; w++) r += s.dred[w];
    __syncthreads();
    return r;
}

static __device__ u64 block_sum_u(u64 v, sample_smem &s) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    if (lane == 0) s.ured[warp] = v;
    __syncthreads();
    u64 r = 0;
    for (int w = 0; w < nw; w++) r += s.ured[w];
    __syncthreads();
    return r;
}

/* (v, i) first in (v desc, i asc) order; NaN ignored; i = INT_MAX when nothing qualified. */
static __device__ void block_argmax(float *v, int *i, sample_smem &s) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    float bv = *v;
    int bi = *i;
    for (int o = 16; o > 0; o >>= 1) {
        float w = __shfl_xor_sync(0xffffffffu, bv, o);
        int wi = __shfl_xor_sync(0xffffffffu, bi, o);
        if (w > bv || (w == bv && wi < bi) || (bi == INT_MAX && wi != INT_MAX)) bv = w, bi = wi;
    }
    if (lane == 0) s.bv[warp] = bv, s.bi[warp] = bi;
    __syncthreads();
    bv = -INFINITY, bi = INT_MAX;
    for (int w = 0; w < nw; w++)
        if (s.bi[w] != INT_MAX && (bi == INT_MAX || s.bv[w] > bv || (s.bv[w] == bv && s.bi[w] < bi)))
            bv = s.bv[w], bi = s.bi[w];
    __syncthreads();
    *v = bv, *i = bi;
}

/* The id of the nth (1-based) token of the row, in id order, with p == th and kept_k (mode 1) or
 * with p == th among all candidates (mode 0). Tiles of blockDim ids; ballots count in order. */
static __device__ int nth_equal(const row_cut &c, int V, float th, int mode, unsigned nth, sample_smem &s) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    unsigned run = 0;
    if (threadIdx.x == 0) s.found = -1;
    __syncthreads();
    for (int t0 = 0; t0 < V; t0 += blockDim.x) {
        int i = t0 + threadIdx.x;
        bool f = false;
        if (i < V) {
            float p = cand_p(c, i);
            f = p == th && (mode == 0 ? p >= 0.0f : kept_k(c, p, i));
        }
        unsigned b = __ballot_sync(0xffffffffu, f);
        if (lane == 0) s.ired[warp] = __popc(b);
        __syncthreads();
        unsigned off = 0, tot = 0;
        for (int w = 0; w < nw; w++) {
            off += w < warp ? (unsigned)s.ired[w] : 0u;
            tot += (unsigned)s.ired[w];
        }
        unsigned rank = run + off + __popc(b & ((1u << lane) - 1u)) + 1u;
        if (f && rank == nth) s.found = i;
        run += tot;
        __syncthreads();
        if (run >= nth) break;
    }
    int r = s.found;
    __syncthreads();
    return r;
}

/* Radix select over the bits of p (p ≥ 0 orders like its bits), 8 bits a pass.
 * by_mass 0: the k-th largest p among candidates: returns its bits, *eq_rank = its rank among the
 *            equal values (how many of them the top k takes).
 * by_mass 1: among kept_k tokens, the shortest prefix of (p desc) order whose mass reaches goal:
 *            returns the bits of its last value, *eq_rank = how many of the equal values it
 *            takes; *all = 1 when every token fits under the goal (no cut). */
static __device__ unsigned radix_select(const row_cut &c, int V, int by_mass, unsigned k, u64 goal, unsigned *eq_rank,
                                        int *all, sample_smem &s) {
    unsigned prefix = 0, pmask = 0;
    u64 cum = 0, n_eq = 0;
    for (int pass = 0; pass < 4; pass++) {
        int shift = 24 - 8 * pass;
        for (int d = threadIdx.x; d < 256; d += blockDim.x) s.hist[d] = 0, s.mass[d] = 0;
        __syncthreads();
        for (int i = threadIdx.x; i < V; i += blockDim.x) {
            float p = cand_p(c, i);
            if (p < 0.0f || (by_mass && !kept_k(c, p, i))) continue;
            unsigned b = __float_as_uint(p);
            if ((b & pmask) != prefix) continue;
            unsigned d = (b >> shift) & 255u;
            atomicAdd(&s.hist[d], 1u);
            if (by_mass) atomicAdd(&s.mass[d], fix(p));
        }
        __syncthreads();
        if (threadIdx.x == 0) {
            int d = 255;
            s.all = 0;
            for (; d >= 0; d--) {
                if (!s.hist[d]) continue;
                if (by_mass) {
                    if (cum + s.mass[d] < goal) cum += s.mass[d];
                    else break;
                } else {
                    if (k <= s.hist[d]) break;
                    k -= s.hist[d];
                }
            }
            if (d < 0) s.all = 1, d = 0;
            s.digit = (unsigned)d;
            s.need = s.hist[d];
            s.cum = cum;
            s.krem = k;
        }
        __syncthreads();
        unsigned d = s.digit;
        int done = s.all;
        cum = s.cum;
        k = s.krem;
        n_eq = s.need;
        __syncthreads();
        if (done) {
            *all = 1;
            return 0;
        }
        prefix |= d << shift;
        pmask |= 255u << shift;
    }
    *all = 0;
    if (!by_mass) {
        *eq_rank = k;
    } else { /* equal values in id order: keep while the running mass is under the goal */
        u64 f = fix(__uint_as_float(prefix));
        u64 take = f ? (goal - cum + f - 1) / f : n_eq;
        if (take < 1) take = 1;
        if (take > n_eq) take = n_eq;
        *eq_rank = (unsigned)take;
    }
    return prefix;
}

/* Logprob of tok and the top n of log_softmax(z), z = x·s (s = 1 unscaled). */
static __device__ void row_logprobs(const float *x, int V, float sc, int32_t tok, int n, g4_sample_logprobs *out,
                                    sample_smem &s) {
    float m = -INFINITY;
    for (int i = threadIdx.x; i < V; i += blockDim.x) {
        float z = MUL_RN(x[i], sc);
        m = z > m ? z : m;
    }
    m = block_max(m, s);
    double sum = 0;
    for (int i = threadIdx.x; i < V; i += blockDim.x) sum += (double)expf(MUL_RN(x[i], sc) - m);
    sum = block_sum_d(sum, s);
    float lse = m + (float)log(sum);
    if (threadIdx.x == 0) out->logprob = (tok >= 0 ? MUL_RN(x[tok], sc) : -INFINITY) - lse;
    if (n > G4_SAMPLE_MAX_TOP) n = G4_SAMPLE_MAX_TOP;
    if (n > V) n = V;
    float pv = INFINITY;
    int pi = -1;
    for (int r = 0; r < n; r++) { /* next in (z desc, id asc) after (pv, pi) */
        float bv = -INFINITY;
        int bi = INT_MAX;
        for (int i = threadIdx.x; i < V; i += blockDim.x) {
            float z = MUL_RN(x[i], sc);
            if (!(z < pv || (z == pv && i > pi))) continue;
            if (bi == INT_MAX || z > bv || (z == bv && i < bi)) bv = z, bi = i;
        }
        block_argmax(&bv, &bi, s);
        if (bi == INT_MAX) {
            n = r;
            break;
        }
        if (threadIdx.x == 0) out->top_ids[r] = bi, out->top_logprobs[r] = bv - lse;
        pv = bv, pi = bi;
    }
    if (threadIdx.x == 0) out->n_top = n;
}

/* One block per row r < params->n_rows: tokens[r] (and logprobs[lp_slot]). x rows are modified
 * in place by the mask and penalties. */
static __global__ void __launch_bounds__(SAMPLE_THREADS)
    g4_sample_kernel(float *logits, int64_t ld, int V, const g4_sample_params *P, const uint32_t *mask, int32_t *tokens,
                     g4_sample_logprobs *lps) {
    G4_SHARED(sample_smem, s, );
    int r = blockIdx.x;
    if (r >= P->n_rows) return;
    const g4_sample_row_params *R = (const g4_sample_row_params *)(P + 1) + r;
    const g4_sample_penalty *pen = (const g4_sample_penalty *)((const g4_sample_row_params *)(P + 1) + P->n_rows);
    float *x = logits + (size_t)r * (size_t)ld;
    bool masked = (R->flags & G4_SAMPLE_MASKED) && mask;
    /* prepare: mask, then penalties (entries are distinct tokens: no two threads share one) */
    if (masked) {
        int W = (V + 31) / 32;
        const uint32_t *mr = mask + (size_t)r * W;
        for (int w = threadIdx.x; w < W; w += blockDim.x) {
            uint32_t bits = mr[w];
            if (bits == 0xffffffffu) continue;
            for (int b = 0; b < 32 && w * 32 + b < V; b++)
                if (!(bits >> b & 1u)) x[w * 32 + b] = -INFINITY;
        }
        __syncthreads();
    }
    float rp = R->repetition_penalty;
    bool rep = rp > 0.0f && rp != 1.0f, pf = R->presence_penalty != 0.0f || R->frequency_penalty != 0.0f;
    if (rep || pf) {
        for (int j = threadIdx.x; j < R->n_pen; j += blockDim.x) {
            const g4_sample_penalty e = pen[R->pen_first + j];
            if (e.token < 0 || e.token >= V) continue;
            float z = x[e.token];
            if (rep) z = z > 0.0f ? z / rp : z * rp;
            if (pf && e.count > 0) z -= ADD_RN(R->presence_penalty, MUL_RN(R->frequency_penalty, (float)e.count));
            x[e.token] = z;
        }
        __syncthreads();
    }
    g4_sample_logprobs *lp = R->n_logprobs >= 0 && lps && R->lp_slot >= 0 ? &lps[R->lp_slot] : NULL;
    int32_t tok;
    float sc = 1.0f;
    if (R->temperature <= 0.0f) {
        float bv = -INFINITY;
        int bi = INT_MAX;
        for (int i = threadIdx.x; i < V; i += blockDim.x)
            if (x[i] == x[i] && (bi == INT_MAX || x[i] > bv)) bv = x[i], bi = i; /* ids rise: first max stays */
        block_argmax(&bv, &bi, s);
        tok = bi == INT_MAX ? 0 : bi;
        if (masked && bv == -INFINITY) tok = -1;
    } else {
        row_cut c;
        c.x = x;
        c.inv_t = sc = 1.0f / R->temperature;
        c.min_keep = R->min_p > 0.0f ? R->min_p : 0.0f;
        c.thk = c.thp = -1.0f, c.idk = c.idp = -1;
        float m = -INFINITY;
        for (int i = threadIdx.x; i < V; i += blockDim.x) {
            float z = MUL_RN(x[i], c.inv_t);
            m = z > m ? z : m;
        }
        c.m = m = block_max(m, s);
        tok = -1;
        if (m > -INFINITY && m < INFINITY) {
            int k = R->top_k;
            u64 n_cand = 0;
            if (k > 0) {
                for (int i = threadIdx.x; i < V; i += blockDim.x) n_cand += cand_p(c, i) >= 0.0f;
                n_cand = block_sum_u(n_cand, s);
            }
            if (k > 0 && (u64)k < n_cand) {
                unsigned eq, bits;
                int all;
                bits = radix_select(c, V, 0, (unsigned)k, 0, &eq, &all, s);
                c.thk = __uint_as_float(bits);
                c.idk = nth_equal(c, V, c.thk, 0, eq, s);
            }
            u64 total = 0;
            for (int i = threadIdx.x; i < V; i += blockDim.x) {
                float p = cand_p(c, i);
                if (kept_k(c, p, i)) total += fix(p);
            }
            total = block_sum_u(total, s);
            if (R->top_p > 0.0f && R->top_p < 1.0f) {
                u64 goal = (u64)((double)R->top_p * (double)total);
                unsigned eq, bits;
                int all;
                bits = radix_select(c, V, 1, 0, goal, &eq, &all, s);
                if (!all) {
                    c.thp = __uint_as_float(bits);
                    c.idp = nth_equal(c, V, c.thp, 1, eq, s);
                    total = 0;
                    for (int i = threadIdx.x; i < V; i += blockDim.x) {
                        float p = cand_p(c, i);
                        if (kept(c, p, i)) total += fix(p);
                    }
                    total = block_sum_u(total, s);
                }
            }
            /* draw: first kept id (id order) whose inclusive cumulative mass exceeds target */
            u64 target = (u64)(g4_sample_draw_u(R->seed, R->step) * (double)total);
            int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
            u64 run = 0;
            int last = -1;
            if (threadIdx.x == 0) s.found = -1;
            __syncthreads();
            for (int t0 = 0; t0 < V; t0 += blockDim.x) {
                int i = t0 + threadIdx.x;
                u64 v = 0;
                bool k_i = false;
                if (i < V) {
                    float p = cand_p(c, i);
                    k_i = kept(c, p, i);
                    if (k_i) v = fix(p), last = i;
                }
                u64 inc = v;
                for (int o = 1; o < 32; o <<= 1) {
                    u64 w = __shfl_up_sync(0xffffffffu, inc, o);
                    if (lane >= o) inc += w;
                }
                if (lane == 31) s.ured[warp] = inc;
                __syncthreads();
                u64 off = 0, tot = 0;
                for (int w = 0; w < nw; w++) {
                    off += w < warp ? s.ured[w] : 0;
                    tot += s.ured[w];
                }
                u64 cum = run + off + inc;
                if (k_i && v > 0 && cum > target && cum - v <= target) s.found = i;
                run += tot;
                __syncthreads();
                if (run > target) break;
            }
            int f = s.found;
            /* no crossing (masses all below 2^-44): the last kept id, as the reference's fallback */
            float lv = (float)last;
            int li = last >= 0 ? 0 : INT_MAX;
            block_argmax(&lv, &li, s);
            tok = f >= 0 ? f : (li == INT_MAX ? -1 : (int)lv);
            if (tok >= 0 && masked && x[tok] == -INFINITY) tok = -1;
        }
    }
    if (threadIdx.x == 0) tokens[r] = tok;
    if (lp) row_logprobs(x, V, sc, tok, R->n_logprobs, lp, s);
}

int g4_cuda_sample(void *ctx, const g4_sample_args *a, g4_error *err) {
    g4_cuda_ctx *c = (g4_cuda_ctx *)ctx;
    if (!a || !a->logits || !a->params || !a->tokens || a->vocab < 1 || a->ld < a->vocab || a->max_rows < 0)
        return g4_fail(err, "sample: bad arguments (vocab %d, ld %lld, max_rows %d)", a ? a->vocab : -1,
                       a ? (long long)a->ld : -1LL, a ? a->max_rows : -1);
    if (a->max_rows == 0) return 0;
    if (a->max_rows > 65535 * 32) return g4_fail(err, "sample: %d rows", a->max_rows);
    G4_LAUNCH(a->max_rows, SAMPLE_THREADS, 0, g4_launch_stream(c), g4_sample_kernel)
    (a->logits, a->ld, a->vocab, a->params, a->mask, a->tokens, a->logprobs);
    G4_CHECK_LAUNCH();
    return 0;
}
