/* prompt.h - a request's prompt ids, for every protocol: token ids as given, a text encoded with
 * the caller's flags, or chat messages + tools rendered with the Gemma 4 chat template and
 * encoded so that control tokens come only from the template. Also says whether the prompt
 * leaves the thought channel open (the output parser then starts in reasoning).
 *
 * The chat input is the template's own structure (chat_template.h: OpenAI-shaped cJSON). An
 * HTTP body already is one; other protocols build it field by field with g4_chat_input, never
 * by way of an OpenAI JSON text. Not here: request validation and limits (the servers), the
 * template itself (chat_template.c), the tokenizer (tokenizer.c). */
#ifndef G4_TEXT_PROMPT_H
#define G4_TEXT_PROMPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "base/error.h"
#include "text/chat_template.h"
#include "text/tokenizer.h"

typedef enum {
    G4_PROMPT_IDS,               /* ids[0..n_ids), checked against the vocabulary */
    G4_PROMPT_TEXT,              /* text[0..text_len) encoded with encode_flags (G4_ENCODE_*) */
    G4_PROMPT_CHAT,              /* messages + tools through the chat template (options in chat) */
} g4_prompt_kind;

typedef struct g4_prompt_input {
    g4_prompt_kind kind;
    const int32_t *ids;
    size_t n_ids;
    const char *ids_field;       /* names the ids in an error ("token_ids.ids"); NULL = "ids" */
    int32_t vocab;               /* ids must be below it; 0 = the tokenizer's vocabulary */
    const char *text;
    size_t text_len;
    unsigned encode_flags;
    const cJSON *messages;       /* a JSON array of messages */
    const cJSON *tools;          /* a JSON array of tools; NULL = none */
    g4_chat_options chat;
    /* Images (chat): the template writes one <|image|> per image part; each becomes <|image>
     * + image_tokens[i] × <|image|> + <image|> (Gemma 4's processor), in the order the template
     * places them. The count must match (a part the template drops is an error). image_pos
     * (caller-owned, n_images entries, may be NULL) receives each image's first placeholder
     * position. */
    const int *image_tokens;
    int n_images;
    int *image_pos;
    /* Video (chat) as frames: the template writes one <|video|> per video part. image_video
     * (NULL = every item is an image) gives, per item above, -1 for an image or the video (0, 1,
     * ... in part order) the item is a frame of; a video's frames are consecutive items. Each
     * <|video|> becomes its frames joined by " ", each "mm:ss <|image>" + image_tokens[i] ×
     * <|video|> + "<image|>" with mm:ss from frame_seconds[i] (Gemma 4's processor,
     * replace_video_token); image_pos[i] receives the frame's first placeholder position. */
    const int *image_video;
    const double *frame_seconds;
} g4_prompt_input;

/* An input of kind with the defaults (chat options: g4_chat_options_default). */
void g4_prompt_input_init(g4_prompt_input *in, g4_prompt_kind kind);

/* What g4_prompt_build returns on failure. */
enum {
    G4_PROMPT_BAD_INPUT = -1,    /* the request's fault: an id outside the vocabulary, a chat the
                                    template refuses (err names the field) */
    G4_PROMPT_FAILED = -2,       /* out of memory in the tokenizer or renderer */
};

/* Appends the prompt's ids to out (tok may be NULL for G4_PROMPT_IDS with vocab set); *in_reasoning (may be NULL) is set when a chat prompt ends
 * with the thought channel opened by the template. 0, or G4_PROMPT_BAD_INPUT / G4_PROMPT_FAILED
 * with err set. */
int g4_prompt_build(const g4_tokenizer *tok, const g4_prompt_input *in, g4_tokens *out, bool *in_reasoning,
                    g4_error *err);

/* --- chat input built field by field ------------------------------------------------------------ */

typedef struct g4_chat_input {
    cJSON *messages; /* the template's structure, for g4_prompt_input.messages */
    cJSON *tools; /* NULL until a tool is added */
} g4_chat_input;

int g4_chat_input_init(g4_chat_input *c, g4_error *err);
void g4_chat_input_free(g4_chat_input *c);
/* Appends a message. reasoning, tool_call_id and name may be NULL or "" (absent). */
int g4_chat_input_message(g4_chat_input *c, const char *role, const char *content, const char *reasoning,
                          const char *tool_call_id, const char *name, g4_error *err);
/* Adds an image part to messages[message], after its earlier images (and videos) and before its
 * text (the content becomes a list of parts). */
int g4_chat_input_image(g4_chat_input *c, int message, g4_error *err);
/* Adds a video part (its frames: g4_prompt_input.image_video) to messages[message], after its
 * earlier images and videos and before its text. */
int g4_chat_input_video(g4_chat_input *c, int message, g4_error *err);
/* Appends a tool call to the last message. arguments_json must be a JSON object ("" = {});
 * otherwise G4_PROMPT_BAD_INPUT (the caller names the field). */
int g4_chat_input_tool_call(g4_chat_input *c, const char *id, const char *name, const char *arguments_json,
                            g4_error *err);
/* Appends a function tool. parameters_json: a JSON object ("" = {}), else G4_PROMPT_BAD_INPUT.
 * description may be NULL or "". */
int g4_chat_input_tool(g4_chat_input *c, const char *name, const char *description, const char *parameters_json,
                       g4_error *err);

#endif
