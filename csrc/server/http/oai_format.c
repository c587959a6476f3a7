/* oai_format.c - OpenAI response shapes: engine events → chat.completion(.chunk) and
 * text_completion objects, SSE framing, logprobs, usage. Runs on the MHD thread under the job's
 * mutex. Chat output goes through the Gemma 4 output parser (content / reasoning / tool_calls);
 * completions get their text as the request's detokenizer renders it (skip_special_tokens is
 * a detokenizer flag, generate.c).
 * Shapes: docs/api-http.md; field semantics: docs/serving-conventions.md §2. */
#include "server/http/generate_impl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef G4_VERSION
#define G4_VERSION "0.0.0"
#endif
#define FINGERPRINT "g4serve-" G4_VERSION

int g4_choice_init(g4_choice *c, g4_job *j, int index, int prompt, bool chat, unsigned parse_flags) {
    memset(c, 0, sizeof *c);
    c->job = j;
    c->index = index;
    c->prompt = prompt;
    c->stop_id = c->stop_string = -1;
    c->thought_depth = (parse_flags & G4_PARSE_START_IN_REASONING) ? 1 : 0;
    if (chat && g4_output_parser_new(parse_flags, &c->parser, NULL) < 0) return -1;
    return 0;
}

void g4_choice_release(g4_choice *c) {
    g4_output_parser_free(c->parser);
    g4_strbuf_free(&c->content);
    g4_strbuf_free(&c->reasoning);
    cJSON_Delete(c->tool_calls);
    cJSON_Delete(c->logprobs);
    g4_tokens_free(&c->ids);
    free(c->plp);
}

static const char *finish_name(const g4_choice *c) {
    switch (c->finish) {
    case G4_FINISH_STOP: return c->parser && g4_output_parser_n_calls(c->parser) > 0 ? "tool_calls" : "stop";
    case G4_FINISH_LENGTH: return "length";
    case G4_FINISH_ABORT: return "abort";
    default: return "error";
    }
}

/* The request's usage (ch NULL: every choice, prompts counted once each), or one choice's so far
 * (continuous_usage_stats: its prompt and its tokens up to this chunk, as vLLM). Chat reports
 * completion_tokens_details.reasoning_tokens: tokens inside the thought channel. */
static cJSON *usage_json(const g4_job *j, const g4_choice *ch) {
    int completion = 0, cached = 0, reasoning = 0, prompt = j->prompt_tokens;
    for (int i = 0; i < j->n; i++) {
        const g4_choice *c = &j->ch[i];
        if (ch && c != ch) continue;
        completion += c->completion_tokens;
        reasoning += c->reasoning_tokens;
        if (c->cached_tokens > cached) cached = c->cached_tokens;
    }
    if (ch) prompt = (int)j->prompt_ids[ch->prompt].n;
    cJSON *u = cJSON_CreateObject();
    cJSON_AddNumberToObject(u, "prompt_tokens", prompt);
    cJSON_AddNumberToObject(u, "completion_tokens", completion);
    cJSON_AddNumberToObject(u, "total_tokens", prompt + completion);
    cJSON *d = cJSON_AddObjectToObject(u, "prompt_tokens_details");
    cJSON_AddNumberToObject(d, "cached_tokens", cached);
    if (j->req.kind == G4_OAI_CHAT)
        cJSON_AddNumberToObject(cJSON_AddObjectToObject(u, "completion_tokens_details"), "reasoning_tokens", reasoning);
    return u;
}

static cJSON *ids_json(const int32_t *ids, size_t n) {
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(ids[i]));
    return a;
}

/* The echoed prompt of a completions choice: the text as sent, or the ids the model saw decoded
 * (ids given, or a truncated prompt). */
static void echo_text(const g4_job *j, const g4_choice *ch, g4_strbuf *out) {
    const g4_oai_prompt *p = &j->req.prompts[ch->prompt];
    if (p->text && !j->req.truncate_tokens) {
        g4_strbuf_puts(out, p->text);
        return;
    }
    const g4_tokens *ids = &j->prompt_ids[ch->prompt];
    g4_tokenizer_decode(j->srv->tok, ids->ids, ids->n, j->req.skip_special_tokens ? G4_DECODE_SKIP_SPECIAL : 0, out,
                        NULL);
}

/* The chat request's last message, or NULL. */
static const cJSON *last_message(const g4_job *j) {
    const cJSON *msgs = j->req.messages;
    return msgs && msgs->child ? msgs->child->prev : NULL;
}

/* The response's role (vLLM): "assistant", or with add_generation_prompt false the last
 * message's own (the model continues that message). */
static const char *response_role(const g4_job *j) {
    const cJSON *last = last_message(j);
    const cJSON *role = last ? cJSON_GetObjectItemCaseSensitive(last, "role") : NULL;
    return !j->req.add_generation_prompt && cJSON_IsString(role) ? role->valuestring : "assistant";
}

/* vLLM's echo on chat: the last message's content (text parts joined by newlines) when its role
 * is the response's. */
static void chat_echo_text(const g4_job *j, g4_strbuf *out) {
    const cJSON *last = last_message(j);
    const cJSON *role = last ? cJSON_GetObjectItemCaseSensitive(last, "role") : NULL;
    if (!cJSON_IsString(role) || strcmp(role->valuestring, response_role(j))) return;
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(last, "content");
    if (cJSON_IsString(c)) g4_strbuf_puts(out, c->valuestring);
    int first = 1;
    for (const cJSON *p = cJSON_IsArray(c) ? c->child : NULL; p; p = p->next) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(p, "text");
        if (!cJSON_IsString(t)) continue;
        if (!first) g4_strbuf_putc(out, '\n');
        g4_strbuf_puts(out, t->valuestring);
        first = 0;
    }
}

/* A token's name in logprobs: its text, or "token_id:<id>" with vLLM's
 * return_tokens_as_token_ids (as_id). malloc'ed, never NULL unless out of memory. */
static char *token_text(const g4_tokenizer *tok, int32_t id, bool as_id) {
    if (as_id) {
        char buf[32];
        snprintf(buf, sizeof buf, "token_id:%d", (int)id);
        return strdup(buf);
    }
    g4_strbuf t = {0};
    g4_tokenizer_decode(tok, &id, 1, 0, &t, NULL);
    char *s = strdup(t.data ? t.data : "");
    g4_strbuf_free(&t);
    return s;
}

static char *logprob_name(const g4_job *j, int32_t id) { return token_text(j->srv->tok, id, j->req.tokens_as_ids); }

/* {token, logprob, bytes} for one id (chat logprobs). */
static cJSON *token_entry(const g4_job *j, int32_t id, float lp) {
    char *s = logprob_name(j, id);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "token", s ? s : "");
    cJSON_AddNumberToObject(o, "logprob", lp);
    cJSON *b = cJSON_AddArrayToObject(o, "bytes");
    for (size_t i = 0; s && s[i]; i++) cJSON_AddItemToArray(b, cJSON_CreateNumber((unsigned char)s[i]));
    free(s);
    return o;
}

/* With logprob_token_ids the event's top entries are those ids' logprobs: the sampled token
 * comes first, then each requested id once; a masked id's −inf is sent as −9999 (vLLM's clamp). */
static bool pinned(const g4_job *j) { return j->req.n_logprob_ids > 0; }
static float clamp_lp(float lp) { return lp > -9999.0f ? lp : -9999.0f; }

static cJSON *chat_logprob(const g4_job *j, const g4_event *r, int top) {
    cJSON *o = token_entry(j, r->token, r->logprob);
    cJSON *t = cJSON_AddArrayToObject(o, "top_logprobs");
    if (pinned(j)) {
        cJSON_AddItemToArray(t, token_entry(j, r->token, r->logprob));
        for (int i = 0; i < r->n_top; i++)
            if (r->top_ids[i] != r->token)
                cJSON_AddItemToArray(t, token_entry(j, r->top_ids[i], clamp_lp(r->top_logprobs[i])));
        return o;
    }
    for (int i = 0; i < r->n_top && i < top; i++)
        if (isfinite(r->top_logprobs[i])) /* allowed_token_ids leaves the rest at −inf */
            cJSON_AddItemToArray(t, token_entry(j, r->top_ids[i], r->top_logprobs[i]));
    return o;
}

/* Completions logprobs object {tokens, token_logprobs, top_logprobs, text_offset}. */
static cJSON *completion_logprobs_new(void) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddArrayToObject(o, "tokens");
    cJSON_AddArrayToObject(o, "token_logprobs");
    cJSON_AddArrayToObject(o, "top_logprobs");
    cJSON_AddArrayToObject(o, "text_offset");
    return o;
}

static void completion_logprobs_add(cJSON *o, const g4_job *j, const g4_event *r, int top, size_t offset) {
    char *s = logprob_name(j, r->token);
    cJSON_AddItemToArray(cJSON_GetObjectItem(o, "tokens"), cJSON_CreateString(s ? s : ""));
    cJSON_AddItemToArray(cJSON_GetObjectItem(o, "token_logprobs"), cJSON_CreateNumber(r->logprob));
    cJSON_AddItemToArray(cJSON_GetObjectItem(o, "text_offset"), cJSON_CreateNumber((double)offset));
    /* The sampled token first, then the top n (OpenAI and vLLM: up to logprobs + 1 entries; with
     * logprobs 0 just the sampled one). */
    cJSON *m = cJSON_CreateObject();
    cJSON_AddNumberToObject(m, s ? s : "", r->logprob);
    if (pinned(j)) top = r->n_top;
    for (int i = 0; i < r->n_top && i < top && (pinned(j) || isfinite(r->top_logprobs[i])); i++) {
        char *t = logprob_name(j, r->top_ids[i]);
        if (!cJSON_GetObjectItemCaseSensitive(m, t ? t : ""))
            cJSON_AddNumberToObject(m, t ? t : "", clamp_lp(r->top_logprobs[i]));
        free(t);
    }
    cJSON_AddItemToArray(cJSON_GetObjectItem(o, "top_logprobs"), m);
    free(s);
}

/* --- prompt logprobs --------------------------------------------------------------------- */

/* The prompt entry of position pos (1..), or NULL when it did not arrive. */
static const g4_prompt_logprob *plp_at(const g4_choice *ch, int pos) {
    return pos >= 1 && pos <= ch->n_plp && ch->plp[pos - 1].pos == pos ? &ch->plp[pos - 1] : NULL;
}

/* echo + logprobs (OpenAI's legacy shape): the prompt tokens' part of the completions logprobs
 * object, the first token's logprob and alternatives null; offsets count the tokens' texts. */
static void prompt_legacy_logprobs(const g4_job *j, const g4_choice *ch, cJSON *o) {
    const g4_tokenizer *tok = j->srv->tok;
    const g4_tokens *ids = &j->prompt_ids[ch->prompt];
    size_t offset = 0;
    for (size_t i = 0; i < ids->n; i++) {
        char *t = token_text(tok, ids->ids[i], false);
        char *name = logprob_name(j, ids->ids[i]);
        const g4_prompt_logprob *p = plp_at(ch, (int)i);
        cJSON_AddItemToArray(cJSON_GetObjectItem(o, "tokens"), cJSON_CreateString(name ? name : ""));
        cJSON_AddItemToArray(cJSON_GetObjectItem(o, "token_logprobs"),
                             p ? cJSON_CreateNumber(p->logprob) : cJSON_CreateNull());
        cJSON_AddItemToArray(cJSON_GetObjectItem(o, "text_offset"), cJSON_CreateNumber((double)offset));
        cJSON *m = p ? cJSON_CreateObject() : cJSON_CreateNull();
        if (p) {
            cJSON_AddNumberToObject(m, name ? name : "", p->logprob);
            for (int k = 0; k < p->n_top && k < j->req.logprobs; k++) {
                char *a = logprob_name(j, p->top_ids[k]);
                if (a && !cJSON_GetObjectItemCaseSensitive(m, a)) cJSON_AddNumberToObject(m, a, p->top_logprobs[k]);
                free(a);
            }
        }
        cJSON_AddItemToArray(cJSON_GetObjectItem(o, "top_logprobs"), m);
        offset += t ? strlen(t) : 0;
        free(t);
        free(name);
    }
}

/* vLLM's prompt_logprobs: [null, {"id": {logprob, rank, decoded_token}, ...}, ...] — the prompt
 * token and its top alternatives at every position after the first. */
static cJSON *prompt_logprobs_json(const g4_job *j, const g4_choice *ch) {
    const g4_tokenizer *tok = j->srv->tok;
    const g4_tokens *ids = &j->prompt_ids[ch->prompt];
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; i < ids->n; i++) {
        const g4_prompt_logprob *p = plp_at(ch, (int)i);
        if (!p) {
            cJSON_AddItemToArray(a, cJSON_CreateNull());
            continue;
        }
        cJSON *m = cJSON_CreateObject();
        for (int k = -1; k < p->n_top && k < j->req.prompt_logprobs; k++) {
            int32_t id = k < 0 ? p->token : p->top_ids[k];
            char key[16];
            snprintf(key, sizeof key, "%d", (int)id);
            if (cJSON_GetObjectItemCaseSensitive(m, key)) continue;
            cJSON *e = cJSON_AddObjectToObject(m, key);
            cJSON_AddNumberToObject(e, "logprob", k < 0 ? p->logprob : p->top_logprobs[k]);
            cJSON_AddNumberToObject(e, "rank", k < 0 ? p->rank : k + 1);
            char *t = token_text(tok, id, false); /* vLLM: the text even with return_tokens_as_token_ids */
            cJSON_AddStringToObject(e, "decoded_token", t ? t : "");
            free(t);
        }
        cJSON_AddItemToArray(a, m);
    }
    return a;
}

static void plp_append(g4_job *j, g4_choice *ch, const g4_event *r) {
    if (ch->n_plp + r->n_prompt_lp > ch->cap_plp) {
        int cap = ch->cap_plp ? ch->cap_plp : 64;
        while (cap < ch->n_plp + r->n_prompt_lp) cap *= 2;
        g4_prompt_logprob *p = realloc(ch->plp, sizeof *p * (size_t)cap);
        if (!p) {
            j->oom = true;
            return;
        }
        ch->plp = p;
        ch->cap_plp = cap;
    }
    memcpy(ch->plp + ch->n_plp, r->prompt_lp, sizeof *r->prompt_lp * (size_t)r->n_prompt_lp);
    ch->n_plp += r->n_prompt_lp;
}

/* --- SSE chunks ------------------------------------------------------------------------ */

static void sse_put(g4_job *j, cJSON *chunk) {
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

static cJSON *chunk_new(const g4_job *j) {
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "id", j->id);
    cJSON_AddStringToObject(c, "object", j->req.kind == G4_OAI_CHAT ? "chat.completion.chunk" : "text_completion");
    cJSON_AddNumberToObject(c, "created", (double)j->created);
    cJSON_AddStringToObject(c, "model", j->model);
    cJSON_AddStringToObject(c, "system_fingerprint", FINGERPRINT);
    return c;
}

/* vLLM's stop_reason: the stop string, or the stop id that ended the choice (the tokenizer's eos
 * gives null unless ignore_eos or beam search: vLLM's generation-config eos ids, <turn|> here, are
 * stop ids there). */
static void add_stop_reason(const g4_job *j, const g4_choice *ch, cJSON *o) {
    if (ch->stop_string >= 0) cJSON_AddStringToObject(o, "stop_reason", j->req.stop_strings[ch->stop_string]);
    else if (ch->stop_id >= 0) cJSON_AddNumberToObject(o, "stop_reason", ch->stop_id);
    else cJSON_AddNullToObject(o, "stop_reason");
}

/* What ended the choice, from its last event. */
static void record_stop(const g4_job *j, g4_choice *ch, const g4_event *r) {
    ch->stop_id = ch->stop_string = -1;
    if (r->finish != G4_FINISH_STOP) return;
    for (int i = 0; r->stop_string && i < j->req.stop.n_stop_strings; i++)
        if (!strcmp(j->req.stop_strings[i], r->stop_string)) ch->stop_string = i;
    /* vLLM: its eos check (skipped under ignore_eos) names no reason; a beam names its end id */
    bool eos = !j->req.stop.ignore_eos && !j->beams && r->stop_token == g4_tokenizer_specials(j->srv->tok)->eos;
    if (ch->stop_string < 0 && r->stop_token >= 0 && !eos) ch->stop_id = r->stop_token;
}

/* One chunk for one choice. delta (chat) or text (completions); takes ownership of delta/lp. */
static void emit(g4_job *j, g4_choice *ch, cJSON *delta, const char *text, cJSON *lp, const char *finish) {
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
    if (lp) cJSON_AddItemToObject(o, "logprobs", lp);
    else cJSON_AddNullToObject(o, "logprobs");
    if (finish) {
        cJSON_AddStringToObject(o, "finish_reason", finish);
        add_stop_reason(j, ch, o);
    } else {
        cJSON_AddNullToObject(o, "finish_reason");
        cJSON_AddNullToObject(o, "stop_reason");
    }
    if (j->req.return_token_ids) {
        if (!ch->chunk_sent) {
            const g4_tokens *pi = &j->prompt_ids[ch->prompt];
            cJSON_AddItemToObject(j->req.kind == G4_OAI_CHAT ? c : o, "prompt_token_ids", ids_json(pi->ids, pi->n));
        }
        cJSON_AddItemToObject(o, "token_ids", ids_json(ch->ids.ids + ch->ids_sent, ch->ids.n - ch->ids_sent));
        ch->ids_sent = ch->ids.n;
    }
    if (!ch->chunk_sent && j->req.prompt_logprobs >= 0 && j->req.kind == G4_OAI_COMPLETION)
        cJSON_AddItemToObject(o, "prompt_logprobs", prompt_logprobs_json(j, ch));
    ch->chunk_sent = true;
    cJSON_AddItemToArray(arr, o);
    if (j->req.continuous_usage) cJSON_AddItemToObject(c, "usage", usage_json(j, ch));
    else cJSON_AddNullToObject(c, "usage");
    sse_put(j, c);
}

static cJSON *text_delta(const char *key, const char *text, size_t len, bool also_reasoning_content) {
    cJSON *d = cJSON_CreateObject();
    char *t = strndup(text, len);
    cJSON_AddStringToObject(d, key, t ? t : "");
    if (also_reasoning_content) cJSON_AddStringToObject(d, "reasoning_content", t ? t : "");
    free(t);
    return d;
}

static cJSON *tool_call_json(const g4_job *j, const g4_choice *ch, const g4_parse_event *pe, bool with_index) {
    cJSON *t = cJSON_CreateObject();
    if (with_index) cJSON_AddNumberToObject(t, "index", pe->index);
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
static void take_parse_events(g4_job *j, g4_choice *ch, g4_parse_events *pev, cJSON **lp, const char **finish) {
    bool rc = j->srv->cfg.reasoning_content;
    size_t last = pev->n;
    for (size_t k = 0; k < pev->n; k++)
        if (pev->ev[k].kind == G4_PARSE_TOOL_CALL || pev->ev[k].len) last = k;
    for (size_t k = 0; k < pev->n; k++) {
        g4_parse_event *pe = &pev->ev[k];
        if (pe->kind != G4_PARSE_TOOL_CALL && pe->len == 0) continue;
        if (j->stream) {
            cJSON *d;
            if (pe->kind == G4_PARSE_CONTENT) d = text_delta("content", pe->text, pe->len, false);
            else if (pe->kind == G4_PARSE_REASONING) d = text_delta("reasoning", pe->text, pe->len, rc);
            else {
                d = cJSON_CreateObject();
                cJSON *arr = cJSON_AddArrayToObject(d, "tool_calls");
                cJSON_AddItemToArray(arr, tool_call_json(j, ch, pe, true));
            }
            emit(j, ch, d, NULL, *lp, k == last ? *finish : NULL);
            *lp = NULL;
            if (k == last) *finish = NULL;
        } else if (pe->kind == G4_PARSE_CONTENT) {
            g4_strbuf_append(&ch->content, pe->text, pe->len);
        } else if (pe->kind == G4_PARSE_REASONING) {
            g4_strbuf_append(&ch->reasoning, pe->text, pe->len);
        } else {
            if (!ch->tool_calls) ch->tool_calls = cJSON_CreateArray();
            cJSON_AddItemToArray(ch->tool_calls, tool_call_json(j, ch, pe, false));
        }
    }
    g4_parse_events_clear(pev);
}

/* Per-token bookkeeping before anything is emitted: tokens so far (continuous usage), the
 * thought channel's tokens (vLLM's count: markers excluded, nesting counted), returned ids. */
static void count_token(g4_job *j, g4_choice *ch, const g4_event *r) {
    if (r->n_tokens > 0) {
        ch->completion_tokens += r->n_tokens;
        if (j->req.return_token_ids && g4_tokens_push(&ch->ids, r->token) < 0) j->oom = true;
        if (j->req.kind == G4_OAI_CHAT) {
            const g4_special_ids *sp = g4_tokenizer_specials(j->srv->tok);
            if (r->token == sp->channel_start) ch->thought_depth++;
            else if (r->token == sp->channel_end) ch->thought_depth -= ch->thought_depth > 0;
            else if (ch->thought_depth > 0) ch->reasoning_tokens++;
        }
    }
    if (r->finish != G4_FINISH_NONE) ch->completion_tokens = r->completion_tokens;
}

static void process(g4_job *j, g4_choice *ch, const g4_event *r) {
    bool chat = j->req.kind == G4_OAI_CHAT;
    if (ch->finished) return;
    if (r->n_prompt_lp > 0) { /* they go out with the first chunk / the response */
        plp_append(j, ch, r);
        if (r->n_tokens == 0 && r->finish == G4_FINISH_NONE) return;
    }
    if (j->req.echo && !chat && !ch->echo_sent) {
        /* the echoed prompt (streamed: a chunk of its own, with the prompt's logprobs); the
         * completion's text offsets count from its end */
        g4_strbuf t = {0};
        echo_text(j, ch, &t);
        ch->text_offset = t.len;
        if (j->stream) {
            cJSON *plp = NULL;
            if (j->req.logprobs >= 0) {
                plp = completion_logprobs_new();
                prompt_legacy_logprobs(j, ch, plp);
            }
            emit(j, ch, NULL, t.data ? t.data : "", plp, NULL);
        }
        g4_strbuf_free(&t);
        ch->echo_sent = true;
    }
    if (j->stream && chat && !ch->role_sent) {
        cJSON *d = cJSON_CreateObject();
        cJSON_AddStringToObject(d, "role", response_role(j));
        cJSON_AddStringToObject(d, "content", "");
        emit(j, ch, d, NULL, NULL, NULL);
        ch->role_sent = true;
    }
    if (j->stream && chat && j->req.echo && !ch->echo_sent) { /* vLLM: a chunk of its own after the role */
        g4_strbuf t = {0};
        chat_echo_text(j, &t);
        if (t.len) {
            cJSON *d = cJSON_CreateObject();
            cJSON_AddStringToObject(d, "content", t.data);
            emit(j, ch, d, NULL, NULL, NULL);
        }
        g4_strbuf_free(&t);
        ch->echo_sent = true;
    }
    count_token(j, ch, r); /* after the echo and role chunks: they precede the first token (usage 0, as vLLM) */
    cJSON *lp = NULL; /* stream: this event's logprobs */
    if (r->n_tokens > 0 && j->req.logprobs >= 0) {
        if (chat) {
            cJSON *e = chat_logprob(j, r, j->req.logprobs);
            if (j->stream) {
                lp = cJSON_CreateObject();
                cJSON_AddItemToArray(cJSON_AddArrayToObject(lp, "content"), e);
            } else {
                if (!ch->logprobs) ch->logprobs = cJSON_CreateArray();
                cJSON_AddItemToArray(ch->logprobs, e);
            }
        } else {
            if (j->stream) lp = completion_logprobs_new();
            else if (!ch->logprobs) ch->logprobs = completion_logprobs_new();
            completion_logprobs_add(j->stream ? lp : ch->logprobs, j, r, j->req.logprobs, ch->text_offset);
        }
    }
    /* A normal end (not an error, not a timeout) puts finish_reason on this event's last chunk. */
    bool normal_end =
        r->finish != G4_FINISH_NONE && r->finish != G4_FINISH_ERROR && !(r->finish == G4_FINISH_ABORT && j->timed_out);
    const char *finish = NULL;
    if (r->finish != G4_FINISH_NONE) record_stop(j, ch, r);
    if (chat) {
        g4_parse_events pev = {0};
        if (r->text) g4_output_parser_feed(ch->parser, r->text, strlen(r->text), &pev, NULL);
        if (r->finish != G4_FINISH_NONE) g4_output_parser_finish(ch->parser, &pev, NULL);
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
        if (j->stream && normal_end) finish = finish_name(ch);
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
    if (r->finish == G4_FINISH_NONE) return;
    ch->finished = true;
    ch->completion_tokens = r->completion_tokens;
    ch->cached_tokens = r->cached_tokens;
    j->n_finished++;
    if (r->finish == G4_FINISH_ERROR)
        snprintf(ch->error, sizeof ch->error, "%s", r->error ? r->error : "the request failed in the engine");
    if (!j->stream) return;
    if (r->finish == G4_FINISH_ERROR || (r->finish == G4_FINISH_ABORT && j->timed_out)) {
        g4_http_error e;
        if (r->finish == G4_FINISH_ERROR) g4_http_fail(&e, 500, NULL, "%s", ch->error);
        else g4_http_fail(&e, 408, NULL, "the request timed out after %g s", j->srv->cfg.request_timeout_s);
        g4_job_sse_error(j, &e);
    } else if (finish) { /* nothing was emitted for this event: a chunk of its own */
        emit(j, ch, chat ? cJSON_CreateObject() : NULL, "", NULL, finish);
    }
    if (j->n_finished == j->n) {
        if (j->req.include_usage) {
            cJSON *c = chunk_new(j);
            cJSON_AddArrayToObject(c, "choices");
            cJSON_AddItemToObject(c, "usage", usage_json(j, NULL));
            sse_put(j, c);
        }
        g4_strbuf_puts(&j->out, "data: [DONE]\n\n");
        j->done_sent = true;
    }
}

int g4_job_drain(g4_job *j, g4_http_error *e) {
    (void)e;
    for (g4_stream_event *ev = g4_stream_take(j->events), *next; ev; ev = next) {
        next = ev->next;
        if (ev->lost) j->oom = true;
        process(j, ev->tag, &ev->ev);
        g4_stream_event_free(ev);
    }
    if (g4_stream_lost(j->events) > 0) j->oom = true;
    return 0;
}

void g4_job_sse_error(g4_job *j, const g4_http_error *e) {
    cJSON *root = cJSON_CreateObject(), *err = cJSON_AddObjectToObject(root, "error");
    cJSON_AddStringToObject(err, "message", e->message);
    cJSON_AddStringToObject(err, "type", e->type);
    cJSON_AddNullToObject(err, "param");
    cJSON_AddNumberToObject(err, "code", e->status);
    sse_put(j, root);
}

int g4_job_final_json(g4_job *j, char **json, g4_http_error *e) {
    bool chat = j->req.kind == G4_OAI_CHAT;
    for (int i = 0; i < j->n; i++) {
        const g4_choice *ch = &j->ch[i];
        if (ch->finish == G4_FINISH_ERROR) return g4_http_fail(e, 500, NULL, "%s", ch->error);
        if (ch->finish == G4_FINISH_ABORT)
            return j->timed_out
                       ? g4_http_fail(e, 408, NULL, "the request timed out after %g s", j->srv->cfg.request_timeout_s)
                       : g4_http_fail(e, 503, NULL, "the request was cancelled (server shutting down)");
    }
    if (j->oom) return g4_http_fail(e, 500, NULL, "out of memory while collecting the output");
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "id", j->id);
    cJSON_AddStringToObject(root, "object", chat ? "chat.completion" : "text_completion");
    cJSON_AddNumberToObject(root, "created", (double)j->created);
    cJSON_AddStringToObject(root, "model", j->model);
    cJSON_AddStringToObject(root, "system_fingerprint", FINGERPRINT);
    /* vLLM's fields are always present, null when not asked for (clients test for the key) */
    if (chat && j->req.return_token_ids)
        cJSON_AddItemToObject(root, "prompt_token_ids", ids_json(j->prompt_ids[0].ids, j->prompt_ids[0].n));
    else if (chat) cJSON_AddNullToObject(root, "prompt_token_ids");
    if (chat && j->req.prompt_logprobs >= 0) /* vLLM: one list for the request's one prompt */
        cJSON_AddItemToObject(root, "prompt_logprobs", prompt_logprobs_json(j, &j->ch[0]));
    else if (chat) cJSON_AddNullToObject(root, "prompt_logprobs");
    cJSON *arr = cJSON_AddArrayToObject(root, "choices");
    for (int i = 0; i < j->n; i++) {
        g4_choice *ch = &j->ch[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "index", i);
        if (j->req.return_token_ids) {
            const g4_tokens *pi = &j->prompt_ids[ch->prompt];
            if (!chat) cJSON_AddItemToObject(o, "prompt_token_ids", ids_json(pi->ids, pi->n));
            cJSON_AddItemToObject(o, "token_ids", ids_json(ch->ids.ids, ch->ids.n));
        } else {
            if (!chat) cJSON_AddNullToObject(o, "prompt_token_ids");
            cJSON_AddNullToObject(o, "token_ids");
        }
        if (chat) {
            cJSON *m = cJSON_AddObjectToObject(o, "message");
            cJSON_AddStringToObject(m, "role", response_role(j));
            g4_strbuf text = {0};
            if (j->req.echo) chat_echo_text(j, &text);
            g4_strbuf_append(&text, ch->content.data ? ch->content.data : "", ch->content.len);
            if (text.len || !ch->tool_calls) cJSON_AddStringToObject(m, "content", text.data ? text.data : "");
            else cJSON_AddNullToObject(m, "content");
            g4_strbuf_free(&text);
            if (ch->reasoning.len) {
                cJSON_AddStringToObject(m, "reasoning", ch->reasoning.data);
                if (j->srv->cfg.reasoning_content) cJSON_AddStringToObject(m, "reasoning_content", ch->reasoning.data);
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
            g4_strbuf text = {0};
            if (j->req.echo) echo_text(j, ch, &text);
            g4_strbuf_append(&text, ch->content.data ? ch->content.data : "", ch->content.len);
            cJSON_AddStringToObject(o, "text", text.data ? text.data : "");
            g4_strbuf_free(&text);
            if (j->req.echo && j->req.logprobs >= 0) { /* the prompt's tokens first */
                cJSON *all = completion_logprobs_new();
                prompt_legacy_logprobs(j, ch, all);
                static const char *const keys[4] = {"tokens", "token_logprobs", "top_logprobs", "text_offset"};
                for (int k = 0; k < 4 && ch->logprobs; k++) {
                    cJSON *src = cJSON_GetObjectItem(ch->logprobs, keys[k]), *dst = cJSON_GetObjectItem(all, keys[k]);
                    while (src && src->child) cJSON_AddItemToArray(dst, cJSON_DetachItemViaPointer(src, src->child));
                }
                cJSON_Delete(ch->logprobs);
                ch->logprobs = all;
            }
            if (j->req.prompt_logprobs >= 0) cJSON_AddItemToObject(o, "prompt_logprobs", prompt_logprobs_json(j, ch));
            else cJSON_AddNullToObject(o, "prompt_logprobs");
            if (ch->logprobs) {
                cJSON_AddItemToObject(o, "logprobs", ch->logprobs);
                ch->logprobs = NULL;
            } else {
                cJSON_AddNullToObject(o, "logprobs");
            }
        }
        cJSON_AddStringToObject(o, "finish_reason", finish_name(ch));
        add_stop_reason(j, ch, o);
        cJSON_AddItemToArray(arr, o);
    }
    cJSON_AddItemToObject(root, "usage", usage_json(j, NULL));
    *json = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!*json) return g4_http_fail(e, 500, NULL, "out of memory");
    return 0;
}
