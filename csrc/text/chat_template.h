/* chat_template.h - renders chat messages + tools into a Gemma 4 prompt string.
 *
 * A direct C rendering of Google's canonical Gemma 4 chat template for the 26B-A4B and 31B
 * models (the 2026-07-09 revision, shared/gemma4/chat_template.jinja); not a Jinja engine.
 * Byte-for-byte equal to jinja2's output on the golden cases in tests/text/data/chat_cases.json,
 * with one deliberate, switchable difference (fix_generation_prompt, below).
 *
 * Input is the OpenAI chat shape as cJSON: messages [{role, content, reasoning_content |
 * reasoning, tool_calls [{id, function {name, arguments}}], tool_call_id, name,
 * tool_responses}], content as a string or a list of parts ({type: text|image|image_url|audio|
 * input_audio|video}); tools [{type: "function", function {name, description, parameters,
 * response}}] with JSON-schema parameters, which become Gemma declarations.
 *
 * Known input limits (cJSON keeps numbers as doubles): an integral float such as 1.0 prints as
 * 1 (Python prints 1.0), and so -0.0 prints as 0 (JSON -0 is the integer 0 in Python, "0");
 * integers beyond 2^53 lose digits; dictsort and `upper` fold ASCII only. A repeated JSON key
 * reads as Python's json.loads builds it (the last value, at the first key's position). A
 * string holding U+0000 cannot reach here intact (cJSON ends it there): HTTP refuses it first.
 * Not here: tokenizing the prompt (tokenizer.h), image soft-token expansion (the server). */
#ifndef G4_TEXT_CHAT_TEMPLATE_H
#define G4_TEXT_CHAT_TEMPLATE_H

#include <cjson/cJSON.h>

#include "base/error.h"
#include "base/strbuf.h"

typedef struct g4_chat_options {
    int add_generation_prompt;   /* open the model's turn at the end (default 1) */
    int enable_thinking;         /* put <|think|> in the system turn (default 0) */
    int preserve_thinking;       /* keep reasoning of earlier tool-calling turns (default 0) */
    int emit_bos;                /* start with the text "<bos>" (default 1); the tokenizer turns
                                    it into the one BOS id (encode with G4_ENCODE_SPLIT_SPECIAL) */
    /* The template's quirk: after a message that had tool results AND was closed with
     * "<turn|>\n" (native tool_responses + content, or OpenAI tool_calls + content + tool
     * messages), it emits no generation prompt (or a bare "<|channel>thought\n"). With this
     * set (default 1) such a prompt gets the normal "<|turn>model\n" opener (plus the empty
     * thought channel when thinking is off), as llama.cpp does. 0 reproduces jinja exactly. */
    int fix_generation_prompt;
    /* OpenAI sends tool_calls[].function.arguments as a JSON *string*; the template requires
     * an object and raises otherwise. With this set (default 0) a string is JSON-decoded
     * first; it must decode to an object or null. */
    int decode_string_arguments;
    /* transformers' continue_final_message (default 0): the last message is left open for the
     * model to continue, the prompt ending where its content (the last text part of a list)
     * ends, with no end of turn; use with add_generation_prompt 0. As transformers does it: the
     * content gets a marker appended, the chat is rendered, and the prompt is cut at the marker
     * (right-stripped when the template trimmed the space after it). Errors: no messages, a
     * last message without text content, or a template that dropped it. */
    int continue_final_message;
} g4_chat_options;

/* Fills *o with the defaults listed above. */
void g4_chat_options_default(g4_chat_options *o);

/* Appends the prompt for messages (a JSON array; NULL = none) and tools (a JSON array; NULL or
 * empty = no tools) to out. Returns 0, or -1 with err naming the offending field (missing
 * role, tool call without a name, arguments that are not an object, ...). On error out may
 * hold a partial prompt; the caller discards it. The inputs are not modified. */
int g4_chat_render(const cJSON *messages, const cJSON *tools, const g4_chat_options *opt, g4_strbuf *out,
                   g4_error *err);

#endif
