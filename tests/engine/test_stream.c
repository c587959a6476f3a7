/* test_stream.c — engine/stream.h, the owned-event queue, under allocation failure.
 *
 * This test replaces the queue's allocation seam (g4_stream_alloc) with one that fails on demand,
 * then checks: events are owned copies delivered in order with their sink's tag; with every
 * engine-thread allocation failing, a request's token events are lost (counted) but its last
 * event — allocated when the sink was made — still arrives with its finish reason, usage and an
 * error message, and its lost text and top logprobs are flagged; a sink that never pushed frees
 * its last event. An event's top lists are copied whole, also the 128 entries of logprob ids. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "engine/stream.h"

static bool fail_engine_allocs;
static int n_allocs;

void *g4_stream_alloc(g4_stream_alloc_kind kind, size_t bytes) {
    n_allocs++;
    if (kind != G4_STREAM_ALLOC_LAST && fail_engine_allocs) return NULL;
    return calloc(1, bytes);
}

static g4_event token_event(uint64_t id, int32_t token, const char *text) {
    static const int32_t top[2] = {7, 8};
    static const float lp[2] = {-0.5f, -1.5f};
    return (g4_event){.id = id,
                      .n_tokens = 1,
                      .token = token,
                      .text = text,
                      .logprob = -0.25f,
                      .n_top = 2,
                      .top_ids = top,
                      .top_logprobs = lp,
                      .stop_token = -1};
}

static void test_copies_in_order(void) {
    g4_stream *s = g4_stream_create();
    g4_stream_sink a, b;
    int tag_a, tag_b;
    REQUIRE_VOID(s && !g4_stream_sink_init(&a, s, &tag_a) && !g4_stream_sink_init(&b, s, &tag_b), "init");
    char text[8] = "one";
    g4_event e1 = token_event(1, 11, text);
    CHECK(g4_stream_sink_push(&a, &e1), "queued");
    strcpy(text, "XXX"); /* the queue holds its own copy */
    g4_event e2 = token_event(2, 22, "two");
    g4_stream_sink_push(&b, &e2);
    g4_event last = {.id = 1,
                     .finish = G4_FINISH_STOP,
                     .text = "",
                     .stop_string = "END",
                     .stop_token = -1,
                     .prompt_tokens = 3,
                     .completion_tokens = 1};
    CHECK(g4_stream_sink_push(&a, &last), "last queued");
    g4_stream_event *l = g4_stream_take(s);
    REQUIRE_VOID(l && l->next && l->next->next && !l->next->next->next, "three events");
    CHECK(l->tag == &tag_a && l->ev.token == 11 && !strcmp(l->ev.text, "one"), "first: token 11 \"one\"");
    CHECK(l->ev.n_top == 2 && l->ev.top_ids[1] == 8 && l->ev.top_logprobs[0] == -0.5f, "top logprobs copied");
    CHECK(l->next->tag == &tag_b && !strcmp(l->next->ev.text, "two"), "second: b's");
    const g4_stream_event *f = l->next->next;
    CHECK(f->ev.finish == G4_FINISH_STOP && !strcmp(f->ev.stop_string, "END") && f->ev.prompt_tokens == 3,
          "last event with its stop string and usage");
    CHECK(g4_stream_take(s) == NULL, "queue empty after take");
    CHECK(g4_stream_finished(s) == 1 && g4_stream_lost(s) == 0, "counters");
    for (g4_stream_event *e = l, *next; e; e = next) {
        next = e->next;
        g4_stream_event_free(e);
    }
    g4_stream_sink_release(&a); /* pushed: nothing left to free */
    g4_stream_sink_release(&b); /* never finished: frees its preallocated last event */
    g4_stream_free(s);
}

/* A request's logprob ids: an event's top lists longer than the 20 top alternatives are copied whole. */
static void test_long_top_lists(void) {
    int32_t ids[G4_MAX_LOGPROB_IDS];
    float lps[G4_MAX_LOGPROB_IDS];
    for (int i = 0; i < G4_MAX_LOGPROB_IDS; i++) ids[i] = 1000 + 3 * i, lps[i] = -0.125f * (float)i;
    g4_stream *s = g4_stream_create();
    g4_stream_sink k;
    int tag;
    REQUIRE_VOID(s && !g4_stream_sink_init(&k, s, &tag), "init");
    g4_event e = token_event(3, 5, "five");
    e.n_top = G4_MAX_LOGPROB_IDS, e.top_ids = ids, e.top_logprobs = lps;
    g4_stream_sink_push(&k, &e);
    g4_event last = e; /* the last event carries its token's lists too */
    last.finish = G4_FINISH_LENGTH;
    g4_stream_sink_push(&k, &last);
    ids[0] = lps[0] = 7; /* the queue holds its own copies */
    g4_stream_event got;
    for (int n = 0; n < 2; n++) {
        REQUIRE_VOID(g4_stream_pop(s, &got, 1000) == 1, "event %d arrives", n);
        bool same = got.ev.n_top == G4_MAX_LOGPROB_IDS && !got.lost;
        for (int i = 0; i < G4_MAX_LOGPROB_IDS && same; i++)
            same = got.ev.top_ids[i] == 1000 + 3 * i && got.ev.top_logprobs[i] == -0.125f * (float)i;
        CHECK(same, "event %d: %d top entries, all %d copied", n, got.ev.n_top, G4_MAX_LOGPROB_IDS);
        g4_stream_event_clear(&got);
    }
    g4_stream_sink_release(&k);
    g4_stream_free(s);
}

static void test_last_event_survives_failing_allocations(void) {
    g4_stream *s = g4_stream_create();
    g4_stream_sink k;
    int tag;
    REQUIRE_VOID(s && !g4_stream_sink_init(&k, s, &tag), "init");
    fail_engine_allocs = true;
    int before = n_allocs;
    for (int i = 0; i < 5; i++) {
        g4_event e = token_event(9, 100 + i, "tok");
        CHECK(!g4_stream_sink_push(&k, &e), "token event %d cannot be queued", i);
    }
    static const int32_t top[1] = {4};
    static const float top_lp[1] = {-2.0f};
    g4_event last = {.id = 9,
                     .finish = G4_FINISH_ERROR,
                     .n_top = 1,
                     .top_ids = top,
                     .top_logprobs = top_lp,
                     .text = "held back",
                     .error = "engine failed",
                     .stop_token = -1,
                     .prompt_tokens = 4,
                     .completion_tokens = 5};
    CHECK(g4_stream_sink_push(&k, &last), "the last event is always queued");
    fail_engine_allocs = false;
    CHECK(n_allocs > before, "the seam was used");
    CHECK(g4_stream_lost(s) == 5 && g4_stream_finished(s) == 1, "lost %llu, finished %llu",
          (unsigned long long)g4_stream_lost(s), (unsigned long long)g4_stream_finished(s));
    g4_stream_event got;
    REQUIRE_VOID(g4_stream_pop(s, &got, 1000) == 1, "the last event arrives");
    CHECK(got.tag == &tag && got.ev.finish == G4_FINISH_ERROR, "finish reason kept");
    CHECK(got.ev.prompt_tokens == 4 && got.ev.completion_tokens == 5, "usage kept");
    CHECK(got.lost && got.ev.text == NULL && got.ev.n_top == 0 && !got.ev.top_ids,
          "its text and top logprobs are flagged lost");
    CHECK(got.ev.error && strstr(got.ev.error, "out of memory"), "an error message still: %s",
          got.ev.error ? got.ev.error : "(null)");
    g4_stream_event_clear(&got);
    CHECK(g4_stream_pop(s, &got, 10) == 0, "nothing else");
    g4_stream_sink_release(&k);
    g4_stream_free(s);
}

int main(void) {
    test_copies_in_order();
    test_long_top_lists();
    test_last_event_survives_failing_allocations();
    return check_summary();
}
