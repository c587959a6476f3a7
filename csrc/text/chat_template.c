/* chat_template.c - the Gemma 4 (26B-A4B / 31B, 2026-07-09) chat template, rendered in C.
 *
 * Follows the Jinja source top to bottom: system block (thinking flag, first system/developer
 * message, tool declarations), then one pass over the messages (tool messages are consumed by
 * the assistant message before them), then the generation prompt. Variable names echo the
 * template's (prev_message_type, prev_non_tool_role, last_user_idx) so the two read side by side.
 * continue_final_message wraps that render the way transformers does (render_continued).
 * Value formatting lives in chat_format.c. */
#include "text/chat_template.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "text/chat_format.h"
#include "text/utf8.h"

enum prev_type { PREV_NONE, PREV_THINK, PREV_TOOL, PREV_TOOL_CALL, PREV_TOOL_RESPONSE };

void g4_chat_options_default(g4_chat_options *o) {
    memset(o, 0, sizeof *o);
    o->add_generation_prompt = 1;
    o->emit_bos = 1;
    o->fix_generation_prompt = 1;
}

/* o[key]; a repeated JSON key: the last one wins, as in Python's json (chat_format.h). */
static const cJSON *get(const cJSON *o, const char *key) { return g4_py_get(o, key); }

static const char *role_of(const cJSON *m) {
    const cJSON *r = get(m, "role");
    return cJSON_IsString(r) ? r->valuestring : NULL;
}

static int streq(const char *a, const char *b) { return a && b && !strcmp(a, b); }

/* Appends str(v) | trim. */
static int put_trimmed(g4_strbuf *b, const cJSON *v) {
    g4_strbuf t = {0};
    int rc = g4_py_str(&t, v);
    if (!rc && t.len) {
        size_t s, e;
        g4_utf8_strip(t.data, t.len, &s, &e);
        rc = g4_strbuf_append_user(b, t.data + s, e - s);
    }
    g4_strbuf_free(&t);
    return rc;
}

/* The template's strip_thinking: drop every "<|channel>...<channel|>" span, then trim.
 * The template calls text.split(), so anything but a string (a part without "text", null, a
 * number) raises there; here it is an error too. */
static int put_strip_thinking(g4_strbuf *b, const cJSON *v, int msg_idx, g4_error *err) {
    if (!cJSON_IsString(v))
        return g4_fail(err, "chat: messages[%d]: an assistant text part needs a string 'text'", msg_idx);
    const char *s = v->valuestring, *end = s + strlen(s);
    g4_strbuf r = {0};
    int rc = 0;
    while (!rc) { /* parts of text.split('<channel|>') */
        const char *close = strstr(s, "<channel|>");
        const char *part_end = close ? close : end;
        const char *open = NULL;
        for (const char *p = s; p + 10 <= part_end && !open; p++)
            if (!memcmp(p, "<|channel>", 10)) open = p;
        rc = g4_strbuf_append(&r, s, (size_t)((open ? open : part_end) - s));
        if (!close) break;
        s = close + 10;
    }
    if (!rc && r.len) {
        size_t a, e;
        g4_utf8_strip(r.data, r.len, &a, &e);
        rc = g4_strbuf_append_user(b, r.data + a, e - a);
    }
    g4_strbuf_free(&r);
    return rc ? g4_fail(err, "chat: out of memory") : 0;
}

/* format_tool_response_block(name, response); resp NULL is a Jinja Undefined (a missing key),
 * which format_argument prints as an empty sequence, "[]". */
static int put_tool_response(g4_strbuf *b, const char *name, const cJSON *resp) {
    int rc = g4_strbuf_puts(b, "<|tool_response>response:") || g4_strbuf_puts_user(b, name) || g4_strbuf_putc(b, '{');
    if (cJSON_IsObject(resp)) {
        int n;
        const cJSON **kv = g4_dictsort(resp, &n);
        for (int i = 0; i < n && !rc; i++) {
            if (i) rc = g4_strbuf_putc(b, ',');
            rc = rc || g4_strbuf_puts_user(b, kv[i]->string) || g4_strbuf_putc(b, ':') ||
                 g4_gemma_format_argument(b, kv[i], 0);
        }
        free(kv);
    } else {
        rc = rc || g4_strbuf_puts(b, "value:") ||
             (resp ? g4_gemma_format_argument(b, resp, 0) : g4_strbuf_puts(b, "[]"));
    }
    return rc || g4_strbuf_puts(b, "}<tool_response|>");
}

static int put_media_marker(g4_strbuf *b, const char *type) {
    if (streq(type, "image") || streq(type, "image_url")) return g4_strbuf_puts(b, "<|image|>");
    if (streq(type, "audio") || streq(type, "input_audio")) return g4_strbuf_puts(b, "<|audio|>");
    if (streq(type, "video")) return g4_strbuf_puts(b, "<|video|>");
    return 0;
}

static const char *part_type(const cJSON *part) {
    const cJSON *t = get(part, "type");
    return cJSON_IsString(t) ? t->valuestring : NULL;
}

/* One assistant tool call: <|tool_call>call:NAME{k:v,...}<tool_call|>. */
static int put_tool_call(g4_strbuf *b, const cJSON *tc, int idx, int msg_idx, const g4_chat_options *o, g4_error *err) {
    const cJSON *fn = get(tc, "function"), *name = get(fn, "name"), *args = get(fn, "arguments");
    if (!cJSON_IsString(name))
        return g4_fail(err, "chat: messages[%d].tool_calls[%d].function.name must be a string", msg_idx, idx);
    cJSON *parsed = NULL;
    if (cJSON_IsString(args) && o->decode_string_arguments) {
        parsed = cJSON_Parse(args->valuestring);
        args = parsed;
        if (!parsed || !(cJSON_IsObject(parsed) || cJSON_IsNull(parsed))) {
            cJSON_Delete(parsed);
            return g4_fail(err,
                           "chat: messages[%d].tool_calls[%d].function.arguments: string is "
                           "not a JSON object",
                           msg_idx, idx);
        }
    }
    if (!cJSON_IsObject(args) && !cJSON_IsNull(args)) {
        cJSON_Delete(parsed);
        return g4_fail(err,
                       "chat: messages[%d].tool_calls[%d].function.arguments must be a JSON "
                       "object (mapping), not a %s",
                       msg_idx, idx,
                       cJSON_IsString(args) ? "string"
                       : args               ? "non-object"
                                            : "missing value");
    }
    int rc =
        g4_strbuf_puts(b, "<|tool_call>call:") || g4_strbuf_puts_user(b, name->valuestring) || g4_strbuf_putc(b, '{');
    if (cJSON_IsObject(args)) {
        int n;
        const cJSON **kv = g4_dictsort(args, &n);
        for (int i = 0; i < n && !rc; i++) {
            if (i) rc = g4_strbuf_putc(b, ',');
            rc = rc || g4_strbuf_puts_user(b, kv[i]->string) || g4_strbuf_putc(b, ':') ||
                 g4_gemma_format_argument(b, kv[i], 0);
        }
        free(kv);
    }
    cJSON_Delete(parsed);
    rc = rc || g4_strbuf_puts(b, "}<tool_call|>");
    return rc ? g4_fail(err, "chat: out of memory") : 0;
}

/* Jinja treats a dict as a sequence of its keys, and `key.get(...)` then raises: content given
 * as a non-empty object, or a part list holding a non-object, is an error in the template. */
static int parts_ok(const cJSON *content) {
    if (cJSON_IsObject(content)) return content->child == NULL;
    if (cJSON_IsArray(content))
        for (const cJSON *p = content->child; p; p = p->next)
            if (!cJSON_IsObject(p)) return 0;
    return 1;
}

/* The OpenAI path: the run of role:"tool" messages after msgs[i], each answering a call.
 * `first` turns loop indices into message indices for errors. 0, or -1 with err set. */
static int put_tool_messages(g4_strbuf *b, const cJSON **msgs, int n, int i, int first, const cJSON *calls,
                             g4_error *err) {
    static const cJSON null_value = {.type = cJSON_NULL}; /* follow.get('content') of a missing key */
    int rc = 0;
    for (int k = i + 1; k < n && !rc && streq(role_of(msgs[k]), "tool"); k++) {
        const cJSON *follow = msgs[k];
        const cJSON *body = get(follow, "content");
        if (!parts_ok(body))
            return g4_fail(err,
                           "chat: messages[%d].content: a tool result must be a string, null or a list of "
                           "content-part objects",
                           k + first);
        const cJSON *fname = get(follow, "name");
        const char *name = NULL;
        for (const cJSON *tc = calls->child; tc; tc = tc->next) /* names were checked by put_tool_call */
            if (g4_py_equal(get(tc, "id"), get(follow, "tool_call_id")))
                name = get(get(tc, "function"), "name")->valuestring;
        if (!name && g4_py_truthy(fname) && !cJSON_IsString(fname)) /* 'response:' + name raises */
            return g4_fail(err, "chat: messages[%d].name must be a string", k + first);
        if (!name) name = g4_py_truthy(fname) ? fname->valuestring : "unknown";
        if (cJSON_IsArray(body) || cJSON_IsObject(body)) {
            g4_strbuf txt = {0};
            int p = 0;
            for (const cJSON *part = body->child; part && !rc; part = part->next, p++) {
                if (!streq(part_type(part), "text")) continue;
                const cJSON *t = get(part, "text"); /* ns_txt.s + part.get('text'): a str or it raises */
                if (!cJSON_IsString(t)) {
                    g4_strbuf_free(&txt);
                    return g4_fail(err, "chat: messages[%d].content[%d].text must be a string", k + first, p);
                }
                rc = g4_strbuf_puts_user(&txt, t->valuestring);
            }
            cJSON *s = rc ? NULL : cJSON_CreateString(txt.data ? txt.data : "");
            rc = rc || !s || put_tool_response(b, name, s);
            cJSON_Delete(s);
            g4_strbuf_free(&txt);
            for (const cJSON *part = body->child; part && !rc; part = part->next)
                rc = put_media_marker(b, part_type(part));
        } else {
            rc = put_tool_response(b, name, body ? body : &null_value);
        }
    }
    return rc ? g4_fail(err, "chat: out of memory") : 0;
}

/* The native path: `for tool_response in message.tool_responses` over a truthy value, which
 * Python iterates as a list's items, a dict's keys or a string's characters (a number or a
 * boolean raises). An item that is not an object has no name ("unknown") and no response. */
static int put_tool_responses(g4_strbuf *b, const cJSON *responses, int msg_idx, g4_error *err) {
    if (!cJSON_IsArray(responses) && !cJSON_IsObject(responses) && !cJSON_IsString(responses))
        return g4_fail(err, "chat: messages[%d].tool_responses must be a list", msg_idx);
    size_t n_items = 0;
    if (cJSON_IsString(responses)) {
        const char *s = responses->valuestring;
        uint32_t cp;
        for (size_t at = 0, len = strlen(s); at < len; n_items++) {
            int l = g4_utf8_next(s + at, len - at, &cp);
            at += l > 0 ? (size_t)l : 1;
        }
    } else if (cJSON_IsObject(responses)) {
        int n_keys, oom;
        free(g4_dict_items(responses, &n_keys, &oom));
        if (oom) return g4_fail(err, "chat: out of memory");
        n_items = (size_t)n_keys;
    }
    int rc = 0, k = 0;
    if (cJSON_IsArray(responses))
        for (const cJSON *tr = responses->child; tr && !rc; tr = tr->next, k++) {
            const cJSON *nm = get(tr, "name"); /* | default('unknown', true) */
            if (g4_py_truthy(nm) && !cJSON_IsString(nm)) /* 'response:' + name raises */
                return g4_fail(err, "chat: messages[%d].tool_responses[%d].name must be a string", msg_idx, k);
            rc = put_tool_response(b, g4_py_truthy(nm) ? nm->valuestring : "unknown", get(tr, "response"));
        }
    for (size_t j = 0; j < n_items && !rc; j++) rc = put_tool_response(b, "unknown", NULL);
    return rc ? g4_fail(err, "chat: out of memory") : 0;
}

/* The content of one message (the template's captured_content). */
static int put_content(g4_strbuf *b, const cJSON *content, int is_model, int msg_idx, g4_error *err) {
    if (cJSON_IsString(content))
        return is_model ? put_strip_thinking(b, content, msg_idx, err) : put_trimmed(b, content);
    int rc = 0;
    if (cJSON_IsArray(content)) {
        for (const cJSON *it = content->child; it && !rc; it = it->next) {
            const char *t = part_type(it);
            if (streq(t, "text"))
                rc = is_model ? put_strip_thinking(b, get(it, "text"), msg_idx, err) : put_trimmed(b, get(it, "text"));
            else rc = put_media_marker(b, t);
        }
    }
    return rc;
}

static int ends_with(const g4_strbuf *b, const char *s) {
    size_t n = strlen(s);
    return b->len >= n && !memcmp(b->data + b->len - n, s, n);
}

#define OOM(rc)                                             \
    do {                                                    \
        if (rc) return g4_fail(err, "chat: out of memory"); \
    } while (0)

/* The system block; returns the index of the first message of the main loop (0 or 1). */
static int render_system(const cJSON *messages, const cJSON *tools, const g4_chat_options *o, g4_strbuf *out,
                         enum prev_type *prev, int *first, g4_error *err) {
    const cJSON *m0 = cJSON_GetArrayItem(messages, 0);
    int first_sys = m0 && (streq(role_of(m0), "system") || streq(role_of(m0), "developer"));
    int has_tools = g4_py_truthy(tools);
    *first = 0;
    if (!(o->enable_thinking || has_tools || first_sys)) return 0;
    OOM(g4_strbuf_puts(out, "<|turn>system\n"));
    if (o->enable_thinking) {
        OOM(g4_strbuf_puts(out, "<|think|>\n"));
        *prev = PREV_THINK;
    }
    if (first_sys) {
        const cJSON *c = get(m0, "content");
        if (cJSON_IsString(c)) {
            OOM(put_trimmed(out, c));
        } else if (cJSON_IsArray(c)) {
            for (const cJSON *it = c->child; it; it = it->next)
                OOM(put_trimmed(out, get(it, "text")) || g4_strbuf_putc(out, ' '));
        } else if (cJSON_IsObject(c)) { /* a dict iterates its keys: key['text'] is undefined, "" */
            int n_keys, oom;
            free(g4_dict_items(c, &n_keys, &oom));
            OOM(oom);
            for (int k = 0; k < n_keys; k++) OOM(g4_strbuf_putc(out, ' '));
        }
        *first = 1;
    }
    if (has_tools) {
        if (!cJSON_IsArray(tools)) return g4_fail(err, "chat: tools must be an array");
        int k = 0;
        for (const cJSON *t = tools->child; t; t = t->next, k++) {
            const char *why;
            OOM(g4_strbuf_puts(out, "<|tool>"));
            if (g4_gemma_format_declaration(out, t, &why)) return g4_fail(err, "chat: tools[%d]: %s", k, why);
            OOM(g4_strbuf_puts(out, "<tool|>"));
        }
        *prev = PREV_TOOL;
    }
    OOM(g4_strbuf_puts(out, "<turn|>\n"));
    return 0;
}

static int render(const cJSON *messages, const cJSON *tools, const g4_chat_options *opt, g4_strbuf *out,
                  g4_error *err) {
    if (messages && !cJSON_IsArray(messages)) return g4_fail(err, "chat: messages must be an array");
    int n_all = 0; /* one walk (cJSON_GetArrayItem in a loop would be quadratic in messages) */
    for (const cJSON *m = messages ? messages->child : NULL; m; m = m->next, n_all++)
        if (!role_of(m)) return g4_fail(err, "chat: messages[%d].role must be a string", n_all);
    enum prev_type prev = PREV_NONE;
    const char *prev_non_tool_role = NULL;
    int first;
    if (opt->emit_bos) OOM(g4_strbuf_puts(out, "<bos>"));
    if (render_system(messages, tools, opt, out, &prev, &first, err)) return -1;

    int n = n_all - first; /* loop_messages = messages[first:] */
    const cJSON **msgs = malloc(sizeof *msgs * (size_t)(n > 0 ? n : 1));
    if (!msgs) return g4_fail(err, "chat: out of memory");
    int k = 0;
    for (const cJSON *m = messages ? messages->child : NULL; m; m = m->next, k++)
        if (k >= first) msgs[k - first] = m;
    int last_user_idx = -1;
    for (int i = 0; i < n; i++)
        if (streq(role_of(msgs[i]), "user")) last_user_idx = i;

    int rc = 0;
    g4_strbuf captured = {0};
    if (out->tracking && g4_strbuf_track_user(&captured)) {
        free(msgs);
        return g4_fail(err, "chat: out of memory");
    }
    for (int i = 0; i < n && !rc; i++) {
        const cJSON *msg = msgs[i];
        const char *role = role_of(msg);
        if (streq(role, "tool")) continue;
        prev = PREV_NONE;
        const char *turn_role = streq(role, "assistant") ? "model" : role;
        int is_model = streq(turn_role, "model");
        if (!(is_model && streq(prev_non_tool_role, "assistant")))
            rc = g4_strbuf_puts(out, "<|turn>") ||
                 (is_model ? g4_strbuf_puts(out, "model") : g4_strbuf_puts_user(out, turn_role)) ||
                 g4_strbuf_putc(out, '\n');

        const cJSON *reasoning = get(msg, "reasoning");
        if (!g4_py_truthy(reasoning)) reasoning = get(msg, "reasoning_content");
        const cJSON *calls = get(msg, "tool_calls");
        int gate = i > last_user_idx || (opt->preserve_thinking && g4_py_truthy(calls));
        if (!rc && g4_py_truthy(reasoning) && gate && !cJSON_IsString(reasoning)) { /* str + reasoning raises */
            rc = g4_fail(err, "chat: messages[%d].%s must be a string", i + first, reasoning->string);
            break;
        }
        if (!rc && g4_py_truthy(reasoning) && gate)
            rc = g4_strbuf_puts(out, "<|channel>thought\n") || g4_py_str(out, reasoning) ||
                 g4_strbuf_puts(out, "\n<channel|>");
        if (!rc && g4_py_truthy(calls)) {
            if (!cJSON_IsArray(calls)) {
                rc = g4_fail(err, "chat: messages[%d].tool_calls must be an array", i + first);
                break;
            }
            int c = 0;
            for (const cJSON *tc = calls->child; tc && !rc; tc = tc->next, c++)
                if (put_tool_call(out, tc, c, i + first, opt, err)) {
                    free(msgs);
                    g4_strbuf_free(&captured);
                    return -1;
                }
            prev = PREV_TOOL_CALL;
        }
        int tr_flag = 0;
        const cJSON *responses = get(msg, "tool_responses");
        if (!rc && g4_py_truthy(responses)) {
            if (put_tool_responses(out, responses, i + first, err)) {
                free(msgs);
                g4_strbuf_free(&captured);
                return -1;
            }
            tr_flag = 1;
            prev = PREV_TOOL_RESPONSE;
        } else if (!rc && g4_py_truthy(calls)) {
            if (i + 1 < n && streq(role_of(msgs[i + 1]), "tool")) {
                tr_flag = 1;
                prev = PREV_TOOL_RESPONSE;
            }
            if (put_tool_messages(out, msgs, n, i, first, calls, err)) {
                free(msgs);
                g4_strbuf_free(&captured);
                return -1;
            }
        }
        if (!rc && !parts_ok(get(msg, "content"))) {
            free(msgs);
            g4_strbuf_free(&captured);
            return g4_fail(err,
                           "chat: messages[%d].content must be a string or a list of "
                           "content-part objects",
                           i + first);
        }
        g4_strbuf_clear(&captured);
        rc = rc || put_content(&captured, get(msg, "content"), is_model, i + first, err);
        rc = rc || g4_strbuf_append_from(out, &captured, 0, captured.len);
        size_t cs = 0, ce = 0;
        if (captured.len) g4_utf8_strip(captured.data, captured.len, &cs, &ce);
        int has_content = ce > cs;
        const char *next_role = NULL;
        for (int j = i + 1; j < n && !next_role; j++)
            if (!streq(role_of(msgs[j]), "tool")) next_role = role_of(msgs[j]);
        int continues = is_model && streq(next_role, "assistant") && (!g4_py_truthy(calls) || tr_flag);
        if (rc) break;
        if (prev == PREV_TOOL_CALL && !tr_flag) rc = g4_strbuf_puts(out, "<|tool_response>");
        else if (continues)
            ;
        else if (!(tr_flag && !has_content && !next_role)) rc = g4_strbuf_puts(out, "<turn|>\n");
        prev_non_tool_role = role;
    }
    free(msgs);
    g4_strbuf_free(&captured);
    if (rc) return err && err->msg[0] ? -1 : g4_fail(err, "chat: out of memory");

    if (opt->add_generation_prompt) {
        /* The fix (see chat_template.h): a closed turn always gets a fresh model turn. */
        if (opt->fix_generation_prompt && (prev == PREV_TOOL_RESPONSE || prev == PREV_TOOL_CALL) &&
            ends_with(out, "<turn|>\n"))
            prev = PREV_NONE;
        if (prev != PREV_TOOL_RESPONSE && prev != PREV_TOOL_CALL) {
            OOM(g4_strbuf_puts(out, "<|turn>model\n"));
            if (!opt->enable_thinking) OOM(g4_strbuf_puts(out, "<|channel>thought\n<channel|>"));
        } else if (prev == PREV_TOOL_RESPONSE && opt->enable_thinking) {
            OOM(g4_strbuf_puts(out, "<|channel>thought\n"));
        }
    }
    if (g4_strbuf_reserve(out, 0)) return g4_fail(err, "chat: out of memory");
    if (out->data) out->data[out->len] = 0;
    return 0;
}

/* transformers' marker for continue_final_message (chat_template.h), space included. */
#define G4_CONTINUE_TAG "CONTINUE_FINAL_MESSAGE_TAG "

/* The text to continue in a copy of the messages: the last message's content string, or the
 * last part with a "text" of its list. NULL when there is none. */
static cJSON *continue_target(cJSON *messages, const char **key) {
    cJSON *last = messages ? cJSON_GetArrayItem(messages, cJSON_GetArraySize(messages) - 1) : NULL;
    cJSON *content = last ? cJSON_GetObjectItemCaseSensitive(last, "content") : NULL;
    *key = "content";
    if (cJSON_IsString(content)) return last;
    if (!cJSON_IsArray(content)) return NULL;
    *key = "text";
    for (cJSON *part = content->child ? content->child->prev : NULL; part;
         part = part == content->child ? NULL : part->prev)
        if (cJSON_GetObjectItemCaseSensitive(part, "text"))
            return cJSON_IsString(cJSON_GetObjectItemCaseSensitive(part, "text")) ? part : NULL;
    return NULL;
}

static int render_continued(const cJSON *messages, const cJSON *tools, const g4_chat_options *opt, g4_strbuf *out,
                            g4_error *err) {
    int n_messages = cJSON_IsArray(messages) ? cJSON_GetArraySize(messages) : 0;
    if (!n_messages) return g4_fail(err, "chat: continue_final_message needs at least one message");
    cJSON *copy = cJSON_Duplicate(messages, 1);
    if (!copy) return g4_fail(err, "chat: out of memory");
    const char *key;
    cJSON *holder = continue_target(copy, &key);
    if (!holder) {
        cJSON_Delete(copy);
        return g4_fail(err,
                       "chat: messages[%d]: continue_final_message: the last message has no text content to continue",
                       n_messages - 1);
    }
    g4_strbuf tagged = {0};
    int rc = g4_strbuf_puts(&tagged, cJSON_GetObjectItemCaseSensitive(holder, key)->valuestring) ||
             g4_strbuf_puts(&tagged, G4_CONTINUE_TAG);
    cJSON *marked = rc ? NULL : cJSON_CreateString(tagged.data);
    g4_strbuf_free(&tagged);
    if (!marked || !cJSON_ReplaceItemInObjectCaseSensitive(holder, key, marked)) {
        cJSON_Delete(marked); /* not taken by the object (NULL: nothing to delete) */
        rc = 1;
    }
    g4_chat_options o = *opt;
    o.continue_final_message = 0;
    size_t start = out->len;
    if (rc) rc = g4_fail(err, "chat: out of memory");
    else rc = render(copy, tools, &o, out, err);
    cJSON_Delete(copy);
    if (rc) return -1;
    /* rindex of the marker without its space; cut there */
    const size_t n_tag = sizeof G4_CONTINUE_TAG - 2;
    size_t at = SIZE_MAX;
    for (size_t i = out->len; i >= start + n_tag && at == SIZE_MAX; i--)
        if (!memcmp(out->data + i - n_tag, G4_CONTINUE_TAG, n_tag)) at = i - n_tag;
    if (at == SIZE_MAX)
        return g4_fail(err,
                       "chat: messages[%d]: continue_final_message: the template dropped this message's text (as it "
                       "strips an assistant message from <|channel> on)",
                       n_messages - 1);
    int spaced = out->len - at > n_tag && out->data[at + n_tag] == ' ';
    out->len = at;
    if (!spaced) { /* the template trimmed the space after the marker: rstrip what precedes it */
        size_t b, e;
        g4_utf8_strip(out->data + start, out->len - start, &b, &e);
        out->len = start + (e > b ? e : 0);
    }
    out->data[out->len] = 0;
    return 0;
}

int g4_chat_render(const cJSON *messages, const cJSON *tools, const g4_chat_options *opt, g4_strbuf *out,
                   g4_error *err) {
    g4_chat_options defaults;
    if (!opt) {
        g4_chat_options_default(&defaults);
        opt = &defaults;
    }
    return opt->continue_final_message ? render_continued(messages, tools, opt, out, err)
                                       : render(messages, tools, opt, out, err);
}
