/* oai_format.c - OpenAI response shapes: engine events → chat.completion(.chunk) and
 * text_completion objects, SSE framing, logprobs, usage. Runs on the MHD thread under the job's
 * mutex. Chat output goes through the Gemma 4 output parser (content / reasoning / tool_calls);
 * completions get their text as the request's detokenizer renders it (skip_special_tokens is
 * a detokenizer flag, generate.c).
 * Shapes: docs/api-http.md; field semantics: docs/serving-conventions.md §2. */
#include "server/http/generate_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef G4_VERSION
#define G4_VERSION "0.0.0"
#endif
#define FINGERPRINT "g4serve-" G4_VERSION

int g4_choice_init(g4_choice *c, g4_job *j, int index, bool chat, unsigned parse_flags)
{
    memset(c, 0, sizeof *c);
    c->job = j;
    c->index = index;
    if (chat && g4_output_parser_new(parse_flags, &c->parser, NULL) < 0)
        return -1;
    return 0;
}

void g4_choice_release(g4_choice *c)
{
    g4_output_parser_free(c->parser);
    g4_strbuf_free(&c->content);
    g4_strbuf_free(&c->reasoning);
    cJSON_Delete(c->tool_calls);
    cJSON_Delete(c->logprobs);
}

static const char *finish_name(const g4_choice *c)
{
    switch (c->finish) {
    case G4_FINISH_STOP: return c->parser && g4_output_parser_n_calls(c->parser) > 0 ? "tool_calls" : "stop";
    case G4_FINISH_LENGTH: return "length";
    case G4_FINISH_ABORT: return "abort";
    default: return "error";
    }
}

static cJSON *usage_json(const g4_job *j)
{
    int completion = 0, cached = 0;
    for (int i = 0; i < j->n; i++) {
        completion += j->ch[i].completion_tokens;
        if (j->ch[i].cached_tokens > cached)
            cached = j->ch[i].cached_tokens;
    }
    cJSON *u = cJSON_CreateObject();
    cJSON_AddNumberToObject(u, "prompt_tokens", j->prompt_tokens);
    cJSON_AddNumberToObject(u, "completion_tokens", completion);
    cJSON_AddNumberToObject(u, "total_tokens", j->prompt_tokens + completion);
    cJSON *d = cJSON_AddObjectToObject(u, "prompt_tokens_details");
    cJSON_AddNumberToObject(d, "cached_tokens", cached);
    return u;
}

/* {token, logprob, bytes} for one id (chat logprobs). */
static cJSON *token_entry(const g4_tokenizer *tok, int32_t id, float lp)
{
    g4_strbuf s = {0};
    g4_tokenizer_decode(tok, &id, 1, 0, &s, NULL);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "token", s.data ? s.data : "");
    cJSON_AddNumberToObject(o, "logprob", lp);
    cJSON *b = cJSON_AddArrayToObject(o, "bytes");
    for (size_t i = 0; i < s.len; i++)
        cJSON_AddItemToArray(b, cJSON_CreateNumber((unsigned char)s.data[i]));
    g4_strbuf_free(&s);
    return o;
}

static cJSON *chat_logprob(const g4_tokenizer *tok, const g4_event *r, int top)
{
    cJSON *o = token_entry(tok, r->token, r->logprob);
    cJSON *t = cJSON_AddArrayToObject(o, "top_logprobs");
    for (int i = 0; i < r->n_top && i < top; i++)
        cJSON_AddItemToArray(t, token_entry(tok, r->top_ids[i], r->top_logprobs[i]));
    return o;
}

/* Completions logprobs object {tokens, token_logprobs, top_logprobs, text_offset}. */
static cJSON *completion_logprobs_new(void)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddArrayToObject(o, "tokens");
    cJSON_AddArrayToObject(o, "token_logprobs");
    cJSON_AddArrayToObject(o, "top_logprobs");
    cJSON_AddArrayToObject(o, "text_offset");
    return o;
}

static void completion_logprobs_add(cJSON *o, const g4_tokenizer *tok, const g4_event *r, int top, size_t offset)
{
    g4_strbuf s = {0};
    g4_tokenizer_decode(tok, &r->token, 1, 0, &s, NULL);
    cJSON_AddItemToArray(cJSON_GetObjectItem(o, "tokens"), cJSON_CreateString(s.data ? s.data : ""));
    cJSON_AddItemToArray(cJSON_GetObjectItem(o, "token_logprobs"), cJSON_CreateNumber(r->logprob));
    cJSON_AddItemToArray(cJSON_GetObjectItem(o, "text_offset"), cJSON_CreateNumber((double)offset));
    cJSON *m = cJSON_CreateObject();
    for (int i = 0; i < r->n_top && i < top; i++) {
        g4_strbuf t = {0};
        g4_tokenizer_decode(tok, &r->top_ids[i], 1, 0, &t, NULL);
        if (!cJSON_GetObjectItemCaseSensitive(m, t.data ? t.data : ""))
            cJSON_AddNumberToObject(m, t.data ? t.data : "", r->top_logprobs[i]);
        g4_strbuf_free(&t);
    }
    cJSON_AddItemToArray(cJSON_GetObjectItem(o, "top_logprobs"), m);
    g4_strbuf_free(&s);
}

/* --- SSE chunks ------------------------------------------------------------------------ */

static void sse_put(g4_job *j, cJSON *chunk)
{
    char *s = cJSON_PrintUnformatted(chunk);
    cJSON_Delete(chunk);
    if (!s) {
        j->oom = true;
        return;
    }
    g4_strbuf_puts(&j->out, "data: ");
    g4_strbuf_puts(&j->out, s);
    g4_strbuf_puts(&j->out, "\n\n");
    free(s);
}

static cJSON *chunk_new(const g4_job *j)
{
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "id", j->id);
    cJSON_AddStringToObject(c, "object", j->req.kind == G4_OAI_CHAT ? "chat.completion.chunk" : "text_completion");
    cJSON_AddNumberToObject(c, "created", (double)j->created);
    cJSON_AddStringToObject(c, "model", j->model);
    cJSON_AddStringToObject(c, "system_fingerprint", FINGERPRINT);
    return c;
}

/* One chunk for one choice. delta (chat) or text (completions); takes ownership of delta/lp. */
static void emit(g4_job *j, g4_choice *ch, cJSON *delta, const char *text, cJSON *lp, const char *finish)
{
    cJSON *c = chunk_new(j);
    cJSON *arr = cJSON_AddArrayToObject(c, "choices");
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "index", ch->index);
    if (j->req.kind == G4_OAI_CHAT) {
        cJSON_AddItemToObject(o, "delta", delta ? delta : cJSON_CreateObject());
    } else {
        cJSON_Delete(delta);
        cJSON_AddStringToObject(o, "text", text ? text : "");
    }
    if (lp)
        cJSON_AddItemToObject(o, "logprobs", lp);
    else
        cJSON_AddNullToObject(o, "logprobs");
    if (finish)
        cJSON_AddStringToObject(o, "finish_reason", finish);
    else
        cJSON_AddNullToObject(o, "finish_reason");
    cJSON_AddItemToArray(arr, o);
    if (j->req.continuous_usage)
        cJSON_AddItemToObject(c, "usage", usage_json(j));
    else
        cJSON_AddNullToObject(c, "usage");
    sse_put(j, c);
}

static cJSON *text_delta(const char *key, const char *text, size_t len, bool also_reasoning_content)
{
    cJSON *d = cJSON_CreateObject();
    char *t = strndup(text, len);
    cJSON_AddStringToObject(d, key, t ? t : "");
    if (also_reasoning_content)
        cJSON_AddStringToObject(d, "reasoning_content", t ? t : "");
    free(t);
    return d;
}

static cJSON *tool_call_json(const g4_job *j, const g4_choice *ch, const g4_parse_event *pe, bool with_index)
{
    cJSON *t = cJSON_CreateObject();
    if (with_index)
        cJSON_AddNumberToObject(t, "index", pe->index);
    char id[96];
    snprintf(id, sizeof id, "call_%s_%d_%d", j->id + (j->id[0] == 'c' ? 9 : 0), ch->index, pe->index);
    cJSON_AddStringToObject(t, "id", id);
    cJSON_AddStringToObject(t, "type", "function");
    cJSON *f = cJSON_AddObjectToObject(t, "function");
    cJSON_AddStringToObject(f, "name", pe->name ? pe->name : "");
    char *args = strndup(pe->text ? pe->text : "{}", pe->text ? pe->len : 2);
    cJSON_AddStringToObject(f, "arguments", args ? args : "{}");
    free(args);
    return t;
}

/* --- event processing -------------------------------------------------------------------- */

/* Parser events → stream chunks or accumulated message. lp (stream) goes on the first chunk,
 * *finish (stream) on the last one, and is then cleared: as vLLM's server does, the chunk with
 * the last text carries the finish_reason, so clients see no extra empty chunk. */
static void take_parse_events(g4_job *j, g4_choice *ch, g4_parse_events *pev, cJSON **lp, const char **finish)
{
    bool rc = j->srv->cfg.reasoning_content;
    size_t last = pev->n;
    for (size_t k = 0; k < pev->n; k++)
        if (pev->ev[k].kind == G4_PARSE_TOOL_CALL || pev->ev[k].len)
            last = k;
    for (size_t k = 0; k < pev->n; k++) {
        g4_parse_event *pe = &pev->ev[k];
        if (pe->kind != G4_PARSE_TOOL_CALL && pe->len == 0)
            continue;
        if (j->stream) {
            cJSON *d;
            if (pe->kind == G4_PARSE_CONTENT)
                d = text_delta("content", pe->text, pe->len, false);
            else if (pe->kind == G4_PARSE_REASONING)
                d = text_delta("reasoning", pe->text, pe->len, rc);
            else {
                d = cJSON_CreateObject();
                cJSON *arr = cJSON_AddArrayToObject(d, "tool_calls");
                cJSON_AddItemToArray(arr, tool_call_json(j, ch, pe, true));
            }
            emit(j, ch, d, NULL, *lp, k == last ? *finish : NULL);
            *lp = NULL;
            if (k == last)
                *finish = NULL;
        } else if (pe->kind == G4_PARSE_CONTENT) {
            g4_strbuf_append(&ch->content, pe->text, pe->len);
        } else if (pe->kind == G4_PARSE_REASONING) {
            g4_strbuf_append(&ch->reasoning, pe->text, pe->len);
        } else {
            if (!ch->tool_calls)
                ch->tool_calls = cJSON_CreateArray();
            cJSON_AddItemToArray(ch->tool_calls, tool_call_json(j, ch, pe, false));
        }
    }
    g4_parse_events_clear(pev);
}

static void process(g4_job *j, g4_choice *ch, const g4_event *r)
{
    const g4_tokenizer *tok = j->srv->tok;
    bool chat = j->req.kind == G4_OAI_CHAT;
    if (ch->finished)
        return;
    if (j->stream && chat && !ch->role_sent) {
        cJSON *d = cJSON_CreateObject();
        cJSON_AddStringToObject(d, "role", "assistant");
        cJSON_AddStringToObject(d, "content", "");
        emit(j, ch, d, NULL, NULL, NULL);
        ch->role_sent = true;
    }
    cJSON *lp = NULL; /* stream: this event's logprobs */
    if (r->n_tokens > 0 && j->req.logprobs >= 0) {
        if (chat) {
            cJSON *e = chat_logprob(tok, r, j->req.logprobs);
            if (j->stream) {
                lp = cJSON_CreateObject();
                cJSON_AddItemToArray(cJSON_AddArrayToObject(lp, "content"), e);
            } else {
                if (!ch->logprobs)
                    ch->logprobs = cJSON_CreateArray();
                cJSON_AddItemToArray(ch->logprobs, e);
            }
        } else {
            if (j->stream)
                lp = completion_logprobs_new();
            else if (!ch->logprobs)
                ch->logprobs = completion_logprobs_new();
            completion_logprobs_add(j->stream ? lp : ch->logprobs, tok, r, j->req.logprobs, ch->text_offset);
        }
    }
    /* A normal end (not an error, not a timeout) puts finish_reason on this event's last chunk. */
    bool normal_end = r->finish != G4_FINISH_NONE && r->finish != G4_FINISH_ERROR &&
                      !(r->finish == G4_FINISH_ABORT && j->timed_out);
    const char *finish = NULL;
    if (chat) {
        g4_parse_events pev = {0};
        if (r->text)
            g4_output_parser_feed(ch->parser, r->text, strlen(r->text), &pev, NULL);
        if (r->finish != G4_FINISH_NONE)
            g4_output_parser_finish(ch->parser, &pev, NULL);
        ch->finish = r->finish;
        if (j->stream && normal_end)
            finish = finish_name(ch); /* after the parser's finish: tool calls decide the name */
        take_parse_events(j, ch, &pev, &lp, &finish);
        g4_parse_events_free(&pev);
        if (lp) { /* the text is held back (partial marker): logprobs still go out now */
            emit(j, ch, cJSON_CreateObject(), NULL, lp, finish);
            finish = NULL;
        }
    } else {
        size_t len = r->text ? strlen(r->text) : 0; /* special tokens skipped by the detokenizer */
        ch->text_offset += len;
        ch->finish = r->finish;
        if (j->stream && normal_end)
            finish = finish_name(ch);
        if (j->stream) {
            if (len || lp) {
                char *t = strndup(r->text ? r->text : "", len);
                emit(j, ch, NULL, t, lp, finish);
                finish = NULL;
                free(t);
            }
        } else if (len) {
            g4_strbuf_append(&ch->content, r->text, len);
        }
    }
    if (r->finish == G4_FINISH_NONE)
        return;
    ch->finished = true;
    ch->completion_tokens = r->completion_tokens;
    ch->cached_tokens = r->cached_tokens;
    j->n_finished++;
    if (r->finish == G4_FINISH_ERROR)
        snprintf(ch->error, sizeof ch->error, "%s", r->error ? r->error : "the request failed in the engine");
    if (!j->stream)
        return;
    if (r->finish == G4_FINISH_ERROR || (r->finish == G4_FINISH_ABORT && j->timed_out)) {
        g4_http_error e;
        if (r->finish == G4_FINISH_ERROR)
            g4_http_fail(&e, 500, NULL, "%s", ch->error);
        else
            g4_http_fail(&e, 408, NULL, "the request timed out after %g s", j->srv->cfg.request_timeout_s);
        g4_job_sse_error(j, &e);
    } else if (finish) { /* nothing was emitted for this event: a chunk of its own */
        emit(j, ch, chat ? cJSON_CreateObject() : NULL, "", NULL, finish);
    }
    if (j->n_finished == j->n) {
        if (j->req.include_usage) {
            cJSON *c = chunk_new(j);
            cJSON_AddArrayToObject(c, "choices");
            cJSON_AddItemToObject(c, "usage", usage_json(j));
            sse_put(j, c);
        }
        g4_strbuf_puts(&j->out, "data: [DONE]\n\n");
        j->done_sent = true;
    }
}

int g4_job_drain(g4_job *j, g4_http_error *e)
{
    (void)e;
    for (g4_stream_event *ev = g4_stream_take(j->events), *next; ev; ev = next) {
        next = ev->next;
        if (ev->text_lost)
            j->oom = true;
        process(j, ev->tag, &ev->ev);
        g4_stream_event_free(ev);
    }
    if (g4_stream_lost(j->events) > 0)
        j->oom = true;
    return 0;
}

void g4_job_sse_error(g4_job *j, const g4_http_error *e)
{
    cJSON *root = cJSON_CreateObject(), *err = cJSON_AddObjectToObject(root, "error");
    cJSON_AddStringToObject(err, "message", e->message);
    cJSON_AddStringToObject(err, "type", e->type);
    cJSON_AddNullToObject(err, "param");
    cJSON_AddNumberToObject(err, "code", e->status);
    sse_put(j, root);
}

int g4_job_final_json(g4_job *j, char **json, g4_http_error *e)
{
    bool chat = j->req.kind == G4_OAI_CHAT;
    for (int i = 0; i < j->n; i++) {
        const g4_choice *ch = &j->ch[i];
        if (ch->finish == G4_FINISH_ERROR)
            return g4_http_fail(e, 500, NULL, "%s", ch->error);
        if (ch->finish == G4_FINISH_ABORT)
            return j->timed_out ? g4_http_fail(e, 408, NULL, "the request timed out after %g s",
                                               j->srv->cfg.request_timeout_s)
                                : g4_http_fail(e, 503, NULL, "the request was cancelled (server shutting down)");
    }
    if (j->oom)
        return g4_http_fail(e, 500, NULL, "out of memory while collecting the output");
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "id", j->id);
    cJSON_AddStringToObject(root, "object", chat ? "chat.completion" : "text_completion");
    cJSON_AddNumberToObject(root, "created", (double)j->created);
    cJSON_AddStringToObject(root, "model", j->model);
    cJSON_AddStringToObject(root, "system_fingerprint", FINGERPRINT);
    cJSON *arr = cJSON_AddArrayToObject(root, "choices");
    for (int i = 0; i < j->n; i++) {
        g4_choice *ch = &j->ch[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "index", i);
        if (chat) {
            cJSON *m = cJSON_AddObjectToObject(o, "message");
            cJSON_AddStringToObject(m, "role", "assistant");
            if (ch->content.len || !ch->tool_calls)
                cJSON_AddStringToObject(m, "content", ch->content.data ? ch->content.data : "");
            else
                cJSON_AddNullToObject(m, "content");
            if (ch->reasoning.len) {
                cJSON_AddStringToObject(m, "reasoning", ch->reasoning.data);
                if (j->srv->cfg.reasoning_content)
                    cJSON_AddStringToObject(m, "reasoning_content", ch->reasoning.data);
            } else {
                cJSON_AddNullToObject(m, "reasoning");
            }
            if (ch->tool_calls) {
                cJSON_AddItemToObject(m, "tool_calls", ch->tool_calls);
                ch->tool_calls = NULL;
            }
            if (ch->logprobs) {
                cJSON *lp = cJSON_AddObjectToObject(o, "logprobs");
                cJSON_AddItemToObject(lp, "content", ch->logprobs);
                ch->logprobs = NULL;
            } else {
                cJSON_AddNullToObject(o, "logprobs");
            }
        } else {
            cJSON_AddStringToObject(o, "text", ch->content.data ? ch->content.data : "");
            if (ch->logprobs) {
                cJSON_AddItemToObject(o, "logprobs", ch->logprobs);
                ch->logprobs = NULL;
            } else {
                cJSON_AddNullToObject(o, "logprobs");
            }
        }
        cJSON_AddStringToObject(o, "finish_reason", finish_name(ch));
        cJSON_AddNullToObject(o, "stop_reason");
        cJSON_AddItemToArray(arr, o);
    }
    cJSON_AddItemToObject(root, "usage", usage_json(j));
    *json = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!*json)
        return g4_http_fail(e, 500, NULL, "out of memory");
    return 0;
}
