/* test_stop.c — stop rules on scripted token texts: stop strings split across tokens, held-back
 * text released when it can no longer start a match, the first-completing of several strings,
 * stop ids and eos (and ignore_eos), min_tokens suppressing every stop, max_tokens, and the tail
 * shown at the end; with include_stop_str_in_output: the text without it plus the stop string,
 * nothing held back while a string may be forming, a match starting in text already shown, and
 * a stop id delivered with its text. Each case checks the shown text against a direct
 * computation. */
#include <string.h>

#include "check.h"
#include "engine/stop.h"

typedef struct run {
    char shown[512];
    size_t shown_at[8]; /* bytes shown after each token */
    g4_finish_reason finish;
    int stop_string, n_tokens, delivered;
    int32_t stop_token;
} run;

/* Feeds tokens 1..n with the given texts; finishes like the engine does. */
static void feed(const g4_stop_rules *rules, const int32_t *eos, int n_eos, const int32_t *ids,
                 const char *const *texts, int n, run *out) {
    g4_stop s;
    g4_error err = {{0}};
    memset(out, 0, sizeof *out);
    out->stop_string = -1;
    if (g4_stop_init(&s, rules, eos, n_eos, &err)) {
        CHECK(0, "init: %s", err.msg);
        return;
    }
    for (int i = 0; i < n; i++) {
        g4_stop_result r;
        CHECK(g4_stop_token(&s, ids[i], i + 1, texts[i], strlen(texts[i]), &r, &err) == 0, "%s", err.msg);
        strcat(out->shown, r.text);
        out->shown_at[i] = strlen(out->shown);
        out->n_tokens = i + 1;
        out->delivered += r.deliver;
        if (r.finish == G4_FINISH_NONE) continue;
        out->finish = r.finish;
        out->stop_string = r.stop_string;
        out->stop_token = r.stop_token;
        if (r.stop_string < 0) { /* the engine's tail: a stop id's own text, shown with include */
            const char *tail = r.stop_token >= 0 && rules->include_stop_str_in_output ? texts[i] : "";
            g4_stop_result t;
            g4_stop_finish(&s, i + 1, tail, strlen(tail), &t, &err);
            strcat(out->shown, t.text);
            if (t.stop_string >= 0) out->stop_string = t.stop_string;
        }
        break;
    }
    g4_stop_free(&s);
}

int main(void) {
    static const int32_t eos[2] = {1, 106};
    int32_t ids[8] = {10, 11, 12, 13, 14, 15, 16, 17};
    const char *texts[8] = {"Hel", "lo, wo", "rld! E", "ND", " more", " text", "x", "y"};
    g4_stop_rules r;
    run o;

    /* "world! END" split over four tokens */
    g4_stop_rules_default(&r);
    r.max_tokens = 8;
    const char *ss1[2] = {"xyz", "d! EN"};
    r.stop_strings = ss1;
    r.n_stop_strings = 2;
    feed(&r, eos, 2, ids, texts, 8, &o);
    CHECK(o.finish == G4_FINISH_STOP && o.stop_string == 1, "finish %d string %d", o.finish, o.stop_string);
    CHECK(!strcmp(o.shown, "Hello, worl"), "shown \"%s\"", o.shown);
    CHECK(o.n_tokens == 4 && o.delivered == 4, "stopped at token %d", o.n_tokens);

    /* include_stop_str_in_output: the same text plus the string ("D" after it is cut), each
     * token's text shown at once although "d! E" could start the string */
    r.include_stop_str_in_output = true;
    run inc;
    feed(&r, eos, 2, ids, texts, 8, &inc);
    CHECK(inc.finish == G4_FINISH_STOP && inc.stop_string == 1 && inc.n_tokens == 4 && inc.delivered == 4,
          "include: finish %d string %d at token %d", inc.finish, inc.stop_string, inc.n_tokens);
    char want[512];
    snprintf(want, sizeof want, "%s%s", o.shown, ss1[1]);
    CHECK(!strcmp(inc.shown, want), "include shown \"%s\", want \"%s\"", inc.shown, want);
    CHECK(inc.shown_at[0] == 3 && inc.shown_at[1] == 9 && inc.shown_at[2] == 15, "include held text back: %zu %zu %zu",
          inc.shown_at[0], inc.shown_at[1], inc.shown_at[2]);
    r.include_stop_str_in_output = false;

    /* a held-back prefix that turns out not to match is released with the next token */
    const char *ss2[1] = {"wox"};
    r.stop_strings = ss2;
    r.n_stop_strings = 1;
    r.max_tokens = 3;
    feed(&r, eos, 2, ids, texts, 8, &o);
    CHECK(o.finish == G4_FINISH_LENGTH && !strcmp(o.shown, "Hello, world! E"), "finish %d shown \"%s\"", o.finish,
          o.shown);

    /* the earliest match wins over an earlier-listed string */
    const char *ss3[2] = {"rld", "lo,"};
    r.stop_strings = ss3;
    r.n_stop_strings = 2;
    r.max_tokens = 8;
    feed(&r, eos, 2, ids, texts, 8, &o);
    CHECK(o.stop_string == 1 && !strcmp(o.shown, "Hel"), "earliest: %d \"%s\"", o.stop_string, o.shown);

    /* of two matches in one token's text the first listed string wins, as vLLM's
     * check_stop_strings (not the first to start or to complete) */
    {
        const char *ss_end[2] = {"abcd", "bc"}, *one[1] = {"xabcde"};
        int32_t id1[1] = {10};
        g4_stop_rules_default(&r);
        r.max_tokens = 8;
        r.stop_strings = ss_end;
        r.n_stop_strings = 2;
        feed(&r, eos, 2, id1, one, 1, &o);
        CHECK(o.stop_string == 0 && !strcmp(o.shown, "x"), "first listed: %d \"%s\"", o.stop_string, o.shown);
        r.include_stop_str_in_output = true;
        feed(&r, eos, 2, id1, one, 1, &o);
        CHECK(o.stop_string == 0 && !strcmp(o.shown, "xabcd"), "include, first listed: %d \"%s\"", o.stop_string,
              o.shown);
    }

    /* eos id: not delivered, text before it shown (held text too) */
    g4_stop_rules_default(&r);
    r.max_tokens = 8;
    const char *ss4[1] = {"wo!"};
    r.stop_strings = ss4;
    r.n_stop_strings = 1;
    int32_t ids_eos[3] = {10, 11, 106};
    feed(&r, eos, 2, ids_eos, texts, 3, &o);
    CHECK(o.finish == G4_FINISH_STOP && o.stop_token == 106 && o.delivered == 2, "eos: finish %d token %d delivered %d",
          o.finish, o.stop_token, o.delivered);
    CHECK(!strcmp(o.shown, "Hello, wo"), "eos shown \"%s\"", o.shown);
    /* include: the eos is delivered and its text (as the detokenizer renders it) shown */
    {
        const char *eos_texts[3] = {"Hel", "lo, wo", "<eos>"};
        r.include_stop_str_in_output = true;
        feed(&r, eos, 2, ids_eos, eos_texts, 3, &o);
        CHECK(o.finish == G4_FINISH_STOP && o.stop_token == 106 && o.delivered == 3 && o.stop_string < 0,
              "include eos: finish %d token %d delivered %d", o.finish, o.stop_token, o.delivered);
        CHECK(!strcmp(o.shown, "Hello, wo<eos>"), "include eos shown \"%s\"", o.shown);
        /* a stop string the eos's text completes: shown up to the string's end, both reported */
        const char *ss_eos[1] = {"o<e"};
        r.stop_strings = ss_eos;
        feed(&r, eos, 2, ids_eos, eos_texts, 3, &o);
        CHECK(o.finish == G4_FINISH_STOP && o.stop_token == 106 && o.stop_string == 0 &&
                  !strcmp(o.shown, "Hello, wo<e"),
              "include eos completing a string: %d %d \"%s\"", o.stop_token, o.stop_string, o.shown);
        r.stop_strings = ss4;
        r.include_stop_str_in_output = false;
    }
    r.ignore_eos = true;
    feed(&r, eos, 2, ids_eos, texts, 3, &o);
    CHECK(o.finish == G4_FINISH_NONE && o.delivered == 3, "ignore_eos: finish %d", o.finish);
    int32_t extra = 11;
    r.stop_ids = &extra;
    r.n_stop_ids = 1;
    feed(&r, eos, 2, ids_eos, texts, 3, &o);
    CHECK(o.finish == G4_FINISH_STOP && o.stop_token == 11 && o.n_tokens == 2, "stop id with ignore_eos");

    /* min_tokens: nothing stops before 4 tokens, a match inside them is shown */
    g4_stop_rules_default(&r);
    r.max_tokens = 8;
    r.min_tokens = 4;
    const char *ss5[1] = {"lo"};
    r.stop_strings = ss5;
    r.n_stop_strings = 1;
    int32_t ids_min[8] = {10, 1, 12, 13, 1, 15, 16, 17};
    feed(&r, eos, 2, ids_min, texts, 8, &o);
    CHECK(o.finish == G4_FINISH_STOP && o.stop_token == 1 && o.n_tokens == 5, "min_tokens: finish %d at %d", o.finish,
          o.n_tokens);
    CHECK(!strcmp(o.shown, "Hello, world! END"), "min_tokens shown \"%s\"", o.shown);
    /* vLLM's count: a stop id ends the output only once min_tokens tokens precede it, so the
     * 4th token (the one at min_tokens) is no stop, the 5th is */
    int32_t ids_edge[8] = {10, 11, 12, 1, 1, 15, 16, 17};
    feed(&r, eos, 2, ids_edge, texts, 8, &o);
    CHECK(o.finish == G4_FINISH_STOP && o.stop_token == 1 && o.n_tokens == 5, "min_tokens edge: finish %d at %d",
          o.finish, o.n_tokens);
    /* include: a match shown before min_tokens does not stop later from the kept shown text (the
     * long second string keeps 9 bytes of it, "lo, wo" included) */
    {
        const char *ss_min[2] = {"lo", "zzzzzzzzzz"};
        r.stop_strings = ss_min;
        r.n_stop_strings = 2;
        r.min_tokens = 3;
        r.max_tokens = 4;
        r.include_stop_str_in_output = true;
        feed(&r, eos, 2, ids, texts, 8, &o);
        CHECK(o.finish == G4_FINISH_LENGTH && o.stop_string < 0 && !strcmp(o.shown, "Hello, world! END"),
              "include min_tokens: finish %d string %d \"%s\"", o.finish, o.stop_string, o.shown);
        r.include_stop_str_in_output = false;
    }

    /* the detokenizer tail at the end completes a stop string */
    {
        g4_stop s;
        g4_error err = {{0}};
        g4_stop_rules_default(&r);
        r.max_tokens = 1;
        const char *ss6[1] = {"ab"};
        r.stop_strings = ss6;
        r.n_stop_strings = 1;
        g4_stop_init(&s, &r, eos, 2, &err);
        g4_stop_result x;
        g4_stop_token(&s, 10, 1, "xa", 2, &x, &err);
        CHECK(x.finish == G4_FINISH_LENGTH && x.n_text == 0, "held 'a' at the end: %d %zu", x.finish, x.n_text);
        g4_stop_finish(&s, 1, "bc", 2, &x, &err);
        CHECK(x.stop_string == 0 && !strcmp(x.text, "x"), "tail: %d \"%s\"", x.stop_string, x.text);
        g4_stop_free(&s);
    }
    return check_summary();
}
