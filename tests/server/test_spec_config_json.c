/* test_spec_config_json.c — vLLM's --speculative-config JSON (server/spec_config_json.h):
 * the accepted forms give the settings vLLM would (n-gram lookup defaults 5/5, one size given =
 * both, "[ngram]" as model), the description written at start-up parses back to the same
 * settings, and every refused input names its field. */
#include <string.h>

#include "check.h"
#include "server/spec_config_json.h"

static char dir[256];

static int parse(const char *json, g4_spec_config *c, g4_error *err) {
    memset(err, 0, sizeof *err);
    return g4_spec_config_from_json(json, c, dir, sizeof dir, err);
}

static void good(const char *json, g4_spec_method m, int k, int lmin, int lmax, int disable, const char *model) {
    g4_spec_config c, back;
    g4_error err;
    int rc = parse(json, &c, &err);
    CHECK(rc == 0, "%s refused: %s", json, err.msg);
    if (rc) return;
    CHECK(c.method == m && c.num_speculative_tokens == k && c.prompt_lookup_min == lmin &&
              c.prompt_lookup_max == lmax && c.disable_by_batch_size == disable,
          "%s → method %d k %d lookup %d..%d disable %d", json, c.method, c.num_speculative_tokens, c.prompt_lookup_min,
          c.prompt_lookup_max, c.disable_by_batch_size);
    CHECK(model ? c.draft_model && !strcmp(c.draft_model, model) : !c.draft_model, "%s → model %s", json,
          c.draft_model ? c.draft_model : "(none)");
    /* the start-up line is the same setting in vLLM's words */
    char line[512], dir2[256];
    g4_spec_config_describe(&c, line, sizeof line);
    rc = g4_spec_config_from_json(m == G4_SPEC_OFF ? "" : line, &back, dir2, sizeof dir2, &err);
    CHECK(rc == 0 && back.method == c.method && back.num_speculative_tokens == c.num_speculative_tokens &&
              back.prompt_lookup_min == c.prompt_lookup_min && back.prompt_lookup_max == c.prompt_lookup_max &&
              back.disable_by_batch_size == c.disable_by_batch_size &&
              (!model || (back.draft_model && !strcmp(back.draft_model, model))),
          "description %s of %s does not parse back to it (%s)", line, json, err.msg);
}

static void bad(const char *json, const char *names) {
    g4_spec_config c;
    g4_error err;
    int rc = parse(json, &c, &err);
    CHECK(rc < 0, "%s accepted", json);
    CHECK(rc == 0 || strstr(err.msg, names), "%s: message '%s' does not name '%s'", json, err.msg, names);
    CHECK(c.method == G4_SPEC_OFF, "%s: a refused config must leave speculation off", json);
}

int main(void) {
    const char *ngram = "{\"method\":\"ngram\",\"num_speculative_tokens\":4,\"prompt_lookup_max\":4,"
                        "\"prompt_lookup_min\":2}";
    good(ngram, G4_SPEC_NGRAM, 4, 2, 4, 0, NULL);
    good("{\"method\":\"ngram\",\"num_speculative_tokens\":3}", G4_SPEC_NGRAM, 3, 5, 5, 0, NULL);
    good("{\"method\":\"ngram\",\"num_speculative_tokens\":3,\"prompt_lookup_max\":7}", G4_SPEC_NGRAM, 3, 7, 7, 0,
         NULL);
    good("{\"method\":\"ngram\",\"num_speculative_tokens\":3,\"prompt_lookup_min\":2}", G4_SPEC_NGRAM, 3, 2, 2, 0,
         NULL);
    good("{\"model\":\"[ngram]\",\"num_speculative_tokens\":8,\"disable_by_batch_size\":4}", G4_SPEC_NGRAM, 8, 5, 5, 4,
         NULL);
    good(" {\"model\":\"/m/gemma-4-26b\",\"num_speculative_tokens\":4} ", G4_SPEC_DRAFT, 4, 0, 0, 0, "/m/gemma-4-26b");
    good("{\"method\":\"draft_model\",\"model\":\"d\\u00e9j\\u00e0 vu\",\"num_speculative_tokens\":1,"
         "\"disable_by_batch_size\":2,\"prompt_lookup_min\":null}",
         G4_SPEC_DRAFT, 1, 0, 0, 2, "d\xc3\xa9j\xc3\xa0 vu");
    good("", G4_SPEC_OFF, 0, 0, 0, 0, NULL);
    good("  \n", G4_SPEC_OFF, 0, 0, 0, 0, NULL);
    g4_spec_config off = {0};
    char line[64];
    CHECK(!strcmp(g4_spec_config_describe(&off, line, sizeof line), "off"), "off → %s", line);

    bad("{\"method\":\"eagle\",\"num_speculative_tokens\":4,\"model\":\"x\"}", "method");
    bad("{\"method\":\"eagle3\",\"num_speculative_tokens\":4}", "eagle3");
    bad("{\"method\":\"medusa\",\"num_speculative_tokens\":4}", "method");
    bad("{\"method\":\"mtp\",\"num_speculative_tokens\":1}", "method");
    bad("{\"method\":\"suffix\",\"num_speculative_tokens\":1}", "method");
    bad("{\"method\":4,\"num_speculative_tokens\":1}", "method");
    bad("{\"method\":\"\",\"num_speculative_tokens\":1}", "method");
    bad("{\"num_speculative_tokens\":4}", "method");
    bad("{}", "method");
    bad("{\"method\":\"ngram\"}", "num_speculative_tokens");
    bad("{\"method\":\"ngram\",\"num_speculative_tokens\":0}", "num_speculative_tokens");
    bad("{\"method\":\"ngram\",\"num_speculative_tokens\":9}", "num_speculative_tokens");
    bad("{\"method\":\"ngram\",\"num_speculative_tokens\":2.5}", "num_speculative_tokens");
    bad("{\"method\":\"ngram\",\"num_speculative_tokens\":\"4\"}", "num_speculative_tokens");
    bad("{\"method\":\"ngram\",\"num_speculative_tokens\":true}", "num_speculative_tokens");
    bad("{\"method\":\"ngram\",\"num_speculative_tokens\":1e30}", "num_speculative_tokens");
    bad("{\"method\":\"ngram\",\"num_speculative_tokens\":4,\"prompt_lookup_min\":0}", "prompt_lookup_min");
    bad("{\"method\":\"ngram\",\"num_speculative_tokens\":4,\"prompt_lookup_max\":-1}", "prompt_lookup_max");
    bad("{\"method\":\"ngram\",\"num_speculative_tokens\":4,\"prompt_lookup_min\":5,\"prompt_lookup_max\":3}",
        "prompt_lookup_min");
    bad("{\"method\":\"ngram\",\"num_speculative_tokens\":4,\"model\":\"/m/draft\"}", "model");
    bad("{\"method\":\"ngram\",\"num_speculative_tokens\":4,\"disable_by_batch_size\":1}", "disable_by_batch_size");
    bad("{\"method\":\"ngram\",\"num_speculative_tokens\":4,\"disable_by_batch_size\":\"8\"}", "disable_by_batch_size");
    bad("{\"method\":\"ngram\",\"num_speculative_tokens\":4,\"draft_tensor_parallel_size\":1}",
        "draft_tensor_parallel_size");
    bad("{\"method\":\"ngram\",\"num_speculative_tokens\":4,\"Method\":\"ngram\"}", "Method");
    bad("{\"method\":\"ngram\",\"num_speculative_tokens\":4,\"num_speculative_tokens\":4}", "num_speculative_tokens");
    bad("{\"method\":\"draft_model\",\"num_speculative_tokens\":4}", "model");
    bad("{\"model\":\"/m/draft\",\"num_speculative_tokens\":4,\"prompt_lookup_max\":3}", "prompt_lookup_max");
    bad("{\"model\":\"hf://google/gemma\",\"num_speculative_tokens\":4}", "model");
    bad("{\"model\":\"\",\"num_speculative_tokens\":4}", "model");
    bad("{\"model\":[\"x\"],\"num_speculative_tokens\":4}", "model");
    bad("[{\"method\":\"ngram\"}]", "object");
    bad("\"ngram\"", "object");
    bad("{\"method\":\"ngram\",", "JSON");
    bad("{\"method\":\"ngram\",\"num_speculative_tokens\":4} trailing", "JSON");
    char long_dir[600];
    memset(long_dir, 'a', sizeof long_dir);
    long_dir[sizeof long_dir - 1] = 0;
    char json[800];
    snprintf(json, sizeof json, "{\"model\":\"/%s\",\"num_speculative_tokens\":4}", long_dir);
    bad(json, "model");
    return check_summary();
}
