/* test_chat_scaling.c — rendering a conversation is linear in its size: the work of rendering
 * 4n messages (and sorting an object of 4n keys) is about 4× that of n, not 16× (it was
 * quadratic: 80,000 messages blocked the server for 25 s). Measured as the best of five CPU
 * times per size, judged by the ratio with a wide margin (linear ≈ 4, quadratic ≈ 16; the
 * bound 9 sits between), so machine speed and load do not matter. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "check.h"
#include "text/chat_template.h"
#include "base/strbuf.h"

static double cpu_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* n alternating user / assistant messages, the assistant ones with a tool call whose arguments
 * object has `keys` keys. */
static cJSON *conversation(int n, int keys) {
    cJSON *msgs = cJSON_CreateArray();
    for (int i = 0; i < n; i++) {
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "role", i % 2 ? "assistant" : "user");
        cJSON_AddStringToObject(m, "content", i % 2 ? "ok" : "hello there");
        cJSON_AddItemToArray(msgs, m);
    }
    if (keys) {
        cJSON *m = cJSON_CreateObject(), *calls = cJSON_CreateArray(), *tc = cJSON_CreateObject(),
              *fn = cJSON_CreateObject(), *args = cJSON_CreateObject();
        char k[32];
        for (int i = 0; i < keys; i++) {
            snprintf(k, sizeof k, "k%07d", (i * 7919) % keys); /* out of order */
            cJSON_AddNumberToObject(args, k, i);
        }
        cJSON_AddStringToObject(fn, "name", "f");
        cJSON_AddItemToObject(fn, "arguments", args);
        cJSON_AddStringToObject(tc, "type", "function");
        cJSON_AddItemToObject(tc, "function", fn);
        cJSON_AddItemToArray(calls, tc);
        cJSON_AddStringToObject(m, "role", "assistant");
        cJSON_AddItemToObject(m, "tool_calls", calls);
        cJSON_AddItemToArray(msgs, m);
    }
    return msgs;
}

static double render_s(int n, int keys, size_t *len) {
    cJSON *msgs = conversation(n, keys);
    double best = 1e30;
    for (int r = 0; r < 5; r++) {
        g4_strbuf out = {0};
        g4_error err = {{0}};
        double t0 = cpu_s();
        int rc = g4_chat_render(msgs, NULL, NULL, &out, &err);
        double t = cpu_s() - t0;
        CHECK(rc == 0, "render %d messages: %s", n, err.msg);
        *len = out.len;
        if (t < best) best = t;
        g4_strbuf_free(&out);
    }
    cJSON_Delete(msgs);
    return best;
}

int main(void) {
    size_t l1 = 0, l4 = 0;
    /* Sizes 8x apart: linear gives 8, n log n about 9, quadratic 64; the bound 24 sits far from
     * both, so cache effects and a loaded machine do not decide the outcome. */
    double a = render_s(5000, 0, &l1), b = render_s(40000, 0, &l4);
    printf("messages: 5,000 in %.4f s, 40,000 in %.4f s: ratio %.1f (linear 8, quadratic 64)\n", a, b, b / a);
    CHECK(l4 > 7 * l1, "the larger conversation rendered (%zu vs %zu bytes)", l4, l1);
    CHECK(b / a < 24.0, "rendering grows faster than linearly in messages: ratio %.1f", b / a);
    double c = render_s(1, 10000, &l1), d = render_s(1, 80000, &l4);
    printf("argument keys: 10,000 in %.4f s, 80,000 in %.4f s: ratio %.1f (n log n about 9, quadratic 64)\n", c, d,
           d / c);
    CHECK(d / c < 24.0, "sorting an object's keys grows faster than n log n: ratio %.1f", d / c);
    return check_summary();
}
