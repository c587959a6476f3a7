/* test_stack.c — the composition root (server/stack.h) on the tiny models: the embedded default
 * model gets the test tokenizer written beside it and its temporary directory removed at close;
 * the engine's stop ids are the model's plus <eos>, <turn|> and <|tool_response> at the ids
 * tests/text/data/tokenizer.json gives them (read here with cJSON, not through the tokenizer);
 * a checkpoint without tokenizer.json is refused naming the file; a tokenizer larger than the
 * vocabulary is refused; no_tokenizer keeps the model's stop ids only; warm-up runs on one rank
 * and on a tensor-parallel group; a speculative draft model is opened without its vision tower. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/file.h"
#include "check.h"
#include "model/testmodel.h"
#include "model/vision.h"
#include "server/stack.h"

#define TOKENIZER "tests/text/data/tokenizer.json"

static bool exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

/* The id tokenizer.json's added_tokens give `content`, or -1. */
static int added_id(const cJSON *tok, const char *content) {
    const cJSON *t;
    cJSON_ArrayForEach(t, cJSON_GetObjectItem(tok, "added_tokens")) if (!strcmp(cJSON_GetStringValue(
                                                                                    cJSON_GetObjectItem(t, "content")),
                                                                                content)) return (int)
        cJSON_GetNumberValue(cJSON_GetObjectItem(t, "id"));
    return -1;
}

static bool has_id(const g4_stack *s, int id) {
    int n = 0;
    for (int i = 0; i < s->eo.n_eos; i++) n += s->eo.eos_ids[i] == id;
    return n == 1;
}

static bool same_file(const char *a, const char *b) {
    char *x = NULL, *y = NULL;
    size_t nx = 0, ny = 0;
    g4_error err = {{0}};
    bool same = g4_read_file(a, 64 << 20, &x, &nx, &err) == 0 && g4_read_file(b, 64 << 20, &y, &ny, &err) == 0 &&
                nx == ny && !memcmp(x, y, nx);
    free(x);
    free(y);
    return same;
}

/* A tiny-dense checkpoint (no tokenizer.json) in a fresh temporary directory; vocab 0 = as is. */
static int write_checkpoint(char *dir, int vocab) {
    g4_config cfg;
    g4_error err = {{0}};
    if (!mkdtemp(dir) || g4_testmodel_config(&cfg, "tiny-dense", &err) < 0) return -1;
    if (vocab) cfg.vocab = vocab;
    return g4_testmodel_write(&cfg, 1, dir, &err);
}

int main(void) {
    char *json = NULL;
    g4_error err = {{0}};
    REQUIRE(g4_read_file(TOKENIZER, 64 << 20, &json, NULL, &err) == 0, "%s", err.msg);
    cJSON *tok = cJSON_Parse(json);
    free(json);
    REQUIRE(tok, "tokenizer.json does not parse");
    const int eos = added_id(tok, "<eos>"), turn_end = added_id(tok, "<turn|>"),
              tool_response = added_id(tok, "<|tool_response>");
    REQUIRE(eos >= 0 && turn_end >= 0 && tool_response >= 0, "special tokens missing from %s", TOKENIZER);

    /* the embedded default model in a temporary directory, warmed up */
    g4_stack_opts o;
    g4_stack_opts_default(&o);
    o.model.max_seqs = 4;
    o.warm_up = true;
    g4_stack *s = NULL;
    REQUIRE(g4_stack_open(&s, &o, &err) == 0, "%s", err.msg);
    char dir[G4_STACK_PATH_MAX], tokpath[G4_STACK_PATH_MAX + 16];
    snprintf(dir, sizeof dir, "%s", s->dir);
    snprintf(tokpath, sizeof tokpath, "%s/tokenizer.json", dir);
    CHECK(s->dir_is_temporary && s->tok && s->engine && s->tp_size == 1, "embedded model stack");
    CHECK(!strcmp(s->tokenizer_path, tokpath), "tokenizer %s, expected %s", s->tokenizer_path, tokpath);
    CHECK(same_file(tokpath, TOKENIZER), "the tokenizer written beside the tiny model is the test tokenizer");
    CHECK(s->eo.n_eos == 3 && has_id(s, eos) && has_id(s, turn_end) && has_id(s, tool_response),
          "stop ids: %d of them, expected exactly %d %d %d", s->eo.n_eos, eos, turn_end, tool_response);
    CHECK(s->eo.max_running == 4 && s->eo.max_waiting == 1024 && s->eo.prefix_cache, "engine defaults");
    g4_stack_close(s);
    CHECK(!exists(dir), "temporary model directory %s removed at close", dir);

    /* token ids only: the model's stop ids (config.json: <eos>, <turn|>), no tokenizer */
    o.warm_up = false;
    o.no_tokenizer = true;
    o.max_waiting = 0;
    o.prefix_cache = 0;
    REQUIRE(g4_stack_open(&s, &o, &err) == 0, "%s", err.msg);
    CHECK(!s->tok && !s->tokenizer_path[0] && s->engine, "no tokenizer");
    CHECK(s->eo.n_eos == 2 && has_id(s, eos) && has_id(s, turn_end) && !has_id(s, tool_response),
          "no_tokenizer: the model's stop ids only (%d)", s->eo.n_eos);
    CHECK(s->eo.max_waiting == 0 && !s->eo.prefix_cache, "max_waiting 0 and prefix cache off are kept");
    snprintf(tokpath, sizeof tokpath, "%s/tokenizer.json", s->dir);
    CHECK(!exists(tokpath), "no tokenizer written with no_tokenizer");
    g4_stack_close(s);

    /* a checkpoint without tokenizer.json: refused, naming the file; fine with --tokenizer */
    char ck[] = "/tmp/g4-test-stack-XXXXXX";
    REQUIRE(write_checkpoint(ck, 0) == 0, "cannot write a checkpoint");
    g4_stack_opts_default(&o);
    o.model_dir = ck;
    o.model.max_seqs = 2;
    snprintf(tokpath, sizeof tokpath, "%s/tokenizer.json", ck);
    err.msg[0] = 0;
    CHECK(g4_stack_open(&s, &o, &err) < 0 && !s, "a checkpoint without tokenizer.json must be refused");
    CHECK(strstr(err.msg, tokpath) != NULL, "the message names %s: %s", tokpath, err.msg);
    CHECK(!exists(tokpath), "nothing written into a given checkpoint");
    o.tokenizer = TOKENIZER;
    o.tp = 2;
    o.warm_up = true;
    CHECK(g4_stack_open(&s, &o, &err) == 0, "%s", err.msg);
    if (s) {
        CHECK(s->tp && s->tp_size == 2 && !s->backend && !s->dir_is_temporary, "a tensor-parallel group");
        CHECK(s->eo.n_eos == 3 && has_id(s, tool_response), "chat stop ids with a group too");
        g4_stack_close(s);
    }
    CHECK(exists(ck), "a given checkpoint is never removed");

    /* a tokenizer with more ids than the model's vocabulary */
    char small[] = "/tmp/g4-test-stack-XXXXXX";
    REQUIRE(write_checkpoint(small, 1000) == 0, "cannot write a small-vocabulary checkpoint");
    g4_stack_opts_default(&o);
    o.model_dir = small;
    o.tokenizer = TOKENIZER;
    err.msg[0] = 0;
    CHECK(g4_stack_open(&s, &o, &err) < 0 && strstr(err.msg, "vocabulary is 1000"), "vocab check: %s", err.msg);

    /* warm-up needs text */
    g4_stack_opts_default(&o);
    o.no_tokenizer = o.warm_up = true;
    CHECK(g4_stack_open(&s, &o, &err) < 0 && !s, "warm-up without a tokenizer is refused");

    /* a draft model whose checkpoint has a vision tower is opened without it (it proposes from
     * ids only): here the multimodal golden checkpoint drafts for itself */
    g4_stack_opts_default(&o);
    o.model_dir = "tests/golden/vision";
    o.no_tokenizer = true;
    o.model.max_seqs = 2;
    o.spec = (g4_spec_config){.method = G4_SPEC_DRAFT, .num_speculative_tokens = 2, .draft_model = o.model_dir};
    s = NULL;
    CHECK(g4_stack_open(&s, &o, &err) == 0, "draft with a tower: %s", err.msg);
    if (s) {
        CHECK(g4_model_vision(s->model) && s->draft && !g4_model_vision(s->draft),
              "the target has a tower (%p), the draft none (%p)", (void *)g4_model_vision(s->model),
              s->draft ? (void *)g4_model_vision(s->draft) : NULL);
        CHECK(s->draft && s->draft->weight_bytes < s->model->weight_bytes, "draft weights %zu, target %zu",
              s->draft ? s->draft->weight_bytes : 0, s->model->weight_bytes);
        g4_stack_close(s);
    }

    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'", ck, small);
    CHECK(system(cmd) == 0, "cleanup");
    cJSON_Delete(tok);
    return check_summary();
}
