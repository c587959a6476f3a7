/* test_output_parser.c - the streaming output parser on hand-written Gemma outputs.
 *
 * Each case states the expected content, reasoning, tool calls (name + exact JSON) and flags.
 * Every case is run whole, split in two at every byte position, and byte by byte; all runs
 * must give the expected result and every text delta must be complete UTF-8. A seeded fuzz
 * over marker/text soup checks that any split gives the same result as the whole feed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "text/gemma_args.h"
#include "text/output_parser.h"
#include "text/utf8.h"

typedef struct result {
    g4_strbuf content, reasoning, calls; /* calls: "name(args);" per call */
    int malformed, done, n_events, bad_utf8, order_ok;
} result;

static void result_free(result *r) {
    g4_strbuf_free(&r->content);
    g4_strbuf_free(&r->reasoning);
    g4_strbuf_free(&r->calls);
}

static void collect(result *r, g4_parse_events *ev, int *next_index) {
    for (size_t i = 0; i < ev->n; i++) {
        const g4_parse_event *e = &ev->ev[i];
        r->n_events++;
        if (e->kind == G4_PARSE_TOOL_CALL) {
            g4_strbuf_printf(&r->calls, "%s(%s);", e->name, e->text);
            if (e->index != (*next_index)++) r->order_ok = 0;
        } else {
            if (!g4_utf8_valid(e->text, e->len)) r->bad_utf8 = 1;
            g4_strbuf_append(e->kind == G4_PARSE_CONTENT ? &r->content : &r->reasoning, e->text, e->len);
            if (e->malformed) r->malformed = 1;
        }
    }
    g4_parse_events_clear(ev);
}

/* Feeds s[0..n) in pieces of the given cut positions (cuts[0..nc), increasing). */
static void run(const char *s, size_t n, const size_t *cuts, size_t nc, unsigned flags, result *r) {
    memset(r, 0, sizeof *r);
    r->order_ok = 1;
    g4_output_parser *p;
    g4_parse_events ev = {0};
    int next = 0;
    g4_output_parser_new(flags, &p, NULL);
    size_t prev = 0;
    for (size_t c = 0; c <= nc; c++) {
        size_t end = c < nc ? cuts[c] : n;
        g4_output_parser_feed(p, s + prev, end - prev, &ev, NULL);
        collect(r, &ev, &next);
        prev = end;
    }
    g4_output_parser_finish(p, &ev, NULL);
    collect(r, &ev, &next);
    r->done = g4_output_parser_done(p);
    if (g4_output_parser_malformed(p)) r->malformed |= 2;
    g4_output_parser_free(p);
    g4_parse_events_free(&ev);
}

static int str_is(const g4_strbuf *b, const char *want) {
    return b->len == strlen(want) && (b->len == 0 || !memcmp(b->data, want, b->len));
}

typedef struct pcase {
    const char *in, *content, *reasoning, *calls;
    int malformed, done;
    unsigned flags;
} pcase;

#define D "<|\"|>"
static const pcase CASES[] = {
    {"Hello world", "Hello world", "", "", 0, 0, 0},
    {"", "", "", "", 0, 0, 0},
    {"<|channel>thought\nLet me think.\n<channel|>The answer is 4.<turn|>", "The answer is 4.", "Let me think.", "", 0,
     1, 0},
    {"<|channel>thought\n<channel|>Hi", "Hi", "", "", 0, 0, 0},
    {"Hi there!<turn|>ignored <|channel>x", "Hi there!", "", "", 0, 1, 0},
    {"<|tool_call>call:get_weather{city:" D "Paris" D ",unit:" D "celsius" D "}<tool_call|><|tool_response>", "", "",
     "get_weather({\"city\":\"Paris\",\"unit\":\"celsius\"});", 0, 1, 0},
    {"<|channel>thought\nNeed tool.<channel|><|tool_call>call:f{a:1}<tool_call|>", "", "Need tool.", "f({\"a\":1});", 0,
     0, 0},
    {"<|channel>thought\nNeed tool \n<|tool_call>call:f{}<tool_call|>", "", "Need tool", "f({});", 0, 0, 0},
    {"Let me check.\n<|tool_call>call:f{x:true}<tool_call|>", "Let me check.\n", "", "f({\"x\":true});", 0, 0, 0},
    {"<|tool_call>call:a{}<tool_call|><|tool_call>call:b.c-d{k:" D "v" D "}<tool_call|><|tool_response>", "", "",
     "a({});b.c-d({\"k\":\"v\"});", 0, 1, 0},
    {"<|tool_call>call:f{arr:[1," D "two" D ",false],b:true,n:42,obj:{inner:{q:1},k:" D "v" D "},s:" D "a,b{c}" D
     ",x:1.5,z:null}<tool_call|>",
     "", "",
     "f({\"arr\":[1,\"two\",false],\"b\":true,\"n\":42,\"obj\":{\"inner\":{\"q\":1},\"k\":\"v\"},"
     "\"s\":\"a,b{c}\",\"x\":1.5,\"z\":null});",
     0, 0, 0},
    {"<|tool_call>call:translate{text:" D "\xE4\xBB\x8A\xE5\xA4\xA9 \xF0\x9F\x98\x8A \"q\" \\ \n<x>" D ",lang:" D "zh" D
     "}<tool_call|>",
     "", "",
     "translate({\"text\":\"\xE4\xBB\x8A\xE5\xA4\xA9 \xF0\x9F\x98\x8A \\\"q\\\" \\\\ \\n<x>\",\"lang\":\"zh\"});", 0, 0,
     0},
    {"<|tool_call>call:g{m:[[1,2],[3,[4,{a:[]}]]],e:{}}<tool_call|>", "", "",
     "g({\"m\":[[1,2],[3,[4,{\"a\":[]}]]],\"e\":{}});", 0, 0, 0},
    {"<|tool_call>call:h{mode:fast mode,n:-3.5e2,ok:False,nil:None,p:+3,d:.5}<tool_call|>", "", "",
     "h({\"mode\":\"fast mode\",\"n\":-3.5e2,\"ok\":\"False\",\"nil\":null,\"p\":3,\"d\":0.5});", 0, 0, 0},
    /* Issue 20: strtod reads hex; the format's bare-word rule (numbers as Python's float()) keeps
     * these strings. */
    {"<|tool_call>call:f{a:0x1F,b:0X10,c:0x1p3,d:-0x2,e:1e3}<tool_call|>", "", "",
     "f({\"a\":\"0x1F\",\"b\":\"0X10\",\"c\":\"0x1p3\",\"d\":\"-0x2\",\"e\":1e3});", 0, 0, 0},
    {"<|tool_call>call:k{" D "my key" D ":1, dup:1, dup:2}<tool_call|>", "", "", "k({\"my key\":1,\"dup\":2});", 0, 0,
     0},
    {"<|tool_call>call:f{ a : 1 , b : [ 1 , 2 , ] , }<tool_call|>", "", "", "f({\"a\":1,\"b\":[1,2]});", 0, 0, 0},
    {"<|tool_call>call:f{id:12345678901234567890}<tool_call|>", "", "", "f({\"id\":12345678901234567890});", 0, 0, 0},
    {"<|tool_call>call:f{a:" D "unterminated}<tool_call|>after",
     "<|tool_call>call:f{a:" D "unterminated}<tool_call|>after", "", "", 3, 0, 0},
    {"<|tool_call>call:f{a:1", "<|tool_call>call:f{a:1", "", "", 3, 0, 0},
    {"<|tool_call>call:f{a:1}<|tool_response>", "", "", "f({\"a\":1});", 0, 1, 0},
    {"<|tool_call>f{a:1}<tool_call|>", "<|tool_call>f{a:1}<tool_call|>", "", "", 3, 0, 0},
    {"<|tool_call>call:f{a:1<|tool_call>call:g{}<tool_call|>", "<|tool_call>call:f{a:1", "", "g({});", 3, 0, 0},
    {"<|tool_call>call:f{}<tool_call|>trailing", "trailing", "", "f({});", 0, 0, 0},
    {"<|tool_call>call:f{a:[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
     "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}<tool_call|>",
     "<|tool_call>call:f{a:[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
     "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}<tool_call|>",
     "", "", 3, 0, 0},
    {"a<channel|>b<tool_call|>c", "abc", "", "", 0, 0, 0},
    {"x < y and <b>bold</b> <|nope|> <|\"|>", "x < y and <b>bold</b> <|nope|> <|\"|>", "", "", 0, 0, 0},
    {"abc<|chan", "abc<|chan", "", "", 0, 0, 0},
    {"\xE4\xBB\x8A\xE5\xA4\xA9\xE5\xA4\xA9\xE6\xB0\x94 \xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9 e\xCC\x81",
     "\xE4\xBB\x8A\xE5\xA4\xA9\xE5\xA4\xA9\xE6\xB0\x94 \xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9 e\xCC\x81", "", "",
     0, 0, 0},
    {"Checking the result.\n<channel|>\n\nIt is warm.", "It is warm.", "Checking the result.", "", 0, 0,
     G4_PARSE_START_IN_REASONING},
    {"thought\nnot a label here", "thought\nnot a label here", "", "", 0, 0, 0},
    {"done<eos>more", "done", "", "", 0, 1, 0},
    {"<|channel>thought<channel|>X", "X", "", "", 0, 0, 0},
    {"<|channel>Just \xE2\x9C\x93 thinking<channel|>  ok", "ok", "Just \xE2\x9C\x93 thinking", "", 0, 0, 0},
    {"<|channel>thought\n\xE6\x80\x9D\xE8\x80\x83 <|channel> more<channel|>\xE7\xAD\x94", "\xE7\xAD\x94",
     "\xE6\x80\x9D\xE8\x80\x83  more", "", 0, 0, 0},
    {"<|channel>thought\ntruncated reasoning  ", "", "truncated reasoning", "", 0, 0, 0},
    {"pre<|turn>user\nhi", "pre", "", "", 0, 1, 0},
};

static int check_result(const result *r, const pcase *c) {
    return str_is(&r->content, c->content) && str_is(&r->reasoning, c->reasoning) && str_is(&r->calls, c->calls) &&
           r->malformed == c->malformed && r->done == c->done && !r->bad_utf8 && r->order_ok;
}

static void check_cases(void) {
    int n = (int)(sizeof CASES / sizeof CASES[0]);
    for (int k = 0; k < n; k++) {
        const pcase *c = &CASES[k];
        size_t len = strlen(c->in);
        result r;
        run(c->in, len, NULL, 0, c->flags, &r);
        int ok = check_result(&r, c);
        CHECK(ok, "case %d whole: content '%s' reasoning '%s' calls '%s' malformed %d done %d utf8 %d", k,
              r.content.data ? r.content.data : "", r.reasoning.data ? r.reasoning.data : "",
              r.calls.data ? r.calls.data : "", r.malformed, r.done, !r.bad_utf8);
        result_free(&r);
        int split_ok = 1, bytes_ok;
        for (size_t cut = 0; cut <= len; cut++) {
            run(c->in, len, &cut, 1, c->flags, &r);
            if (!check_result(&r, c)) {
                if (split_ok)
                    fprintf(stderr,
                            "  case %d split at %zu: content '%s' reasoning '%s' "
                            "calls '%s'\n",
                            k, cut, r.content.data ? r.content.data : "", r.reasoning.data ? r.reasoning.data : "",
                            r.calls.data ? r.calls.data : "");
                split_ok = 0;
            }
            result_free(&r);
        }
        CHECK(split_ok, "case %d: a two-piece split changes the result", k);
        size_t *cuts = malloc(sizeof *cuts * (len + 1));
        for (size_t i = 0; i < len; i++) cuts[i] = i + 1;
        run(c->in, len, cuts, len ? len - 1 : 0, c->flags, &r);
        bytes_ok = check_result(&r, c);
        CHECK(bytes_ok, "case %d: byte-by-byte feed changes the result", k);
        result_free(&r);
        free(cuts);
    }
    printf("parser: %d cases, each whole, at every split and byte by byte\n", n);
}

/* Random soup of markers, text and multi-byte characters: any split == whole feed. */
static void check_fuzz(void) {
    static const char *atoms[] = {"<|channel>",
                                  "<channel|>",
                                  "thought\n",
                                  "<|tool_call>",
                                  "<tool_call|>",
                                  "call:f{",
                                  "call:g{a:",
                                  D,
                                  "}",
                                  "{",
                                  "[",
                                  "]",
                                  ",",
                                  ":",
                                  "1",
                                  "x y",
                                  "\xE4\xBD\xA0",
                                  "\xF0\x9F\x98\x8A",
                                  "<",
                                  "|",
                                  ">",
                                  " ",
                                  "\n",
                                  "<turn|>",
                                  "<|tool_response>",
                                  "<|chan",
                                  "true"};
    unsigned seed = 99;
    int same = 1, valid = 1;
    for (int it = 0; it < 400; it++) {
        char buf[600];
        size_t n = 0;
        int parts = (int)((seed = seed * 1103515245u + 12345u) >> 16) % 30;
        for (int p = 0; p < parts; p++) {
            const char *a = atoms[((seed = seed * 1103515245u + 12345u) >> 16) % 27];
            memcpy(buf + n, a, strlen(a));
            n += strlen(a);
        }
        result whole, split;
        run(buf, n, NULL, 0, it % 5 == 0 ? G4_PARSE_START_IN_REASONING : 0, &whole);
        size_t cuts[4];
        for (int c = 0; c < 4; c++) cuts[c] = n ? ((seed = seed * 1103515245u + 12345u) >> 16) % (n + 1) : 0;
        for (int a = 0; a < 4; a++) /* sort */
            for (int b = a + 1; b < 4; b++)
                if (cuts[b] < cuts[a]) {
                    size_t t = cuts[a];
                    cuts[a] = cuts[b];
                    cuts[b] = t;
                }
        run(buf, n, cuts, 4, it % 5 == 0 ? G4_PARSE_START_IN_REASONING : 0, &split);
        same &= str_is(&split.content, whole.content.data ? whole.content.data : "") &&
                str_is(&split.reasoning, whole.reasoning.data ? whole.reasoning.data : "") &&
                str_is(&split.calls, whole.calls.data ? whole.calls.data : "") && split.malformed == whole.malformed &&
                split.done == whole.done;
        valid &= !whole.bad_utf8 && !split.bad_utf8;
        result_free(&whole);
        result_free(&split);
    }
    CHECK(same, "fuzz: a split feed differs from the whole feed");
    CHECK(valid, "fuzz: a delta was not complete UTF-8");
}

static void check_value_parser(void) {
    g4_strbuf j = {0};
    CHECK(g4_gemma_value_to_json("[1, " D "a" D ", {b:null}]", strlen("[1, " D "a" D ", {b:null}]"), &j) == 0 &&
              str_is(&j, "[1,\"a\",{\"b\":null}]"),
          "value list: %s", j.data ? j.data : "");
    g4_strbuf_clear(&j);
    CHECK(g4_gemma_value_to_json("{a:1} x", 7, &j) == -1, "trailing garbage refused");
    CHECK(g4_gemma_value_to_json("", 0, &j) == -1, "empty refused");
    CHECK(g4_gemma_value_to_json("{:1}", 4, &j) == -1, "empty key refused");
    g4_strbuf_free(&j);
}

int main(void) {
    check_cases();
    check_fuzz();
    check_value_parser();
    return check_summary();
}
