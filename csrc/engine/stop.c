/* stop.c — stop ids, stop strings across token boundaries, max/min tokens (see stop.h).
 * Not here: detokenization, sampling. Engine thread only. */
#include "engine/stop.h"

#include <stdlib.h>
#include <string.h>

void g4_stop_rules_default(g4_stop_rules *s) {
    memset(s, 0, sizeof *s);
    s->max_tokens = 16;
}

int g4_stop_init(g4_stop *s, const g4_stop_rules *r, const int32_t *eos, int n_eos, g4_error *err) {
    memset(s, 0, sizeof *s);
    s->max_tokens = r->max_tokens;
    s->min_tokens = r->min_tokens;
    s->include = r->include_stop_str_in_output;
    int n_ids = (r->n_stop_ids > 0 ? r->n_stop_ids : 0) + (r->ignore_eos ? 0 : n_eos);
    s->ids = malloc((size_t)(n_ids ? n_ids : 1) * sizeof *s->ids);
    if (!s->ids) return g4_fail(err, "stop: out of memory");
    for (int i = 0; i < r->n_stop_ids; i++) s->ids[s->n_ids++] = r->stop_ids[i];
    for (int i = 0; !r->ignore_eos && i < n_eos; i++) s->ids[s->n_ids++] = eos[i];
    if (r->n_stop_strings > 0) {
        s->strings = calloc((size_t)r->n_stop_strings, sizeof *s->strings);
        s->lens = calloc((size_t)r->n_stop_strings, sizeof *s->lens);
        if (!s->strings || !s->lens) {
            g4_stop_free(s);
            return g4_fail(err, "stop: out of memory");
        }
        for (int i = 0; i < r->n_stop_strings; i++) {
            const char *t = r->stop_strings[i];
            if (!t || !*t) {
                g4_stop_free(s);
                return g4_fail(err, "stop: stop_strings[%d] is empty", i);
            }
            s->lens[i] = strlen(t);
            if (s->lens[i] > s->max_len) s->max_len = s->lens[i];
            s->strings[i] = malloc(s->lens[i] + 1);
            s->n_strings = i + 1;
            if (!s->strings[i]) {
                g4_stop_free(s);
                return g4_fail(err, "stop: out of memory");
            }
            memcpy(s->strings[i], t, s->lens[i] + 1);
        }
    }
    return 0;
}

void g4_stop_free(g4_stop *s) {
    for (int i = 0; i < s->n_strings; i++) free(s->strings[i]);
    free(s->strings);
    free(s->lens);
    free(s->ids);
    free(s->held);
    free(s->out);
    memset(s, 0, sizeof *s);
}

static int grow(char **buf, size_t *cap, size_t need) {
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 64;
    while (c < need) c *= 2;
    char *p = realloc(*buf, c);
    if (!p) return -1;
    *buf = p;
    *cap = c;
    return 0;
}

/* Shows the next n held bytes not shown yet (as s->out, replacing what out had). Of the shown
 * text, held keeps what a later match may start in: with include, its last max_len − 1 bytes;
 * without, nothing (a match there would have stopped the request, or was before min_tokens). */
static int show(g4_stop *s, size_t n, g4_stop_result *res) {
    if (grow(&s->out, &s->cap_out, n + 1)) return -1;
    if (n) memcpy(s->out, s->held + s->n_seen, n);
    s->out[n] = 0;
    s->n_out = n;
    s->n_seen += n;
    size_t keep = s->include && s->max_len ? s->max_len - 1 : 0;
    size_t drop = s->n_seen > keep ? s->n_seen - keep : 0;
    if (drop) memmove(s->held, s->held + drop, s->n_held - drop);
    s->n_held -= drop;
    s->n_seen -= drop;
    res->text = s->out;
    res->n_text = n;
    return 0;
}

/* The first listed stop string with a full match in held ending past the shown bytes (its
 * earliest such match), as vLLM's check_stop_strings goes through the list: where the output ends
 * (before the string, or after it with include), and which string; −1 if none. */
static long find_stop(const g4_stop *s, int *which) {
    for (int i = 0; i < s->n_strings; i++) {
        size_t L = s->lens[i];
        for (size_t at = s->n_seen >= L ? s->n_seen - L + 1 : 0; at + L <= s->n_held; at++) {
            if (memcmp(s->held + at, s->strings[i], L)) continue;
            *which = i;
            return (long)(s->include ? at + L : at);
        }
    }
    return -1;
}

/* Length of the longest suffix of held that is a proper prefix of some stop string. */
static size_t possible_start(const g4_stop *s) {
    size_t keep = 0;
    for (int i = 0; i < s->n_strings; i++) {
        size_t L = s->lens[i] - 1 < s->n_held ? s->lens[i] - 1 : s->n_held;
        for (size_t k = L; k > keep; k--)
            if (!memcmp(s->held + s->n_held - k, s->strings[i], k)) {
                keep = k;
                break;
            }
    }
    return keep;
}

static void result_init(g4_stop_result *res) {
    *res = (g4_stop_result){.finish = G4_FINISH_NONE, .deliver = true, .text = "", .stop_string = -1, .stop_token = -1};
}

static int append(g4_stop *s, const char *text, size_t n) {
    if (!n) return 0;
    if (grow(&s->held, &s->cap_held, s->n_held + n)) return -1;
    memcpy(s->held + s->n_held, text, n);
    s->n_held += n;
    return 0;
}

bool g4_stop_is_stop_id(const g4_stop *s, int32_t token, int n_out) {
    for (int i = 0; n_out > s->min_tokens && i < s->n_ids; i++)
        if (s->ids[i] == token) return true;
    return false;
}

int g4_stop_token(g4_stop *s, int32_t token, int n_out, const char *text, size_t n, g4_stop_result *res,
                  g4_error *err) {
    result_init(res);
    int may_stop = n_out > s->min_tokens;
    if (g4_stop_is_stop_id(s, token, n_out)) {
        res->finish = G4_FINISH_STOP;
        res->deliver = s->include;
        res->stop_token = token;
        return 0; /* held text (and with include the id's text) is shown by g4_stop_finish */
    }
    if (append(s, text, n)) return g4_fail(err, "stop: out of memory");
    int which = -1;
    long cut = may_stop ? find_stop(s, &which) : -1;
    if (cut >= 0) {
        if (show(s, (size_t)cut - s->n_seen, res)) return g4_fail(err, "stop: out of memory");
        s->n_held = s->n_seen = 0;
        res->finish = G4_FINISH_STOP;
        res->stop_string = which;
        return 0;
    }
    if (n_out >= s->max_tokens) {
        res->finish = G4_FINISH_LENGTH; /* held text is shown by g4_stop_finish */
        return 0;
    }
    size_t keep = s->include ? 0 : possible_start(s);
    /* a complete match found before min_tokens is shown: it cannot stop this request */
    if (show(s, s->n_held - s->n_seen - keep, res)) return g4_fail(err, "stop: out of memory");
    return 0;
}

int g4_stop_finish(g4_stop *s, int n_out, const char *tail, size_t n, g4_stop_result *res, g4_error *err) {
    result_init(res);
    if (append(s, tail, n)) return g4_fail(err, "stop: out of memory");
    int which = -1;
    long cut = n_out > s->min_tokens ? find_stop(s, &which) : -1;
    if (show(s, (cut >= 0 ? (size_t)cut : s->n_held) - s->n_seen, res)) return g4_fail(err, "stop: out of memory");
    s->n_held = s->n_seen = 0;
    res->stop_string = which;
    return 0;
}
