/* test_sampling_defaults.c — request sampling defaults from generation_config.json: a missing
 * file keeps greedy, Gemma 4's file (temperature 1.0, top_k 64, top_p 0.95) is taken as written
 * (as vLLM does, do_sample is not consulted), fields it leaves out keep their value, and a
 * malformed file is refused naming the field. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "engine/engine.h"
#include "engine/sampling.h"

static void write_config(const char *dir, const char *json) {
    char path[512];
    snprintf(path, sizeof path, "%s/generation_config.json", dir);
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(json, f);
        fclose(f);
    }
}

int main(void) {
    char dir[] = "/tmp/g4-test-gencfg-XXXXXX";
    REQUIRE(mkdtemp(dir) != NULL, "mkdtemp");
    g4_error err = {{0}};
    g4_sampling s;
    g4_sampling_default(&s);
    CHECK(g4_sampling_load_defaults(&s, dir, &err) == 0 && s.temperature == 0.0f && s.top_k == 0, "no file: greedy");

    write_config(dir, "{\"bos_token_id\": 2, \"do_sample\": true, \"eos_token_id\": [1, 106, 50], "
                      "\"temperature\": 1.0, \"top_k\": 64, \"top_p\": 0.95}");
    g4_sampling_default(&s);
    s.repetition_penalty = 1.1f;
    CHECK(g4_sampling_load_defaults(&s, dir, &err) == 0, "%s", err.msg);
    CHECK(s.temperature == 1.0f && s.top_k == 64 && s.top_p == 0.95f, "gemma 4 defaults: t=%g k=%d p=%g", s.temperature,
          s.top_k, s.top_p);
    CHECK(s.repetition_penalty == 1.1f && s.min_p == 0.0f && s.logprobs == -1, "absent fields keep their value");

    write_config(dir, "{\"temperature\": 0.7}"); /* no do_sample: still sampling, as vLLM */
    g4_sampling_default(&s);
    CHECK(g4_sampling_load_defaults(&s, dir, &err) == 0 && s.temperature == 0.7f, "temperature without do_sample");

    write_config(dir, "{\"top_p\": 1.5}");
    CHECK(g4_sampling_load_defaults(&s, dir, &err) != 0 && strstr(err.msg, "top_p"), "bad top_p named: %s", err.msg);
    write_config(dir, "{\"temperature\": \"hot\"}");
    CHECK(g4_sampling_load_defaults(&s, dir, &err) != 0 && strstr(err.msg, "temperature"), "bad type named: %s",
          err.msg);
    write_config(dir, "[1, 2");
    CHECK(g4_sampling_load_defaults(&s, dir, &err) != 0 && strstr(err.msg, "generation_config.json"), "bad JSON: %s",
          err.msg);

    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0, "cleanup");
    return check_summary();
}
