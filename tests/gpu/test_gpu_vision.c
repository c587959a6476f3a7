/* test_gpu_vision.c — the vision tower's CUDA ops (cuda/vision.cu) against their CPU twins
 * (csrc/backend/cpu/cpu_vision.c) at the real tower's head geometry: 16 heads × 72 (2-D RoPE
 * over two halves of 36 channels, θ = 100), D = 1152, pooling 3 × 3 × √1152 with std_bias /
 * std_scale. Inputs are random bf16 (never zeros), identical on both backends.
 *
 * Shapes: on a GPU a 280-token image (a 42 × 60 patch grid, N = 2520) for rope and pooling;
 * under G4_CUDA_EMU a 9 × 12 grid (N = 108), the head geometry unchanged.
 *
 * The encoder attention runs on three implementations: the CPU twin (f32), the CUDA backend's
 * default path (the tensor-core kernel for d ≤ 128, d % 8 == 0) and the CUDA-core oracle (a
 * second CUDA backend with attn_path SIMPLE). The real geometry (16 heads × 72, MHA) at T = 144,
 * 279, 1008 (9·k patches, none a multiple of the 64-query / 64-key tiles; on a GPU also 2520),
 * and d = 64 (scale 1/8), d = 128 (GQA 2), d = 40 (GQA 2, padded to 48). That the default path
 * is the tensor-core kernel shows in its bits: they differ from the oracle's in some outputs,
 * while at d = 256 (the simple CUDA-core kernel on both backends) they are identical. Under
 * G4_CUDA_EMU the oracle runs up to T = 279 (it costs ~1 min emulated at 1008; the tensor-core
 * kernel ~5 s). The emulator checks the mma / ldmatrix fragment layouts and shared-memory races.
 *
 * Bounds (gpu_harness.h: max|gpu − ref| ≤ tol · max|ref|). rope_2d and pooling: tol 1e-2, one
 * bf16 rounding of each output (the CPU keeps f32) plus sincosf / exp2f against libm angles,
 * |Δθ| ≤ 60 · 2^-22 rad; ≤ 2^-8 relative, far under 1 %. The attention's tensor-core kernel
 * against the twin: bf16 → fp16 is exact for the inputs (|x| ≥ 2^-14; smaller ones are off by
 * < 2^-25), so S is exact up to f32 summation order; P is rounded to fp16 before P·V (≤ 2^-11
 * relative each, l sums the unrounded P, so |Σ p_j δ_j v_j| / l ≤ 2^-11 · max|v|), probabilities
 * under fp16's normal range keep an absolute error ≤ 2^-25 each (≤ T · 2^-25 · max|v| / l, l ≥ 1),
 * and the bf16 output rounds by ≤ 2^-8 · max|ref|:
 *   tol = 2^-8 + (2^-11 + T · 2^-25) · max|v| / max|ref| + 2^-16   (f32 order, exp2 vs exp)
 * (0.44 % at the real geometry; measured 0.25 %). Against the oracle, which rounds its output to
 * bf16 too: the same with 2 · 2^-8. The oracle against the twin: 2^-8 + 2^-16 (f32 throughout).
 * A further check that the bound can fail: the tensor-core kernel with the kv-head map broken (K
 * and V of the other half of the heads) must miss it.
 *
 * The whole tower: the golden tiny multimodal model (tests/golden/vision, 3 layers, 2 heads × 72)
 * opened on the CUDA backend encodes golden image 0 (under G4_CUDA_EMU its top-left 9 × 12
 * patches); its soft tokens are compared with transformers' (image.0.soft; emulated: the CPU
 * fp32 tower, which test_golden_vision holds to transformers within 1e-4). Bound 5e-2 of max|soft|: bf16 activations through the patch
 * embedding, 3 layers of ~12 rounded intermediates each, the pooler and the projection; a
 * residual stream of RMS ~1 carries rounding errors of ~2^-9 each, and the weightless RMSNorm
 * before the projection neither amplifies nor removes them (measured: printed). The same tower on
 * the CPU backend's bf16 mode (the CUDA rounding points, f32 in between) must agree with the
 * GPU's within 2e-2: only f32 summation orders differ; an order change moves a bf16 value by one
 * step (2^-8 relative) where it lands near a rounding boundary, and such a step in an early
 * intermediate is carried through the later layers (measured 0.8 %, two steps at the largest
 * value; transformers' f32 result is 2 % away, so the bound still separates the two). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "backend/cpu/cpu_backend.h"
#include "gpu_harness.h"
#include "model/gemma4.h"
#include "model/safetensors.h"
#include "model/vision.h"

#define NH 16
#define D_HEAD 72
#define D_MODEL 1152

#ifdef G4_CUDA_EMU
static const int PH = 9, PW = 12;
#define ATT_T 144, 279, 1008
#define ORACLE_MAX_T 279 /* the CUDA-core oracle costs ~1 min emulated at T = 1008 */
#else
static const int PH = 42, PW = 60;
#define ATT_T 144, 279, 1008, 2520
#define ORACLE_MAX_T 2520
#endif

static int32_t *grid_pos(int ph, int pw) {
    int32_t *p = malloc((size_t)ph * pw * 2 * sizeof *p);
    for (int t = 0; p && t < ph * pw; t++) {
        p[2 * t] = t % pw;
        p[2 * t + 1] = t / pw;
    }
    return p;
}

static void test_rope_2d(gh_pair *p) {
    int N = PH * PW;
    size_t n = (size_t)N * NH * D_HEAD;
    float *x = malloc(n * sizeof *x), *ref = malloc(n * sizeof *ref), *got = malloc(n * sizeof *got);
    int32_t *pos = grid_pos(PH, PW);
    REQUIRE_VOID(x && ref && got && pos, "out of memory");
    gh_fill(x, n, 11, 0.0f, 2.0f);
    void *xc = gh_act(p->cpu, n, x), *xg = gh_act(p->gpu, n, x);
    void *pc = gh_bytes(p->cpu, pos, (size_t)N * 8), *pg = gh_bytes(p->gpu, pos, (size_t)N * 8);
    g4_error err = {{0}};
    CHECK(p->cpu->ops->rope_2d(p->cpu->ctx, xc, pc, N, NH, D_HEAD, 100.0f, &err) == 0, "cpu: %s", err.msg);
    CHECK(p->gpu->ops->rope_2d(p->gpu->ctx, xg, pg, N, NH, D_HEAD, 100.0f, &err) == 0, "gpu: %s", err.msg);
    CHECK(gh_get_act(p->cpu, ref, xc, n) == 0 && gh_get_act(p->gpu, got, xg, n) == 0, "download");
    CHECK(gh_close_enough("rope_2d [N,16,72] theta 100", got, ref, n, GH_TOL), "rope_2d");
    double moved = 0; /* the op did rotate: the last patch's values moved */
    for (size_t i = n - NH * D_HEAD; i < n; i++) moved = fmax(moved, fabs(ref[i] - x[i]));
    CHECK(moved > 0.1, "rope_2d left the last patch unchanged (%g)", moved);
    p->cpu->ops->free(p->cpu->ctx, xc), p->gpu->ops->free(p->gpu->ctx, xg);
    p->cpu->ops->free(p->cpu->ctx, pc), p->gpu->ops->free(p->gpu->ctx, pg);
    free(x), free(ref), free(got), free(pos);
}

/* Bound of the tensor-core kernel against the f32 twin, relative to max|ref| (header). */
static float tc_tol(int T, double max_v, double max_ref, int n_bf16_outputs) {
    return (float)(n_bf16_outputs * 0x1p-8 + (0x1p-11 + T * 0x1p-25) * max_v / max_ref + 0x1p-16);
}

/* One encoder-attention call of T patches, nh query heads on nkv KV heads, head dim d, on the
 * CPU twin, the CUDA backend's default path (p->gpu: the tensor-core kernel where it applies)
 * and the CUDA-core oracle (old: attn_path SIMPLE; NULL: not run). n_kv_gpu ≠ nkv: the planted
 * bug (the default path reads a wrong kv-head map). Returns 1 when every bound holds, 0 when one
 * misses, -1 on a setup error; *n_diff: outputs in which the default path and the oracle differ
 * bitwise (0 without the oracle). */
static int attention_case(gh_pair *p, g4_backend *old, int T, int nh, int nkv, int d, float scale, int n_kv_gpu,
                          const char *what, size_t *n_diff) {
    size_t n = (size_t)T * nh * d, nk = (size_t)T * nkv * d;
    float *q = malloc(n * sizeof *q), *k = malloc(nk * sizeof *k), *v = malloc(nk * sizeof *v);
    float *ref = malloc(n * sizeof *ref), *got = malloc(n * sizeof *got), *orc = malloc(n * sizeof *orc);
    if (!q || !k || !v || !ref || !got || !orc) return -1;
    /* q, k as after the q/k norms (RMS ≈ 0.6): scores spread over a few units */
    gh_fill(q, n, 21 + T, 0.0f, 1.0f);
    gh_fill(k, nk, 22 + T, 0.0f, 1.0f);
    gh_fill(v, nk, 23 + T, 0.1f, 1.5f);
    void *qc = gh_act(p->cpu, n, q), *kc = gh_act(p->cpu, nk, k), *vc = gh_act(p->cpu, nk, v),
         *oc = gh_act(p->cpu, n, 0);
    void *qg = gh_act(p->gpu, n, q), *kg = gh_act(p->gpu, nk, k), *vg = gh_act(p->gpu, nk, v),
         *og = gh_act(p->gpu, n, 0);
    void *qo = NULL, *ko = NULL, *vo = NULL, *oo = NULL;
    if (old) qo = gh_act(old, n, q), ko = gh_act(old, nk, k), vo = gh_act(old, nk, v), oo = gh_act(old, n, 0);
    g4_error err = {{0}};
    CHECK(p->cpu->ops->encoder_attention(p->cpu->ctx, oc, qc, kc, vc, T, nh, nkv, d, scale, &err) == 0, "cpu: %s",
          err.msg);
    CHECK(p->gpu->ops->encoder_attention(p->gpu->ctx, og, qg, kg, vg, T, nh, n_kv_gpu, d, scale, &err) == 0, "gpu: %s",
          err.msg);
    if (old)
        CHECK(old->ops->encoder_attention(old->ctx, oo, qo, ko, vo, T, nh, nkv, d, scale, &err) == 0 &&
                  gh_get_act(old, orc, oo, n) == 0,
              "gpu oracle: %s", err.msg);
    CHECK(gh_get_act(p->cpu, ref, oc, n) == 0 && gh_get_act(p->gpu, got, og, n) == 0, "download");
    double max_v = 0, max_ref = 0;
    for (size_t i = 0; i < nk; i++) max_v = fmax(max_v, fabs(v[i]));
    for (size_t i = 0; i < n; i++) max_ref = fmax(max_ref, fabs(ref[i]));
    *n_diff = 0;
    for (size_t i = 0; old && i < n; i++) *n_diff += got[i] != orc[i];
    char line[160];
    snprintf(line, sizeof line, "%s vs twin", what);
    int ok = gh_close_enough(line, got, ref, n, tc_tol(T, max_v, max_ref, 1));
    if (old) {
        snprintf(line, sizeof line, "%s vs oracle", what);
        ok &= gh_close_enough(line, got, orc, n, tc_tol(T, max_v, max_ref, 2));
        snprintf(line, sizeof line, "  oracle (CUDA cores) T=%d vs twin", T);
        CHECK(gh_close_enough(line, orc, ref, n, 0x1p-8f + 0x1p-16f), "oracle vs twin");
    }
    void *all_c[] = {qc, kc, vc, oc}, *all_g[] = {qg, kg, vg, og}, *all_o[] = {qo, ko, vo, oo};
    for (int i = 0; i < 4; i++) {
        p->cpu->ops->free(p->cpu->ctx, all_c[i]), p->gpu->ops->free(p->gpu->ctx, all_g[i]);
        if (old) old->ops->free(old->ctx, all_o[i]);
    }
    free(q), free(k), free(v), free(ref), free(got), free(orc);
    return ok;
}

/* The default path on tensor cores (outputs differ from the oracle's in some bits) within the
 * bound, for the real geometry at several T and for other head dims; d = 256 stays on the simple
 * CUDA-core kernel on both backends (identical bits). */
static void test_attention(gh_pair *p) {
    g4_error err = {{0}};
    const g4_backend_options simple = {.attn_path = G4_ATTN_SIMPLE};
    g4_backend *old = g4_backend_cuda_create(&simple, &err);
    REQUIRE_VOID(old, "cuda oracle backend: %s", err.msg);
    const int Ts[] = {ATT_T};
    size_t nd = 0;
    char what[96];
    for (size_t i = 0; i < sizeof Ts / sizeof Ts[0]; i++) {
        snprintf(what, sizeof what, "enc_attn T=%d [16,72] tc", Ts[i]);
        g4_backend *o = Ts[i] <= ORACLE_MAX_T ? old : NULL;
        CHECK(attention_case(p, o, Ts[i], NH, NH, D_HEAD, 1.0f, NH, what, &nd) == 1 && (!o || nd > 0),
              "T=%d 16x72: tensor cores within the bound (%zu outputs differ from the oracle)", Ts[i], nd);
    }
    CHECK(attention_case(p, old, 144, NH, NH, D_HEAD, 1.0f, NH / 2, "  planted bug: kv-head map of 8 (must FAIL)",
                         &nd) == 0,
          "a wrong kv-head map must miss the bound");
    CHECK(attention_case(p, old, 279, 4, 4, 64, 0.125f, 4, "enc_attn T=279 [4,64] scale 1/8 tc", &nd) == 1 && nd > 0,
          "d 64 on tensor cores");
    CHECK(attention_case(p, old, 144, 4, 2, 128, 1.0f, 2, "enc_attn T=144 [4 on 2 kv,128] tc", &nd) == 1 && nd > 0,
          "d 128, GQA 2, on tensor cores");
    CHECK(attention_case(p, old, 108, 4, 2, 40, 1.0f, 2, "enc_attn T=108 [4 on 2 kv,40] tc", &nd) == 1 && nd > 0,
          "d 40 (padded to 48), GQA 2, on tensor cores");
    CHECK(attention_case(p, old, 108, 4, 2, 256, 1.0f, 2, "enc_attn T=108 [4 on 2 kv,256] simple", &nd) == 1 && nd == 0,
          "d 256: both backends run the simple kernel (%zu outputs differ)", nd);
    g4_backend_destroy(old);
}

static void test_pool(gh_pair *p) {
    int N = PH * PW, M = N / 9;
    size_t n = (size_t)N * D_MODEL, m = (size_t)M * D_MODEL;
    float *x = malloc(n * sizeof *x), *ref = malloc(m * sizeof *ref), *got = malloc(m * sizeof *got);
    REQUIRE_VOID(x && ref && got, "out of memory");
    gh_fill(x, n, 31, 0.2f, 3.0f);
    gh_weight bias, scale;
    const int64_t shape[1] = {D_MODEL};
    REQUIRE_VOID(gh_weight_make(p, &bias, "std_bias", 1, shape, 32, 0.5f, 4.0f) == 0 &&
                     gh_weight_make(p, &scale, "std_scale", 1, shape, 33, 0.6f, 0.3f) == 0,
                 "weights");
    void *xc = gh_act(p->cpu, n, x), *xg = gh_act(p->gpu, n, x), *yc = gh_act(p->cpu, m, 0), *yg = gh_act(p->gpu, m, 0);
    g4_error err = {{0}};
    float mult = sqrtf((float)D_MODEL);
    CHECK(p->cpu->ops->vision_pool(p->cpu->ctx, yc, xc, PH, PW, D_MODEL, 3, mult, &bias.cpu, &scale.cpu, &err) == 0,
          "cpu: %s", err.msg);
    CHECK(p->gpu->ops->vision_pool(p->gpu->ctx, yg, xg, PH, PW, D_MODEL, 3, mult, &bias.gpu, &scale.gpu, &err) == 0,
          "gpu: %s", err.msg);
    CHECK(gh_get_act(p->cpu, ref, yc, m) == 0 && gh_get_act(p->gpu, got, yg, m) == 0, "download");
    CHECK(gh_close_enough("vision_pool 3x3 x sqrt(1152), standardised", got, ref, m, GH_TOL), "pool");
    /* without standardisation (NULL weights) */
    CHECK(p->cpu->ops->vision_pool(p->cpu->ctx, yc, xc, PH, PW, D_MODEL, 3, mult, NULL, NULL, &err) == 0, "cpu: %s",
          err.msg);
    CHECK(p->gpu->ops->vision_pool(p->gpu->ctx, yg, xg, PH, PW, D_MODEL, 3, mult, NULL, NULL, &err) == 0, "gpu: %s",
          err.msg);
    CHECK(gh_get_act(p->cpu, ref, yc, m) == 0 && gh_get_act(p->gpu, got, yg, m) == 0, "download");
    CHECK(gh_close_enough("vision_pool 3x3 x sqrt(1152), plain", got, ref, m, GH_TOL), "pool plain");
    gh_weight_free(p, &bias), gh_weight_free(p, &scale);
    p->cpu->ops->free(p->cpu->ctx, xc), p->gpu->ops->free(p->gpu->ctx, xg);
    p->cpu->ops->free(p->cpu->ctx, yc), p->gpu->ops->free(p->gpu->ctx, yg);
    free(x), free(ref), free(got);
}

/* The tower on backend be: soft tokens of the (ph × pw) grid in got. */
static int encode_on(g4_backend *be, const float *patches, int ph, int pw, float *got) {
    g4_error err = {{0}};
    g4_model *m = NULL;
    if (g4_model_open(&m, "tests/golden/vision", be, NULL, &err)) {
        fprintf(stderr, "open on %s: %s\n", be->ops->name, err.msg);
        return -1;
    }
    int rc = g4_vision_encode(g4_model_vision(m), patches, ph, pw, got, &err);
    if (rc) fprintf(stderr, "encode on %s: %s\n", be->ops->name, err.msg);
    g4_model_close(m);
    return rc;
}

static void test_tower(gh_pair *p) {
    g4_error err = {{0}};
    g4_safetensors *st = g4_st_open("tests/golden/vision/golden.safetensors", &err);
    REQUIRE_VOID(st, "golden: %s", err.msg);
    const g4_st_tensor *grid = g4_st_find(st, "image.0.grid"), *pt = g4_st_find(st, "image.0.patches");
    const g4_st_tensor *soft = g4_st_find(st, "image.0.soft");
    REQUIRE_VOID(grid && pt && soft, "golden image 0");
    int32_t g[2];
    memcpy(g, grid->data, sizeof g);
#ifdef G4_CUDA_EMU
    int ph = 9, pw = 12; /* the image's top-left 9 × 12 patches; reference: the CPU fp32 tower */
#else
    int ph = g[0], pw = g[1]; /* the whole image; reference: transformers */
#endif
    size_t n = (size_t)(ph / 3) * (pw / 3) * (size_t)soft->shape[1];
    float *patches = malloc((size_t)ph * pw * 768 * sizeof *patches), *want = malloc(n * sizeof *want);
    float *got = malloc(n * sizeof *got);
    REQUIRE_VOID(patches && want && got, "out of memory");
    for (int r = 0; r < ph; r++)
        memcpy(patches + (size_t)r * pw * 768, (const float *)pt->data + (size_t)r * g[1] * 768,
               (size_t)pw * 768 * sizeof *patches);
    CHECK(encode_on(p->gpu, patches, ph, pw, got) == 0, "gpu tower");
    if (ph == g[0] && pw == g[1]) memcpy(want, soft->data, n * sizeof *want);
    else CHECK(encode_on(p->cpu, patches, ph, pw, want) == 0, "cpu tower");
    CHECK(gh_close_enough(ph == g[0] ? "tower: golden image 0 vs transformers" : "tower: 9x12 of image 0 vs cpu f32",
                          got, want, n, 5e-2f),
          "tower vs f32");

    g4_cpu_opts o;
    g4_cpu_opts_default(&o);
    o.round_bf16 = 1;
    g4_backend *b16 = g4_backend_cpu_create_opts(&o, &err);
    REQUIRE_VOID(b16, "cpu bf16: %s", err.msg);
    CHECK(encode_on(b16, patches, ph, pw, want) == 0, "cpu bf16 tower");
    CHECK(gh_close_enough("tower: vs the CPU bf16 mode", got, want, n, 2e-2f), "tower vs cpu bf16");
    g4_backend_destroy(b16);
    free(patches), free(want), free(got);
    g4_st_close(st);
}

int main(void) {
    gh_pair p;
    int rc = gh_open(&p);
    if (rc == CHECK_SKIP_CODE) return check_skip("no CUDA device");
    REQUIRE(rc == 0, "backends");
    CHECK(g4_backend_supports(p.gpu, G4_OP_ROPE_2D, G4_DT_BF16) &&
              g4_backend_supports(p.gpu, G4_OP_ENCODER_ATTENTION, G4_DT_BF16) &&
              g4_backend_supports(p.gpu, G4_OP_VISION_POOL, G4_DT_BF16),
          "cuda supports the vision ops");
    test_rope_2d(&p);
    test_attention(&p);
    test_pool(&p);
    test_tower(&p);
    gh_close(&p);
    return check_summary();
}
