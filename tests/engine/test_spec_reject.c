/* test_spec_reject.c — the speculative rejection sampler (engine/spec_reject.h) produces the
 * target's distribution exactly, and the statistical check that says so can tell a wrong one.
 *
 * The setting: a target and a draft "model" over V = 6 ids, each a Markov chain (the next id's
 * distribution depends on the last id: rows P[a], Q[a]), deliberately different. One trial runs
 * speculative decoding from id 0 until two tokens exist: the draft proposes k ids by sampling
 * its own chain (or, for the n-gram form, deterministically: a point mass), the target's rows
 * along the proposal are handed to the sampler, the accepted ids plus its extra token are
 * appended, and the next round proposes from there. Exactness means: the first token is
 * distributed as P[0], and the first two jointly as P[0][a] · P[a][b].
 *
 * The check: Pearson's chi-square of the counts of N trials against those probabilities, with
 * its p-value from the regularised incomplete gamma function (itself checked against reference
 * values below). A check fails when p < ALPHA = 1e-6, its false-alarm rate for a correct sampler;
 * the eight checks on correct samplers together raise a false alarm with probability ≤ 8e-6. The
 * seeds are fixed, so every run draws the same numbers and the outcome is deterministic.
 *
 * Negative controls: three wrong samplers (the residual drawn from p instead of max(0, p − q);
 * one uniform drawn for both the acceptance test and the residual; the bonus drawn
 * from p_{k−1} instead of p_k) must each fail the check that should catch them (p < ALPHA).
 * (Accepting when u < p/q without the min is not among them: for u < 1 it is the same rule.)
 * Plus exact cases: q = p accepts everything; p(d) = 0 never keeps d; the draws are reproducible. */
#include <math.h>
#include <string.h>

#include "base/rng.h"
#include "check.h"
#include "engine/spec_reject.h"

#define V 6
#define KMAX 4
#define N_TRIALS 200000
#define ALPHA 1e-6

/* --- chi-square upper tail: Q(df/2, x/2), the regularised upper incomplete gamma ------------ */

static double gamma_q(double a, double x) {
    if (x <= 0) return 1.0;
    double lg = a * log(x) - x - lgamma(a);
    if (x < a + 1) { /* series for P(a, x) */
        double sum = 1.0 / a, term = sum;
        for (int n = 1; n < 1000 && fabs(term) > fabs(sum) * 1e-16; n++) sum += term *= x / (a + n);
        return 1.0 - sum * exp(lg);
    }
    /* continued fraction for Q(a, x) (modified Lentz) */
    double b = x + 1 - a, c = 1e300, d = 1 / b, h = d;
    for (int n = 1; n < 1000; n++) {
        double an = -n * (n - a);
        b += 2;
        d = an * d + b;
        d = fabs(d) < 1e-300 ? 1e-300 : d;
        c = b + an / c;
        c = fabs(c) < 1e-300 ? 1e-300 : c;
        d = 1 / d;
        double del = d * c;
        h *= del;
        if (fabs(del - 1) < 1e-16) break;
    }
    return exp(lg) * h;
}

static double chi2_sf(double x, int df) { return gamma_q(df / 2.0, x / 2.0); }

/* --- the two chains ------------------------------------------------------------------------ */

static float P[V][V], Q[V][V];

static void normalise(float *row) {
    double s = 0;
    for (int i = 0; i < V; i++) s += row[i];
    for (int i = 0; i < V; i++) row[i] = (float)(row[i] / s);
}

/* Target: every transition possible (≥ 0.04), skewed differently per row. Draft: unlike it —
 * it favours ids the target finds unlikely, and never proposes id (a + 3) % V after a. */
static void make_chains(void) {
    for (int a = 0; a < V; a++) {
        for (int b = 0; b < V; b++) {
            P[a][b] = 0.04f + (float)((a * 7 + b * 3) % V) * 0.1f;
            Q[a][b] = b == (a + 3) % V ? 0.0f : 0.05f + (float)((V - 1 - (a * 7 + b * 3) % V)) * 0.12f;
        }
        normalise(P[a]);
        normalise(Q[a]);
    }
}

/* n-gram stand-in: a deterministic proposal after a (point mass). */
static int32_t lookup(int32_t a) { return (a * 5 + 1) % V; }

/* --- a speculative decoding run ----------------------------------------------------------- */

typedef g4_spec_verdict (*sampler_fn)(const g4_spec_rows *r, uint64_t *rng);

typedef struct setting {
    const char *name;
    int k;
    int point_mass; /* proposals from lookup(), q = NULL */
} setting;

/* What the runs went through: every path of the rule must be taken. */
typedef struct paths {
    long drafted, accepted, rejections, bonuses;
} paths;

/* Produces the first two tokens of one trial into out[0..1]. */
static void trial(const setting *s, sampler_fn sampler, uint64_t seed, int32_t out[2], paths *seen) {
    uint64_t draft_rng = g4_mix64(seed * 2 + 1), verify_rng = g4_mix64(seed * 2 + 2);
    int n = 0;
    int32_t last = 0;
    while (n < 2) {
        int32_t draft[KMAX];
        float p[(KMAX + 1) * V], q[KMAX * V];
        int32_t ctx = last;
        for (int i = 0; i < s->k; i++) {
            memcpy(p + i * V, P[ctx], sizeof P[ctx]);
            memcpy(q + i * V, Q[ctx], sizeof Q[ctx]);
            draft[i] = s->point_mass ? lookup(ctx) : g4_spec_pick(Q[ctx], V, g4_spec_uniform(&draft_rng));
            ctx = draft[i];
        }
        memcpy(p + s->k * V, P[ctx], sizeof P[ctx]);
        g4_spec_rows r = {.vocab = V, .k = s->k, .draft = draft, .p = p, .q = s->point_mass ? NULL : q};
        g4_spec_verdict v = sampler(&r, &verify_rng);
        seen->drafted += s->k;
        seen->accepted += v.n_accepted;
        seen->rejections += v.n_accepted < s->k;
        seen->bonuses += v.n_accepted == s->k;
        for (int i = 0; i < v.n_accepted && n < 2; i++) out[n++] = draft[i];
        if (n < 2) out[n++] = v.token;
        last = v.token;
    }
}

typedef struct stats {
    double p_first, p_joint; /* p-values */
    paths seen;
} stats;

static stats run(const setting *s, sampler_fn sampler, uint64_t seed0) {
    static long first[V], joint[V][V];
    paths seen = {0};
    memset(first, 0, sizeof first);
    memset(joint, 0, sizeof joint);
    for (long t = 0; t < N_TRIALS; t++) {
        int32_t out[2];
        trial(s, sampler, seed0 + (uint64_t)t, out, &seen);
        first[out[0]]++;
        joint[out[0]][out[1]]++;
    }
    double x1 = 0, x2 = 0;
    for (int a = 0; a < V; a++) {
        double e = (double)N_TRIALS * P[0][a];
        x1 += (first[a] - e) * (first[a] - e) / e;
        for (int b = 0; b < V; b++) {
            double e2 = (double)N_TRIALS * P[0][a] * P[a][b];
            x2 += (joint[a][b] - e2) * (joint[a][b] - e2) / e2;
        }
    }
    stats st = {chi2_sf(x1, V - 1), chi2_sf(x2, V * V - 1), seen};
    printf("%-38s accepted %4.1f%%  first: chi2 %8.1f p %-8.3g first two: chi2 %8.1f p %.3g\n", s->name,
           100.0 * (double)seen.accepted / (double)seen.drafted, x1, st.p_first, x2, st.p_joint);
    return st;
}

/* --- wrong samplers (negative controls): the real rule with one mistake each --------------- */

/* Residual drawn from p_i instead of normalise(max(0, p_i − q_i)). */
static g4_spec_verdict wrong_residual(const g4_spec_rows *r, uint64_t *rng) {
    for (int i = 0; i < r->k; i++) {
        const float *p = r->p + i * V, *q = r->q + i * V;
        if (g4_spec_uniform(rng) * q[r->draft[i]] < p[r->draft[i]]) continue;
        return (g4_spec_verdict){i, g4_spec_pick(p, V, g4_spec_uniform(rng))};
    }
    return (g4_spec_verdict){r->k, g4_spec_pick(r->p + r->k * V, V, g4_spec_uniform(rng))};
}

/* One uniform for both the acceptance test and the residual draw (after a rejection it lies
 * in [p/q, 1), so the residual sample is skewed). */
static g4_spec_verdict wrong_shared_uniform(const g4_spec_rows *r, uint64_t *rng) {
    for (int i = 0; i < r->k; i++) {
        const float *p = r->p + i * V, *q = r->q + i * V;
        double u = g4_spec_uniform(rng);
        if (u * q[r->draft[i]] < p[r->draft[i]]) continue;
        float res[V];
        for (int j = 0; j < V; j++) res[j] = p[j] > q[j] ? p[j] - q[j] : 0.0f;
        return (g4_spec_verdict){i, g4_spec_pick(res, V, u)};
    }
    return (g4_spec_verdict){r->k, g4_spec_pick(r->p + r->k * V, V, g4_spec_uniform(rng))};
}

/* Not a mistake: a sampled draft verified as if it were a point mass (accept d with p(d), else
 * p without d) is exact too, whatever q is: Σ_d q(d)·[p(x)·1(x = d) + p(x)·1(x ≠ d)] = p(x).
 * It only accepts less often. Checked as a fourth setting. */
static g4_spec_verdict as_point_mass(const g4_spec_rows *r, uint64_t *rng) {
    g4_spec_rows pm = *r;
    pm.q = NULL;
    return g4_spec_reject(&pm, rng);
}

/* The bonus drawn from the last proposal's row p_{k−1} instead of p_k. */
static g4_spec_verdict wrong_bonus(const g4_spec_rows *r, uint64_t *rng) {
    g4_spec_verdict v = g4_spec_reject(r, rng);
    if (v.n_accepted == r->k && r->k > 0) v.token = g4_spec_pick(r->p + (r->k - 1) * V, V, g4_spec_uniform(rng));
    return v;
}

/* --- exact cases ----------------------------------------------------------------------------- */

static void exact_cases(void) {
    float p[3 * V], q[2 * V];
    for (int i = 0; i < 3; i++) memcpy(p + i * V, P[i], sizeof P[i]);
    for (int i = 0; i < 2; i++) memcpy(q + i * V, P[i], sizeof P[i]);
    int32_t draft[2] = {1, 2};
    g4_spec_rows r = {.vocab = V, .k = 2, .draft = draft, .p = p, .q = q};
    int all = 1;
    for (uint64_t s = 1; s <= 1000; s++) {
        uint64_t rng = s;
        all &= g4_spec_reject(&r, &rng).n_accepted == 2;
    }
    CHECK(all, "q = p must accept every proposal");

    /* p_0(d) = 0: d never kept, the residual never picks it; with a point mass too */
    p[0 * V + 1] = 0;
    normalise(p);
    int never = 1;
    for (int pm = 0; pm < 2; pm++) {
        r.q = pm ? NULL : q;
        for (uint64_t s = 1; s <= 1000; s++) {
            uint64_t rng = s;
            g4_spec_verdict v = g4_spec_reject(&r, &rng);
            never &= v.n_accepted == 0 && v.token != 1 && v.token >= 0 && v.token < V;
        }
    }
    CHECK(never, "a proposal the target cannot produce was kept or resampled");

    /* reproducible, and the state advances by the documented number of draws */
    r.q = q;
    memcpy(p, P[0], sizeof P[0]);
    int same = 1, draws_ok = 1;
    for (uint64_t s = 1; s <= 200; s++) {
        uint64_t a = s, b = s;
        g4_spec_verdict x = g4_spec_reject(&r, &a), y = g4_spec_reject(&r, &b);
        same &= x.n_accepted == y.n_accepted && x.token == y.token && a == b;
        int used = x.n_accepted == r.k ? r.k + 1 : x.n_accepted + 2;
        draws_ok &= a == s + (uint64_t)used * G4_SPLITMIX_GAMMA;
    }
    CHECK(same, "same state, same verdict");
    CHECK(draws_ok, "draws taken differ from the header's count");

    /* k = 0: just a sample of p_0; an empty row picks nothing */
    r.k = 0;
    uint64_t rng = 9;
    g4_spec_verdict v = g4_spec_reject(&r, &rng);
    CHECK(v.n_accepted == 0 && v.token >= 0 && v.token < V, "k = 0 gives one token from p_0, got %d", v.token);
    float zero[V] = {0};
    CHECK(g4_spec_pick(zero, V, 0.5) == -1, "a row without mass picks -1");
    CHECK(g4_spec_pick(P[0], V, 0.999999999999) >= 0, "u near 1 still picks an id");
}

int main(void) {
    /* the p-value function against reference values (torch.special.gammaincc, float64) */
    static const struct {
        double x;
        int df;
        double sf;
    } ref[] = {{30.0, 5, 1.4748581038443047e-05},
               {80.0, 35, 2.2347308682753103e-05},
               {20.0, 35, 0.9802309168352654},
               {2.0, 5, 0.8491450360846096},
               {150.0, 63, 4.679451669007478e-09}};
    for (size_t i = 0; i < sizeof ref / sizeof ref[0]; i++) {
        double got = chi2_sf(ref[i].x, ref[i].df);
        CHECK(fabs(got - ref[i].sf) <= 1e-9 * ref[i].sf, "chi2 sf(%g, %d) = %.17g, want %.17g", ref[i].x, ref[i].df,
              got, ref[i].sf);
    }
    make_chains();
    exact_cases();

    static const setting settings[] = {
        {"sampled draft, k = 1", 1, 0},
        {"sampled draft, k = 3", 3, 0},
        {"point-mass draft (n-gram), k = 2", 2, 1},
    };
    for (size_t i = 0; i < sizeof settings / sizeof settings[0]; i++) {
        stats st = run(&settings[i], g4_spec_reject, 1000003u * (i + 1));
        CHECK(st.p_first >= ALPHA, "%s: first token differs from the target (p = %.3g)", settings[i].name, st.p_first);
        CHECK(st.p_joint >= ALPHA, "%s: first two tokens differ from the target (p = %.3g)", settings[i].name,
              st.p_joint);
        /* the draft is different but not useless: acceptances, rejections and bonus tokens all occur */
        CHECK(st.seen.accepted > N_TRIALS / 10 && st.seen.rejections > N_TRIALS / 10 && st.seen.bonuses > N_TRIALS / 20,
              "%s: a path of the rule was hardly taken (accepted %ld, rejections %ld, bonuses %ld)", settings[i].name,
              st.seen.accepted, st.seen.rejections, st.seen.bonuses);
    }
    stats pm = run(&(setting){"sampled draft verified as point mass", 3, 0}, as_point_mass, 4000037u);
    CHECK(pm.p_first >= ALPHA && pm.p_joint >= ALPHA, "point-mass verification of a sampled draft (p = %.3g, %.3g)",
          pm.p_first, pm.p_joint);

    /* negative controls: the same check must reject each wrong sampler */
    printf("negative controls (each must fail its check):\n");
    stats w1 = run(&(setting){"wrong: residual from p", 3, 0}, wrong_residual, 77);
    CHECK(w1.p_first < ALPHA, "residual from p not detected (p = %.3g)", w1.p_first);
    stats w2 = run(&(setting){"wrong: one uniform for both", 3, 0}, wrong_shared_uniform, 78);
    CHECK(w2.p_first < ALPHA, "one uniform for test and residual not detected (p = %.3g)", w2.p_first);
    stats w3 = run(&(setting){"wrong: bonus from p_{k-1}", 1, 0}, wrong_bonus, 79);
    CHECK(w3.p_joint < ALPHA, "bonus from p_{k-1} not detected by the joint check (p = %.3g)", w3.p_joint);
    return check_summary();
}
