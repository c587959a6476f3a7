/* test_roofline.c — bench/serve/roofline.c byte / FLOP accounting against numbers computed by hand
 * from docs/model-spec.md (§1, §3.2–3.4 parameter totals, §4 KV bytes) and the decode / prefill
 * anchors of docs/performance-anchors.md §5, for the real 31B and 26B-A4B geometries
 * (tests/model/data/config_*_mm.json). Also: g4_hw_measure refuses plainly without a GPU build. */
#include <math.h>
#include <string.h>

#include "check.h"
#include "roofline.h"

static int near(double a, double b, double rel) { return fabs(a - b) <= rel * fabs(b) + 1e-9; }

static void dense_31b(const g4_config *c) {
    g4_param_count p;
    g4_roofline_params(c, &p);
    /* spec §3.4: text matrices 30,696,013,824 + norms/scalars 1,331,516 */
    CHECK(p.matrices == 30696013824.0, "31B matrices %.0f", p.matrices);
    CHECK(p.total == 30696013824.0 + 1331516.0, "31B total %.0f", p.total);
    CHECK(p.embedding == 262144.0 * 5376 && p.experts_all == 0, "31B embedding %.0f", p.embedding);
    double w, kv;
    /* decode, batch 1: every weight once, bf16 → 61.39 GB (anchors: 61.4 GB, 54.6 tok/s on 3.35 TB/s) */
    double b = g4_roofline_decode_bytes(c, 1, 1, 2, false, &w, &kv);
    CHECK(w == 61394690680.0, "31B weight bytes %.0f", w);
    CHECK(kv == 50 * 16384.0 + 10 * 8192.0 && b == w + kv, "31B kv at ctx 1: %.0f", kv);
    CHECK(near(3.35e12 / w, 54.6, 0.005), "31B ceiling %.2f tok/s", 3.35e12 / w);
    /* KV per sequence, spec §4: 8K window-aware 1.41 GiB / shared 1.09 GiB; 32K 3.28 GiB; 256K exact */
    g4_roofline_decode_bytes(c, 1, 8192, 2, false, NULL, &kv);
    CHECK(kv == 1509949440.0, "31B kv 8K %.0f", kv);
    g4_roofline_decode_bytes(c, 1, 8192, 2, true, NULL, &kv);
    CHECK(kv == 1174405120.0, "31B kv 8K shared %.0f", kv);
    g4_roofline_decode_bytes(c, 1, 262144, 2, false, NULL, &kv);
    CHECK(kv == 22313697280.0, "31B kv 256K %.0f", kv);
    /* batch 4 at 32K: weights once, KV four times */
    b = g4_roofline_decode_bytes(c, 4, 32768, 2, false, &w, &kv);
    CHECK(w == 61394690680.0 && kv == 4 * 3523215360.0, "31B batch 4: w %.0f kv %.0f", w, kv);
    /* prefill: 58.57 GFLOP/token linear (anchors: 58.6) + LM head once + attention */
    double lin, attn;
    g4_roofline_prefill_flops(c, 1, &lin, &attn);
    CHECK(lin == 58573455360.0 + 2818572288.0, "31B linear n=1 %.0f", lin);
    CHECK(attn == 4.0 * 32 * (50 * 256 + 10 * 512), "31B attention n=1 %.0f", attn);
    g4_roofline_prefill_flops(c, 2048, &lin, &attn);
    CHECK(lin == 2048 * 58573455360.0 + 2818572288.0, "31B linear n=2048 %.0f", lin);
    /* sliding keys Σ min(i+1, 1024) = 1,573,376; global Σ (i+1) = 2,098,176 */
    CHECK(attn == 3952879861760.0, "31B attention n=2048 %.0f", attn);
}

static void moe_26b(const g4_config *c) {
    g4_param_count p;
    g4_roofline_params(c, &p);
    /* spec §3.4: 25,232,441,344 matrices + 700,446 norms; one expert 1408·2816 + 2816·704 */
    CHECK(p.matrices == 25232441344.0, "26B matrices %.0f", p.matrices);
    CHECK(p.total == 25232441344.0 + 700446.0, "26B total %.0f", p.total);
    CHECK(p.expert_each == 5947392.0 && p.experts_all == 30.0 * 128 * 5947392, "26B expert %.0f", p.expert_each);
    double w, kv;
    /* batch 1: 3,822,530,590 active parameters (spec: 3.82 B) → 7.645 GB (anchors 7.64 GB, 438 tok/s) */
    g4_roofline_decode_bytes(c, 1, 1, 2, false, &w, &kv);
    CHECK(w == 7645061180.0, "26B weight bytes b=1 %.0f", w);
    CHECK(near(3.35e12 / w, 438, 0.005), "26B ceiling %.1f", 3.35e12 / w);
    /* batch 8: 128·(1 − (120/128)^8) = 51.6199 experts per layer → 23.2 GB (anchors: 23 GB) */
    g4_roofline_decode_bytes(c, 8, 1, 2, false, &w, NULL);
    CHECK(near(w, 23210542460.615234, 1e-12), "26B weight bytes b=8 %.3f", w);
    /* large batch: every expert → all weights, 50.47 GB (anchors: 50.5 GB) */
    g4_roofline_decode_bytes(c, 4096, 1, 2, false, &w, NULL);
    CHECK(near(w, 2 * (25232441344.0 + 700446.0), 1e-9), "26B weight bytes b=4096 %.0f", w);
    /* KV per sequence, spec §4: 8K window-aware 360 MiB, shared 280 MiB */
    g4_roofline_decode_bytes(c, 1, 8192, 2, false, NULL, &kv);
    CHECK(kv == 360.0 * 1048576, "26B kv 8K %.0f", kv);
    g4_roofline_decode_bytes(c, 1, 8192, 2, true, NULL, &kv);
    CHECK(kv == 280.0 * 1048576, "26B kv 8K shared %.0f", kv);
    /* prefill: 6.167 GFLOP/token linear (anchors: 6.2), experts top-8 only */
    double lin, attn;
    g4_roofline_prefill_flops(c, 2048, &lin, &attn);
    CHECK(lin == 2048 * 6167265280.0 + 2.0 * 262144 * 2816, "26B linear n=2048 %.0f", lin);
    CHECK(attn == 988219965440.0, "26B attention n=2048 %.0f", attn);
}

int main(void) {
    g4_config c31, c26;
    g4_error err = {{0}};
    REQUIRE(g4_config_load(&c31, "tests/model/data/config_31b_mm.json", &err) == 0, "%s", err.msg);
    REQUIRE(g4_config_load(&c26, "tests/model/data/config_26b_mm.json", &err) == 0, "%s", err.msg);
    dense_31b(&c31);
    moe_26b(&c26);
    g4_hw_peak hw;
    int rc = g4_hw_measure(0, &hw, &err);
#ifndef G4_BENCH_CUDA
    CHECK(rc == -1 && strstr(err.msg, "needs a GPU") && !hw.measured, "no-GPU build: rc %d '%s'", rc, err.msg);
#else
    CHECK(rc == 0 ? hw.measured && hw.copy_bytes_per_s > 0 : strstr(err.msg, "GPU") != NULL, "rc %d '%s'", rc, err.msg);
#endif
    return check_summary();
}
