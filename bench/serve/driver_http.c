/* driver_http.c — sends the benchmark load over the OpenAI HTTP API with libcurl's multi interface
 * (one thread, any number of streams) and records, per request, the send time, the arrival time
 * of every SSE chunk that carries `choices`, and the end, exactly as vLLM's bench client does:
 *   - completions: every data line with a non-empty `choices` is a chunk (even with empty text);
 *     the end is the last such chunk;
 *   - chat: the same chunks, but the end is the last data line of any kind (vLLM updates its
 *     most_recent_timestamp on the usage line too);
 *   - output tokens from the final `usage.completion_tokens` (stream_options.include_usage),
 *     else the number of chunks.
 * Token-id prompts go to /v1/completions as a list of ids; chat needs text (decoded with the
 * tokenizer when given). Not here: the metrics (metrics.c) or the schedule (arrival.c). */
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "driver.h"
#include "base/strbuf.h"

double g4_bench_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

void g4_bench_records_free(g4_bench_load *l) {
    for (int i = 0; l->rec && i < l->n; i++) free(l->rec[i].chunk_t);
    for (int i = 0; l->errors && i < l->n; i++) free(l->errors[i]);
}

typedef struct stream {
    CURL *h;
    struct curl_slist *hdr;
    char *body;
    char *buf;            /* bytes not yet split into lines */
    size_t len, cap;
    int cap_chunks;
    long status;          /* HTTP status once known */
    bool chat;
    double t0;            /* benchmark start */
    int usage_tokens;     /* −1 until a usage object arrives */
    g4_bench_record *rec;
    char **error;
} stream;

static void set_error(stream *s, const char *fmt, const char *detail) {
    if (*s->error) return;
    size_t n = strlen(fmt) + strlen(detail) + 1;
    *s->error = malloc(n);
    if (*s->error) snprintf(*s->error, n, fmt, detail);
}

static int add_chunk(stream *s, double t) {
    g4_bench_record *r = s->rec;
    if (r->n_chunks == s->cap_chunks) {
        int cap = s->cap_chunks ? 2 * s->cap_chunks : 64;
        double *p = realloc(r->chunk_t, sizeof *p * (size_t)cap);
        if (!p) return -1;
        r->chunk_t = p;
        s->cap_chunks = cap;
    }
    r->chunk_t[r->n_chunks++] = t;
    return 0;
}

/* One SSE line (without the newline). */
static int on_line(stream *s, char *line, size_t n) {
    while (n && (line[n - 1] == '\r' || line[n - 1] == ' ')) line[--n] = 0;
    while (*line == ' ') line++, n--;
    if (!n || line[0] == ':') return 0;
    if (!strncmp(line, "data:", 5)) {
        line += 5;
        while (*line == ' ') line++;
    }
    if (!strcmp(line, "[DONE]")) return 0;
    double t = g4_bench_now() - s->t0;
    cJSON *o = cJSON_Parse(line);
    if (!o) {
        set_error(s, "unparsable SSE data: %.200s", line);
        return 0;
    }
    const cJSON *ch = cJSON_GetObjectItem(o, "choices"), *u = cJSON_GetObjectItem(o, "usage");
    int rc = 0;
    if (cJSON_GetArraySize(ch) > 0) {
        rc = add_chunk(s, t);
        s->rec->t_end = t;
    } else if (cJSON_IsObject(u)) {
        const cJSON *ct = cJSON_GetObjectItem(u, "completion_tokens");
        if (cJSON_IsNumber(ct)) s->usage_tokens = ct->valueint;
        if (s->chat && s->rec->n_chunks) s->rec->t_end = t;
    } else if (cJSON_GetObjectItem(o, "error")) {
        char *e = cJSON_PrintUnformatted(cJSON_GetObjectItem(o, "error"));
        set_error(s, "error in stream: %.300s", e ? e : "?");
        free(e);
    }
    cJSON_Delete(o);
    return rc;
}

static size_t on_write(char *data, size_t size, size_t nmemb, void *user) {
    stream *s = user;
    size_t n = size * nmemb;
    if (!s->status) curl_easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &s->status);
    if (s->len + n + 1 > s->cap) {
        size_t cap = (s->len + n + 1) * 2;
        char *p = realloc(s->buf, cap);
        if (!p) return 0;
        s->buf = p;
        s->cap = cap;
    }
    memcpy(s->buf + s->len, data, n);
    s->len += n;
    s->buf[s->len] = 0;
    if (s->status != 200) return n; /* kept whole as the error message */
    size_t start = 0;
    for (size_t i = 0; i < s->len; i++) {
        if (s->buf[i] != '\n') continue;
        s->buf[i] = 0;
        if (on_line(s, s->buf + start, i - start) < 0) return 0;
        start = i + 1;
    }
    memmove(s->buf, s->buf + start, s->len - start);
    s->len -= start;
    return n;
}

static char *request_body(const g4_http_target *t, const g4_bench_item *it, double temperature, g4_error *err) {
    cJSON *o = cJSON_CreateObject();
    if (t->model) cJSON_AddStringToObject(o, "model", t->model);
    char *text = it->text;
    g4_strbuf sb = {0};
    if (t->chat && !text) {
        if (!t->tok || g4_tokenizer_decode(t->tok, it->ids, (size_t)it->n_ids, 0, &sb, err) < 0) {
            cJSON_Delete(o);
            g4_strbuf_free(&sb);
            if (!t->tok)
                g4_fail(err, "chat endpoint: random token-id prompts need --tokenizer to become text "
                             "(or use --backend openai, /v1/completions)");
            return NULL;
        }
        text = sb.data ? sb.data : "";
    }
    if (t->chat) {
        cJSON *msgs = cJSON_AddArrayToObject(o, "messages"), *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "role", "user");
        cJSON_AddStringToObject(m, "content", text);
        cJSON_AddItemToArray(msgs, m);
        cJSON_AddNumberToObject(o, "max_completion_tokens", it->output_len);
    } else {
        if (text) cJSON_AddStringToObject(o, "prompt", text);
        else cJSON_AddItemToObject(o, "prompt", cJSON_CreateIntArray(it->ids, it->n_ids));
        cJSON_AddNumberToObject(o, "max_tokens", it->output_len);
    }
    cJSON_AddNumberToObject(o, "temperature", temperature);
    cJSON_AddBoolToObject(o, "ignore_eos", 1);
    cJSON_AddBoolToObject(o, "stream", 1);
    cJSON_AddBoolToObject(cJSON_AddObjectToObject(o, "stream_options"), "include_usage", 1);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    g4_strbuf_free(&sb);
    if (!s) g4_fail(err, "request body: out of memory");
    return s;
}

static void finish(stream *s, CURLcode res) {
    g4_bench_record *r = s->rec;
    if (res != CURLE_OK) set_error(s, "transport: %s", curl_easy_strerror(res));
    else if (s->status != 200) set_error(s, "HTTP error: %.500s", s->buf ? s->buf : "");
    if (!*s->error && r->n_chunks == 0) set_error(s, "%s", "never received a chunk with choices");
    r->ok = !*s->error;
    r->output_tokens = r->ok ? (s->usage_tokens >= 0 ? s->usage_tokens : r->n_chunks) : 0;
    curl_slist_free_all(s->hdr);
    free(s->body);
    free(s->buf);
}

int g4_drive_http(const g4_http_target *t, g4_bench_load *l, g4_error *err) {
    int n = l->n;
    stream *st = calloc((size_t)n, sizeof *st);
    l->rec = calloc((size_t)n, sizeof *l->rec);
    l->errors = calloc((size_t)n, sizeof *l->errors);
    CURLM *multi = curl_multi_init();
    if (!st || !l->rec || !l->errors || !multi) {
        free(st);
        if (multi) curl_multi_cleanup(multi);
        return g4_fail(err, "http driver: out of memory for %d requests", n);
    }
    char url[2048], auth[512];
    snprintf(url, sizeof url, "%s%s", t->base_url, t->endpoint);
    if (t->api_key) snprintf(auth, sizeof auth, "Authorization: Bearer %s", t->api_key);
    /* bodies first, so building them does not disturb the timing */
    for (int i = 0; i < n; i++) {
        g4_bench_item *it = &l->ds->items[l->first + i];
        l->rec[i].prompt_len = it->prompt_len;
        if (!(st[i].body = request_body(t, it, l->temperature, err))) {
            for (int k = 0; k < i; k++) free(st[k].body);
            free(st);
            curl_multi_cleanup(multi);
            return -1;
        }
    }
    int next = 0, running = 0, done = 0, rc = 0;
    double t0 = g4_bench_now(), last_end = 0;
    while (done < n) {
        double now = g4_bench_now() - t0;
        while (next < n && l->send_at[next] <= now && (!l->max_concurrency || running < l->max_concurrency)) {
            stream *s = &st[next];
            s->h = curl_easy_init();
            s->rec = &l->rec[next];
            s->error = &l->errors[next];
            s->chat = t->chat;
            s->t0 = t0;
            s->usage_tokens = -1;
            s->hdr = curl_slist_append(NULL, "Content-Type: application/json");
            /* no "Expect: 100-continue" round trip on large bodies (aiohttp, vLLM's client, sends none) */
            s->hdr = curl_slist_append(s->hdr, "Expect:");
            if (t->api_key) s->hdr = curl_slist_append(s->hdr, auth);
            if (!s->h || !s->hdr) {
                rc = g4_fail(err, "http driver: cannot create a curl handle");
                goto out;
            }
            curl_easy_setopt(s->h, CURLOPT_URL, url);
            curl_easy_setopt(s->h, CURLOPT_HTTPHEADER, s->hdr);
            curl_easy_setopt(s->h, CURLOPT_POSTFIELDS, s->body);
            curl_easy_setopt(s->h, CURLOPT_WRITEFUNCTION, on_write);
            curl_easy_setopt(s->h, CURLOPT_WRITEDATA, s);
            curl_easy_setopt(s->h, CURLOPT_PRIVATE, s);
            curl_easy_setopt(s->h, CURLOPT_NOSIGNAL, 1L);
            curl_easy_setopt(s->h, CURLOPT_TCP_NODELAY, 1L);
            if (t->timeout_s > 0) curl_easy_setopt(s->h, CURLOPT_TIMEOUT_MS, (long)(t->timeout_s * 1e3));
            s->rec->t_send = g4_bench_now() - t0;
            if (curl_multi_add_handle(multi, s->h) != CURLM_OK) {
                rc = g4_fail(err, "http driver: curl_multi_add_handle failed");
                goto out;
            }
            next++;
            running++;
        }
        int still;
        if (curl_multi_perform(multi, &still) != CURLM_OK) {
            rc = g4_fail(err, "http driver: curl_multi_perform failed");
            goto out;
        }
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(multi, &left))) {
            if (msg->msg != CURLMSG_DONE) continue;
            stream *s;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&s);
            if (!s->status) curl_easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &s->status);
            finish(s, msg->data.result);
            s->body = s->buf = NULL;
            s->hdr = NULL;
            curl_multi_remove_handle(multi, s->h);
            curl_easy_cleanup(s->h);
            s->h = NULL;
            running--;
            done++;
            last_end = g4_bench_now() - t0;
        }
        if (done == n) break;
        /* sleep until data arrives or the next send is due (capped at 5 ms) */
        int wait_ms = 5;
        if (next < n && (!l->max_concurrency || running < l->max_concurrency)) {
            double dt = l->send_at[next] - (g4_bench_now() - t0);
            wait_ms = dt <= 0 ? 0 : dt * 1e3 < 5 ? (int)(dt * 1e3) : 5;
        }
        if (running) curl_multi_poll(multi, NULL, 0, wait_ms, NULL);
        else if (wait_ms > 0) nanosleep(&(struct timespec){0, (long)wait_ms * 1000000L}, NULL);
    }
    l->duration = last_end > 0 ? last_end : g4_bench_now() - t0;
out:
    for (int i = 0; i < n; i++) {
        if (st[i].h) {
            curl_multi_remove_handle(multi, st[i].h);
            curl_easy_cleanup(st[i].h);
            curl_slist_free_all(st[i].hdr);
            free(st[i].buf);
        }
        free(st[i].body);
    }
    curl_multi_cleanup(multi);
    free(st);
    return rc;
}
