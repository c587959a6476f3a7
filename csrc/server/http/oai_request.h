/* oai_request.h - one OpenAI request body (chat or text completion), parsed and validated.
 *
 * Turns the JSON body of POST /v1/chat/completions or /v1/completions into engine parameters
 * (g4_sampling, g4_stop_rules, logit processors) plus the few things the front-end needs (n,
 * stream, logprobs, prompts, echo, tools, chat options). Every field the server understands is
 * type- and range-checked; a bad one gives a 400 naming it in `param`. Fields for features not
 * built yet (beam search, best_of, ...) are refused with 400
 * "not supported yet", never silently ignored; harmless bookkeeping fields (user, metadata, store,
 * ...) are accepted.
 * Structured-output fields are read by oai_structured.c (into `structured`).
 * Not here: tokenizing or rendering the chat template (text/prompt.c), the model name check
 * and the model-length check (they need the server's state, see server.c / generate.c). */
#ifndef G4_SERVER_HTTP_OAI_REQUEST_H
#define G4_SERVER_HTTP_OAI_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "engine/engine.h"
#include "server/http/oai_structured.h"

/* An error to send as an OpenAI error object: {"error":{message,type,param,code}}. */
typedef struct g4_http_error {
    int status;          /* HTTP status: 400, 404, 413, 429, 503, 500 */
    char type[40];       /* "BadRequestError", "NotFoundError", ... */
    char param[64];      /* offending field, "" = null */
    char message[1024];
} g4_http_error;

/* Fills e and returns -1 (for `return g4_http_fail(e, 400, "temperature", "...")`). */
int g4_http_fail(g4_http_error *e, int status, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Parses a request body as one JSON value: the body must be valid UTF-8 (JSON's encoding) and
 * hold nothing after the value but whitespace. NULL with e filled (400, naming the offset). */
cJSON *g4_http_parse_body(const char *body, size_t len, g4_http_error *e);

typedef enum { G4_OAI_CHAT = 0, G4_OAI_COMPLETION = 1 } g4_oai_kind;

typedef enum {
    G4_TOOL_CHOICE_NONE = 0,
    G4_TOOL_CHOICE_AUTO,
    G4_TOOL_CHOICE_REQUIRED,
    G4_TOOL_CHOICE_NAMED
} g4_tool_choice;

#define G4_OAI_MAX_N 64          /* choices per prompt (n) */
#define G4_OAI_MAX_CHOICES 256   /* choices per request: prompts × n */
#define G4_OAI_MAX_LOGIT_BIAS 1024
#define G4_OAI_MAX_STOP 16       /* stop strings per request */
#define G4_OAI_MAX_STOP_IDS 64

/* One completions prompt: a string or token ids. */
typedef struct g4_oai_prompt {
    const char *text;            /* points into root, or NULL */
    int32_t *ids;                /* malloc'ed, or NULL */
    int n_ids;
} g4_oai_prompt;

/* One image_url content part, or one frame of a video_url part, of a chat request, in message
 * order (a video's frames are consecutive). */
typedef struct g4_oai_image {
    const char *url;             /* points into root */
    int message, part;           /* messages[message].content[part], for error messages */
    int video;                   /* -1: an image; else the video (0, 1, ... in part order) */
    double seconds;              /* a frame's timestamp: its index / the part's fps */
} g4_oai_image;

typedef struct g4_oai_request {
    g4_oai_kind kind;
    cJSON *root;                 /* the parsed body; owns every cJSON pointer below */
    const char *model;           /* as sent, NULL when omitted */
    int n;                       /* choices, 1..G4_OAI_MAX_N */
    bool stream;
    bool include_usage;          /* stream_options.include_usage */
    bool continuous_usage;       /* stream_options.continuous_usage_stats (vLLM), with include_usage:
                                    usage so far on every chunk */
    int logprobs;                /* -1 none; else number of top alternatives (0..20) */
    int max_tokens;              /* 0 = not given (the caller picks the default) */
    bool skip_special_tokens;    /* default true */
    g4_sampling sampling;
    g4_stop_rules stop;          /* stop.max_tokens is set by the caller; arrays below */
    const char *stop_strings[G4_OAI_MAX_STOP];   /* point into root */
    int32_t stop_ids[G4_OAI_MAX_STOP_IDS];
    int priority;
    bool beam_search;            /* vLLM use_beam_search: n is the beam width (engine/beam.h) */
    float length_penalty;        /* its ranking's length penalty (default 1) */
    const char *request_id;      /* optional client-supplied id (vLLM `request_id`) */
    bool return_token_ids;       /* vLLM: prompt_token_ids and token_ids in the response */
    long long truncate_tokens;   /* vLLM truncate_prompt_tokens: 0 none, -1 max_model_len − 1, else keep N */
    bool truncate_right;         /* vLLM truncation_side "right": keep the first N (default: the last N) */
    bool tokens_as_ids;          /* vLLM return_tokens_as_token_ids: logprobs name tokens "token_id:<id>" */
    g4_logit_bias *logit_bias;   /* malloc'ed [n_logit_bias], or NULL */
    int n_logit_bias;
    int32_t *allowed_ids;        /* vLLM allowed_token_ids: malloc'ed [n_allowed_ids], or NULL */
    int n_allowed_ids;
    int32_t logprob_ids[G4_MAX_LOGPROB_IDS]; /* vLLM logprob_token_ids (distinct): with logprobs, these
                                    ids (and the sampled one) replace the top alternatives */
    int n_logprob_ids;
    g4_oai_structured structured; /* response_format / structured_outputs / guided_* (oai_structured.h) */

    /* completions */
    g4_oai_prompt *prompts;      /* malloc'ed [n_prompts]: one choice group of n per prompt */
    int n_prompts;
    bool echo;                   /* the prompt's text before the completion (with logprobs: the prompt
                                    tokens' logprobs first, the first one null) */
    int prompt_logprobs;         /* vLLM prompt_logprobs: −1 none, else the top alternatives 0..20 */

    /* chat */
    const cJSON *messages;       /* validated array */
    const cJSON *tools;          /* array or NULL */
    g4_tool_choice tool_choice;
    const char *tool_choice_name;
    bool parallel_tool_calls;
    bool enable_thinking;        /* chat_template_kwargs.enable_thinking (or reasoning_effort) */
    bool add_generation_prompt;  /* default true */
    bool continue_final_message;
    g4_oai_image *images;        /* malloc'ed [n_images] image_url parts, or NULL */
    int n_images;
    int n_videos;                /* video_url parts (their frames are in images) */
    int image_budget;            /* mm_processor_kwargs.max_soft_tokens (vLLM / transformers name):
                                    soft tokens per image, 70/140/280/560/1120; 0 = not given */
} g4_oai_request;

/* Parses and validates body[0..len). On success returns 0 and *r owns its memory (free with
 * g4_oai_request_free). On failure returns -1 with e filled (status 400) and nothing to free.
 * n_vocab bounds token ids given in the body (prompt ids, stop_token_ids). Sampling fields the
 * body leaves out take their values from defaults (NULL = greedy). */
int g4_oai_request_parse(g4_oai_request *r, g4_oai_kind kind, const char *body, size_t len, int32_t n_vocab,
                         const g4_sampling *defaults, g4_http_error *e);
void g4_oai_request_free(g4_oai_request *r);

#endif
