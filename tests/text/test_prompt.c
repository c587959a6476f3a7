/* test_prompt.c - text/prompt.h: one prompt builder for every protocol, and the request's
 * detokenizer flags.
 *
 * Checks: a chat built field by field (g4_chat_input, what gRPC does) gives exactly the ids of
 * the same chat given as OpenAI JSON (what HTTP does; that path is checked against jinja2 in
 * test_chat_template); the thought channel counts as opened only when the template opened it
 * (a tool-result turn with thinking on), never when a user's text ends with the same spelling;
 * text and ids inputs (flags, vocabulary check, field name in the error); bad tool arguments
 * are the caller's fault; detokenizer flags skip special tokens or separate them with spaces;
 * image runs, and video frames against transformers' processor (make_video_golden.py). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "check.h"
#include "text/detokenizer.h"
#include "text/prompt.h"

static int same_ids(const g4_tokens *a, const g4_tokens *b) {
    return a->n == b->n && (a->n == 0 || !memcmp(a->ids, b->ids, a->n * sizeof *a->ids));
}

static const char *tail_text(const g4_tokenizer *tok, const g4_tokens *t, size_t n, g4_strbuf *out) {
    g4_strbuf_clear(out);
    size_t k = t->n < n ? t->n : n;
    g4_tokenizer_decode(tok, t->ids + t->n - k, k, 0, out, NULL);
    return out->data ? out->data : "";
}

static void test_chat_built_equals_json(const g4_tokenizer *tok) {
    const char *json = "[{\"role\":\"system\",\"content\":\"be brief\"},"
                       "{\"role\":\"user\",\"content\":\"weather in Paris?\"},"
                       "{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":[{\"id\":\"c1\",\"type\":\"function\","
                       "\"function\":{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Paris\",\"days\":2}}}]},"
                       "{\"role\":\"tool\",\"content\":\"sunny\",\"tool_call_id\":\"c1\",\"name\":\"get_weather\"}]";
    const char *tools = "[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"description\":\"Weather.\","
                        "\"parameters\":{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}}}}}]";
    for (int thinking = 0; thinking < 2; thinking++) {
        cJSON *m = cJSON_Parse(json), *t = cJSON_Parse(tools);
        g4_prompt_input a;
        g4_prompt_input_init(&a, G4_PROMPT_CHAT);
        a.messages = m;
        a.tools = t;
        a.chat.enable_thinking = thinking;
        g4_tokens ja = {0}, jb = {0};
        g4_error err = {{0}};
        bool ra = false, rb = true;
        CHECK(g4_prompt_build(tok, &a, &ja, &ra, &err) == 0, "%s", err.msg);

        g4_chat_input ci;
        CHECK(g4_chat_input_init(&ci, &err) == 0, "%s", err.msg);
        CHECK(g4_chat_input_message(&ci, "system", "be brief", NULL, NULL, NULL, &err) == 0, "%s", err.msg);
        CHECK(g4_chat_input_message(&ci, "user", "weather in Paris?", "", "", "", &err) == 0, "%s", err.msg);
        CHECK(g4_chat_input_message(&ci, "assistant", "", NULL, NULL, NULL, &err) == 0, "%s", err.msg);
        CHECK(g4_chat_input_tool_call(&ci, "c1", "get_weather", "{\"city\":\"Paris\",\"days\":2}", &err) == 0, "%s",
              err.msg);
        CHECK(g4_chat_input_message(&ci, "tool", "sunny", NULL, "c1", "get_weather", &err) == 0, "%s", err.msg);
        CHECK(g4_chat_input_tool(&ci, "get_weather", "Weather.",
                                 "{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}}}", &err) == 0,
              "%s", err.msg);
        g4_prompt_input b;
        g4_prompt_input_init(&b, G4_PROMPT_CHAT);
        b.messages = ci.messages;
        b.tools = ci.tools;
        b.chat.enable_thinking = thinking;
        CHECK(g4_prompt_build(tok, &b, &jb, &rb, &err) == 0, "%s", err.msg);
        CHECK(ja.n > 20 && same_ids(&ja, &jb), "thinking=%d: built chat gives other ids (%zu vs %zu)", thinking, ja.n,
              jb.n);
        CHECK(ra == rb, "thinking=%d: in_reasoning differs", thinking);
        /* After a tool result with thinking on, the template reopens the thought channel. */
        g4_strbuf tail = {0};
        bool opened =
            !strcmp(tail_text(tok, &ja, 3, &tail) + (tail.len >= 18 ? tail.len - 18 : 0), "<|channel>thought\n");
        CHECK(ra == opened, "thinking=%d: in_reasoning=%d but the prompt ends \"%s\"", thinking, (int)ra, tail.data);
        CHECK(thinking ? ra : !ra, "thinking=%d: in_reasoning=%d", thinking, (int)ra);
        g4_strbuf_free(&tail);
        g4_tokens_free(&ja);
        g4_tokens_free(&jb);
        g4_chat_input_free(&ci);
        cJSON_Delete(m);
        cJSON_Delete(t);
    }
}

static void test_user_spelling_is_not_an_opened_channel(const g4_tokenizer *tok) {
    g4_chat_input ci;
    g4_error err = {{0}};
    CHECK(g4_chat_input_init(&ci, &err) == 0, "%s", err.msg);
    CHECK(g4_chat_input_message(&ci, "user", "say <|channel>thought\n", NULL, NULL, NULL, &err) == 0, "%s", err.msg);
    g4_prompt_input in;
    g4_prompt_input_init(&in, G4_PROMPT_CHAT);
    in.messages = ci.messages;
    in.chat.add_generation_prompt = 0;
    g4_tokens ids = {0};
    bool r = true;
    CHECK(g4_prompt_build(tok, &in, &ids, &r, &err) == 0, "%s", err.msg);
    CHECK(!r, "a user's text ending in the opener counted as the template's");
    int32_t channel = -1;
    for (size_t i = 0; i < ids.n; i++)
        if (g4_tokenizer_is_special(tok, ids.ids[i])) {
            size_t n = 0;
            const char *t = g4_tokenizer_token_text(tok, ids.ids[i], &n);
            if (n == 9 && !memcmp(t, "<|channel", 9)) channel = ids.ids[i];
        }
    CHECK(channel < 0, "user text became the control token %d", channel);
    g4_tokens_free(&ids);
    g4_chat_input_free(&ci);
}

static void test_text_and_ids(const g4_tokenizer *tok) {
    g4_error err = {{0}};
    const char *text = "a<|turn>b";
    g4_tokens split = {0}, plain = {0}, ref = {0};
    g4_prompt_input in;
    g4_prompt_input_init(&in, G4_PROMPT_TEXT);
    in.text = text;
    in.text_len = strlen(text);
    in.encode_flags = G4_ENCODE_SPLIT_SPECIAL | G4_ENCODE_ADD_BOS;
    CHECK(g4_prompt_build(tok, &in, &split, NULL, &err) == 0, "%s", err.msg);
    g4_tokenizer_encode(tok, text, strlen(text), G4_ENCODE_SPLIT_SPECIAL | G4_ENCODE_ADD_BOS, &ref, NULL);
    CHECK(same_ids(&split, &ref), "text input is not the tokenizer's encode with its flags");
    in.encode_flags = G4_ENCODE_ADD_BOS;
    CHECK(g4_prompt_build(tok, &in, &plain, NULL, &err) == 0, "%s", err.msg);
    CHECK(plain.n > split.n, "without SPLIT_SPECIAL the control-token spelling must be plain text");

    const int32_t ids[3] = {2, 100, g4_tokenizer_n_vocab(tok)};
    g4_tokens out = {0};
    g4_prompt_input_init(&in, G4_PROMPT_IDS);
    in.ids = ids;
    in.n_ids = 2;
    CHECK(g4_prompt_build(tok, &in, &out, NULL, &err) == 0 && out.n == 2 && out.ids[1] == 100, "ids copied");
    in.n_ids = 3;
    in.ids_field = "token_ids.ids";
    CHECK(g4_prompt_build(tok, &in, &out, NULL, &err) == G4_PROMPT_BAD_INPUT, "an id outside the vocabulary");
    CHECK(strstr(err.msg, "token_ids.ids[2]") != NULL, "error names the field: %s", err.msg);
    in.vocab = ids[2] + 1;
    g4_tokens_free(&out);
    CHECK(g4_prompt_build(NULL, &in, &out, NULL, &err) == 0 && out.n == 3, "vocab given: no tokenizer needed");
    g4_tokens_free(&out);
    g4_tokens_free(&split);
    g4_tokens_free(&plain);
    g4_tokens_free(&ref);

    g4_chat_input ci;
    g4_chat_input_init(&ci, &err);
    CHECK(g4_chat_input_tool_call(&ci, "x", "f", "{}", &err) == G4_PROMPT_BAD_INPUT, "a tool call needs a message");
    g4_chat_input_message(&ci, "assistant", "", NULL, NULL, NULL, &err);
    CHECK(g4_chat_input_tool_call(&ci, "x", "f", "[1]", &err) == G4_PROMPT_BAD_INPUT, "arguments not an object");
    CHECK(g4_chat_input_tool(&ci, "f", NULL, "nope", &err) == G4_PROMPT_BAD_INPUT, "parameters not JSON");
    CHECK(g4_chat_input_tool(&ci, "f", NULL, "", &err) == 0, "empty parameters are {}");
    g4_chat_input_free(&ci);
}

/* The streamed text of ids under flags. */
static void stream_text(const g4_tokenizer *tok, const g4_tokens *ids, unsigned flags, g4_strbuf *out) {
    g4_detokenizer *d = NULL;
    g4_strbuf_clear(out);
    if (g4_detokenizer_new(tok, flags, &d, NULL)) return;
    for (size_t i = 0; i < ids->n; i++) g4_detokenizer_push(d, ids->ids[i], out, NULL);
    g4_detokenizer_finish(d, out, NULL);
    g4_detokenizer_free(d);
}

static void test_detokenizer_flags(const g4_tokenizer *tok) {
    g4_tokens ids = {0};
    const char *text = "hi<|turn>model<turn|>ok";
    g4_tokenizer_encode(tok, text, strlen(text), G4_ENCODE_SPLIT_SPECIAL, &ids, NULL);
    g4_strbuf s = {0};
    stream_text(tok, &ids, 0, &s);
    CHECK(s.data && !strcmp(s.data, text), "no flags: \"%s\"", s.data);
    stream_text(tok, &ids, G4_DECODE_SKIP_SPECIAL, &s);
    CHECK(s.data && !strcmp(s.data, "himodelok"), "skip special: \"%s\"", s.data);
    stream_text(tok, &ids, G4_DECODE_SPACES_BETWEEN_SPECIAL, &s);
    CHECK(s.data && !strcmp(s.data, "hi <|turn> model <turn|> ok"), "spaces: \"%s\"", s.data);
    stream_text(tok, &ids, G4_DECODE_SPACES_BETWEEN_SPECIAL | G4_DECODE_SKIP_SPECIAL, &s);
    CHECK(s.data && !strcmp(s.data, "himodelok"), "skip + spaces: \"%s\"", s.data);
    g4_strbuf_free(&s);
    g4_tokens_free(&ids);
}

/* Image parts: each <|image|> the template writes becomes <|image> + N × <|image|> + <image|>, as
 * Gemma 4's processor rewrites the rendered text before tokenizing it: the reference is that
 * rewritten text encoded whole. A user's literal "<|image|>" stays text; a count that does not
 * match the template's markers (an image in the system message, which the template drops) is
 * the request's fault. */
static void test_image_runs(const g4_tokenizer *tok) {
    const char *json = "[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":{\"url\":\"x\"}},"
                       "{\"type\":\"text\",\"text\":\"Describe <|image|> both.\"},"
                       "{\"type\":\"image_url\",\"image_url\":{\"url\":\"y\"}}]}]";
    cJSON *m = cJSON_Parse(json);
    g4_prompt_input in;
    g4_prompt_input_init(&in, G4_PROMPT_CHAT);
    in.messages = m;
    int counts[2] = {3, 5}, pos[2] = {-1, -1};
    in.image_tokens = counts;
    in.n_images = 2;
    in.image_pos = pos;
    g4_tokens got = {0}, want = {0};
    g4_error err = {{0}};
    CHECK(g4_prompt_build(tok, &in, &got, NULL, &err) == 0, "%s", err.msg);
    const char *text = "<bos><|turn>user\n<|image><|image|><|image|><|image|><image|>Describe <|image|> both."
                       "<|image><|image|><|image|><|image|><|image|><|image|><image|><turn|>\n<|turn>model\n"
                       "<|channel>thought\n<channel|>";
    /* the reference: the processor's text, special tokens matched except the user's literal */
    size_t n = strlen(text);
    unsigned char *user = calloc(n, 1);
    const char *lit = strstr(text, "Describe ");
    memset(user + (lit - text), 1, strlen("Describe <|image|> both."));
    CHECK(g4_tokenizer_encode_masked(tok, text, n, G4_ENCODE_SPLIT_SPECIAL, user, &want, &err) == 0, "%s", err.msg);
    CHECK(same_ids(&got, &want), "image runs: %zu ids vs %zu", got.n, want.n);
    const g4_special_ids *sp = g4_tokenizer_specials(tok);
    int n_img = 0;
    for (size_t i = 0; i < got.n; i++) n_img += got.ids[i] == sp->image;
    CHECK(n_img == 8, "%d placeholders, want 3 + 5", n_img);
    CHECK(pos[0] > 0 && got.ids[pos[0] - 1] == sp->image_start && got.ids[pos[0] + 3] == sp->image_end,
          "first image at %d", pos[0]);
    CHECK(pos[1] > pos[0] && got.ids[pos[1] - 1] == sp->image_start && got.ids[pos[1] + 5] == sp->image_end,
          "second image at %d", pos[1]);
    free(user);
    g4_tokens_free(&got);
    g4_tokens_free(&want);

    in.n_images = 1; /* fewer images than parts */
    g4_tokens t = {0};
    CHECK(g4_prompt_build(tok, &in, &t, NULL, &err) == G4_PROMPT_BAD_INPUT && strstr(err.msg, "image parts"),
          "count mismatch accepted: %s", err.msg);
    g4_tokens_free(&t);
    cJSON_Delete(m);

    m = cJSON_Parse("[{\"role\":\"system\",\"content\":[{\"type\":\"image_url\",\"image_url\":{\"url\":\"x\"}}]},"
                    "{\"role\":\"user\",\"content\":\"hi\"}]");
    in.messages = m;
    in.n_images = 1;
    CHECK(g4_prompt_build(tok, &in, &t, NULL, &err) == G4_PROMPT_BAD_INPUT && strstr(err.msg, "system"),
          "an image in the system message accepted: %s", err.msg);
    g4_tokens_free(&t);
    cJSON_Delete(m);

    /* gRPC's way (g4_chat_input_image: images before the message's text) == the JSON parts */
    g4_chat_input ci;
    CHECK(g4_chat_input_init(&ci, &err) == 0, "%s", err.msg);
    CHECK(g4_chat_input_message(&ci, "user", "Describe <|image|> both.", NULL, NULL, NULL, &err) == 0, "%s", err.msg);
    CHECK(g4_chat_input_message(&ci, "assistant", "ok", NULL, NULL, NULL, &err) == 0, "%s", err.msg);
    CHECK(g4_chat_input_image(&ci, 0, &err) == 0 && g4_chat_input_image(&ci, 0, &err) == 0, "%s", err.msg);
    CHECK(g4_chat_input_image(&ci, 5, &err) == G4_PROMPT_BAD_INPUT, "an image for a missing message accepted");
    m = cJSON_Parse("[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":{\"url\":\"x\"}},"
                    "{\"type\":\"image_url\",\"image_url\":{\"url\":\"y\"}},"
                    "{\"type\":\"text\",\"text\":\"Describe <|image|> both.\"}]},"
                    "{\"role\":\"assistant\",\"content\":\"ok\"}]");
    g4_tokens a = {0}, b = {0};
    in.messages = m;
    in.n_images = 2;
    CHECK(g4_prompt_build(tok, &in, &a, NULL, &err) == 0, "%s", err.msg);
    in.messages = ci.messages;
    CHECK(g4_prompt_build(tok, &in, &b, NULL, &err) == 0, "%s", err.msg);
    CHECK(a.n > 0 && same_ids(&a, &b), "built chat with images differs from the JSON parts (%zu vs %zu ids)", b.n, a.n);
    g4_tokens_free(&a);
    g4_tokens_free(&b);
    g4_chat_input_free(&ci);
    cJSON_Delete(m);
}

/* Video as frames: the reference (data/video_golden.json, make_video_golden.py) is transformers'
 * Gemma4Processor.replace_image_token / replace_video_token applied to the template's text and
 * encoded by the HF tokenizers library: an image, a 3-frame video at 1 fps (00:00 00:01 00:02),
 * text, and a 2-frame video at 60 s and 124 s (01:00 02:04). Ids must be equal, every frame's
 * position must start its run of <|video|> (after <|image>), and a video part the template did not
 * place (frames with no <|video|> marker) is the request's fault. */
static void test_video_frames(const g4_tokenizer *tok) {
    char *text = NULL;
    size_t len = 0;
    g4_error err = {{0}};
    int read = g4_read_file("tests/text/data/video_golden.json", 1 << 20, &text, &len, &err);
    CHECK(read == 0, "%s", err.msg);
    cJSON *g = read == 0 ? cJSON_Parse(text) : NULL;
    free(text);
    CHECK(g, "video_golden.json does not parse");
    if (!g) return;
    int counts[16], video[16], pos[16], n = 0;
    double seconds[16];
    counts[n] = cJSON_GetObjectItem(g, "image_tokens")->valueint, video[n] = -1, seconds[n++] = 0;
    const cJSON *v;
    int vi = 0;
    cJSON_ArrayForEach(v, cJSON_GetObjectItem(g, "videos")) {
        const cJSON *s;
        cJSON_ArrayForEach(s, cJSON_GetObjectItem(v, "seconds")) {
            counts[n] = cJSON_GetObjectItem(v, "frame_tokens")->valueint;
            video[n] = vi;
            seconds[n++] = s->valuedouble;
        }
        vi++;
    }
    g4_tokens want = {0}, got = {0};
    const cJSON *id;
    cJSON_ArrayForEach(id, cJSON_GetObjectItem(g, "ids")) g4_tokens_push(&want, (int32_t)id->valueint);
    g4_prompt_input in;
    g4_prompt_input_init(&in, G4_PROMPT_CHAT);
    in.messages = cJSON_GetObjectItem(g, "messages");
    in.image_tokens = counts;
    in.n_images = n;
    in.image_pos = pos;
    in.image_video = video;
    in.frame_seconds = seconds;
    CHECK(n == 6, "%d items in the golden", n);
    CHECK(g4_prompt_build(tok, &in, &got, NULL, &err) == 0, "%s", err.msg);
    CHECK(want.n > 0 && same_ids(&got, &want), "video prompt: %zu ids vs transformers' %zu", got.n, want.n);
    const g4_special_ids *sp = g4_tokenizer_specials(tok);
    CHECK(sp->video == 258884, "<|video|> is %d", sp->video);
    for (int k = 0; k < n && (size_t)pos[k] + (size_t)counts[k] < got.n; k++) {
        int32_t mark = video[k] < 0 ? sp->image : sp->video;
        int ok = pos[k] > 0 && got.ids[pos[k] - 1] == sp->image_start && got.ids[pos[k] + counts[k]] == sp->image_end;
        for (int t = 0; t < counts[k]; t++) ok = ok && got.ids[pos[k] + t] == mark;
        CHECK(ok, "item %d: no run of %d at %d", k, counts[k], pos[k]);
    }
    /* a video whose part the template does not see: frames without a marker */
    g4_tokens t = {0};
    cJSON *m = cJSON_Parse("[{\"role\":\"user\",\"content\":\"no video here\"}]");
    in.messages = m;
    in.n_images = 2;
    int fv[2] = {0, 0};
    in.image_video = fv;
    CHECK(g4_prompt_build(tok, &in, &t, NULL, &err) == G4_PROMPT_BAD_INPUT, "frames without a video part accepted");
    cJSON_Delete(m);
    g4_tokens_free(&t);
    g4_tokens_free(&want);
    g4_tokens_free(&got);
    cJSON_Delete(g);
}

int main(void) {
    g4_tokenizer *tok = NULL;
    g4_error err = {{0}};
    REQUIRE(g4_tokenizer_load("tests/text/data/tokenizer.json", &tok, &err) == 0, "%s", err.msg);
    test_chat_built_equals_json(tok);
    test_user_spelling_is_not_an_opened_channel(tok);
    test_text_and_ids(tok);
    test_detokenizer_flags(tok);
    test_image_runs(tok);
    test_video_frames(tok);
    g4_tokenizer_free(tok);
    return check_summary();
}
