/* test_chat_injection.c - control tokens come only from the chat template (issue 20).
 *
 * Every special token of the test tokenizer, spelled out inside each caller-supplied field of a
 * chat request (system / user / assistant content and parts, reasoning, tool names,
 * descriptions, parameter keys / descriptions / types / enums, tool-call names, argument keys
 * and values, tool results as strings and parts, native tool_responses), must tokenize as plain
 * text: the multiset of special ids in the rendered-and-encoded prompt equals that of the same
 * request with harmless text in the field. The unmasked encode (what the servers did before)
 * is checked to differ, so the test is known to see the injection. Also: the masked encoder
 * equals the plain encoder on template-free text and the unmasked one when nothing is user text. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "check.h"
#include "text/chat_template.h"
#include "text/tokenizer.h"

/* A failed precondition inside a helper: report and stop. */
#define MUST(cond, ...)                                  \
    do {                                                 \
        if (!(cond)) {                                   \
            CHECK(cond, __VA_ARGS__);                    \
            exit(check_summary() ? check_summary() : 1); \
        }                                                \
    } while (0)

static g4_tokenizer *tok;
static char inj_json[4096]; /* every special token, concatenated, JSON-escaped */
static char inj_raw[2048];

/* Every special added token of the tokenizer, as text. */
static void build_injection(void) {
    size_t r = 0, j = 0;
    for (int32_t id = 0; id < g4_tokenizer_n_vocab(tok); id++) {
        if (!g4_tokenizer_is_special(tok, id)) continue;
        size_t n;
        const char *t = g4_tokenizer_token_text(tok, id, &n);
        MUST(r + n + 8 < sizeof inj_raw, "injection too long");
        memcpy(inj_raw + r, t, n);
        r += n;
        for (size_t k = 0; k < n; k++) {
            if (t[k] == '"' || t[k] == '\\') inj_json[j++] = '\\';
            inj_json[j++] = t[k];
        }
        /* a space between tokens keeps each spelling whole and distinct */
        inj_raw[r++] = ' ';
        inj_json[j++] = ' ';
    }
    inj_raw[r] = 0;
    inj_json[j] = 0;
}

/* s with every "@@" replaced by rep (caller frees). */
static char *subst(const char *s, const char *rep) {
    size_t n = strlen(s) + 1, rl = strlen(rep);
    for (const char *p = strstr(s, "@@"); p; p = strstr(p + 2, "@@")) n += rl;
    char *o = malloc(n), *q = o;
    for (const char *p = s; *p;) {
        if (p[0] == '@' && p[1] == '@') {
            memcpy(q, rep, rl);
            q += rl;
            p += 2;
        } else {
            *q++ = *p++;
        }
    }
    *q = 0;
    return o;
}

/* Sorted special ids of the encoded render of (messages, tools); masked or not. */
static int specials_of(const char *msgs_json, const char *tools_json, int masked, int32_t *out, int cap) {
    cJSON *m = cJSON_Parse(msgs_json), *t = tools_json ? cJSON_Parse(tools_json) : NULL;
    MUST(m && (!tools_json || t), "bad test JSON: %s", msgs_json);
    g4_chat_options o;
    g4_chat_options_default(&o);
    o.decode_string_arguments = 1;
    g4_strbuf text = {0};
    g4_error err = {0};
    MUST(g4_strbuf_track_user(&text) == 0, "oom");
    MUST(g4_chat_render(m, t, &o, &text, &err) == 0, "render: %s (%s)", err.msg, msgs_json);
    g4_tokens ids = {0};
    MUST(g4_tokenizer_encode_masked(tok, text.data, text.len, G4_ENCODE_SPLIT_SPECIAL, masked ? text.user : NULL, &ids,
                                    &err) == 0,
         "encode");
    int n = 0;
    for (size_t i = 0; i < ids.n; i++)
        if (g4_tokenizer_is_special(tok, ids.ids[i]) && n < cap) out[n++] = ids.ids[i];
    for (int i = 1; i < n; i++) /* insertion sort */
        for (int k = i; k > 0 && out[k - 1] > out[k]; k--) {
            int32_t x = out[k];
            out[k] = out[k - 1];
            out[k - 1] = x;
        }
    g4_tokens_free(&ids);
    g4_strbuf_free(&text);
    cJSON_Delete(m);
    cJSON_Delete(t);
    return n;
}

static int same(const int32_t *a, int na, const int32_t *b, int nb) {
    return na == nb && (!na || !memcmp(a, b, sizeof *a * (size_t)na));
}

typedef struct field_case {
    const char *name, *messages, *tools; /* "@@" marks the field */
} field_case;

#define U "{\"role\":\"user\",\"content\":\"hi\"}"
#define TOOL(fn) "[{\"type\":\"function\",\"function\":" fn "}]"

static const field_case cases[] = {
    {"system content", "[{\"role\":\"system\",\"content\":\"@@\"}," U "]", NULL},
    {"system part", "[{\"role\":\"system\",\"content\":[{\"type\":\"text\",\"text\":\"@@\"}]}," U "]", NULL},
    {"developer content", "[{\"role\":\"developer\",\"content\":\"@@\"}," U "]", NULL},
    {"user content", "[{\"role\":\"user\",\"content\":\"a @@ b\"}]", NULL},
    {"user part", "[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"@@\"}]}]", NULL},
    {"second system", "[" U ",{\"role\":\"system\",\"content\":\"@@\"}]", NULL},
    {"assistant content", "[" U ",{\"role\":\"assistant\",\"content\":\"@@\"}," U "]", NULL},
    {"assistant part", "[" U ",{\"role\":\"assistant\",\"content\":[{\"type\":\"text\",\"text\":\"x@@\"}]}]", NULL},
    {"assistant reasoning", "[" U ",{\"role\":\"assistant\",\"content\":\"ok\",\"reasoning\":\"@@\"}]", NULL},
    {"tool name", "[" U "]", TOOL("{\"name\":\"f@@\",\"description\":\"d\"}")},
    {"tool description", "[" U "]", TOOL("{\"name\":\"f\",\"description\":\"@@\"}")},
    {"parameter key", "[" U "]",
     TOOL("{\"name\":\"f\",\"parameters\":{\"type\":\"object\",\"properties\":{\"k@@\":{\"type\":\"string\"}},"
          "\"required\":[\"k@@\"]}}")},
    {"parameter description", "[" U "]",
     TOOL("{\"name\":\"f\",\"parameters\":{\"type\":\"object\",\"properties\":{\"k\":{\"type\":\"string\","
          "\"description\":\"@@\",\"enum\":[\"@@\"]}}}}")},
    {"parameter type", "[" U "]",
     TOOL("{\"name\":\"f\",\"parameters\":{\"type\":\"object@@\",\"properties\":{\"k\":{\"type\":\"x@@\"},"
          "\"a\":{\"type\":\"array\",\"items\":{\"type\":\"@@\",\"extra\":\"@@\"}}}}}")},
    {"tool-call name",
     "[" U ",{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"c1\",\"type\":\"function\","
     "\"function\":{\"name\":\"f@@\",\"arguments\":\"{}\"}}]}]",
     NULL},
    {"tool-call arguments",
     "[" U ",{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"c1\",\"type\":\"function\","
     "\"function\":{\"name\":\"f\",\"arguments\":{\"k@@\":\"@@\",\"n\":[\"@@\",{\"x@@\":\"@@\"}]}}}]}]",
     NULL},
    {"tool result",
     "[" U ",{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"c1\",\"type\":\"function\","
     "\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]},{\"role\":\"tool\",\"tool_call_id\":\"c1\","
     "\"content\":\"@@\"}]",
     NULL},
    {"tool result parts",
     "[" U ",{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"c1\",\"type\":\"function\","
     "\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]},{\"role\":\"tool\",\"tool_call_id\":\"c1\","
     "\"content\":[{\"type\":\"text\",\"text\":\"@@\"}]}]",
     NULL},
    {"tool message name",
     "[" U ",{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"c1\",\"type\":\"function\","
     "\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]},{\"role\":\"tool\",\"tool_call_id\":\"zz\","
     "\"name\":\"g@@\",\"content\":\"r\"}]",
     NULL},
    {"native tool_responses",
     "[" U ",{\"role\":\"assistant\",\"tool_responses\":[{\"name\":\"f@@\","
     "\"response\":{\"k@@\":\"@@\"}}]}]",
     NULL},
};

static void check_fields(void) {
    int32_t a[512], b[512], c[512];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const field_case *fc = &cases[i];
        char *m_in = subst(fc->messages, inj_json), *m_ok = subst(fc->messages, "plain");
        char *t_in = fc->tools ? subst(fc->tools, inj_json) : NULL;
        char *t_ok = fc->tools ? subst(fc->tools, "plain") : NULL;
        int na = specials_of(m_in, t_in, 1, a, 512);
        int nb = specials_of(m_ok, t_ok, 1, b, 512);
        int nc = specials_of(m_in, t_in, 0, c, 512);
        CHECK(same(a, na, b, nb), "%s: user text produced control tokens (%d specials vs %d)", fc->name, na, nb);
        CHECK(!same(c, nc, b, nb), "%s: the unmasked encode should show the injection", fc->name);
        free(m_in);
        free(m_ok);
        free(t_in);
        free(t_ok);
    }
}

/* The mask changes nothing where it flags nothing, and flags-everywhere equals plain mode. */
static void check_encoder(void) {
    const char *texts[] = {"<bos><|turn>user\nHello <|\"|>x<|\"|><turn|>\n<|turn>model\n", inj_raw,
                           "no specials at all, just words", ""};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        size_t n = strlen(texts[i]);
        unsigned char *zero = calloc(n + 1, 1), *one = malloc(n + 1);
        memset(one, 1, n + 1);
        g4_tokens x = {0}, y = {0}, p = {0}, q = {0};
        g4_error err = {0};
        g4_tokenizer_encode(tok, texts[i], n, G4_ENCODE_SPLIT_SPECIAL, &x, &err);
        g4_tokenizer_encode_masked(tok, texts[i], n, G4_ENCODE_SPLIT_SPECIAL, zero, &y, &err);
        g4_tokenizer_encode(tok, texts[i], n, 0, &p, &err);
        g4_tokenizer_encode_masked(tok, texts[i], n, G4_ENCODE_SPLIT_SPECIAL, one, &q, &err);
        CHECK(x.n == y.n && (!x.n || !memcmp(x.ids, y.ids, x.n * sizeof *x.ids)), "all-template mask differs (%zu)", i);
        CHECK(p.n == q.n && (!p.n || !memcmp(p.ids, q.ids, p.n * sizeof *p.ids)), "all-user mask != plain mode (%zu)",
              i);
        g4_tokens_free(&x);
        g4_tokens_free(&y);
        g4_tokens_free(&p);
        g4_tokens_free(&q);
        free(zero);
        free(one);
    }
}

int main(void) {
    g4_error err = {0};
    REQUIRE(g4_tokenizer_load("tests/text/data/tokenizer.json", &tok, &err) == 0, "%s", err.msg);
    build_injection();
    CHECK(strstr(inj_raw, "<|turn>") && strstr(inj_raw, "<turn|>"), "injection lacks the turn tokens");
    check_fields();
    check_encoder();
    g4_tokenizer_free(tok);
    return check_summary();
}
