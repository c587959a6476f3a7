/* test_gpu_ops.c — embed (also with image soft-token rows), rmsnorm (weighted, weightless, in
 * place), add_rmsnorm, add_rmsnorm_norm (also bit-identical to the three ops it fuses), add, scale
 * and geglu of the CUDA backend vs the CPU backend at 31B shapes (H = 5376, I = 21504), the
 * launch counter on single ops, plus an odd width (H = 1001) for the strided loops. Bound:
 * gpu_harness.h (1 % of max|ref|). */
#include "gpu_harness.h"

#define ROWS 7

static int run_width(gh_pair *p, int H, int I, uint64_t seed) {
    g4_error err = {{0}};
    char what[96];
    size_t nh = (size_t)ROWS * H, ni = (size_t)ROWS * I;
    float *x = malloc(nh * 4), *h = malloc(nh * 4), *g = malloc(ni * 4), *u = malloc(ni * 4);
    float *ref = malloc((ni > nh ? ni : nh) * 4), *got = malloc((ni > nh ? ni : nh) * 4);
    REQUIRE(x && h && g && u && ref && got, "out of memory");
    gh_fill(x, nh, seed, 0.1f, 2.0f);
    gh_fill(h, nh, seed + 1, 0.0f, 3.0f);
    gh_fill(g, ni, seed + 2, 0.0f, 3.0f);
    gh_fill(u, ni, seed + 3, 0.0f, 1.0f);
    float *gu = malloc(2 * ni * 4); /* geglu's input: rows of [gate | up] (the fused GEMM's layout) */
    REQUIRE(gu, "out of memory");
    for (int r = 0; r < ROWS; r++) {
        memcpy(gu + (size_t)r * 2 * I, g + (size_t)r * I, (size_t)I * 4);
        memcpy(gu + (size_t)r * 2 * I + I, u + (size_t)r * I, (size_t)I * 4);
    }
    gh_weight w, lam, E;
    int64_t shw[1] = {H}, sh1[1] = {1}, she[2] = {4096, H};
    REQUIRE(!gh_weight_make(p, &w, "norm.weight", 1, shw, seed + 4, 1.0f, 0.5f), "weight");
    REQUIRE(!gh_weight_make(p, &lam, "layer_scalar", 1, sh1, seed + 5, 0.3f, 0.1f), "weight");
    REQUIRE(!gh_weight_make(p, &E, "embed_tokens.weight", 2, she, seed + 6, 0.0f, 0.05f), "weight");
    g4_backend *be[2] = {p->cpu, p->gpu};
    float *out[2] = {ref, got};

    /* rmsnorm with weight, out of place; weightless in place */
    for (int wl = 0; wl < 2; wl++) {
        for (int k = 0; k < 2; k++) {
            void *dx = gh_act(be[k], nh, x), *dy = wl ? dx : gh_act(be[k], nh, NULL);
            const g4_weight *wt = wl ? NULL : (k ? &w.gpu : &w.cpu);
            REQUIRE(dx && dy, "alloc");
            REQUIRE(!be[k]->ops->rmsnorm(be[k]->ctx, dy, dx, wt, ROWS, H, 1e-6f, &err), "rmsnorm: %s", err.msg);
            REQUIRE(!gh_get_act(be[k], out[k], dy, nh), "download");
            if (dy != dx) be[k]->ops->free(be[k]->ctx, dy);
            be[k]->ops->free(be[k]->ctx, dx);
        }
        snprintf(what, sizeof what, "rmsnorm %s H=%d", wl ? "no-weight in-place" : "weighted", H);
        CHECK(gh_close_enough(what, got, ref, nh, GH_TOL), "%s", what);
    }
    /* add_rmsnorm, add, scale on the residual h */
    for (int op = 0; op < 3; op++) {
        for (int k = 0; k < 2; k++) {
            void *dh = gh_act(be[k], nh, h), *dx = gh_act(be[k], nh, x);
            REQUIRE(dh && dx, "alloc");
            int rc = op == 0   ? be[k]->ops->add_rmsnorm(be[k]->ctx, dh, dx, k ? &w.gpu : &w.cpu, ROWS, H, 1e-6f, &err)
                     : op == 1 ? be[k]->ops->add(be[k]->ctx, dh, dh, dx, nh, &err)
                               : be[k]->ops->scale(be[k]->ctx, dh, k ? &lam.gpu : &lam.cpu, nh, &err);
            REQUIRE(!rc, "op %d: %s", op, err.msg);
            REQUIRE(!gh_get_act(be[k], out[k], dh, nh), "download");
            be[k]->ops->free(be[k]->ctx, dh);
            be[k]->ops->free(be[k]->ctx, dx);
        }
        snprintf(what, sizeof what, "%s H=%d", op == 0 ? "add_rmsnorm" : op == 1 ? "add (aliased)" : "scale", H);
        CHECK(gh_close_enough(what, got, ref, nh, GH_TOL), "%s", what);
    }
    /* add_rmsnorm_norm, with and without the layer scalar: h and y vs the CPU twin, and on the
     * GPU bit-identical to add_rmsnorm, scale, rmsnorm run one after another */
    for (int with_l = 0; with_l < 2; with_l++) {
        float *hy[2][2], *seq[2] = {malloc(nh * 4), malloc(nh * 4)};
        REQUIRE(seq[0] && seq[1], "out of memory");
        for (int k = 0; k < 2; k++) {
            const g4_weight *wt = k ? &w.gpu : &w.cpu, *lt = with_l ? (k ? &lam.gpu : &lam.cpu) : NULL;
            const g4_weight *wn = k ? &E.gpu : &E.cpu; /* any [≥ H] bf16 weight as the next norm's */
            g4_weight wnext = *wn;
            wnext.ndim = 1, wnext.shape[0] = H;
            void *dh = gh_act(be[k], nh, h), *dx = gh_act(be[k], nh, x), *dy = gh_act(be[k], nh, NULL);
            REQUIRE(dh && dx && dy, "alloc");
            uint64_t n0 = k ? be[k]->ops->launch_count(be[k]->ctx) : 0;
            REQUIRE(!be[k]->ops->add_rmsnorm_norm(be[k]->ctx, dh, dx, wt, lt, dy, &wnext, ROWS, H, 1e-6f, &err),
                    "add_rmsnorm_norm: %s", err.msg);
            if (k) CHECK(be[k]->ops->launch_count(be[k]->ctx) - n0 == 1, "add_rmsnorm_norm is not one launch");
            hy[k][0] = malloc(nh * 4), hy[k][1] = malloc(nh * 4);
            REQUIRE(hy[k][0] && hy[k][1], "out of memory");
            REQUIRE(!gh_get_act(be[k], hy[k][0], dh, nh) && !gh_get_act(be[k], hy[k][1], dy, nh), "download");
            if (k) { /* the same three ops one by one, from the same inputs */
                void *sh = gh_act(be[k], nh, h), *sy = gh_act(be[k], nh, NULL);
                REQUIRE(sh && sy, "alloc");
                REQUIRE(!be[k]->ops->add_rmsnorm(be[k]->ctx, sh, dx, wt, ROWS, H, 1e-6f, &err) &&
                            (!lt || !be[k]->ops->scale(be[k]->ctx, sh, lt, nh, &err)) &&
                            !be[k]->ops->rmsnorm(be[k]->ctx, sy, sh, &wnext, ROWS, H, 1e-6f, &err),
                        "sequence: %s", err.msg);
                REQUIRE(!gh_get_act(be[k], seq[0], sh, nh) && !gh_get_act(be[k], seq[1], sy, nh), "download");
                CHECK(!memcmp(seq[0], hy[k][0], nh * 4) && !memcmp(seq[1], hy[k][1], nh * 4),
                      "add_rmsnorm_norm (scalar %d) differs from add_rmsnorm, scale, rmsnorm", with_l);
                be[k]->ops->free(be[k]->ctx, sh);
                be[k]->ops->free(be[k]->ctx, sy);
            }
            be[k]->ops->free(be[k]->ctx, dh);
            be[k]->ops->free(be[k]->ctx, dx);
            be[k]->ops->free(be[k]->ctx, dy);
        }
        for (int o = 0; o < 2; o++) {
            snprintf(what, sizeof what, "add_rmsnorm_norm %s%s H=%d", o ? "y" : "h", with_l ? " scaled" : "", H);
            CHECK(gh_close_enough(what, hy[1][o], hy[0][o], nh, GH_TOL), "%s", what);
        }
        for (int k = 0; k < 2; k++) free(hy[k][0]), free(hy[k][1]), free(seq[k]);
    }
    /* geglu */
    for (int k = 0; k < 2; k++) {
        void *dgu = gh_act(be[k], 2 * ni, gu), *dy = gh_act(be[k], ni, NULL);
        REQUIRE(dgu && dy, "alloc");
        uint64_t n0 = k ? be[k]->ops->launch_count(be[k]->ctx) : 0;
        REQUIRE(!be[k]->ops->geglu(be[k]->ctx, dy, dgu, ROWS, I, &err), "geglu: %s", err.msg);
        /* the launch counter (backend.h launch_count) sees exactly the op's one kernel */
        if (k)
            CHECK(be[k]->ops->launch_count(be[k]->ctx) - n0 == 1, "geglu counted %llu launches, expected 1",
                  (unsigned long long)(be[k]->ops->launch_count(be[k]->ctx) - n0));
        REQUIRE(!gh_get_act(be[k], out[k], dy, ni), "download");
        be[k]->ops->free(be[k]->ctx, dgu);
        be[k]->ops->free(be[k]->ctx, dy);
    }
    snprintf(what, sizeof what, "geglu rows=%d n=%d", ROWS, I);
    CHECK(gh_close_enough(what, got, ref, ni, GH_TOL), "%s", what);
    /* embed: 5 tokens incl. the first and last row of E */
    {
        int32_t ids[5] = {0, 4095, 17, 17, 2048}, pos[5] = {0, 1, 2, 3, 4}, seq[5] = {0};
        for (int k = 0; k < 2; k++) {
            gh_step st;
            REQUIRE(!gh_step_make(be[k], &st, 5, ids, pos, seq, 1, 1, NULL, NULL, 0, NULL), "step");
            void *dx = gh_act(be[k], (size_t)5 * H, NULL);
            REQUIRE(dx, "alloc");
            REQUIRE(!be[k]->ops->embed(be[k]->ctx, dx, &st.s, k ? &E.gpu : &E.cpu, 73.5f, &err), "embed: %s", err.msg);
            REQUIRE(!gh_get_act(be[k], out[k], dx, (size_t)5 * H), "download");
            be[k]->ops->free(be[k]->ctx, dx);
            gh_step_free(be[k], &st);
        }
        snprintf(what, sizeof what, "embed H=%d", H);
        CHECK(gh_close_enough(what, got, ref, (size_t)5 * H, GH_TOL), "%s", what);
        /* tokens 1 and 3 are image soft tokens: rows 1 and 0 of an f32 [2, H] block, unscaled */
        int32_t mm_row[5] = {-1, 1, -1, 0, -1};
        float *mm = malloc((size_t)2 * H * sizeof *mm);
        REQUIRE(mm, "alloc");
        gh_fill(mm, (size_t)2 * H, seed + 9, 0.1f, 3.0f);
        for (int k = 0; k < 2; k++) {
            gh_step st;
            REQUIRE(!gh_step_make(be[k], &st, 5, ids, pos, seq, 1, 1, NULL, NULL, 0, NULL), "step");
            void *dx = gh_act(be[k], (size_t)5 * H, NULL), *drow = gh_bytes(be[k], mm_row, sizeof mm_row),
                 *dmm = gh_bytes(be[k], mm, (size_t)2 * H * sizeof *mm);
            REQUIRE(dx && drow && dmm, "alloc");
            st.s.embed_row = drow;
            st.s.embed_rows = dmm;
            REQUIRE(!be[k]->ops->embed(be[k]->ctx, dx, &st.s, k ? &E.gpu : &E.cpu, 73.5f, &err), "embed: %s", err.msg);
            REQUIRE(!gh_get_act(be[k], out[k], dx, (size_t)5 * H), "download");
            be[k]->ops->free(be[k]->ctx, dx);
            be[k]->ops->free(be[k]->ctx, drow);
            be[k]->ops->free(be[k]->ctx, dmm);
            gh_step_free(be[k], &st);
        }
        snprintf(what, sizeof what, "embed with image rows H=%d", H);
        CHECK(gh_close_enough(what, got, ref, (size_t)5 * H, GH_TOL), "%s", what);
        int exact = 1; /* the CPU oracle copies the rows as they are (no √H scale) */
        for (int i = 0; i < H; i++)
            exact &= ref[(size_t)1 * H + i] == mm[(size_t)H + i] && ref[(size_t)3 * H + i] == mm[i];
        CHECK(exact, "embed: image rows are copied unscaled");
        free(mm);
    }
    gh_weight_free(p, &w);
    gh_weight_free(p, &lam);
    gh_weight_free(p, &E);
    free(x), free(h), free(g), free(u), free(gu), free(ref), free(got);
    return 0;
}

int main(void) {
    gh_pair p;
    int rc = gh_open(&p);
    if (rc == CHECK_SKIP_CODE) return check_skip("no CUDA device");
    REQUIRE(rc == 0, "backends");
    run_width(&p, 5376, 21504, 11); /* 31B */
    run_width(&p, 1001, 333, 12); /* odd widths */
    gh_close(&p);
    return check_summary();
}
