/* oai_request.c - parse and validate an OpenAI chat / completions request body (see the header).
 * Ranges follow the OpenAI API reference and vLLM's protocol models: temperature 0..2,
 * top_p (0,1], penalties -2..2, top_logprobs 0..20, completions logprobs 0..20. JSON null counts
 * as "not given" for every optional field, as both servers do. */
#include "server/http/oai_request.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/strbuf.h"
#include "engine/beam.h"
#include "media/vision_input.h"
#include "text/utf8.h"

/* A message cut at the buffer's end may end inside a multi-byte character (user text is echoed
 * into it): drop that partial character, so the error body stays valid UTF-8 JSON. */
static void utf8_cut(char *s) {
    size_t len = strlen(s), lead = len;
    while (lead > 0 && len - lead < 4 && ((unsigned char)s[lead - 1] & 0xC0) == 0x80) lead--;
    if (lead == 0) return;
    unsigned char c = (unsigned char)s[lead - 1];
    size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    if (c >= 0x80 && len - (lead - 1) < need) s[lead - 1] = 0;
}

int g4_http_fail(g4_http_error *e, int status, const char *param, const char *fmt, ...) {
    if (!e) return -1;
    e->status = status;
    const char *type = status == 400   ? "BadRequestError"
                       : status == 404 ? "NotFoundError"
                       : status == 405 ? "MethodNotAllowed"
                       : status == 413 ? "RequestEntityTooLarge"
                       : status == 429 ? "RateLimitError"
                       : status == 503 ? "ServiceUnavailableError"
                                       : "InternalServerError";
    snprintf(e->type, sizeof e->type, "%s", type);
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    if (n >= (int)sizeof e->message) utf8_cut(e->message);
    return -1;
}

/* Offset of the first NUL inside a JSON string of body[0..len) (a \u0000 escape, or a raw 0
 * byte, which cJSON also takes), or len. cJSON keeps it as a NUL byte that ends the C string,
 * which would cut the text short silently. With copy (a copy of body), every such NUL there
 * becomes U+0001 (\u0001, or a raw 1 byte). One pass. */
static size_t nul_escape_at(const char *body, size_t len, char *copy) {
    int in_string = 0;
    size_t first = len;
    for (size_t i = 0; i < len; i++) {
        if (body[i] == '"') in_string = !in_string;
        else if (in_string && body[i] == 0) {
            if (first == len) first = i;
            if (!copy) return first;
            copy[i] = 1;
        } else if (in_string && body[i] == '\\') {
            if (len - i >= 6 && !memcmp(body + i + 1, "u0000", 5)) {
                if (first == len) first = i;
                if (!copy) return first;
                copy[i + 5] = '1';
            }
            i++; /* the escaped character */
        }
    }
    return first;
}

/* Writes the path of the first string (or key) of a that is shorter than its counterpart in b
 * (the same body parsed with the NUL escapes replaced): "messages[1].content". 1 when found. */
static int shorter_string_path(const cJSON *a, const cJSON *b, char *path, size_t size) {
    if (cJSON_IsString(a)) return strlen(a->valuestring) < strlen(b->valuestring);
    size_t at = strlen(path);
    int i = 0;
    for (const cJSON *x = a->child, *y = b->child; x && y; x = x->next, y = y->next, i++) {
        if (cJSON_IsObject(a)) snprintf(path + at, size - at, "%s%s", at ? "." : "", x->string);
        else snprintf(path + at, size - at, "[%d]", i);
        if (cJSON_IsObject(a) && strlen(x->string) < strlen(y->string)) return 1;
        if (shorter_string_path(x, y, path, size)) return 1;
    }
    path[at] = 0;
    return 0;
}

/* The 400 for a NUL character: names the field when the body can be re-read, else the offset. */
static void fail_nul(const char *body, size_t len, const cJSON *root, size_t at, g4_http_error *e) {
    char path[64] = "";
    char *copy = malloc(len + 1);
    if (copy) {
        memcpy(copy, body, len);
        nul_escape_at(body, len, copy);
        cJSON *other = cJSON_ParseWithLength(copy, len);
        if (!other || !shorter_string_path(root, other, path, sizeof path)) path[0] = 0;
        cJSON_Delete(other);
        free(copy);
    }
    /* a long key cut by the path's buffer may end inside a character: keep whole ones (the
     * path goes into a JSON body) */
    path[g4_utf8_complete_prefix(path, strlen(path))] = 0;
    g4_http_fail(e, 400, path[0] ? path : NULL,
                 "%s%sholds a NUL character (U+0000, at offset %zu of the body); NUL is not accepted in text",
                 path[0] ? path : "the request body ", path[0] ? " " : "", at);
}

cJSON *g4_http_parse_body(const char *body, size_t len, g4_http_error *e) {
    uint32_t cp;
    for (size_t i = 0; i < len;) {
        int l = g4_utf8_next(body + i, len - i, &cp);
        if (!l) {
            g4_http_fail(e, 400, NULL, "the request body is not valid UTF-8 (byte 0x%02x at offset %zu)",
                         (unsigned)(unsigned char)body[i], i);
            return NULL;
        }
        i += (size_t)l;
    }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(body, len, &end, 0);
    size_t at = end && end >= body && end <= body + len ? (size_t)(end - body) : len;
    while (root && at < len && body[at] && strchr(" \t\r\n", body[at])) at++;
    if (!root || at < len) {
        cJSON_Delete(root);
        if (!len) g4_http_fail(e, 400, NULL, "the request body is empty; expected a JSON object");
        else
            g4_http_fail(e, 400, NULL, "the request body is not valid JSON (%s at offset %zu)",
                         root ? "unexpected data after the value" : "syntax error", at);
        return NULL;
    }
    size_t nul = nul_escape_at(body, len, NULL);
    if (nul < len) {
        fail_nul(body, len, root, nul, e);
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

/* --- typed field readers: 0 = absent/null, 1 = present and valid, -1 = error ------------- */

static const cJSON *field(const cJSON *o, const char *name) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return (v && !cJSON_IsNull(v)) ? v : NULL;
}

static int get_bool(const cJSON *o, const char *name, bool *out, g4_http_error *e) {
    const cJSON *v = field(o, name);
    if (!v) return 0;
    if (!cJSON_IsBool(v)) return g4_http_fail(e, 400, name, "'%s' must be a boolean", name);
    *out = cJSON_IsTrue(v);
    return 1;
}

static int get_num(const cJSON *o, const char *name, double lo, double hi, double *out, g4_http_error *e) {
    const cJSON *v = field(o, name);
    if (!v) return 0;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return g4_http_fail(e, 400, name, "'%s' must be a number", name);
    if (v->valuedouble < lo || v->valuedouble > hi)
        return g4_http_fail(e, 400, name, "'%s' must be in [%g, %g], got %g", name, lo, hi, v->valuedouble);
    *out = v->valuedouble;
    return 1;
}

static int get_int(const cJSON *o, const char *name, double lo, double hi, long long *out, g4_http_error *e) {
    const cJSON *v = field(o, name);
    if (!v) return 0;
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || fabs(v->valuedouble) > 9.0e15)
        return g4_http_fail(e, 400, name, "'%s' must be an integer", name);
    if (v->valuedouble < lo || v->valuedouble > hi)
        return g4_http_fail(e, 400, name, "'%s' must be in [%.0f, %.0f], got %.0f", name, lo, hi, v->valuedouble);
    *out = (long long)v->valuedouble;
    return 1;
}

static int get_str(const cJSON *o, const char *name, const char **out, g4_http_error *e) {
    const cJSON *v = field(o, name);
    if (!v) return 0;
    if (!cJSON_IsString(v)) return g4_http_fail(e, 400, name, "'%s' must be a string", name);
    *out = v->valuestring;
    return 1;
}

/* Fields for features not built yet: refused when present with a non-default value. */
static int refuse_unsupported(const cJSON *o, g4_http_error *e) {
    static const char *const never[] = {"bad_words",
                                        "functions",
                                        "audio",
                                        "prediction",
                                        "chat_template",
                                        "suffix",
                                        "guided_decoding_backend",
                                        "logits_processors",
                                        "vllm_xargs",
                                        "kv_transfer_params",
                                        "cache_salt"};
    for (size_t i = 0; i < sizeof never / sizeof never[0]; i++) {
        const cJSON *v = field(o, never[i]);
        if (v && !(cJSON_IsArray(v) && cJSON_GetArraySize(v) == 0))
            return g4_http_fail(e, 400, never[i], "'%s' is not supported yet", never[i]);
    }
    long long best_of = 1;
    if (get_int(o, "best_of", 1, G4_OAI_MAX_N, &best_of, e) < 0) return -1;
    if (best_of != 1) return g4_http_fail(e, 400, "best_of", "'best_of' > 1 is not supported yet");
    return 0;
}

/* vLLM's truncate_prompt_tokens (-1 or N >= 1; the bound by max_model_len is checked where the
 * prompt is built) and truncation_side ("left", the default, keeps the last N; "right" the first). */
static int parse_truncation(g4_oai_request *r, const cJSON *o, g4_http_error *e) {
    long long n = 0;
    const char *side = NULL;
    if (get_int(o, "truncate_prompt_tokens", -1, 9.0e15, &n, e) < 0 || get_str(o, "truncation_side", &side, e) < 0)
        return -1;
    if (n == 0 && field(o, "truncate_prompt_tokens"))
        return g4_http_fail(e, 400, "truncate_prompt_tokens", "'truncate_prompt_tokens' must be -1 or at least 1");
    if (side && strcmp(side, "left") && strcmp(side, "right"))
        return g4_http_fail(e, 400, "truncation_side", "`truncation_side` must be either 'left' or 'right'.");
    r->truncate_tokens = n;
    r->truncate_right = side && !strcmp(side, "right");
    return 0;
}

static int parse_stop(g4_oai_request *r, const cJSON *o, int32_t n_vocab, g4_http_error *e) {
    const cJSON *s = field(o, "stop");
    if (s) {
        if (cJSON_IsString(s)) {
            if (s->valuestring[0]) /* "" means no stop string, as in OpenAI's client */
                r->stop_strings[r->stop.n_stop_strings++] = s->valuestring;
        } else if (cJSON_IsArray(s)) {
            if (cJSON_GetArraySize(s) > G4_OAI_MAX_STOP)
                return g4_http_fail(e, 400, "stop", "'stop' takes at most %d strings", G4_OAI_MAX_STOP);
            const cJSON *it;
            cJSON_ArrayForEach(it, s) {
                if (!cJSON_IsString(it) || !it->valuestring[0])
                    return g4_http_fail(e, 400, "stop", "'stop' must be a string or a list of non-empty strings");
                r->stop_strings[r->stop.n_stop_strings++] = it->valuestring;
            }
        } else {
            return g4_http_fail(e, 400, "stop", "'stop' must be a string or a list of strings");
        }
    }
    r->stop.stop_strings = r->stop_strings;
    const cJSON *ids = field(o, "stop_token_ids");
    if (ids) {
        if (!cJSON_IsArray(ids) || cJSON_GetArraySize(ids) > G4_OAI_MAX_STOP_IDS)
            return g4_http_fail(e, 400, "stop_token_ids", "'stop_token_ids' must be a list of at most %d token ids",
                                G4_OAI_MAX_STOP_IDS);
        const cJSON *it;
        cJSON_ArrayForEach(it, ids) {
            if (!cJSON_IsNumber(it) || it->valuedouble != floor(it->valuedouble) || it->valuedouble < 0 ||
                it->valuedouble >= n_vocab)
                return g4_http_fail(e, 400, "stop_token_ids", "'stop_token_ids' entries must be token ids in [0, %d)",
                                    (int)n_vocab);
            r->stop_ids[r->stop.n_stop_ids++] = (int32_t)it->valuedouble;
        }
    }
    r->stop.stop_ids = r->stop_ids;
    return 0;
}

/* Token ids as JSON: an integer in [0, n_vocab). */
static bool is_token_id(const cJSON *v, int32_t n_vocab) {
    return cJSON_IsNumber(v) && v->valuedouble == floor(v->valuedouble) && v->valuedouble >= 0 &&
           v->valuedouble < n_vocab;
}

/* logit_bias {"id": bias in [-100, 100]} (OpenAI; keys are ids as decimal strings) and vLLM's
 * allowed_token_ids (a non-empty list of ids). */
static int parse_processors(g4_oai_request *r, const cJSON *o, int32_t n_vocab, g4_http_error *e) {
    const cJSON *lb = field(o, "logit_bias");
    if (lb) {
        if (!cJSON_IsObject(lb))
            return g4_http_fail(e, 400, "logit_bias", "'logit_bias' must be an object of token id: bias");
        int n = cJSON_GetArraySize(lb);
        if (n > G4_OAI_MAX_LOGIT_BIAS)
            return g4_http_fail(e, 400, "logit_bias", "'logit_bias' takes at most %d entries", G4_OAI_MAX_LOGIT_BIAS);
        if (n > 0 && !(r->logit_bias = malloc(sizeof *r->logit_bias * (size_t)n)))
            return g4_http_fail(e, 500, NULL, "out of memory");
        const cJSON *it;
        g4_strbuf bad = {0}; /* every key that is not an id, as vLLM names them: up to 8, 40 bytes each */
        int n_bad = 0, rc = 0;
        cJSON_ArrayForEach(it, lb) {
            char *end = NULL;
            long id = strtol(it->string, &end, 10);
            if (!it->string[0] || *end || id < 0 || id >= n_vocab ||
                strspn(it->string, "0123456789") != strlen(it->string)) {
                if (n_bad++ < 8 &&
                    g4_strbuf_printf(&bad, "%s'%.*s'", n_bad > 1 ? ", " : "",
                                     (int)g4_utf8_complete_prefix(it->string, strnlen(it->string, 40)), it->string) < 0)
                    rc = g4_http_fail(e, 500, NULL, "out of memory");
                continue;
            }
            if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble) || fabs(it->valuedouble) > 100) {
                rc = g4_http_fail(e, 400, "logit_bias", "'logit_bias' values must be numbers in [-100, 100]");
                break;
            }
            r->logit_bias[r->n_logit_bias++] = (g4_logit_bias){(int32_t)id, (float)it->valuedouble};
        }
        if (rc == 0 && n_bad)
            rc = g4_http_fail(e, 400, "logit_bias", "'logit_bias' key%s %s%s %s not a token id in [0, %d)",
                              n_bad > 1 ? "s" : "", bad.data, n_bad > 8 ? ", ..." : "", n_bad > 1 ? "are" : "is",
                              (int)n_vocab);
        g4_strbuf_free(&bad);
        if (rc) return rc;
    }
    const cJSON *al = field(o, "allowed_token_ids");
    if (al) {
        int n = cJSON_IsArray(al) ? cJSON_GetArraySize(al) : 0;
        if (n == 0 || n > n_vocab)
            return g4_http_fail(e, 400, "allowed_token_ids",
                                "'allowed_token_ids' must be a non-empty list of token ids");
        if (!(r->allowed_ids = malloc(sizeof *r->allowed_ids * (size_t)n)))
            return g4_http_fail(e, 500, NULL, "out of memory");
        const cJSON *it;
        cJSON_ArrayForEach(it, al) {
            if (!is_token_id(it, n_vocab))
                return g4_http_fail(e, 400, "allowed_token_ids",
                                    "'allowed_token_ids' entries must be token ids in [0, %d)", (int)n_vocab);
            r->allowed_ids[r->n_allowed_ids++] = (int32_t)it->valuedouble;
        }
    }
    return 0;
}

static int parse_sampling(g4_oai_request *r, const cJSON *o, g4_http_error *e) {
    double d;
    long long i;
    int k;
    if ((k = get_num(o, "temperature", 0, 2, &d, e)) < 0) return -1;
    if (k) r->sampling.temperature = (float)d;
    if ((k = get_num(o, "top_p", 0, 1, &d, e)) < 0) return -1;
    if (k) {
        if (d <= 0) return g4_http_fail(e, 400, "top_p", "'top_p' must be in (0, 1], got %g", d);
        r->sampling.top_p = (float)d;
    }
    if ((k = get_int(o, "top_k", -1, 1 << 30, &i, e)) < 0) return -1;
    if (k) r->sampling.top_k = i <= 0 ? 0 : (int)i;
    if ((k = get_num(o, "min_p", 0, 1, &d, e)) < 0) return -1;
    if (k) r->sampling.min_p = (float)d;
    if ((k = get_num(o, "presence_penalty", -2, 2, &d, e)) < 0) return -1;
    if (k) r->sampling.presence_penalty = (float)d;
    if ((k = get_num(o, "frequency_penalty", -2, 2, &d, e)) < 0) return -1;
    if (k) r->sampling.frequency_penalty = (float)d;
    if ((k = get_num(o, "repetition_penalty", 0, 10, &d, e)) < 0) return -1;
    if (k) {
        if (d <= 0) return g4_http_fail(e, 400, "repetition_penalty", "'repetition_penalty' must be > 0");
        r->sampling.repetition_penalty = (float)d;
    }
    if ((k = get_int(o, "seed", -9.0e15, 9.0e15, &i, e)) < 0) return -1;
    if (k) {
        r->sampling.has_seed = true;
        r->sampling.seed = (uint64_t)i;
    }
    return 0;
}

static int parse_logprobs(g4_oai_request *r, const cJSON *o, g4_http_error *e) {
    long long i;
    int k;
    if (r->kind == G4_OAI_CHAT) {
        bool lp = false;
        if (get_bool(o, "logprobs", &lp, e) < 0) return -1;
        long long top = 0;
        if ((k = get_int(o, "top_logprobs", 0, G4_MAX_TOP_LOGPROBS, &top, e)) < 0) return -1;
        if (k && top > 0 && !lp)
            return g4_http_fail(e, 400, "top_logprobs", "'top_logprobs' requires 'logprobs': true");
        r->logprobs = lp ? (int)top : -1;
    } else {
        if ((k = get_int(o, "logprobs", 0, G4_MAX_TOP_LOGPROBS, &i, e)) < 0) return -1;
        r->logprobs = k ? (int)i : -1;
    }
    r->sampling.logprobs = r->logprobs;
    return 0;
}

/* vLLM's logprob_token_ids: distinct ids in [0, n_vocab), at most G4_MAX_LOGPROB_IDS, reported
 * at every output position in place of the top alternatives. Needs logprobs (chat: true;
 * completions: any count, which the ids then replace); the engine then computes only the sampled
 * token's logprob besides them. [] counts as absent (vLLM). */
static int parse_logprob_ids(g4_oai_request *r, const cJSON *o, int32_t n_vocab, g4_http_error *e) {
    const cJSON *a = field(o, "logprob_token_ids");
    if (!a) return 0;
    if (!cJSON_IsArray(a))
        return g4_http_fail(e, 400, "logprob_token_ids", "'logprob_token_ids' must be a list of token ids");
    int n = cJSON_GetArraySize(a);
    if (n == 0) return 0;
    if (n > G4_MAX_LOGPROB_IDS) /* the list's length, duplicates included (vLLM) */
        return g4_http_fail(e, 400, "logprob_token_ids",
                            "Requested logprob_token_ids of length %d, which is greater than max allowed: %d", n,
                            G4_MAX_LOGPROB_IDS);
    if (r->logprobs < 0)
        return g4_http_fail(e, 400, "logprob_token_ids", "when using 'logprob_token_ids', %s",
                            r->kind == G4_OAI_CHAT ? "'logprobs' must be set to true" : "'logprobs' must be set");
    const cJSON *it;
    cJSON_ArrayForEach(it, a) {
        if (!is_token_id(it, n_vocab))
            return g4_http_fail(e, 400, "logprob_token_ids", "'logprob_token_ids' entries must be token ids in [0, %d)",
                                (int)n_vocab);
        int32_t id = (int32_t)it->valuedouble;
        bool seen = false;
        for (int i = 0; i < r->n_logprob_ids && !seen; i++) seen = r->logprob_ids[i] == id;
        if (!seen) r->logprob_ids[r->n_logprob_ids++] = id;
    }
    r->sampling.logprobs = 0;
    return 0;
}

/* One prompt: a string or a non-empty list of token ids. idx names it in errors (-1: the only one). */
static int parse_one_prompt(g4_oai_prompt *out, const cJSON *p, int idx, int32_t n_vocab, g4_http_error *e) {
    char where[32] = "'prompt'";
    if (idx >= 0) snprintf(where, sizeof where, "'prompt[%d]'", idx);
    if (cJSON_IsString(p)) {
        out->text = p->valuestring;
        return 0;
    }
    int n = cJSON_IsArray(p) ? cJSON_GetArraySize(p) : 0;
    if (n == 0) return g4_http_fail(e, 400, "prompt", "%s must be a string or a non-empty list of token ids", where);
    if (!(out->ids = malloc(sizeof(int32_t) * (size_t)n))) return g4_http_fail(e, 500, "prompt", "out of memory");
    const cJSON *it;
    cJSON_ArrayForEach(it, p) {
        if (!is_token_id(it, n_vocab))
            return g4_http_fail(e, 400, "prompt", "%s token ids must be integers in [0, %d)", where, (int)n_vocab);
        out->ids[out->n_ids++] = (int32_t)it->valuedouble;
    }
    return 0;
}

/* prompt: a string, a list of token ids, or a list of several prompts (strings or id lists), as
 * OpenAI and vLLM take it. */
static int parse_prompt(g4_oai_request *r, const cJSON *o, int32_t n_vocab, g4_http_error *e) {
    const cJSON *p = field(o, "prompt");
    if (!p) return g4_http_fail(e, 400, "prompt", "'prompt' is required");
    bool several = cJSON_IsArray(p) && cJSON_GetArraySize(p) > 0 && !cJSON_IsNumber(p->child);
    int n = several ? cJSON_GetArraySize(p) : 1;
    if (n * r->n > G4_OAI_MAX_CHOICES)
        return g4_http_fail(e, 400, "prompt", "%d prompts × n = %d gives more than %d choices in one request", n, r->n,
                            G4_OAI_MAX_CHOICES);
    if (!(r->prompts = calloc((size_t)n, sizeof *r->prompts))) return g4_http_fail(e, 500, "prompt", "out of memory");
    r->n_prompts = n;
    if (!several) return parse_one_prompt(&r->prompts[0], p, -1, n_vocab, e);
    int i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, p) {
        if (parse_one_prompt(&r->prompts[i], it, i, n_vocab, e) < 0) return -1;
        i++;
    }
    return 0;
}

/* A video_url part: {"video_url": {"url": [frame image URL, ...], "fps": f}}, frames sampled at
 * fps (default 1) from the start, so frame i is at i / fps s (the mm:ss the prompt shows). A video
 * file is refused: there is no video decoder. The part becomes the chat template's "video". */
static int check_video(g4_oai_request *r, cJSON *part, int idx, int k, g4_http_error *e) {
    const cJSON *vu = cJSON_GetObjectItemCaseSensitive(part, "video_url");
    const cJSON *urls = cJSON_GetObjectItemCaseSensitive(vu, "url");
    const cJSON *fps = cJSON_GetObjectItemCaseSensitive(vu, "fps");
    if (cJSON_IsString(urls) || cJSON_IsString(vu))
        return g4_http_fail(e, 400, "messages",
                            "messages[%d].content[%d]: video_url.url must be a list of frame image URLs: a video file "
                            "cannot be read (g4serve has no video decoder; send frames sampled at video_url.fps, "
                            "default 1 per second)",
                            idx, k);
    int n = cJSON_GetArraySize(urls);
    if (!cJSON_IsArray(urls) || n == 0)
        return g4_http_fail(e, 400, "messages",
                            "messages[%d].content[%d]: a video_url part needs 'video_url': {'url': [frame image URL, "
                            "...]}",
                            idx, k);
    if (fps && (!cJSON_IsNumber(fps) || !(fps->valuedouble > 0) || fps->valuedouble > 1000))
        return g4_http_fail(e, 400, "messages", "messages[%d].content[%d]: video_url.fps must be a number in (0, 1000]",
                            idx, k);
    g4_error err = {{0}};
    if (g4_vision_frames_fit((size_t)n, &err))
        return g4_http_fail(e, 400, "messages", "messages[%d].content[%d]: %s", idx, k, err.msg);
    if (r->n_images + n > G4_VISION_MAX_REQUEST_ITEMS)
        return g4_http_fail(e, 400, "messages",
                            "messages[%d].content[%d]: more than %d images and video frames in one request", idx, k,
                            G4_VISION_MAX_REQUEST_ITEMS);
    if (!r->images && !(r->images = calloc(G4_VISION_MAX_REQUEST_ITEMS, sizeof *r->images)))
        return g4_http_fail(e, 500, NULL, "out of memory");
    double rate = fps ? fps->valuedouble : 1.0;
    const cJSON *u;
    int f = 0;
    cJSON_ArrayForEach(u, urls) {
        if (!cJSON_IsString(u) || !u->valuestring[0])
            return g4_http_fail(e, 400, "messages", "messages[%d].content[%d]: video_url.url[%d] must be a URL string",
                                idx, k, f);
        r->images[r->n_images++] = (g4_oai_image){u->valuestring, idx, k, r->n_videos, f / rate};
        f++;
    }
    r->n_videos++;
    if (!cJSON_SetValuestring(cJSON_GetObjectItemCaseSensitive(part, "type"), "video"))
        return g4_http_fail(e, 500, NULL, "out of memory");
    return 0;
}

/* Content parts: text, image_url ({"url": ...} or the URL as a string) and video_url (frames)
 * collected in order. */
static int check_content(g4_oai_request *r, cJSON *c, int idx, g4_http_error *e) {
    if (!c || cJSON_IsNull(c) || cJSON_IsString(c)) return 0;
    if (!cJSON_IsArray(c))
        return g4_http_fail(e, 400, "messages", "messages[%d].content must be a string, a list of parts or null", idx);
    cJSON *part;
    int k = 0;
    cJSON_ArrayForEach(part, c) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(part, "type");
        if (!cJSON_IsObject(part) || !cJSON_IsString(t))
            return g4_http_fail(e, 400, "messages", "messages[%d].content parts must be objects with a string 'type'",
                                idx);
        if (!strcmp(t->valuestring, "text")) {
            if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(part, "text")))
                return g4_http_fail(e, 400, "messages", "messages[%d] text part needs a string 'text'", idx);
        } else if (!strcmp(t->valuestring, "image_url")) {
            const cJSON *iu = cJSON_GetObjectItemCaseSensitive(part, "image_url");
            const cJSON *url = cJSON_IsObject(iu) ? cJSON_GetObjectItemCaseSensitive(iu, "url") : iu;
            if (!cJSON_IsString(url) || !url->valuestring[0])
                return g4_http_fail(e, 400, "messages",
                                    "messages[%d].content[%d]: an image_url part needs 'image_url': {'url': string}",
                                    idx, k);
            if (r->n_images == G4_VISION_MAX_REQUEST_ITEMS)
                return g4_http_fail(e, 400, "messages", "messages[%d].content[%d]: more than %d images in one request",
                                    idx, k, G4_VISION_MAX_REQUEST_ITEMS);
            if (!r->images && !(r->images = calloc(G4_VISION_MAX_REQUEST_ITEMS, sizeof *r->images)))
                return g4_http_fail(e, 500, NULL, "out of memory");
            r->images[r->n_images++] = (g4_oai_image){url->valuestring, idx, k, -1, 0};
        } else if (!strcmp(t->valuestring, "video_url")) {
            if (check_video(r, part, idx, k, e) < 0) return -1;
        } else {
            return g4_http_fail(e, 400, "messages", "messages[%d].content[%d]: content part type '%s' is not supported",
                                idx, k, t->valuestring);
        }
        k++;
    }
    return 0;
}

/* mm_processor_kwargs: {"max_soft_tokens": N} (vLLM passes it to transformers' processor; also
 * under "images_kwargs"). Other keys are refused: nothing would read them. */
static int parse_mm_kwargs(g4_oai_request *r, const cJSON *o, g4_http_error *e) {
    const cJSON *kw = field(o, "mm_processor_kwargs");
    if (!kw) return 0;
    if (!cJSON_IsObject(kw))
        return g4_http_fail(e, 400, "mm_processor_kwargs", "'mm_processor_kwargs' must be an object");
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(kw, "max_soft_tokens");
    const cJSON *ik = cJSON_GetObjectItemCaseSensitive(kw, "images_kwargs");
    if (!v && cJSON_IsObject(ik)) v = cJSON_GetObjectItemCaseSensitive(ik, "max_soft_tokens");
    const cJSON *it;
    cJSON_ArrayForEach(it, kw) {
        if (strcmp(it->string, "max_soft_tokens") && strcmp(it->string, "images_kwargs"))
            return g4_http_fail(e, 400, "mm_processor_kwargs", "mm_processor_kwargs.%s is not supported", it->string);
    }
    if (!v) return 0;
    if (!cJSON_IsNumber(v) || !g4_vision_budget_valid((int)v->valuedouble) || v->valuedouble != (int)v->valuedouble)
        return g4_http_fail(e, 400, "mm_processor_kwargs",
                            "mm_processor_kwargs.max_soft_tokens must be one of 70, 140, 280, 560, 1120");
    r->image_budget = (int)v->valuedouble;
    return 0;
}

static int parse_messages(g4_oai_request *r, const cJSON *o, g4_http_error *e) {
    const cJSON *m = field(o, "messages");
    if (!cJSON_IsArray(m) || cJSON_GetArraySize(m) == 0)
        return g4_http_fail(e, 400, "messages", "'messages' must be a non-empty list");
    int i = 0;
    const cJSON *msg;
    cJSON_ArrayForEach(msg, m) {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(msg, "role");
        if (!cJSON_IsObject(msg) || !cJSON_IsString(role))
            return g4_http_fail(e, 400, "messages", "messages[%d] must be an object with a string 'role'", i);
        const char *rs = role->valuestring;
        if (strcmp(rs, "system") && strcmp(rs, "developer") && strcmp(rs, "user") && strcmp(rs, "assistant") &&
            strcmp(rs, "tool"))
            return g4_http_fail(e, 400, "messages",
                                "messages[%d].role '%s' is not one of system, developer, user, "
                                "assistant, tool",
                                i, rs);
        if (check_content(r, cJSON_GetObjectItemCaseSensitive(msg, "content"), i, e) < 0) return -1;
        const cJSON *tc = field(msg, "tool_calls");
        if (tc) {
            if (strcmp(rs, "assistant") || !cJSON_IsArray(tc))
                return g4_http_fail(e, 400, "messages",
                                    "messages[%d].tool_calls must be a list on an assistant message", i);
            const cJSON *c;
            cJSON_ArrayForEach(c, tc) {
                const cJSON *fn = cJSON_GetObjectItemCaseSensitive(c, "function");
                const cJSON *args = cJSON_GetObjectItemCaseSensitive(fn, "arguments");
                if (!cJSON_IsObject(fn) || !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(fn, "name")))
                    return g4_http_fail(e, 400, "messages", "messages[%d].tool_calls[].function.name must be a string",
                                        i);
                if (args && !cJSON_IsNull(args)) {
                    cJSON *parsed = cJSON_IsString(args) ? cJSON_Parse(args->valuestring) : NULL;
                    bool ok = cJSON_IsObject(args) || cJSON_IsObject(parsed);
                    cJSON_Delete(parsed);
                    if (!ok)
                        return g4_http_fail(
                            e, 400, "messages",
                            "messages[%d].tool_calls[].function.arguments must be a JSON object (as a string)", i);
                }
            }
        }
        if (!strcmp(rs, "tool") && field(msg, "tool_call_id") && !cJSON_IsString(field(msg, "tool_call_id")))
            return g4_http_fail(e, 400, "messages", "messages[%d].tool_call_id must be a string", i);
        i++;
    }
    r->messages = m;
    return 0;
}

static int parse_tools(g4_oai_request *r, const cJSON *o, g4_http_error *e) {
    const cJSON *t = field(o, "tools");
    if (t) {
        if (!cJSON_IsArray(t)) return g4_http_fail(e, 400, "tools", "'tools' must be a list");
        const cJSON *it;
        cJSON_ArrayForEach(it, t) {
            const cJSON *type = cJSON_GetObjectItemCaseSensitive(it, "type");
            const cJSON *fn = cJSON_GetObjectItemCaseSensitive(it, "function");
            if (!cJSON_IsObject(it) || !cJSON_IsString(type) || strcmp(type->valuestring, "function") ||
                !cJSON_IsObject(fn) || !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(fn, "name")))
                return g4_http_fail(e, 400, "tools",
                                    "each tool must be {\"type\": \"function\", \"function\": {\"name\": ...}}");
            const cJSON *params = field(fn, "parameters");
            if (params && !cJSON_IsObject(params))
                return g4_http_fail(e, 400, "tools", "tool '%s': 'parameters' must be a JSON schema object",
                                    cJSON_GetObjectItemCaseSensitive(fn, "name")->valuestring);
        }
        if (cJSON_GetArraySize(t) > 0) r->tools = t;
    }
    r->tool_choice = r->tools ? G4_TOOL_CHOICE_AUTO : G4_TOOL_CHOICE_NONE;
    const cJSON *tc = field(o, "tool_choice");
    if (tc) {
        if (cJSON_IsString(tc)) {
            if (!strcmp(tc->valuestring, "none")) r->tool_choice = G4_TOOL_CHOICE_NONE;
            else if (!strcmp(tc->valuestring, "auto")) r->tool_choice = G4_TOOL_CHOICE_AUTO;
            else if (!strcmp(tc->valuestring, "required")) r->tool_choice = G4_TOOL_CHOICE_REQUIRED;
            else return g4_http_fail(e, 400, "tool_choice", "'tool_choice' must be none, auto, required or a function");
        } else {
            const cJSON *fn = cJSON_GetObjectItemCaseSensitive(tc, "function");
            const cJSON *name = cJSON_GetObjectItemCaseSensitive(fn, "name");
            if (!cJSON_IsObject(tc) || !cJSON_IsString(name))
                return g4_http_fail(e, 400, "tool_choice",
                                    "'tool_choice' object must be {\"type\": \"function\", "
                                    "\"function\": {\"name\": ...}}");
            r->tool_choice = G4_TOOL_CHOICE_NAMED;
            r->tool_choice_name = name->valuestring;
        }
        if (r->tool_choice != G4_TOOL_CHOICE_NONE && !r->tools)
            return g4_http_fail(e, 400, "tool_choice", "'tool_choice' needs 'tools'");
        if (r->tool_choice == G4_TOOL_CHOICE_REQUIRED || r->tool_choice == G4_TOOL_CHOICE_NAMED) {
            /* a forced call is a constraint of its own (oai_structured.c) */
            const char *named = r->tool_choice == G4_TOOL_CHOICE_NAMED ? r->tool_choice_name : NULL;
            if (g4_oai_structured_tool_choice(&r->structured, r->tools, named, e) < 0) return -1;
        }
    }
    r->parallel_tool_calls = true;
    if (get_bool(o, "parallel_tool_calls", &r->parallel_tool_calls, e) < 0) return -1;
    return 0;
}

static int parse_chat_options(g4_oai_request *r, const cJSON *o, g4_http_error *e) {
    r->add_generation_prompt = true;
    if (get_bool(o, "add_generation_prompt", &r->add_generation_prompt, e) < 0 ||
        get_bool(o, "continue_final_message", &r->continue_final_message, e) < 0)
        return -1;
    if (r->continue_final_message && r->add_generation_prompt) /* vLLM's rule and words */
        return g4_http_fail(e, 400, "continue_final_message",
                            "Cannot set both `continue_final_message` and `add_generation_prompt` to True.");
    const char *effort = NULL;
    if (get_str(o, "reasoning_effort", &effort, e) < 0) return -1;
    if (effort) r->enable_thinking = strcmp(effort, "none") != 0;
    bool include = true;
    if (get_bool(o, "include_reasoning", &include, e) < 0) return -1;
    const cJSON *kw = field(o, "chat_template_kwargs");
    if (kw) {
        if (!cJSON_IsObject(kw))
            return g4_http_fail(e, 400, "chat_template_kwargs", "'chat_template_kwargs' must be an object");
        if (get_bool(kw, "enable_thinking", &r->enable_thinking, e) < 0) {
            snprintf(e->param, sizeof e->param, "chat_template_kwargs");
            return -1;
        }
    }
    return 0;
}

/* vLLM's beam search: use_beam_search, n = the beam width, length_penalty (taken and unused
 * without beam search, as vLLM does). Refused here as vLLM refuses them, and penalties; what else
 * a search cannot take the engine's g4_beam_check names at submit. */
static int parse_beam(g4_oai_request *r, const cJSON *o, g4_http_error *e) {
    double lp = 1.0;
    if (get_bool(o, "use_beam_search", &r->beam_search, e) < 0 || get_num(o, "length_penalty", -1e9, 1e9, &lp, e) < 0)
        return -1;
    r->length_penalty = (float)lp;
    if (!r->beam_search) return 0;
    if (r->n > G4_BEAM_MAX_WIDTH)
        return g4_http_fail(e, 400, "n", "beam search takes n (the beam width) up to %d, got %d", G4_BEAM_MAX_WIDTH,
                            r->n);
    if (r->stream && r->kind == G4_OAI_COMPLETION) /* vLLM streams chat's beams (at the end), not these */
        return g4_http_fail(e, 400, "stream", "Streaming is not currently supported with beam search");
    /* Penalties the body sets are refused (g4_beam_check would name them); the model's
     * generation_config.json defaults do not apply to a search (vLLM's beam parameters have none). */
    static const char *const pen[] = {"repetition_penalty", "presence_penalty", "frequency_penalty"};
    for (size_t i = 0; i < sizeof pen / sizeof pen[0]; i++)
        if (field(o, pen[i])) return g4_http_fail(e, 400, pen[i], "beam search with '%s' is not supported yet", pen[i]);
    r->sampling.repetition_penalty = 1.0f;
    r->sampling.presence_penalty = r->sampling.frequency_penalty = 0.0f;
    if (r->n_logprob_ids)
        return g4_http_fail(e, 400, "logprob_token_ids", "`logprob_token_ids` is not supported with beam search.");
    if (r->echo && r->logprobs >= 0)
        return g4_http_fail(e, 400, "echo",
                            "`echo` with `logprobs` is not supported with beam search because beam search does not "
                            "compute prompt logprobs.");
    if (r->stop.include_stop_str_in_output) /* the search ends beams on stop ids itself */
        return g4_http_fail(e, 400, "include_stop_str_in_output",
                            "'include_stop_str_in_output' is not supported with beam search yet");
    return 0;
}

int g4_oai_request_parse(g4_oai_request *r, g4_oai_kind kind, const char *body, size_t len, int32_t n_vocab,
                         const g4_sampling *defaults, g4_http_error *e) {
    memset(r, 0, sizeof *r);
    r->kind = kind;
    r->n = 1;
    r->logprobs = -1;
    r->prompt_logprobs = -1;
    r->skip_special_tokens = true;
    if (defaults) r->sampling = *defaults;
    else g4_sampling_default(&r->sampling);
    g4_stop_rules_default(&r->stop);
    r->root = g4_http_parse_body(body, len, e);
    if (!r->root) return -1;
    const cJSON *o = r->root;
    long long i;
    int k;
    if (!cJSON_IsObject(o)) goto fail_obj;
    if (get_str(o, "model", &r->model, e) < 0 || get_bool(o, "stream", &r->stream, e) < 0) goto fail;
    if ((k = get_int(o, "n", 1, G4_OAI_MAX_N, &i, e)) < 0) goto fail;
    if (k) r->n = (int)i;
    const cJSON *so = field(o, "stream_options");
    if (so) {
        if (!cJSON_IsObject(so)) {
            g4_http_fail(e, 400, "stream_options", "'stream_options' must be an object");
            goto fail;
        }
        if (!r->stream) {
            g4_http_fail(e, 400, "stream_options", "'stream_options' is only allowed with 'stream': true");
            goto fail;
        }
        if (get_bool(so, "include_usage", &r->include_usage, e) < 0 ||
            get_bool(so, "continuous_usage_stats", &r->continuous_usage, e) < 0)
            goto fail;
        r->continuous_usage = r->continuous_usage && r->include_usage; /* as vLLM: usage only when asked */
    }
    /* max_completion_tokens wins over the deprecated max_tokens. */
    if ((k = get_int(o, "max_tokens", 1, 1 << 30, &i, e)) < 0) goto fail;
    if (k) r->max_tokens = (int)i;
    if ((k = get_int(o, "max_completion_tokens", 1, 1 << 30, &i, e)) < 0) goto fail;
    if (k) r->max_tokens = (int)i;
    if ((k = get_int(o, "min_tokens", 0, 1 << 30, &i, e)) < 0) goto fail;
    if (k) r->stop.min_tokens = (int)i;
    if (get_bool(o, "ignore_eos", &r->stop.ignore_eos, e) < 0 ||
        get_bool(o, "include_stop_str_in_output", &r->stop.include_stop_str_in_output, e) < 0 ||
        get_bool(o, "skip_special_tokens", &r->skip_special_tokens, e) < 0 ||
        get_str(o, "request_id", &r->request_id, e) < 0 ||
        get_bool(o, "return_token_ids", &r->return_token_ids, e) < 0 ||
        get_bool(o, "return_tokens_as_token_ids", &r->tokens_as_ids, e) < 0)
        goto fail;
    if (parse_truncation(r, o, e) < 0) goto fail;
    if ((k = get_int(o, "priority", -1e9, 1e9, &i, e)) < 0) goto fail;
    if (k) r->priority = (int)i;
    if (refuse_unsupported(o, e) < 0 || parse_sampling(r, o, e) < 0 || parse_logprobs(r, o, e) < 0 ||
        parse_logprob_ids(r, o, n_vocab, e) < 0 || parse_stop(r, o, n_vocab, e) < 0 ||
        parse_processors(r, o, n_vocab, e) < 0 || get_bool(o, "echo", &r->echo, e) < 0 ||
        g4_oai_structured_parse(o, &r->structured, e) < 0 || parse_beam(r, o, e) < 0)
        goto fail;
    if ((k = get_int(o, "prompt_logprobs", -1, G4_MAX_TOP_LOGPROBS, &i, e)) < 0) goto fail;
    r->prompt_logprobs = k ? (int)i : -1;
    if (k && i < 0) {
        g4_http_fail(e, 400, "prompt_logprobs",
                     "'prompt_logprobs': -1 (the whole vocabulary) is not supported; "
                     "ask for 0..%d",
                     G4_MAX_TOP_LOGPROBS);
        goto fail;
    }
    if (k && kind == G4_OAI_CHAT && r->stream) { /* vLLM: not with stream on chat either */
        g4_http_fail(e, 400, "prompt_logprobs", "'prompt_logprobs' is not available on streamed chat completions");
        goto fail;
    }
    if (kind == G4_OAI_COMPLETION) {
        if (parse_prompt(r, o, n_vocab, e) < 0) goto fail;
    }
    if (kind == G4_OAI_CHAT) {
        if (parse_messages(r, o, e) < 0 || parse_tools(r, o, e) < 0 || parse_chat_options(r, o, e) < 0 ||
            parse_mm_kwargs(r, o, e) < 0)
            goto fail;
    } else if (field(o, "mm_processor_kwargs")) {
        g4_http_fail(e, 400, "mm_processor_kwargs", "'mm_processor_kwargs' is for chat requests with images");
        goto fail;
    }
    return 0;
fail_obj:
    g4_http_fail(e, 400, NULL, "the request body must be a JSON object");
fail:
    g4_oai_request_free(r);
    return -1;
}

void g4_oai_request_free(g4_oai_request *r) {
    cJSON_Delete(r->root);
    for (int i = 0; i < r->n_prompts; i++) free(r->prompts[i].ids);
    free(r->prompts);
    free(r->logit_bias);
    free(r->allowed_ids);
    free(r->images);
    g4_oai_structured_free(&r->structured);
    memset(r, 0, sizeof *r);
}
