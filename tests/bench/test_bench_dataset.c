/* test_bench_dataset.c — bench/serve datasets and arrivals: random lengths inside vLLM's ranges,
 * ids in range, a shared prefix, determinism by seed; gamma samples with the right mean and
 * variance; the schedule rescaled to N/rate seconds (Poisson and bursty), all-zero at rate inf;
 * ShareGPT filtering and token counts with the test tokenizer. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "arrival.h"
#include "check.h"
#include "dataset.h"

static void random_dataset(void) {
    g4_random_opts o = {.input_len = 100,
                        .output_len = 10,
                        .range_ratio = 0.25,
                        .prefix_len = 7,
                        .vocab = 5000,
                        .id_min = 256,
                        .seed = 42};
    g4_bench_dataset d, d2;
    g4_error err = {{0}};
    CHECK(g4_dataset_random(&d, 400, &o, &err) == 0 && d.n == 400, "%s", err.msg);
    CHECK(g4_dataset_random(&d2, 400, &o, &err) == 0, "%s", err.msg);
    int in_min = 1 << 30, in_max = 0, out_min = 1 << 30, out_max = 0, bad = 0, same = 1;
    for (int i = 0; i < d.n; i++) {
        int len = d.items[i].prompt_len - 7;
        in_min = len < in_min ? len : in_min, in_max = len > in_max ? len : in_max;
        out_min = d.items[i].output_len < out_min ? d.items[i].output_len : out_min;
        out_max = d.items[i].output_len > out_max ? d.items[i].output_len : out_max;
        bad += d.items[i].n_ids != d.items[i].prompt_len || d.items[i].text != NULL;
        for (int j = 0; j < d.items[i].n_ids; j++) bad += d.items[i].ids[j] < 256 || d.items[i].ids[j] >= 5000;
        bad += memcmp(d.items[i].ids, d.items[0].ids, 7 * sizeof(int32_t)) != 0; /* shared prefix */
        same &= d.items[i].n_ids == d2.items[i].n_ids &&
                !memcmp(d.items[i].ids, d2.items[i].ids, sizeof(int32_t) * (size_t)d.items[i].n_ids);
    }
    /* [⌊100·0.75⌋, ⌈100·1.25⌉] = [75, 125]; [⌊7.5⌋, ⌈12.5⌉] = [7, 13]; 400 draws reach both ends */
    CHECK(in_min == 75 && in_max == 125, "input range [%d, %d]", in_min, in_max);
    CHECK(out_min == 7 && out_max == 13, "output range [%d, %d]", out_min, out_max);
    CHECK(bad == 0 && same, "bad %d, deterministic %d", bad, same);
    CHECK(memcmp(d.items[0].ids + 7, d.items[1].ids + 7, 40) != 0, "prompts differ after the prefix");
    g4_dataset_free(&d);
    g4_dataset_free(&d2);
    o.range_ratio = 0;
    CHECK(g4_dataset_random(&d, 3, &o, &err) == 0 && d.items[2].prompt_len == 107 && d.items[2].output_len == 10,
          "fixed lengths");
    g4_dataset_free(&d);
    o.range_ratio = 1.0;
    CHECK(g4_dataset_random(&d, 3, &o, &err) == -1 && strstr(err.msg, "range-ratio"), "%s", err.msg);
}

static void arrivals(void) {
    g4_rng r;
    g4_rng_seed(&r, 7);
    for (int k = 0; k < 3; k++) {
        double shape = k == 0 ? 0.5 : k == 1 ? 1.0 : 4.0, scale = 0.3, s = 0, ss = 0;
        int n = 200000;
        for (int i = 0; i < n; i++) {
            double x = g4_rng_gamma(&r, shape, scale);
            s += x, ss += x * x;
        }
        double mean = s / n, var = ss / n - mean * mean;
        CHECK(fabs(mean - shape * scale) < 0.02 * shape * scale, "gamma(%g) mean %g", shape, mean);
        CHECK(fabs(var - shape * scale * scale) < 0.05 * shape * scale * scale, "gamma(%g) var %g", shape, var);
    }
    double t[1000];
    g4_arrival_schedule(t, 1000, 20.0, 1.0, &r);
    int mono = 1;
    for (int i = 1; i < 1000; i++) mono &= t[i] >= t[i - 1];
    CHECK(mono && fabs(t[999] - 50.0) < 1e-9 && t[0] > 0, "poisson schedule ends at %g", t[999]);
    /* burstiness 0.25: gaps with coefficient of variation 2 (vs 1 for Poisson) */
    g4_arrival_schedule(t, 1000, 20.0, 0.25, &r);
    double s = 0, ss = 0;
    for (int i = 1; i < 1000; i++) {
        double g = t[i] - t[i - 1];
        s += g, ss += g * g;
    }
    double mean = s / 999, cv = sqrt(ss / 999 - mean * mean) / mean;
    CHECK(fabs(t[999] - 50.0) < 1e-9 && cv > 1.6 && cv < 2.4, "bursty: end %g cv %g", t[999], cv);
    g4_arrival_schedule(t, 10, 0, 1.0, &r);
    CHECK(t[0] == 0 && t[9] == 0, "rate inf sends all at once");
}

static void sharegpt(void) {
    g4_tokenizer *tok = NULL;
    g4_error err = {{0}};
    if (g4_tokenizer_load("tests/text/data/tokenizer.json", &tok, &err) < 0) {
        CHECK(0, "test tokenizer: %s", err.msg);
        return;
    }
    char path[] = "/tmp/g4-sharegpt-XXXXXX";
    int fd = mkstemp(path);
    const char *json =
        "[{\"id\":\"a\",\"conversations\":[{\"from\":\"human\",\"value\":\"Tell me a story about a small red fox "
        "that lives in the forest.\"},{\"from\":\"gpt\",\"value\":\"Once upon a time a small red fox lived in a "
        "quiet forest and liked to watch the river.\"}]},"
        "{\"id\":\"b\",\"conversations\":[{\"from\":\"human\",\"value\":\"hi\"},{\"from\":\"gpt\",\"value\":\"Hello "
        "there, how can I help you today with anything?\"}]},"
        "{\"id\":\"c\",\"conversations\":[{\"from\":\"human\",\"value\":\"only one turn here\"}]}]";
    CHECK(fd >= 0 && write(fd, json, strlen(json)) == (ssize_t)strlen(json), "temp file");
    close(fd);
    g4_bench_dataset d;
    CHECK(g4_dataset_sharegpt(&d, path, 1, 0, tok, 0, &err) == 0 && d.n == 1, "%s", err.msg);
    if (d.n == 1) {
        g4_tokens tp = {0}, ta = {0};
        const char *p = "Tell me a story about a small red fox that lives in the forest.";
        const char *ans = "Once upon a time a small red fox lived in a quiet forest and liked to watch the river.";
        g4_tokenizer_encode(tok, p, strlen(p), 0, &tp, &err);
        g4_tokenizer_encode(tok, ans, strlen(ans), 0, &ta, &err);
        CHECK(!strcmp(d.items[0].text, p) && d.items[0].ids == NULL, "the long prompt is the usable one");
        CHECK(d.items[0].prompt_len == (int)tp.n && d.items[0].output_len == (int)ta.n, "lens %d %d vs %zu %zu",
              d.items[0].prompt_len, d.items[0].output_len, tp.n, ta.n);
        g4_tokens_free(&tp);
        g4_tokens_free(&ta);
    }
    g4_dataset_free(&d);
    /* "hi" is under 4 tokens, the third has one turn: only one usable conversation */
    CHECK(g4_dataset_sharegpt(&d, path, 2, 0, tok, 0, &err) == -1 && strstr(err.msg, "only 1 usable"), "%s", err.msg);
    CHECK(g4_dataset_sharegpt(&d, path, 1, 0, NULL, 0, &err) == -1 && strstr(err.msg, "tokenizer"), "%s", err.msg);
    unlink(path);
    g4_tokenizer_free(tok);
}

int main(void) {
    random_dataset();
    arrivals();
    sharegpt();
    return check_summary();
}
