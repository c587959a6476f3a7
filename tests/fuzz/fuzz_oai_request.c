/* fuzz_oai_request.c - fuzz target: an OpenAI request body through g4_oai_request_parse
 * (csrc/server/http/oai_request.c: JSON + UTF-8 check, then every field's validation).
 *
 * Input: byte 0 picks the kind (bit 0: 0 chat completions, 1 completions); the rest is the body.
 * Checks: an accepted request's counts are within the documented caps; a refused one has a 4xx/5xx
 * status and an error message that is valid UTF-8 (it is sent inside a JSON body). */
#include <stdlib.h>
#include <string.h>

#include "fuzz_target.h"
#include "server/http/oai_request.h"
#include "text/utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    g4_oai_kind kind = data[0] & 1 ? G4_OAI_COMPLETION : G4_OAI_CHAT;
    g4_oai_request r;
    g4_http_error e;
    if (g4_oai_request_parse(&r, kind, (const char *)data + 1, size - 1, 262144, NULL, &e) == 0) {
        if (r.n < 1 || r.n > G4_OAI_MAX_N || r.n_logit_bias > G4_OAI_MAX_LOGIT_BIAS) abort();
        if (kind == G4_OAI_COMPLETION && (r.n_prompts < 1 || (long)r.n_prompts * r.n > G4_OAI_MAX_CHOICES)) abort();
        if (kind == G4_OAI_CHAT && !cJSON_IsArray(r.messages)) abort();
        g4_oai_request_free(&r);
    } else {
        if (e.status < 400 || e.status > 599 || !g4_utf8_valid(e.message, strlen(e.message))) abort();
    }
    return 0;
}
