/* fuzz_grpc_request.c - fuzz target: a gRPC request message through the server's wire-level NUL
 * check (g4_pb_find_nul, csrc/server/grpc/pb_text.c: every message type, as grpc_call.c runs it
 * before any unpack), the protobuf-c unpack and
 * the server's request checks that need no running server: g4_grpc_check_utf8 (every string
 * field, csrc/server/grpc/grpc_gen.c), then a chat input through the text layer's builder
 * (g4_chat_input_*, csrc/text/prompt.c) and g4_prompt_build, as svc_native.c does.
 *
 * Input: byte 0 picks the message type (Generate, Tokenize, Detokenize, Abort, KServe
 * ModelInfer, Health check); the rest is the serialized message. Not reached: the role and
 * name checks of svc_native.c (static, next to the call state) and the length checks (they need
 * the server's model length); the builder refuses what they would. */
#include <stdlib.h>
#include <string.h>

#include <protobuf-c/protobuf-c.h>

#include "fuzz_target.h"
#include "g4serve.pb-c.h"
#include "health.pb-c.h"
#include "kserve_v2.pb-c.h"
#include "server/grpc/grpc_impl.h"
#include "server/grpc/pb_text.h"
#include "text/prompt.h"

static const ProtobufCMessageDescriptor *const TYPES[] = {
    &g4serve__v1__generate_request__descriptor,   &g4serve__v1__tokenize_request__descriptor,
    &g4serve__v1__detokenize_request__descriptor, &g4serve__v1__abort_request__descriptor,
    &inference__model_infer_request__descriptor,  &grpc__health__v1__health_check_request__descriptor,
};

/* The chat messages and tools through the builder the gRPC server uses, then the template. */
static void chat(const G4serve__V1__ChatInput *ci) {
    g4_chat_input in;
    g4_error err;
    if (g4_chat_input_init(&in, &err)) return;
    int rc = 0;
    for (size_t i = 0; i < ci->n_messages && !rc; i++) {
        const G4serve__V1__ChatMessage *m = ci->messages[i];
        rc = g4_chat_input_message(&in, m->role, m->content, m->reasoning, m->tool_call_id, m->name, &err);
        for (size_t k = 0; k < m->n_tool_calls && !rc; k++)
            rc = g4_chat_input_tool_call(&in, m->tool_calls[k]->id, m->tool_calls[k]->name, m->tool_calls[k]->arguments,
                                         &err);
    }
    for (size_t i = 0; i < ci->n_tools && !rc; i++)
        rc =
            g4_chat_input_tool(&in, ci->tools[i]->name, ci->tools[i]->description, ci->tools[i]->parameters_json, &err);
    if (!rc) {
        g4_prompt_input pin;
        g4_prompt_input_init(&pin, G4_PROMPT_CHAT);
        pin.messages = in.messages;
        pin.tools = in.tools;
        pin.chat.enable_thinking = ci->enable_thinking;
        g4_tokens ids = {0};
        (void)g4_prompt_build(g4_fuzz_tokenizer(), &pin, &ids, NULL, &err);
        g4_tokens_free(&ids);
    }
    g4_chat_input_free(&in);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    const ProtobufCMessageDescriptor *d = TYPES[data[0] % (sizeof TYPES / sizeof TYPES[0])];
    char field[256];
    if (g4_pb_find_nul(d, data + 1, size - 1, field, sizeof field) == 1) return 0; /* refused as the server does */
    ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, size - 1, data + 1);
    if (!m) return 0;
    g4_error err;
    if (g4_grpc_check_utf8(m, &err) == 0) {
        const G4serve__V1__ChatInput *ci = NULL;
        if (d == &g4serve__v1__generate_request__descriptor) {
            const G4serve__V1__GenerateRequest *g = (const G4serve__V1__GenerateRequest *)m;
            if (g->input_case == G4SERVE__V1__GENERATE_REQUEST__INPUT_CHAT) ci = g->chat;
        } else if (d == &g4serve__v1__tokenize_request__descriptor) {
            const G4serve__V1__TokenizeRequest *t = (const G4serve__V1__TokenizeRequest *)m;
            if (t->input_case == G4SERVE__V1__TOKENIZE_REQUEST__INPUT_CHAT) ci = t->chat;
        }
        if (ci) chat(ci);
    }
    protobuf_c_message_free_unpacked(m, NULL);
    return 0;
}
