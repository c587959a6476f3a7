/* test_grammar_units.c - behaviours of the grammar engine that the data-driven tests do not reach:
 * the whitespace option, oneOf-as-anyOf, compile limits and their messages, refused keywords named
 * in the error, end tokens only in accepting states, special tokens never allowed, property order. */
#include <stdio.h>
#include <string.h>

#include "grammar/gbnf.h"
#include "grammar/json_schema.h"
#include "grammar/token_mask.h"

static int failures;
#define CHECK(cond, ...)                                \
    do {                                                \
        if (!(cond)) {                                  \
            failures++;                                 \
            printf("FAIL %s:%d: ", __FILE__, __LINE__); \
            printf(__VA_ARGS__);                        \
            printf("\n");                               \
        }                                               \
    } while (0)

static int accepts(const g4_grammar *g, const char *text) {
    g4_matcher *m = g4_matcher_new(g);
    int ok = g4_matcher_advance(m, text, strlen(text)) == 0 && g4_matcher_accepting(m);
    g4_matcher_free(m);
    return ok;
}

static g4_grammar *schema(const char *s, const g4_json_schema_opts *o, const g4_grammar_limits *lim, g4_error *err) {
    g4_grammar *g = NULL;
    if (g4_json_schema_compile(s, strlen(s), o, lim, &g, err)) return NULL;
    return g;
}

int main(void) {
    g4_error err = {{0}};
    /* whitespace: compact by default, up to ws_max bytes when asked */
    const char *obj =
        "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"},\"b\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}}},\"required\":[\"a\"]}";
    g4_grammar *g = schema(obj, NULL, NULL, &err);
    CHECK(g, "compile: %s", err.msg);
    CHECK(accepts(g, "{\"a\":1,\"b\":[\"x\"]}"), "compact accepted");
    CHECK(!accepts(g, "{\"a\": 1}"), "whitespace refused by default");
    CHECK(!accepts(g, "{\"b\":[],\"a\":1}"), "properties in schema order only");
    CHECK(!accepts(g, "{\"b\":[]}"), "required property missing");
    g4_grammar_free(g);
    { /* an exponentially ambiguous grammar: the step fails at the head cap, in bounded time
       * (tests/fuzz found it hanging at 75,000 heads after 20 bytes) */
        const char *amb = "root ::= x\nx ::= \"(\" x | \"(\" | \"(\" x x\n";
        g4_grammar *ga = NULL;
        CHECK(g4_gbnf_compile(amb, strlen(amb), NULL, &ga, &err) == 0, "ambiguous grammar compiles: %s", err.msg);
        g4_matcher *m = ga ? g4_matcher_new(ga) : NULL;
        int failed_at = -1, max_heads = 0;
        for (int i = 0; m && i < 64; i++) {
            if (g4_matcher_advance(m, "(", 1)) {
                failed_at = i;
                break;
            }
            if (g4_matcher_n_heads(m) > max_heads) max_heads = g4_matcher_n_heads(m);
        }
        CHECK(failed_at > 4 && max_heads <= G4_MATCHER_MAX_HEADS,
              "the ambiguous grammar stops at the head cap (failed at byte %d, %d heads at most)", failed_at,
              max_heads);
        CHECK(!m || accepts(ga, "((("), "short inputs of the ambiguous grammar still match");
        g4_matcher_free(m);
        g4_grammar_free(ga);
    }
    g4_json_schema_opts ws = {.ws_max = 2};
    g = schema(obj, &ws, NULL, &err);
    CHECK(g && accepts(g, " { \"a\" : 1 ,\n\"b\": [ \"x\" , \"y\" ] } "), "ws_max 2 accepted");
    CHECK(g && !accepts(g, "{\"a\":   1}"), "three spaces over ws_max 2");
    g4_grammar_free(g);
    /* oneOf: overlapping branches refused by default, compiled as anyOf when asked */
    const char *one = "{\"oneOf\":[{\"type\":\"integer\"},{\"minimum\":2}]}";
    g = schema(one, NULL, NULL, &err);
    CHECK(!g && strstr(err.msg, "oneOf"), "overlapping oneOf refused: %s", err.msg);
    g4_json_schema_opts any = {.oneof_as_anyof = 1};
    g = schema(one, &any, NULL, &err);
    CHECK(g && accepts(g, "1") && accepts(g, "2.5"), "oneOf as anyOf");
    g4_grammar_free(g);
    g = schema("{\"oneOf\":[{\"type\":\"string\"},{\"type\":\"integer\"}]}", NULL, NULL, &err);
    CHECK(g && accepts(g, "\"x\"") && accepts(g, "3") && !accepts(g, "true"), "disjoint oneOf");
    g4_grammar_free(g);
    g = schema(
        "{\"oneOf\":[{\"type\":\"object\",\"properties\":{\"kind\":{\"const\":\"a\"},\"x\":{\"type\":\"integer\"}},\"required\":[\"kind\"]},"
        "{\"type\":\"object\",\"properties\":{\"kind\":{\"enum\":[\"b\",\"c\"]}},\"required\":[\"kind\"]}]}",
        NULL, NULL, &err);
    CHECK(g && accepts(g, "{\"kind\":\"a\",\"x\":1}") && accepts(g, "{\"kind\":\"c\"}") &&
              !accepts(g, "{\"kind\":\"d\"}"),
          "oneOf with a discriminator property: %s", g ? "" : err.msg);
    g4_grammar_free(g);
    /* refused keywords are named */
    const char *kws[] = {"not",           "if",       "patternProperties",     "multipleOf",
                         "minProperties", "contains", "unevaluatedProperties", "dependentRequired"};
    for (int i = 0; i < 8; i++) {
        char s[128];
        snprintf(s, sizeof s, "{\"type\":\"object\",\"%s\":{}}", kws[i]);
        g = schema(s, NULL, NULL, &err);
        CHECK(!g && strstr(err.msg, kws[i]), "%s refused by name: %s", kws[i], err.msg);
    }
    g = schema("{\"type\":\"string\",\"format\":\"hostname\"}", NULL, NULL, &err);
    CHECK(!g && strstr(err.msg, "hostname"), "unknown format named: %s", err.msg);
    g = schema("{\"type\":\"number\",\"minimum\":-0.25,\"exclusiveMaximum\":1.5}", NULL, NULL, &err);
    CHECK(g, "fractional bounds: %s", err.msg);
    const char *in[] = {"-0.25", "-0.2", "0", "0.0", "1", "1.49999", "-0.1"},
               *out[] = {"-0.26", "-0.250001", "1.5", "1.50", "2", "-1", "-0"};
    for (int i = 0; g && i < 7; i++) {
        CHECK(accepts(g, in[i]), "%s in [-0.25, 1.5)", in[i]);
        CHECK(!accepts(g, out[i]), "%s not in [-0.25, 1.5)", out[i]);
    }
    g4_grammar_free(g);
    g = schema("{\"type\":\"integer\",\"minimum\":0.5,\"exclusiveMaximum\":3}", NULL, NULL, &err);
    CHECK(g && accepts(g, "1") && accepts(g, "2") && !accepts(g, "0") && !accepts(g, "3"),
          "integer with fractional bound");
    g4_grammar_free(g);
    /* limits */
    g4_grammar_limits tiny = g4_grammar_default_limits();
    tiny.max_states = 50;
    g = schema(obj, NULL, &tiny, &err);
    CHECK(!g && strstr(err.msg, "limit"), "state limit: %s", err.msg);
    g = schema("{\"type\":\"string\",\"maxLength\":100000}", NULL, NULL, &err);
    CHECK(!g && strstr(err.msg, "maxLength"), "maxLength over the limit: %s", err.msg);
    g = schema("{\"$ref\":\"#/$defs/a\",\"$defs\":{\"a\":{\"$ref\":\"#/$defs/a\"}}}", NULL, NULL, &err);
    CHECK(!g, "a $ref cycle without content is refused: %s", err.msg);
    g = schema("{\"type\":\"object\",\"properties\":{\"n\":{\"$ref\":\"#\"}},\"required\":[\"n\"]}", NULL, NULL, &err);
    CHECK(!g && strstr(err.msg, "no finite"), "infinite required recursion refused: %s", err.msg);
    /* recursion that can end */
    g = schema("{\"type\":\"object\",\"properties\":{\"n\":{\"$ref\":\"#\"}}}", NULL, NULL, &err);
    CHECK(g && accepts(g, "{\"n\":{\"n\":{}}}") && !accepts(g, "{\"n\":1}"), "recursive $ref");
    /* masks: end tokens only when accepting; special tokens never */
    const char *toks[] = {NULL, "{", "}", "\"n\":", "{\"n\":", "x"};
    uint32_t lens[] = {0, 1, 1, 4, 5, 1};
    g4_token_trie *t;
    CHECK(g4_token_trie_build(toks, lens, 6, &t, &err) == 0, "trie");
    g4_mask_cache *mc = g4_mask_cache_new(g, t);
    g4_matcher *m = g4_matcher_new(g);
    uint32_t mask[1];
    int32_t end = 0;
    g4_token_mask(mc, m, &end, 1, mask);
    CHECK(mask[0] == ((1u << 1) | (1u << 4)), "start: { and {\"n\": only (mask %x)", mask[0]);
    g4_matcher_advance_token(m, t, 4);
    g4_token_mask(mc, m, &end, 1, mask);
    CHECK(mask[0] == ((1u << 1) | (1u << 4)), "after {\"n\": (mask %x)", mask[0]);
    g4_matcher_advance_token(m, t, 1);
    g4_matcher_advance_token(m, t, 2);
    g4_token_mask(mc, m, &end, 1, mask);
    CHECK(mask[0] == (1u << 2), "inner object closed: only } (mask %x)", mask[0]);
    g4_matcher_advance_token(m, t, 2);
    g4_token_mask(mc, m, &end, 1, mask);
    CHECK(mask[0] == (1u << 0), "complete: only the end token (mask %x)", mask[0]);
    g4_matcher_free(m);
    g4_mask_cache_free(mc);
    g4_token_trie_free(t);
    g4_grammar_free(g);
    if (failures) {
        printf("%d failures\n", failures);
        return 1;
    }
    printf("all grammar unit checks passed\n");
    return 0;
}
