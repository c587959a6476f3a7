/* fuzz_chat_template.c - fuzz target: a JSON document {"messages": [...], "tools": [...],
 * "enable_thinking": bool, ...} through g4_prompt_build with G4_PROMPT_CHAT: the Gemma 4 chat
 * renderer (csrc/text/chat_template.c) and the masked encode of its output (csrc/text/prompt.c).
 *
 * The option fields (add_generation_prompt, enable_thinking, preserve_thinking, emit_bos,
 * fix_generation_prompt, decode_string_arguments) are read when they are booleans. Checks: no
 * crash or sanitizer report, every id in the vocabulary, a failure always says why. */
#include <stdlib.h>

#include <cjson/cJSON.h>

#include "fuzz_target.h"
#include "text/prompt.h"

static void option(const cJSON *root, const char *name, int *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, name);
    if (cJSON_IsBool(v)) *out = cJSON_IsTrue(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const g4_tokenizer *tok = g4_fuzz_tokenizer();
    cJSON *root = cJSON_ParseWithLength((const char *)data, size);
    if (!root) return 0;
    g4_prompt_input in;
    g4_prompt_input_init(&in, G4_PROMPT_CHAT);
    in.messages = cJSON_GetObjectItemCaseSensitive(root, "messages");
    const cJSON *tools = cJSON_GetObjectItemCaseSensitive(root, "tools");
    in.tools = cJSON_IsArray(tools) ? tools : NULL;
    option(root, "add_generation_prompt", &in.chat.add_generation_prompt);
    option(root, "enable_thinking", &in.chat.enable_thinking);
    option(root, "preserve_thinking", &in.chat.preserve_thinking);
    option(root, "emit_bos", &in.chat.emit_bos);
    option(root, "fix_generation_prompt", &in.chat.fix_generation_prompt);
    option(root, "decode_string_arguments", &in.chat.decode_string_arguments);
    if (cJSON_IsArray(in.messages)) {
        g4_tokens ids = {0};
        bool in_reasoning = false;
        g4_error err = {{0}};
        int rc = g4_prompt_build(tok, &in, &ids, &in_reasoning, &err);
        if (rc == 0) {
            int32_t n_vocab = g4_tokenizer_n_vocab(tok);
            for (size_t i = 0; i < ids.n; i++)
                if (ids.ids[i] < 0 || ids.ids[i] >= n_vocab) abort();
        } else if (!err.msg[0]) {
            abort(); /* a refusal must name its reason */
        }
        g4_tokens_free(&ids);
    }
    cJSON_Delete(root);
    return 0;
}
