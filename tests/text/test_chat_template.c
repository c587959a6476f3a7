/* test_chat_template.c - the C chat renderer against jinja2 on the golden cases.
 *
 * Data: tests/text/data/chat_cases.json and chat_random_cases.json (make_chat_cases.py renders
 * the official template with jinja2; the random file holds 600 seeded random shapes). Each case must match "expected" byte for byte with the quirk fix off, and
 * "expected_fixed" with it on; cases where the template raises must fail with a message.
 * Also: the string-arguments option, Python number formatting, and input errors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "base/file.h"
#include "check.h"
#include "text/chat_format.h"
#include "text/chat_template.h"

static char *read_file(const char *path) {
    char *b;
    return g4_read_file(path, (size_t)1 << 31, &b, NULL, NULL) ? NULL : b;
}

static void show_diff(const char *got, const char *want) {
    size_t i = 0;
    while (got[i] && got[i] == want[i]) i++;
    size_t from = i > 40 ? i - 40 : 0;
    fprintf(stderr, "  first difference at byte %zu\n  got:  ...%.120s\n  want: ...%.120s\n", i, got + from,
            want + from);
}

static void check_cases(const char *file, const cJSON *root, int min_cases) {
    int k = 0, n_match = 0, n_fixed_differs = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "cases")) {
        const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
        const cJSON *o = cJSON_GetObjectItem(c, "options");
        g4_chat_options opt;
        g4_chat_options_default(&opt);
        opt.add_generation_prompt = cJSON_IsTrue(cJSON_GetObjectItem(o, "add_generation_prompt"));
        opt.enable_thinking = cJSON_IsTrue(cJSON_GetObjectItem(o, "enable_thinking"));
        opt.preserve_thinking = cJSON_IsTrue(cJSON_GetObjectItem(o, "preserve_thinking"));
        opt.continue_final_message = cJSON_IsTrue(cJSON_GetObjectItem(o, "continue_final_message"));
        const cJSON *msgs = cJSON_GetObjectItem(c, "messages"), *tools = cJSON_GetObjectItem(c, "tools");
        /* Cases given as raw JSON text (duplicate keys, -0) are parsed here, as a server would. */
        const cJSON *raw_m = cJSON_GetObjectItem(c, "messages_json"), *raw_t = cJSON_GetObjectItem(c, "tools_json");
        cJSON *parsed_m = raw_m ? cJSON_Parse(raw_m->valuestring) : NULL;
        cJSON *parsed_t = raw_t ? cJSON_Parse(raw_t->valuestring) : NULL;
        CHECK(!raw_m == !parsed_m && !raw_t == !parsed_t, "%s: raw JSON does not parse", name);
        if (raw_m) msgs = parsed_m;
        if (raw_t) tools = parsed_t;
        for (int fix = 0; fix <= 1; fix++) {
            opt.fix_generation_prompt = fix;
            g4_strbuf out = {0};
            g4_error err = {0};
            int rc = g4_chat_render(msgs, tools, &opt, &out, &err);
            if (cJSON_IsTrue(cJSON_GetObjectItem(c, "error"))) {
                CHECK(rc == -1 && err.msg[0],
                      "%s: template raises, C must fail "
                      "(rc %d, '%s')",
                      name, rc, err.msg);
            } else {
                const char *want = cJSON_GetObjectItem(c, fix ? "expected_fixed" : "expected")->valuestring;
                const char *got = out.data ? out.data : "";
                int ok = rc == 0 && !strcmp(got, want);
                CHECK(ok, "%s (fix %d): rc %d %s", name, fix, rc, err.msg);
                if (!ok && rc == 0) show_diff(got, want);
                if (ok && !fix) n_match++;
                if (ok && fix && strcmp(want, cJSON_GetObjectItem(c, "expected")->valuestring)) n_fixed_differs++;
            }
            g4_strbuf_free(&out);
        }
        cJSON_Delete(parsed_m);
        cJSON_Delete(parsed_t);
        k++;
    }
    printf("%s: %d cases, %d identical to jinja2, %d where the generation-prompt fix applies\n", file, k, n_match,
           n_fixed_differs);
    CHECK(k >= min_cases, "only %d cases in %s", k, file);
    CHECK(n_fixed_differs >= 2, "the quirk cases should exercise the fix");
}

static void check_string_arguments(void) {
    const char *j = "[{\"role\":\"user\",\"content\":\"t\"},{\"role\":\"assistant\",\"tool_calls\":"
                    "[{\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"b\\\":[1,\\\"x\\\"],\\\"a\\\":true}\"}}]}]";
    cJSON *m = cJSON_Parse(j);
    g4_chat_options opt;
    g4_chat_options_default(&opt);
    opt.decode_string_arguments = 1;
    g4_strbuf out = {0};
    g4_error err = {0};
    CHECK(g4_chat_render(m, NULL, &opt, &out, &err) == 0, "%s", err.msg);
    CHECK(out.data && strstr(out.data, "<|tool_call>call:f{a:true,b:[1,<|\"|>x<|\"|>]}<tool_call|>"
                                       "<|tool_response>"),
          "decoded string args: %s", out.data ? out.data : "");
    cJSON_Delete(m);
    g4_strbuf_free(&out);
    m = cJSON_Parse("[{\"role\":\"assistant\",\"tool_calls\":[{\"function\":{\"name\":\"f\","
                    "\"arguments\":\"[1]\"}}]}]");
    CHECK(g4_chat_render(m, NULL, &opt, &out, &err) == -1 && strstr(err.msg, "arguments"),
          "array args string must be refused");
    cJSON_Delete(m);
    g4_strbuf_free(&out);
    m = cJSON_Parse("[{\"content\":\"no role\"}]");
    CHECK(g4_chat_render(m, NULL, &opt, &out, &err) == -1 && strstr(err.msg, "role"), "missing role");
    cJSON_Delete(m);
    g4_strbuf_free(&out);
    m = cJSON_Parse("[{\"role\":\"user\",\"content\":\"x\"}]");
    cJSON *tools = cJSON_Parse("[{\"type\":\"function\"}]");
    CHECK(g4_chat_render(m, tools, &opt, &out, &err) == -1 && strstr(err.msg, "tools[0]"), "tool without function: %s",
          err.msg);
    cJSON_Delete(m);
    cJSON_Delete(tools);
    g4_strbuf_free(&out);
}

static void check_numbers(void) {
    static const struct {
        double x;
        const char *s;
    } t[] = {
        {0, "0"},
        {42, "42"},
        {-7, "-7"},
        {1.5, "1.5"},
        {0.1, "0.1"},
        {1e-05, "1e-05"},
        {0.0001, "0.0001"},
        {2.5e20, "2.5e+20"},
        {1e16, "1e+16"},
        {123.456, "123.456"},
        {1.0000000000000002e16, "1.0000000000000002e+16"},
        {-0.5, "-0.5"},
        {1e-7, "1e-07"},
        {3.14159265358979, "3.14159265358979"},
        {1e300, "1e+300"},
        {1.25e-300, "1.25e-300"},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        char buf[32];
        g4_py_number(t[i].x, buf);
        CHECK(!strcmp(buf, t[i].s), "py_number(%.17g) = %s, want %s", t[i].x, buf, t[i].s);
    }
}

/* Issue 20: an assistant text part without a string "text" made the thinking-stripper strstr()
 * an uninitialised, unterminated buffer (heap over-read under ASan). The template calls
 * text.split() there and raises; the renderer must refuse, naming the message. */
static void check_assistant_part_without_text(void) {
    static const char *const bodies[] = {
        "[{\"role\":\"user\",\"content\":\"hi\"},{\"role\":\"assistant\",\"content\":[{\"type\":\"text\"}]}]",
        "[{\"role\":\"user\",\"content\":\"hi\"},{\"role\":\"assistant\",\"content\":[{\"type\":\"text\",\"text\":null}]}]",
        "[{\"role\":\"user\",\"content\":\"hi\"},{\"role\":\"assistant\",\"content\":[{\"type\":\"text\",\"text\":7}]}]",
        "[{\"role\":\"assistant\",\"content\":[{\"type\":\"text\",\"text\":\"ok\"},{\"type\":\"text\"}]}]",
    };
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        cJSON *m = cJSON_Parse(bodies[i]);
        g4_strbuf out = {0};
        g4_error err = {0};
        int rc = g4_chat_render(m, NULL, NULL, &out, &err);
        CHECK(rc == -1 && strstr(err.msg, "messages[") && strstr(err.msg, "text"),
              "assistant part without string text (case %zu): rc %d, %s", i, rc, err.msg);
        cJSON_Delete(m);
        g4_strbuf_free(&out);
    }
}

int main(void) {
    /* The written cases, then random shapes (well-formed or not) from the same generator. */
    static const struct {
        const char *path;
        int min_cases;
    } files[] = {{"tests/text/data/chat_cases.json", 80}, {"tests/text/data/chat_random_cases.json", 500}};
    for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
        char *text = read_file(files[f].path);
        REQUIRE(text != NULL, "cannot read %s", files[f].path);
        cJSON *cases = cJSON_Parse(text);
        REQUIRE(cases != NULL, "%s does not parse", files[f].path);
        check_cases(files[f].path, cases, files[f].min_cases);
        cJSON_Delete(cases);
        free(text);
    }
    check_string_arguments();
    check_assistant_part_without_text();
    check_numbers();
    return check_summary();
}
