/* server.c - the libmicrohttpd daemon: connection state, body collection, routing, and the
 * endpoints that need no generation (health, models, version, metrics, tokenize, detokenize,
 * tokenizer_info); /invocations picks chat or completions by the body's shape.
 * Generation lives in generate.c. Threading: a pool of MHD polling threads (cfg.n_threads) runs
 * the handlers, each thread for the connections it accepted, so a big request stalls only its
 * own thread's connections; a ticker thread sends SSE keep-alives and enforces request and stall
 * timeouts.
 * Limits under abuse (docs/operations.md, "Limits"): a cap on open connections (and optionally
 * per address), an idle timeout, a deadline for a request's body, a budget on the bytes of all
 * bodies held at once and on the JSON values of one body (the parsed tree's memory). */
#include "base/secret.h"
#include "server/http/generate_impl.h"
#include "server/http/server_impl.h"
#include "text/prompt.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <time.h>


#ifndef G4_VERSION
#define G4_VERSION "0.0.0"
#endif

double g4_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void g4_http_config_default(g4_http_config *c) {
    memset(c, 0, sizeof *c);
    c->host = "0.0.0.0";
    c->port = 8000;
    c->served_names[0] = "g4serve-tiny";
    c->n_served_names = 1;
    c->max_body_bytes = 64u << 20;
    c->connection_timeout_s = 60;
    c->n_threads = 4;
    c->read_timeout_s = 60;
    c->stall_timeout_s = 60;
    c->max_json_values = (size_t)1 << 20;
    c->body_budget_bytes = (size_t)1 << 30;
    c->keepalive_s = 5.0;
    c->request_timeout_s = 0;
    c->reasoning_content = true;
    c->default_completion_max_tokens = 16;
    c->media.max_bytes = 20u << 20;
    c->media.timeout_ms = 10000;
    c->max_image_pixels = 40000000;
    c->image_budget = 280;
}

enum MHD_Result g4_http_send_json(struct MHD_Connection *c, int status, const char *json) {
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(json), (void *)json, MHD_RESPMEM_MUST_COPY);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Content-Type", "application/json");
    if (status == 429 || status == 503) MHD_add_response_header(r, "Retry-After", status == 429 ? "1" : "5");
    if (status == 401) MHD_add_response_header(r, "WWW-Authenticate", "Bearer");
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    return ret;
}

enum MHD_Result g4_http_send_error(struct MHD_Connection *c, const g4_http_error *e) {
    cJSON *root = cJSON_CreateObject(), *err = cJSON_AddObjectToObject(root, "error");
    cJSON_AddStringToObject(err, "message", e->message);
    cJSON_AddStringToObject(err, "type", e->type);
    if (e->param[0]) cJSON_AddStringToObject(err, "param", e->param);
    else cJSON_AddNullToObject(err, "param");
    cJSON_AddNumberToObject(err, "code", e->status);
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    enum MHD_Result r = s ? g4_http_send_json(c, e->status, s) : MHD_NO;
    free(s);
    return r;
}

static enum MHD_Result send_fail(g4_http_server *s, struct MHD_Connection *c, int status, const char *param,
                                 const char *msg) {
    g4_http_error e;
    g4_http_fail(&e, status, param, "%s", msg);
    g4_metrics_request_rejected(s->metrics, status);
    return g4_http_send_error(c, &e);
}

static enum MHD_Result send_error(g4_http_server *s, struct MHD_Connection *c, const g4_http_error *e) {
    g4_metrics_request_rejected(s->metrics, e->status);
    return g4_http_send_error(c, e);
}

static enum MHD_Result send_cjson(struct MHD_Connection *c, int status, cJSON *root) {
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    enum MHD_Result r = s ? g4_http_send_json(c, status, s) : MHD_NO;
    free(s);
    return r;
}

/* --- static endpoints ----------------------------------------------------------------- */

static enum MHD_Result health(struct MHD_Connection *c, bool ok, const char *msg) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "object", "health.response");
    cJSON_AddStringToObject(o, "message", msg);
    return send_cjson(c, ok ? 200 : 503, o);
}

static enum MHD_Result models(g4_http_server *s, struct MHD_Connection *c) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "object", "list");
    cJSON *data = cJSON_AddArrayToObject(root, "data");
    for (int i = 0; i < s->cfg.n_served_names; i++) {
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "id", s->cfg.served_names[i]);
        cJSON_AddStringToObject(m, "object", "model");
        cJSON_AddNumberToObject(m, "created", (double)s->created);
        cJSON_AddStringToObject(m, "owned_by", "g4serve");
        /* vLLM puts the checkpoint's path here; a path tells a client nothing it needs and an
         * attacker where the files are (issue 20), so the root is the reported name. */
        cJSON_AddStringToObject(m, "root", s->cfg.served_names[0]);
        cJSON_AddNullToObject(m, "parent");
        cJSON_AddNumberToObject(m, "max_model_len", s->max_model_len);
        cJSON_AddArrayToObject(m, "permission");
        cJSON_AddItemToArray(data, m);
    }
    return send_cjson(c, 200, root);
}

/* NIM's /v1/version {release, api}; vLLM's /version {version}. */
static enum MHD_Result version(struct MHD_Connection *c, bool vllm) {
    cJSON *o = cJSON_CreateObject();
    if (vllm) {
        cJSON_AddStringToObject(o, "version", G4_VERSION);
    } else {
        cJSON_AddStringToObject(o, "release", G4_VERSION);
        cJSON_AddStringToObject(o, "api", "1.0.0");
    }
    return send_cjson(c, 200, o);
}

static void add_token(cJSON *o, const g4_tokenizer *tok, const char *key, int32_t id) {
    size_t len = 0;
    const char *t = id >= 0 ? g4_tokenizer_token_text(tok, id, &len) : NULL;
    if (!t) {
        cJSON_AddNullToObject(o, key);
        return;
    }
    char *z = strndup(t, len);
    cJSON_AddStringToObject(o, key, z ? z : "");
    free(z);
}

/* vLLM's /tokenizer_info: the tokenizer's configuration as Hugging Face names it, so clients
 * (guidance, xgrammar front-ends) can check they tokenize as the server does. */
static enum MHD_Result tokenizer_info(g4_http_server *s, struct MHD_Connection *c) {
    const g4_special_ids *sp = g4_tokenizer_specials(s->tok);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "tokenizer_class", "GemmaTokenizerFast");
    cJSON_AddNumberToObject(o, "vocab_size", g4_tokenizer_n_vocab(s->tok));
    cJSON_AddNumberToObject(o, "model_max_length", s->max_model_len);
    cJSON_AddBoolToObject(o, "add_bos_token", g4_tokenizer_wants_bos(s->tok) != 0);
    add_token(o, s->tok, "bos_token", sp->bos);
    add_token(o, s->tok, "eos_token", sp->eos);
    add_token(o, s->tok, "pad_token", sp->pad);
    add_token(o, s->tok, "unk_token", sp->unk);
    cJSON_AddStringToObject(o, "padding_side", "left");
    return send_cjson(c, 200, o);
}

static enum MHD_Result metrics(g4_http_server *s, struct MHD_Connection *c) {
    g4_engine_stats st, *pst = NULL;
    g4_engine *e = atomic_load(&s->engine);
    if (e) {
        g4_engine_stats_get(e, &st);
        pst = &st;
    }
    g4_strbuf out = {0};
    if (g4_metrics_render(s->metrics, pst, s->max_running, &out) < 0) {
        g4_strbuf_free(&out);
        return send_fail(s, c, 500, NULL, "out of memory rendering metrics");
    }
    struct MHD_Response *r = MHD_create_response_from_buffer(out.len, out.data, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        g4_strbuf_free(&out);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
    enum MHD_Result ret = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    return ret;
}

/* vLLM's /tokenize: {prompt} or {messages[, tools, ...]} (+ add_special_tokens) → {count, max_model_len, tokens}.
 * A messages body is parsed and validated exactly as a chat completions request (g4_oai_request_parse)
 * and rendered by the same prompt builder, so /tokenize returns the ids chat would submit and
 * refuses what chat refuses. */
static enum MHD_Result tokenize(g4_http_server *s, struct MHD_Connection *c, const g4_strbuf *body) {
    g4_http_error pe;
    cJSON *in = g4_http_parse_body(body->data ? body->data : "", body->len, &pe);
    if (!in) return send_fail(s, c, 400, NULL, pe.message);
    if (!cJSON_IsObject(in)) {
        cJSON_Delete(in);
        return send_fail(s, c, 400, NULL, "the request body must be a JSON object");
    }
    const cJSON *prompt = cJSON_GetObjectItemCaseSensitive(in, "prompt");
    const cJSON *messages = cJSON_GetObjectItemCaseSensitive(in, "messages");
    const cJSON *ast = cJSON_GetObjectItemCaseSensitive(in, "add_special_tokens");
    g4_tokens ids = {0};
    g4_error err = {{0}};
    enum MHD_Result ret;
    if (cJSON_IsString(prompt)) {
        /* A raw prompt, as /v1/completions takes it: special tokens in the text are split. */
        g4_prompt_input pin;
        g4_prompt_input_init(&pin, G4_PROMPT_TEXT);
        pin.text = prompt->valuestring;
        pin.text_len = strlen(prompt->valuestring);
        pin.encode_flags = G4_ENCODE_SPLIT_SPECIAL | (!ast || cJSON_IsTrue(ast) ? G4_ENCODE_ADD_BOS : 0);
        if (g4_prompt_build(s->tok, &pin, &ids, NULL, &err) < 0) {
            g4_tokens_free(&ids);
            cJSON_Delete(in);
            return send_fail(s, c, 500, NULL, err.msg);
        }
    } else if (messages) {
        g4_oai_request req;
        unsigned parse_flags;
        if (g4_oai_request_parse(&req, G4_OAI_CHAT, body->data ? body->data : "", body->len,
                                 g4_tokenizer_n_vocab(s->tok), &s->defaults, &pe) < 0) {
            cJSON_Delete(in);
            return send_error(s, c, &pe);
        }
        g4_http_images im = {0};
        int rc = g4_http_build_prompt(s, &req, 0, &ids, &parse_flags, &im, &pe);
        g4_http_images_free(&im);
        g4_oai_request_free(&req);
        if (rc < 0) {
            g4_tokens_free(&ids);
            cJSON_Delete(in);
            return send_error(s, c, &pe);
        }
    } else {
        cJSON_Delete(in);
        return send_fail(s, c, 400, "prompt", "'prompt' (a string) or 'messages' (a list) is required");
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "count", (double)ids.n);
    cJSON_AddNumberToObject(o, "max_model_len", s->max_model_len);
    cJSON *arr = cJSON_AddArrayToObject(o, "tokens");
    for (size_t i = 0; i < ids.n; i++) cJSON_AddItemToArray(arr, cJSON_CreateNumber(ids.ids[i]));
    ret = send_cjson(c, 200, o);
    g4_tokens_free(&ids);
    cJSON_Delete(in);
    return ret;
}

static enum MHD_Result detokenize(g4_http_server *s, struct MHD_Connection *c, const g4_strbuf *body) {
    g4_http_error pe;
    cJSON *in = g4_http_parse_body(body->data ? body->data : "", body->len, &pe);
    if (!in) return send_fail(s, c, 400, NULL, pe.message);
    const cJSON *toks = cJSON_GetObjectItemCaseSensitive(in, "tokens");
    if (!cJSON_IsArray(toks)) {
        cJSON_Delete(in);
        return send_fail(s, c, 400, "tokens", "'tokens' must be a list of token ids");
    }
    int n = cJSON_GetArraySize(toks), i = 0;
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)(n + 1));
    const cJSON *it;
    int32_t nv = g4_tokenizer_n_vocab(s->tok);
    cJSON_ArrayForEach(it, toks) {
        if (!cJSON_IsNumber(it) || it->valuedouble < 0 || it->valuedouble >= nv ||
            it->valuedouble != (int32_t)it->valuedouble) {
            free(ids);
            cJSON_Delete(in);
            return send_fail(s, c, 400, "tokens", "'tokens' entries must be token ids in the vocabulary");
        }
        ids[i++] = (int32_t)it->valuedouble;
    }
    g4_strbuf text = {0};
    g4_error err = {{0}};
    enum MHD_Result ret;
    if (g4_tokenizer_decode(s->tok, ids, (size_t)n, 0, &text, &err) < 0) {
        ret = send_fail(s, c, 500, NULL, err.msg);
    } else {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "prompt", text.data ? text.data : "");
        ret = send_cjson(c, 200, o);
    }
    g4_strbuf_free(&text);
    free(ids);
    cJSON_Delete(in);
    return ret;
}

/* --- routing -------------------------------------------------------------------------- */

/* Handlers of the route table: one signature, so a route names exactly what it runs. */
static enum MHD_Result h_live(g4_http_server *s, struct MHD_Connection *c, g4_conn *cn) {
    (void)s, (void)cn;
    return health(c, true, "Service is live.");
}

static enum MHD_Result h_ready(g4_http_server *s, struct MHD_Connection *c, g4_conn *cn) {
    (void)cn;
    bool ready = atomic_load(&s->ready), draining = atomic_load(&s->draining);
    return health(c, ready && !draining,
                  draining ? "Service is shutting down."
                  : ready  ? "Service is ready."
                           : "Model is loading.");
}

static enum MHD_Result h_models(g4_http_server *s, struct MHD_Connection *c, g4_conn *cn) {
    (void)cn;
    return models(s, c);
}

static enum MHD_Result h_version(g4_http_server *s, struct MHD_Connection *c, g4_conn *cn) {
    (void)s, (void)cn;
    return version(c, false);
}

static enum MHD_Result h_vllm_version(g4_http_server *s, struct MHD_Connection *c, g4_conn *cn) {
    (void)s, (void)cn;
    return version(c, true);
}

static enum MHD_Result h_tokenizer_info(g4_http_server *s, struct MHD_Connection *c, g4_conn *cn) {
    (void)cn;
    return tokenizer_info(s, c);
}

/* SageMaker's /invocations, as vLLM serves it: a body with `messages` is a chat completion, one
 * with `prompt` a completion. */
static enum MHD_Result h_invocations(g4_http_server *s, struct MHD_Connection *c, g4_conn *cn) {
    g4_http_error pe;
    cJSON *in = g4_http_parse_body(cn->body.data ? cn->body.data : "", cn->body.len, &pe);
    if (!in) return send_error(s, c, &pe);
    bool chat = cJSON_GetObjectItemCaseSensitive(in, "messages") != NULL;
    bool completion = cJSON_GetObjectItemCaseSensitive(in, "prompt") != NULL;
    cJSON_Delete(in);
    if (chat == completion)
        return send_fail(s, c, 400, chat ? "prompt" : "messages",
                         "/invocations takes a chat completions body (with 'messages') or a completions body "
                         "(with 'prompt'), not both or neither");
    return g4_generate_start(s, c, cn, chat ? G4_OAI_CHAT : G4_OAI_COMPLETION);
}

static enum MHD_Result h_metrics(g4_http_server *s, struct MHD_Connection *c, g4_conn *cn) {
    (void)cn;
    return metrics(s, c);
}

static enum MHD_Result h_chat(g4_http_server *s, struct MHD_Connection *c, g4_conn *cn) {
    return g4_generate_start(s, c, cn, G4_OAI_CHAT);
}

static enum MHD_Result h_completions(g4_http_server *s, struct MHD_Connection *c, g4_conn *cn) {
    return g4_generate_start(s, c, cn, G4_OAI_COMPLETION);
}

static enum MHD_Result h_tokenize(g4_http_server *s, struct MHD_Connection *c, g4_conn *cn) {
    return tokenize(s, c, &cn->body);
}

static enum MHD_Result h_detokenize(g4_http_server *s, struct MHD_Connection *c, g4_conn *cn) {
    return detokenize(s, c, &cn->body);
}

/* Who may call a route when an API key is set (g4_http_config.api_key). */
typedef enum { G4_ACCESS_OPEN, G4_ACCESS_KEY, G4_ACCESS_METRICS } g4_access;

/* The endpoints. GET routes also answer HEAD. needs_ready: 503 until the model is warm, and
 * again once the server drains. access: open (health, probes), key (every API route), metrics
 * (open unless --protect-metrics). */
static const struct route {
    const char *method;
    const char *path;
    enum MHD_Result (*handler)(g4_http_server *s, struct MHD_Connection *c, g4_conn *cn);
    bool needs_ready;
    g4_access access;
} routes[] = {
    {"GET", "/v1/health/live", h_live, false, G4_ACCESS_OPEN},
    {"GET", "/v1/health/ready", h_ready, false, G4_ACCESS_OPEN},
    {"GET", "/health", h_ready, false, G4_ACCESS_OPEN},
    {"GET", "/v1/models", h_models, false, G4_ACCESS_KEY},
    {"GET", "/v1/version", h_version, false, G4_ACCESS_OPEN},
    {"GET", "/version", h_vllm_version, false, G4_ACCESS_OPEN},
    {"GET", "/tokenizer_info", h_tokenizer_info, true, G4_ACCESS_KEY},
    {"GET", "/v1/metrics", h_metrics, false, G4_ACCESS_METRICS},
    {"GET", "/metrics", h_metrics, false, G4_ACCESS_METRICS},
    {"POST", "/v1/chat/completions", h_chat, true, G4_ACCESS_KEY},
    {"POST", "/v1/completions", h_completions, true, G4_ACCESS_KEY},
    {"POST", "/invocations", h_invocations, true, G4_ACCESS_KEY},
    {"POST", "/tokenize", h_tokenize, true, G4_ACCESS_KEY},
    {"POST", "/detokenize", h_detokenize, true, G4_ACCESS_KEY},
};

/* True when the request may use route r: no key configured, an open route, or the header
 * "Authorization: Bearer <key>" with the key compared in constant time (base/secret.h). */
static bool authorized(const g4_http_server *s, struct MHD_Connection *c, const struct route *r) {
    const char *key = s->cfg.api_key;
    if (!key || !key[0] || r->access == G4_ACCESS_OPEN || (r->access == G4_ACCESS_METRICS && !s->cfg.protect_metrics))
        return true;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    return g4_bearer_matches(h, key);
}

static enum MHD_Result route(g4_http_server *s, struct MHD_Connection *c, g4_conn *cn, const char *url,
                             const char *method) {
    const struct route *r = NULL;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0] && !r; i++)
        if (!strcmp(url, routes[i].path)) r = &routes[i];
    if (!r) return send_fail(s, c, 404, NULL, "no such endpoint");
    bool get = !strcmp(r->method, "GET");
    if (strcmp(method, r->method) && !(get && !strcmp(method, "HEAD")))
        return send_fail(s, c, 405, NULL, get ? "use GET" : "use POST");
    if (!authorized(s, c, r)) {
        g4_http_error e;
        g4_http_fail(&e, 401, NULL, "missing or wrong API key (send 'Authorization: Bearer <key>')");
        snprintf(e.type, sizeof e.type, "%s", "AuthenticationError");
        return send_error(s, c, &e);
    }
    if (r->needs_ready && atomic_load(&s->draining))
        return send_fail(s, c, 503, NULL, "the server is shutting down; retry on another replica");
    if (r->needs_ready && !atomic_load(&s->ready))
        return send_fail(s, c, 503, NULL, "the model is not loaded yet; retry when /v1/health/ready is 200");
    return r->handler(s, c, cn);
}

/* Reserves n more body bytes in the server's budget for all held bodies; 0, or −1 when the budget
 * is spent (nothing reserved). */
static int take_budget(g4_http_server *s, g4_conn *cn, size_t n) {
    size_t held = atomic_fetch_add(&s->body_bytes, n) + n;
    if (s->cfg.body_budget_bytes && held > s->cfg.body_budget_bytes) {
        atomic_fetch_sub(&s->body_bytes, n);
        return -1;
    }
    cn->budgeted += n;
    return 0;
}

/* An upper bound on the JSON values a body parses into: every value but the first follows a ',',
 * ':' or an opening bracket outside a string. Linear, no allocation; malformed JSON is the
 * parser's to report. */
static size_t json_values(const char *p, size_t n) {
    size_t v = 1;
    bool in_str = false;
    for (size_t i = 0; i < n; i++) {
        char ch = p[i];
        if (in_str) {
            if (ch == '\\') i++;
            else if (ch == '"') in_str = false;
        } else if (ch == '"') {
            in_str = true;
        } else if (ch == ',' || ch == ':' || ch == '[' || ch == '{') {
            v++;
        }
    }
    return v;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *ver, const char *data, size_t *data_size, void **con_cls) {
    (void)ver;
    g4_http_server *s = cls;
    g4_conn *cn = *con_cls;
    if (!cn) {
        cn = calloc(1, sizeof *cn);
        if (!cn) return MHD_NO;
        cn->t_arrival = g4_now();
        *con_cls = cn;
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > s->cfg.max_body_bytes) cn->too_big = true;
        /* libmicrohttpd decodes only "chunked"; any other coding (gzip, "chunked, gzip", ...) it
         * would wait on until the idle timeout with no answer (RFC 9112 §6.1: a server answers
         * 501 to a coding it does not understand; 400 here, as the body cannot be framed). The
         * answer is queued before the body is read, so the connection closes after it. */
        const char *te = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
        if (te && strcasecmp(te, "chunked"))
            return send_fail(s, c, 400, NULL, "unsupported Transfer-Encoding: only 'chunked' is accepted");
        return MHD_YES;
    }
    if (*data_size) {
        if (s->cfg.read_timeout_s > 0 && g4_now() - cn->t_arrival > s->cfg.read_timeout_s) {
            /* a sender this slow holds a connection for nothing: close it, no answer */
            fprintf(stderr, "g4serve: http: closing a connection whose body took longer than %g s\n",
                    s->cfg.read_timeout_s);
            return MHD_NO;
        }
        if (!cn->too_big && !cn->over_budget && cn->body.len + *data_size <= s->cfg.max_body_bytes) {
            if (take_budget(s, cn, *data_size) < 0) cn->over_budget = true;
            else if (g4_strbuf_append(&cn->body, data, *data_size) < 0) cn->too_big = true;
        } else if (!cn->over_budget) {
            cn->too_big = true;
        }
        *data_size = 0;
        return MHD_YES;
    }
    if (cn->job) return g4_generate_resume(s, c, cn);
    if (cn->too_big) {
        char msg[128];
        snprintf(msg, sizeof msg, "request body larger than the limit of %zu bytes", s->cfg.max_body_bytes);
        return send_fail(s, c, 413, NULL, msg);
    }
    if (cn->over_budget)
        return send_fail(s, c, 503, NULL, "the server holds too many request bodies at once; retry shortly");
    size_t values = json_values(cn->body.data, cn->body.len);
    if (values > s->cfg.max_json_values) {
        char msg[160];
        snprintf(msg, sizeof msg, "request body has more than %zu JSON values (objects, arrays, elements)",
                 s->cfg.max_json_values);
        return send_fail(s, c, 413, NULL, msg);
    }
    return route(s, c, cn, url, method);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
    (void)c;
    g4_http_server *s = cls;
    g4_conn *cn = *con_cls;
    if (!cn) return;
    if (cn->job) g4_generate_conn_closed(s, cn, toe == MHD_REQUEST_TERMINATED_COMPLETED_OK);
    atomic_fetch_sub(&s->body_bytes, cn->budgeted);
    g4_strbuf_free(&cn->body);
    free(cn);
    *con_cls = NULL;
}

/* MHD's own log lines, prefixed; a client hanging up mid-stream is routine, not worth a line. */
static void mhd_log(void *cls, const char *fmt, va_list ap) {
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    if (strstr(msg, "no longer available for sending") || strstr(msg, "Connection reset")) return;
    fprintf(stderr, "g4serve: http: %s%s", msg, msg[0] && msg[strlen(msg) - 1] == '\n' ? "" : "\n");
}

static void *ticker_main(void *arg) {
    g4_http_server *s = arg;
    pthread_mutex_lock(&s->jobs_mu);
    while (!s->stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 250 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&s->ticker_cv, &s->jobs_mu, &ts);
        if (s->stopping) break;
        pthread_mutex_unlock(&s->jobs_mu);
        g4_generate_tick(s, g4_now());
        pthread_mutex_lock(&s->jobs_mu);
    }
    pthread_mutex_unlock(&s->jobs_mu);
    return NULL;
}

/* The open-connection cap: `want`, or (0) as many as the open-file limit allows after raising
 * its soft value to the hard one, less a reserve for the model's files, gRPC and the process. */
static unsigned connection_limit(int want) {
    if (want > 0) return (unsigned)want;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return 1024;
    if (rl.rlim_cur < rl.rlim_max) {
        struct rlimit up = {rl.rlim_max, rl.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &up) == 0) rl = up;
    }
    rlim_t lim = rl.rlim_cur == RLIM_INFINITY ? 65536 : rl.rlim_cur;
    rlim_t n = lim > 2048 ? lim - 1024 : lim / 2;
    return (unsigned)(n > 65536 ? 65536 : n);
}

g4_http_server *g4_http_server_start(const g4_http_config *cfg, g4_error *err) {
    g4_http_server *s = calloc(1, sizeof *s);
    if (!s) {
        g4_fail(err, "out of memory");
        return NULL;
    }
    s->cfg = *cfg;
    s->created = (long)time(NULL);
    s->max_model_len = 0;
    atomic_init(&s->engine, NULL);
    atomic_init(&s->ready, false);
    atomic_init(&s->draining, false);
    atomic_init(&s->next_id, 1);
    atomic_init(&s->body_bytes, 0);
    pthread_mutex_init(&s->jobs_mu, NULL);
    pthread_cond_init(&s->ticker_cv, NULL);
    s->metrics = cfg->metrics;
    if (!s->metrics) {
        s->metrics = g4_metrics_create(cfg->served_names[0], 4096);
        s->own_metrics = true;
    }
    if (!s->metrics) {
        g4_fail(err, "out of memory");
        goto fail;
    }
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)cfg->port);
    if (inet_pton(AF_INET, cfg->host, &addr.sin_addr) != 1) {
        g4_fail(err, "--host: '%s' is not an IPv4 address", cfg->host);
        goto fail;
    }
    unsigned max_conn = connection_limit(cfg->max_connections);
    s->daemon =
        MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG,
                         (uint16_t)cfg->port, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER, mhd_log,
                         s, /* first, so it catches everything */
                         MHD_OPTION_SOCK_ADDR, &addr, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                         MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->connection_timeout_s,
                         MHD_OPTION_CONNECTION_LIMIT, max_conn, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
                         (unsigned)(cfg->max_connections_per_ip > 0 ? cfg->max_connections_per_ip : 0),
                         MHD_OPTION_THREAD_POOL_SIZE, (unsigned)(cfg->n_threads > 1 ? cfg->n_threads : 0),
                         MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u, MHD_OPTION_END);
    if (!s->daemon) {
        g4_fail(err, "cannot listen on %s:%d (port in use or no permission)", cfg->host, cfg->port);
        goto fail;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : cfg->port;
    if (pthread_create(&s->ticker, NULL, ticker_main, s) != 0) {
        g4_fail(err, "cannot start the keep-alive thread");
        goto fail;
    }
    s->ticker_started = true;
    return s;
fail:
    if (s->daemon) MHD_stop_daemon(s->daemon);
    if (s->own_metrics) g4_metrics_free(s->metrics);
    free(s);
    return NULL;
}

int g4_http_server_port(const g4_http_server *s) { return s->port; }

void g4_http_server_set_vision(g4_http_server *s, int vision_grid) { s->cfg.vision_grid = vision_grid; }

void g4_http_server_attach(g4_http_server *s, g4_engine *e, const g4_tokenizer *tok, const g4_engine_opts *eo) {
    s->tok = tok;
    s->so_cache = g4_so_cache_new(tok, 64); /* NULL: structured requests get a 500 */
    s->max_model_len = eo->max_model_len;
    s->max_running = eo->max_running;
    s->defaults = eo->defaults;
    g4_metrics_set_max_len(s->metrics, eo->max_model_len);
    g4_cache_info ci = {.block_size = eo->block_size,
                        .n_blocks_global = eo->n_blocks_global,
                        .n_blocks_sliding = eo->n_blocks_sliding,
                        .sliding_window = eo->sliding_window,
                        .prefix_caching = eo->prefix_cache};
    g4_metrics_set_cache_info(s->metrics, &ci);
    g4_metrics_set_spec_positions(s->metrics, eo->spec.method != G4_SPEC_OFF ? eo->spec.num_speculative_tokens : 0);
    atomic_store(&s->engine, e);
}

void g4_http_server_set_ready(g4_http_server *s, bool ready) { atomic_store(&s->ready, ready); }

void g4_http_server_drain(g4_http_server *s) { atomic_store(&s->draining, true); }

int g4_http_server_in_flight(g4_http_server *s) {
    int n = 0;
    pthread_mutex_lock(&s->jobs_mu);
    for (g4_job *j = s->jobs; j; j = j->next_live) n++;
    pthread_mutex_unlock(&s->jobs_mu);
    return n;
}

void g4_http_server_cancel_all(g4_http_server *s) { g4_generate_cancel_all(s); }

void g4_http_server_stop(g4_http_server *s) {
    if (!s) return;
    atomic_store(&s->ready, false);
    pthread_mutex_lock(&s->jobs_mu);
    s->stopping = true;
    pthread_cond_signal(&s->ticker_cv);
    pthread_mutex_unlock(&s->jobs_mu);
    if (s->ticker_started) pthread_join(s->ticker, NULL);
    /* Suspended connections must be resumed before MHD_stop_daemon (microhttpd.h). */
    MHD_quiesce_daemon(s->daemon);
    g4_generate_cancel_all(s);
    g4_engine *e = atomic_load(&s->engine);
    if (e) g4_engine_wait_idle(e);
    g4_generate_cancel_all(s);
    MHD_stop_daemon(s->daemon);
    g4_so_cache_free(s->so_cache);
    if (s->own_metrics) g4_metrics_free(s->metrics);
    pthread_cond_destroy(&s->ticker_cv);
    pthread_mutex_destroy(&s->jobs_mu);
    free(s);
}
