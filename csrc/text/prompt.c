/* prompt.c - a request's prompt ids (see prompt.h). */
#include "text/prompt.h"

#include <math.h>
#include <string.h>

/* What the template writes last when it opens the model's thought channel (chat_template.c). */
static const char thought_opened[] = "<|channel>thought\n";

void g4_prompt_input_init(g4_prompt_input *in, g4_prompt_kind kind) {
    memset(in, 0, sizeof *in);
    in->kind = kind;
    g4_chat_options_default(&in->chat);
}

static int copy_ids(const g4_tokenizer *tok, const g4_prompt_input *in, g4_tokens *out, g4_error *err) {
    int32_t n_vocab = in->vocab > 0 ? in->vocab : g4_tokenizer_n_vocab(tok);
    for (size_t i = 0; i < in->n_ids; i++) {
        int32_t id = in->ids[i];
        if (id < 0 || id >= n_vocab) {
            g4_fail(err, "%s[%zu] = %d is outside the vocabulary [0, %d)", in->ids_field ? in->ids_field : "ids", i, id,
                    n_vocab);
            return G4_PROMPT_BAD_INPUT;
        }
        if (g4_tokens_push(out, id) < 0) {
            g4_fail(err, "out of memory");
            return G4_PROMPT_FAILED;
        }
    }
    return 0;
}

/* True when the rendered prompt ends with the template's (not the user's) thought opener. */
static bool ends_in_thought(const g4_strbuf *p) {
    size_t n = sizeof thought_opened - 1;
    return p->len >= n && !memcmp(p->data + p->len - n, thought_opened, n) && !p->user[p->len - 1];
}

static bool is_frame(const g4_prompt_input *in, int k) { return in->image_video && in->image_video[k] >= 0; }

static bool has_frames(const g4_prompt_input *in) {
    for (int k = 0; k < in->n_images; k++)
        if (is_frame(in, k)) return true;
    return false;
}

/* out[from..) holds the template's encoding: every <|image|> (only the template can have written
 * one: user text is encoded without control tokens) becomes the image's run, and every <|video|>
 * (one per frame after add_frames) the frame's placeholders. */
static int expand_images(const g4_tokenizer *tok, const g4_prompt_input *in, g4_tokens *out, size_t from,
                         g4_error *err) {
    const g4_special_ids *sp = g4_tokenizer_specials(tok);
    size_t n_marks = 0, extra = 0;
    for (size_t i = from; i < out->n; i++)
        if (out->ids[i] == sp->image || (sp->video >= 0 && out->ids[i] == sp->video)) n_marks++;
    if (n_marks == 0 && in->n_images == 0) return 0;
    if (sp->image < 0 || sp->image_start < 0 || sp->image_end < 0) {
        g4_fail(err, "messages: the tokenizer has no image tokens (<|image>, <|image|>, <image|>)");
        return G4_PROMPT_BAD_INPUT;
    }
    if (sp->video < 0 && has_frames(in)) {
        g4_fail(err, "messages: the tokenizer has no <|video|> token");
        return G4_PROMPT_BAD_INPUT;
    }
    if (n_marks != (size_t)in->n_images) {
        g4_fail(err,
                "messages: %d image parts and video frames, but the chat template placed %zu (images and videos are "
                "read in user, assistant and tool messages, not in the system message)",
                in->n_images, n_marks);
        return G4_PROMPT_BAD_INPUT;
    }
    for (int k = 0; k < in->n_images; k++) {
        if (in->image_tokens[k] <= 0) {
            g4_fail(err, "image %d: %d soft tokens", k, in->image_tokens[k]);
            return G4_PROMPT_BAD_INPUT;
        }
        extra += is_frame(in, k) ? (size_t)in->image_tokens[k] - 1 : (size_t)in->image_tokens[k] + 1;
    }
    size_t n_old = out->n;
    for (size_t k = 0; k < extra; k++)
        if (g4_tokens_push(out, 0) < 0) {
            g4_fail(err, "out of memory");
            return G4_PROMPT_FAILED;
        }
    /* back to front, in place */
    size_t w = out->n;
    int img = in->n_images;
    for (size_t r = n_old; r-- > from;) {
        int32_t id = out->ids[r];
        if (id != sp->image && !(sp->video >= 0 && id == sp->video)) {
            out->ids[--w] = id;
            continue;
        }
        img--;
        if ((id == sp->video) != is_frame(in, img)) {
            g4_fail(err, "messages: item %d is %s, but the chat template placed %s there", img,
                    is_frame(in, img) ? "a video frame" : "an image", id == sp->video ? "a video" : "an image");
            return G4_PROMPT_BAD_INPUT;
        }
        if (id == sp->image) out->ids[--w] = sp->image_end; /* a frame's <|image>, <image|> are text */
        for (int t = 0; t < in->image_tokens[img]; t++) out->ids[--w] = id;
        if (in->image_pos) in->image_pos[img] = (int)w;
        if (id == sp->image) out->ids[--w] = sp->image_start;
    }
    return 0;
}

/* text with every template-written <|video|> replaced by its frames, each "mm:ss <|image><|video|>
 * <image|>" (one <|video|> per frame: expand_images makes it the frame's run), joined by " ". */
static int add_frames(const g4_prompt_input *in, const g4_strbuf *text, g4_strbuf *out, g4_error *err) {
    static const char mark[] = "<|video|>";
    const size_t n_mark = sizeof mark - 1;
    int video = 0, k = 0; /* k: the next item to look at for video's frames */
    size_t done = 0;
    for (size_t i = 0; i + n_mark <= text->len; i++) {
        if (memcmp(text->data + i, mark, n_mark) || text->user[i]) continue;
        while (k < in->n_images && (!is_frame(in, k) || in->image_video[k] < video)) k++;
        if (k == in->n_images || in->image_video[k] != video) {
            g4_fail(err, "messages: the chat template placed more videos than the request has video parts");
            return G4_PROMPT_BAD_INPUT;
        }
        if (g4_strbuf_append_from(out, text, done, i - done) < 0) return G4_PROMPT_FAILED;
        for (int f = 0; k < in->n_images && is_frame(in, k) && in->image_video[k] == video; k++, f++) {
            double s = in->frame_seconds ? in->frame_seconds[k] : 0;
            if (g4_strbuf_printf(out, "%s%02d:%02d <|image><|video|><image|>", f ? " " : "", (int)floor(s / 60),
                                 (int)fmod(s, 60)) < 0)
                return G4_PROMPT_FAILED;
        }
        video++;
        done = i + n_mark;
        i = done - 1;
    }
    return g4_strbuf_append_from(out, text, done, text->len - done) < 0 ? G4_PROMPT_FAILED : 0;
}

static int chat(const g4_tokenizer *tok, const g4_prompt_input *in, g4_tokens *out, bool *in_reasoning, g4_error *err) {
    g4_strbuf text = {0};
    if (g4_strbuf_track_user(&text) < 0) {
        g4_fail(err, "out of memory");
        return G4_PROMPT_FAILED;
    }
    if (g4_chat_render(in->messages, in->tools, &in->chat, &text, err) < 0) {
        g4_strbuf_free(&text);
        return G4_PROMPT_BAD_INPUT;
    }
    if (in_reasoning) *in_reasoning = ends_in_thought(&text);
    if (has_frames(in)) {
        g4_strbuf framed = {0};
        int frc = g4_strbuf_track_user(&framed) < 0 ? G4_PROMPT_FAILED : add_frames(in, &text, &framed, err);
        g4_strbuf_free(&text);
        if (frc < 0) {
            if (frc == G4_PROMPT_FAILED) g4_fail(err, "out of memory");
            g4_strbuf_free(&framed);
            return frc;
        }
        text = framed;
    }
    /* Control tokens only where the template wrote them; user text is plain text (issue 20). */
    size_t from = out->n;
    int rc = g4_tokenizer_encode_masked(tok, text.data, text.len, G4_ENCODE_SPLIT_SPECIAL, text.user, out, err);
    g4_strbuf_free(&text);
    if (rc < 0) return G4_PROMPT_FAILED;
    return expand_images(tok, in, out, from, err);
}

int g4_prompt_build(const g4_tokenizer *tok, const g4_prompt_input *in, g4_tokens *out, bool *in_reasoning,
                    g4_error *err) {
    if (in_reasoning) *in_reasoning = false;
    switch (in->kind) {
    case G4_PROMPT_IDS: return copy_ids(tok, in, out, err);
    case G4_PROMPT_TEXT:
        return g4_tokenizer_encode(tok, in->text ? in->text : "", in->text ? in->text_len : 0, in->encode_flags, out,
                                   err) < 0
                   ? G4_PROMPT_FAILED
                   : 0;
    case G4_PROMPT_CHAT: return chat(tok, in, out, in_reasoning, err);
    }
    g4_fail(err, "prompt: unknown input kind %d", (int)in->kind);
    return G4_PROMPT_BAD_INPUT;
}

/* --- chat input ------------------------------------------------------------------------------ */

static int oom(g4_error *err) {
    g4_fail(err, "out of memory");
    return G4_PROMPT_FAILED;
}

int g4_chat_input_init(g4_chat_input *c, g4_error *err) {
    c->tools = NULL;
    c->messages = cJSON_CreateArray();
    return c->messages ? 0 : oom(err);
}

void g4_chat_input_free(g4_chat_input *c) {
    cJSON_Delete(c->messages);
    cJSON_Delete(c->tools);
    c->messages = c->tools = NULL;
}

static bool given(const char *s) { return s && s[0]; }

/* Adds key: s (a string) to o; false when out of memory. */
static bool add_str(cJSON *o, const char *key, const char *s) { return cJSON_AddStringToObject(o, key, s) != NULL; }

int g4_chat_input_message(g4_chat_input *c, const char *role, const char *content, const char *reasoning,
                          const char *tool_call_id, const char *name, g4_error *err) {
    cJSON *m = cJSON_CreateObject();
    if (!m) return oom(err);
    cJSON_AddItemToArray(c->messages, m);
    if (!add_str(m, "role", role) || !add_str(m, "content", content ? content : "") ||
        (given(reasoning) && !add_str(m, "reasoning", reasoning)) ||
        (given(tool_call_id) && !add_str(m, "tool_call_id", tool_call_id)) ||
        (given(name) && !add_str(m, "name", name)))
        return oom(err);
    return 0;
}

/* A media part {"type": type} into messages[message], after its earlier media parts and before its
 * text. */
static int add_media_part(g4_chat_input *c, int message, const char *type, g4_error *err) {
    cJSON *m = cJSON_GetArrayItem(c->messages, message);
    if (!m) {
        g4_fail(err, "a %s part for message %d, which does not exist", type, message);
        return G4_PROMPT_BAD_INPUT;
    }
    cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
    if (!cJSON_IsArray(content)) { /* the text becomes the last part */
        const char *text = cJSON_IsString(content) ? content->valuestring : "";
        cJSON *parts = cJSON_CreateArray(), *t = NULL;
        if (!parts) return oom(err);
        if (text[0] && (!(t = cJSON_CreateObject()) || !add_str(t, "type", "text") || !add_str(t, "text", text))) {
            cJSON_Delete(t);
            cJSON_Delete(parts);
            return oom(err);
        }
        if (t) cJSON_AddItemToArray(parts, t);
        if (!cJSON_ReplaceItemInObjectCaseSensitive(m, "content", parts)) {
            cJSON_Delete(parts);
            return oom(err);
        }
        content = parts;
    }
    /* media stay ahead of the text: move the parts into a new list with the new part after the
     * leading media parts */
    cJSON *parts = cJSON_CreateArray(), *img = cJSON_CreateObject();
    if (!parts || !img || !add_str(img, "type", type)) {
        cJSON_Delete(parts);
        cJSON_Delete(img);
        return oom(err);
    }
    bool placed = false;
    while (content->child) {
        cJSON *part = cJSON_DetachItemViaPointer(content, content->child);
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(part, "type");
        bool media = cJSON_IsString(t) && (!strcmp(t->valuestring, "image") || !strcmp(t->valuestring, "video"));
        if (!placed && !media) {
            cJSON_AddItemToArray(parts, img);
            placed = true;
        }
        cJSON_AddItemToArray(parts, part);
    }
    if (!placed) cJSON_AddItemToArray(parts, img);
    if (!cJSON_ReplaceItemInObjectCaseSensitive(m, "content", parts)) {
        cJSON_Delete(parts);
        return oom(err);
    }
    return 0;
}

int g4_chat_input_image(g4_chat_input *c, int message, g4_error *err) {
    return add_media_part(c, message, "image", err);
}

int g4_chat_input_video(g4_chat_input *c, int message, g4_error *err) {
    return add_media_part(c, message, "video", err);
}

/* A JSON object from text ("" = {}); NULL with G4_PROMPT_BAD_INPUT / _FAILED in *rc. */
static cJSON *json_object(const char *text, int *rc, g4_error *err) {
    cJSON *o = cJSON_Parse(given(text) ? text : "{}");
    if (o && cJSON_IsObject(o)) return o;
    cJSON_Delete(o);
    *rc = G4_PROMPT_BAD_INPUT;
    g4_fail(err, "must be a JSON object");
    return NULL;
}

int g4_chat_input_tool_call(g4_chat_input *c, const char *id, const char *name, const char *arguments_json,
                            g4_error *err) {
    cJSON *m = cJSON_GetArrayItem(c->messages, cJSON_GetArraySize(c->messages) - 1);
    if (!m) {
        g4_fail(err, "a tool call needs a message");
        return G4_PROMPT_BAD_INPUT;
    }
    int rc = 0;
    cJSON *args = json_object(arguments_json, &rc, err);
    if (!args) return rc;
    cJSON *calls = cJSON_GetObjectItemCaseSensitive(m, "tool_calls");
    if (!calls && !(calls = cJSON_AddArrayToObject(m, "tool_calls"))) {
        cJSON_Delete(args);
        return oom(err);
    }
    cJSON *t = cJSON_CreateObject(), *f = NULL;
    if (t) cJSON_AddItemToArray(calls, t);
    if (!t || !add_str(t, "id", id ? id : "") || !add_str(t, "type", "function") ||
        !(f = cJSON_AddObjectToObject(t, "function")) || !add_str(f, "name", name ? name : "")) {
        cJSON_Delete(args);
        return oom(err);
    }
    cJSON_AddItemToObject(f, "arguments", args);
    return 0;
}

int g4_chat_input_tool(g4_chat_input *c, const char *name, const char *description, const char *parameters_json,
                       g4_error *err) {
    int rc = 0;
    cJSON *params = json_object(parameters_json, &rc, err);
    if (!params) return rc;
    if (!c->tools && !(c->tools = cJSON_CreateArray())) {
        cJSON_Delete(params);
        return oom(err);
    }
    cJSON *o = cJSON_CreateObject(), *f = NULL;
    if (o) cJSON_AddItemToArray(c->tools, o);
    if (!o || !add_str(o, "type", "function") || !(f = cJSON_AddObjectToObject(o, "function")) ||
        !add_str(f, "name", name) || (given(description) && !add_str(f, "description", description))) {
        cJSON_Delete(params);
        return oom(err);
    }
    cJSON_AddItemToObject(f, "parameters", params);
    return 0;
}
