/* svc_kserve.c - the KServe v2 / Triton inference.GRPCInferenceService subset.
 *
 * Health and metadata RPCs, ModelInfer (unary) and ModelStreamInfer (bidi, several requests
 * per stream, correlated by id). LLM requests follow the Triton vLLM-backend convention:
 * inputs text_input BYTES [1] (required), stream BOOL [1], sampling_parameters BYTES [1] (JSON
 * object; values may be numbers or numeric strings), max_tokens INT32 [1],
 * exclude_input_in_output BOOL [1]; output text_output BYTES [1], always in
 * raw_output_contents. Streaming: one response per group of new tokens; every response
 * carries parameter triton_final_response (true on the last); with request parameter
 * triton_enable_empty_final_response the last response is empty. A failed request of a stream
 * gets a response with error_message and the stream stays open. Other methods of Triton's
 * service are not in the method table, so the core answers UNIMPLEMENTED. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kserve_v2.pb-c.h"
#include "server/grpc/grpc_impl.h"
#include "text/prompt.h"

#define G4_KSERVE_MAX_STOP 16

typedef struct kreq {
    char *id;
    bool stream, empty_final, exclude_input;
    char *prompt_text;          /* for exclude_input_in_output = false (non-streaming) */
} kreq;

typedef struct kstate {
    g4_gen *head, *tail;        /* requests of this call, in arrival order */
} kstate;

static void kreq_free(void *p) {
    kreq *k = p;
    if (!k) return;
    free(k->id);
    free(k->prompt_text);
    free(k);
}

/* ---- metadata RPCs ------------------------------------------------------------------------ */

static void server_live(g4_gcall *c, const uint8_t *d, size_t n) {
    (void)d, (void)n;
    Inference__ServerLiveResponse r = INFERENCE__SERVER_LIVE_RESPONSE__INIT;
    r.live = !atomic_load(&c->srv->stopping);
    g4_gcall_reply(c, &r.base);
}

static void server_ready(g4_gcall *c, const uint8_t *d, size_t n) {
    (void)d, (void)n;
    Inference__ServerReadyResponse r = INFERENCE__SERVER_READY_RESPONSE__INIT;
    r.ready = g4_grpc_ready(c->srv);
    g4_gcall_reply(c, &r.base);
}

static bool version_ok(const char *v) { return !v[0] || !strcmp(v, "1"); }

static void model_ready(g4_gcall *c, const uint8_t *d, size_t n) {
    Inference__ModelReadyRequest *rq = inference__model_ready_request__unpack(NULL, n, d);
    if (!rq) {
        g4_gcall_finish(c, GRPC_STATUS_INVALID_ARGUMENT, "ModelReadyRequest does not parse");
        return;
    }
    g4_error err = {{0}};
    if (g4_grpc_check_utf8(&rq->base, &err)) {
        g4_gcall_finish(c, GRPC_STATUS_INVALID_ARGUMENT, "ModelReadyRequest.%s", err.msg);
    } else {
        /* As Triton: a model that is not served is not ready (status OK, ready false); only
         * ModelMetadata / ModelInfer answer NOT_FOUND for it. */
        bool served = rq->name[0] && !strcmp(rq->name, c->srv->served_name) && version_ok(rq->version);
        Inference__ModelReadyResponse r = INFERENCE__MODEL_READY_RESPONSE__INIT;
        r.ready = served && g4_grpc_ready(c->srv);
        g4_gcall_reply(c, &r.base);
    }
    inference__model_ready_request__free_unpacked(rq, NULL);
}

static void server_metadata(g4_gcall *c, const uint8_t *d, size_t n) {
    (void)d, (void)n;
    Inference__ServerMetadataResponse r = INFERENCE__SERVER_METADATA_RESPONSE__INIT;
    r.name = "g4serve";
    r.version = "0.1.0";
    g4_gcall_reply(c, &r.base);
}

static void model_metadata(g4_gcall *c, const uint8_t *d, size_t n) {
    Inference__ModelMetadataRequest *rq = inference__model_metadata_request__unpack(NULL, n, d);
    if (!rq) {
        g4_gcall_finish(c, GRPC_STATUS_INVALID_ARGUMENT, "ModelMetadataRequest does not parse");
        return;
    }
    g4_error err = {{0}};
    if (g4_grpc_check_utf8(&rq->base, &err)) {
        g4_gcall_finish(c, GRPC_STATUS_INVALID_ARGUMENT, "ModelMetadataRequest.%s", err.msg);
        inference__model_metadata_request__free_unpacked(rq, NULL);
        return;
    }
    if (strcmp(rq->name, c->srv->served_name) || !version_ok(rq->version)) {
        g4_gcall_finish(c, GRPC_STATUS_NOT_FOUND, "model \"%s\" version \"%s\" is not served here", rq->name,
                        rq->version);
        inference__model_metadata_request__free_unpacked(rq, NULL);
        return;
    }
    static const struct {
        const char *name, *dtype;
        int64_t dim;
    } in[] = {{"text_input", "BYTES", 1},
              {"stream", "BOOL", 1},
              {"sampling_parameters", "BYTES", 1},
              {"max_tokens", "INT32", 1},
              {"exclude_input_in_output", "BOOL", 1},
              {"text_output", "BYTES", -1}};
    Inference__ModelMetadataResponse__TensorMetadata t[6], *tp[6];
    int64_t dims[6];
    for (int i = 0; i < 6; i++) {
        Inference__ModelMetadataResponse__TensorMetadata init =
            INFERENCE__MODEL_METADATA_RESPONSE__TENSOR_METADATA__INIT;
        t[i] = init;
        t[i].name = (char *)in[i].name;
        t[i].datatype = (char *)in[i].dtype;
        dims[i] = in[i].dim;
        t[i].n_shape = 1;
        t[i].shape = &dims[i];
        tp[i] = &t[i];
    }
    char *versions[] = {"1"};
    Inference__ModelMetadataResponse r = INFERENCE__MODEL_METADATA_RESPONSE__INIT;
    r.name = c->srv->served_name;
    r.n_versions = 1;
    r.versions = versions;
    r.platform = "g4serve";
    r.n_inputs = 5;
    r.inputs = tp;
    r.n_outputs = 1;
    r.outputs = tp + 5;
    g4_gcall_reply(c, &r.base);
    inference__model_metadata_request__free_unpacked(rq, NULL);
}

/* ---- request parsing --------------------------------------------------------------------- */

/* The element bytes of input i: raw_input_contents[i] or the typed contents. */
typedef struct tensor_view {
    const uint8_t *raw;
    size_t raw_len;
    const Inference__InferTensorContents *contents;
} tensor_view;

static int get_bytes(const Inference__ModelInferRequest *rq, size_t i, const tensor_view *v, const char **s,
                     size_t *len, g4_error *err) {
    const char *name = rq->inputs[i]->name;
    if (v->raw) {
        if (v->raw_len < 4) return g4_fail(err, "input %s: raw BYTES shorter than its 4-byte length", name);
        uint32_t n =
            (uint32_t)v->raw[0] | (uint32_t)v->raw[1] << 8 | (uint32_t)v->raw[2] << 16 | (uint32_t)v->raw[3] << 24;
        if (n > v->raw_len - 4) return g4_fail(err, "input %s: BYTES length %u exceeds the data", name, n);
        *s = (const char *)v->raw + 4;
        *len = n;
        return 0;
    }
    if (!v->contents || v->contents->n_bytes_contents < 1)
        return g4_fail(err, "input %s: expected one BYTES element", name);
    *s = (const char *)v->contents->bytes_contents[0].data;
    *len = v->contents->bytes_contents[0].len;
    return 0;
}

static int get_bool(const Inference__ModelInferRequest *rq, size_t i, const tensor_view *v, bool *out, g4_error *err) {
    if (v->raw) {
        if (v->raw_len < 1) return g4_fail(err, "input %s: empty BOOL", rq->inputs[i]->name);
        *out = v->raw[0] != 0;
        return 0;
    }
    if (!v->contents || v->contents->n_bool_contents < 1)
        return g4_fail(err, "input %s: expected one BOOL element", rq->inputs[i]->name);
    *out = v->contents->bool_contents[0];
    return 0;
}

static int get_int(const Inference__ModelInferRequest *rq, size_t i, const tensor_view *v, int64_t *out,
                   g4_error *err) {
    const char *dt = rq->inputs[i]->datatype;
    if (v->raw) {
        int64_t x = 0;
        if ((!strcmp(dt, "INT32") || !strcmp(dt, "UINT32")) && v->raw_len >= 4) {
            int32_t y;
            memcpy(&y, v->raw, 4);
            x = y;
        } else if ((!strcmp(dt, "INT64") || !strcmp(dt, "UINT64")) && v->raw_len >= 8) {
            memcpy(&x, v->raw, 8);
        } else {
            return g4_fail(err, "input %s: expected one INT32 or INT64 element", rq->inputs[i]->name);
        }
        *out = x;
        return 0;
    }
    const Inference__InferTensorContents *t = v->contents;
    if (t && t->n_int_contents) *out = t->int_contents[0];
    else if (t && t->n_int64_contents) *out = t->int64_contents[0];
    else if (t && t->n_uint_contents) *out = t->uint_contents[0];
    else return g4_fail(err, "input %s: expected one integer element", rq->inputs[i]->name);
    return 0;
}

/* A JSON value as a number: numbers and numeric strings ("0.1") are accepted. */
static int json_num(const cJSON *v, const char *key, double *out, g4_error *err) {
    if (cJSON_IsNumber(v)) {
        *out = v->valuedouble;
        return 0;
    }
    if (cJSON_IsString(v)) {
        char *end;
        *out = strtod(v->valuestring, &end);
        if (end != v->valuestring && !*end) return 0;
    }
    if (cJSON_IsBool(v)) {
        *out = cJSON_IsTrue(v);
        return 0;
    }
    return g4_fail(err, "sampling_parameters.%s must be a number", key);
}

typedef struct kparams {
    g4_request_params p;
    const char *stops[G4_KSERVE_MAX_STOP];
    int32_t stop_ids[64];
    int vocab;                  /* bounds stop_token_ids */
    cJSON *json;
} kparams;

static int parse_sampling(kparams *kp, const char *s, size_t len, g4_error *err) {
    kp->json = cJSON_ParseWithLength(s, len);
    if (!kp->json || !cJSON_IsObject(kp->json)) return g4_fail(err, "sampling_parameters must be a JSON object");
    g4_request_params *p = &kp->p;
    for (cJSON *v = kp->json->child; v; v = v->next) {
        const char *k = v->string;
        double x = 0;
        if (!strcmp(k, "stop")) {
            int n = 0;
            if (cJSON_IsString(v)) kp->stops[n++] = v->valuestring;
            else if (cJSON_IsArray(v)) {
                for (cJSON *e = v->child; e; e = e->next) {
                    if (!cJSON_IsString(e) || !e->valuestring[0] || n == G4_KSERVE_MAX_STOP)
                        return g4_fail(err, "sampling_parameters.stop: up to %d non-empty strings", G4_KSERVE_MAX_STOP);
                    kp->stops[n++] = e->valuestring;
                }
            } else if (!cJSON_IsNull(v)) {
                return g4_fail(err, "sampling_parameters.stop must be a string or a list of strings");
            }
            p->stop.stop_strings = kp->stops;
            p->stop.n_stop_strings = n;
            continue;
        }
        if (!strcmp(k, "stop_token_ids")) {
            int n = 0;
            if (!cJSON_IsArray(v)) return g4_fail(err, "sampling_parameters.stop_token_ids must be a list");
            for (cJSON *e = v->child; e; e = e->next) {
                if (!cJSON_IsNumber(e) || n == 64)
                    return g4_fail(err, "sampling_parameters.stop_token_ids: up to 64 ids");
                if (!(e->valuedouble >= 0 && e->valuedouble < kp->vocab) || e->valuedouble != floor(e->valuedouble))
                    return g4_fail(err, "sampling_parameters.stop_token_ids[%d] is not a token id in [0, %d)", n,
                                   kp->vocab);
                kp->stop_ids[n++] = (int32_t)e->valuedouble;
            }
            p->stop.stop_ids = kp->stop_ids;
            p->stop.n_stop_ids = n;
            continue;
        }
        if (json_num(v, k, &x, err)) return -1;
        if (!strcmp(k, "temperature")) {
            if (!(x >= 0 && x <= 100)) return g4_fail(err, "sampling_parameters.temperature must be in [0, 100]");
            p->sampling.temperature = (float)x;
        } else if (!strcmp(k, "top_p")) {
            if (!(x > 0 && x <= 1)) return g4_fail(err, "sampling_parameters.top_p must be in (0, 1]");
            p->sampling.top_p = (float)x;
        } else if (!strcmp(k, "top_k")) {
            if (!(x >= -1 && x <= 1 << 30) || x != floor(x))
                return g4_fail(err, "sampling_parameters.top_k must be an integer in [-1, %d]", 1 << 30);
            p->sampling.top_k = x < 0 ? 0 : (int)x; /* vLLM: -1 = off */
        } else if (!strcmp(k, "min_p")) {
            if (!(x >= 0 && x <= 1)) return g4_fail(err, "sampling_parameters.min_p must be in [0, 1]");
            p->sampling.min_p = (float)x;
        } else if (!strcmp(k, "repetition_penalty")) {
            if (!(x > 0 && x <= 100)) return g4_fail(err, "sampling_parameters.repetition_penalty must be in (0, 100]");
            p->sampling.repetition_penalty = (float)x;
        } else if (!strcmp(k, "presence_penalty") || !strcmp(k, "frequency_penalty")) {
            if (!(x >= -2 && x <= 2)) return g4_fail(err, "sampling_parameters.%s must be in [-2, 2]", k);
            if (k[0] == 'p') p->sampling.presence_penalty = (float)x;
            else p->sampling.frequency_penalty = (float)x;
        } else if (!strcmp(k, "seed")) {
            if (!(x >= 0 && x < 18446744073709551616.0) || x != floor(x))
                return g4_fail(err, "sampling_parameters.seed must be an integer in [0, 2^64)");
            p->sampling.has_seed = true;
            p->sampling.seed = (uint64_t)x;
        } else if (!strcmp(k, "max_tokens")) {
            if (!(x >= 1 && x <= 1e9)) return g4_fail(err, "sampling_parameters.max_tokens must be in [1, 1e9]");
            p->stop.max_tokens = (int)x;
        } else if (!strcmp(k, "min_tokens")) {
            if (!(x >= 0 && x <= 1e9)) return g4_fail(err, "sampling_parameters.min_tokens must be in [0, 1e9]");
            p->stop.min_tokens = (int)x;
        } else if (!strcmp(k, "ignore_eos")) {
            p->stop.ignore_eos = x != 0;
        } else if (!strcmp(k, "include_stop_str_in_output")) {
            p->stop.include_stop_str_in_output = x != 0;
        } else {
            return g4_fail(err, "sampling_parameters.%s is not supported", k);
        }
    }
    return 0;
}

/* Parses one request and submits it as g (whose svc becomes its kreq). On failure returns -1
 * with the status in *code and the message in err. */
static int start_request(g4_gcall *c, const Inference__ModelInferRequest *rq, g4_gen *g, grpc_status_code *code,
                         g4_error *err) {
    g4_grpc_server *s = c->srv;
    kreq *k = calloc(1, sizeof *k);
    if (!k || !(k->id = strdup(rq->id))) {
        free(k);
        *code = GRPC_STATUS_RESOURCE_EXHAUSTED;
        return g4_fail(err, "out of memory");
    }
    g->svc = k;
    g->svc_free = kreq_free;
    *code = GRPC_STATUS_INVALID_ARGUMENT;
    if (g4_grpc_check_utf8(&rq->base, err)) {
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%s", err->msg);
        k->id[0] = 0; /* not echoed in an error response */
        return g4_fail(err, "ModelInferRequest.%s", msg);
    }
    if (!g4_grpc_ready(s)) {
        *code = GRPC_STATUS_UNAVAILABLE;
        return g4_fail(err, "the model is not ready");
    }
    if (strcmp(rq->model_name, s->served_name) || !version_ok(rq->model_version)) {
        *code = GRPC_STATUS_NOT_FOUND;
        return g4_fail(err, "model \"%s\" version \"%s\" is not served here", rq->model_name, rq->model_version);
    }
    for (size_t i = 0; i < rq->n_parameters; i++) {
        const Inference__ModelInferRequest__ParametersEntry *e = rq->parameters[i];
        if (!strcmp(e->key, "triton_enable_empty_final_response") && e->value &&
            e->value->parameter_choice_case == INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_BOOL_PARAM)
            k->empty_final = e->value->bool_param;
    }
    if (rq->n_raw_input_contents && rq->n_raw_input_contents != rq->n_inputs)
        return g4_fail(err, "raw_input_contents has %zu entries for %zu inputs", rq->n_raw_input_contents,
                       rq->n_inputs);
    kparams kp;
    memset(&kp, 0, sizeof kp);
    kp.p.sampling = s->model.eo.defaults; /* greedy, or the model's generation_config.json */
    g4_stop_rules_default(&kp.p.stop);
    kp.p.stop.max_tokens = 0;
    kp.p.sampling.logprobs = -1;
    kp.vocab = s->model.cfg.vocab;
    const char *text = NULL;
    size_t text_len = 0;
    int64_t max_tokens = 0;
    int rc = 0;
    for (size_t i = 0; i < rq->n_inputs && rc == 0; i++) {
        const char *name = rq->inputs[i]->name;
        tensor_view v = {.contents = rq->inputs[i]->contents};
        if (rq->n_raw_input_contents) {
            v.raw = rq->raw_input_contents[i].data;
            v.raw_len = rq->raw_input_contents[i].len;
            if (!v.raw) v.raw = (const uint8_t *)"";
        }
        if (!strcmp(name, "text_input")) rc = get_bytes(rq, i, &v, &text, &text_len, err);
        else if (!strcmp(name, "stream")) rc = get_bool(rq, i, &v, &k->stream, err);
        else if (!strcmp(name, "exclude_input_in_output")) rc = get_bool(rq, i, &v, &k->exclude_input, err);
        else if (!strcmp(name, "max_tokens")) rc = get_int(rq, i, &v, &max_tokens, err);
        else if (!strcmp(name, "sampling_parameters")) {
            const char *js;
            size_t jn;
            rc = get_bytes(rq, i, &v, &js, &jn, err);
            if (rc == 0) rc = parse_sampling(&kp, js, jn, err);
        } else {
            rc = g4_fail(err,
                         "input \"%s\" is not supported (text_input, stream, sampling_parameters, max_tokens, "
                         "exclude_input_in_output)",
                         name);
        }
    }
    if (rc == 0 && !text) rc = g4_fail(err, "input text_input is required");
    if (rc == 0 && max_tokens) {
        if (max_tokens < 1 || max_tokens > 1000000000) rc = g4_fail(err, "input max_tokens must be in [1, 1e9]");
        else kp.p.stop.max_tokens = (int)max_tokens;
    }
    g4_tokens ids = {0};
    if (rc == 0 && !s->model.tok) rc = g4_fail(err, "this server has no tokenizer");
    if (rc == 0) { /* plain text, one BOS: as the native API's text input */
        g4_prompt_input in;
        g4_prompt_input_init(&in, G4_PROMPT_TEXT);
        in.text = text;
        in.text_len = text_len;
        in.encode_flags = G4_ENCODE_ADD_BOS;
        rc = g4_prompt_build(s->model.tok, &in, &ids, NULL, err);
    }
    if (rc == 0) {
        kp.p.prompt = ids.ids;
        kp.p.n_prompt = (int)ids.n;
        rc = g4_grpc_check_lengths(s, &kp.p, err);
    }
    if (rc == 0 && !k->stream && !k->exclude_input) {
        k->prompt_text = strndup(text, text_len);
        if (!k->prompt_text) rc = g4_fail(err, "out of memory");
    }
    if (rc == 0) rc = g4_gen_submit(g, &kp.p, code, err);
    g4_tokens_free(&ids);
    cJSON_Delete(kp.json);
    return rc;
}

/* ---- responses --------------------------------------------------------------------------- */

/* Packs text_output (+ final flag when streaming) into resp; storage lives in *buf. */
typedef struct kresp {
    Inference__ModelInferResponse r;
    Inference__ModelInferResponse__InferOutputTensor out, *outp;
    Inference__ModelInferResponse__ParametersEntry pe[2], *pep[2];
    Inference__InferParameter pv[2];
    int64_t shape;
    ProtobufCBinaryData raw;
} kresp;

static void build_resp(kresp *b, g4_grpc_server *s, const g4_gen *g, const kreq *k, bool with_output, bool final,
                       bool flag) {
    memset(b, 0, sizeof *b);
    Inference__ModelInferResponse ri = INFERENCE__MODEL_INFER_RESPONSE__INIT;
    b->r = ri;
    b->r.model_name = s->served_name;
    b->r.model_version = "1";
    b->r.id = k->id;
    size_t np = 0;
    if (flag) {
        Inference__ModelInferResponse__ParametersEntry e = INFERENCE__MODEL_INFER_RESPONSE__PARAMETERS_ENTRY__INIT;
        Inference__InferParameter v = INFERENCE__INFER_PARAMETER__INIT;
        b->pe[np] = e;
        b->pv[np] = v;
        b->pe[np].key = "triton_final_response";
        b->pv[np].parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_BOOL_PARAM;
        b->pv[np].bool_param = final;
        b->pe[np].value = &b->pv[np];
        b->pep[np] = &b->pe[np];
        np++;
    }
    if (final && g->finish != G4_FINISH_NONE) {
        Inference__ModelInferResponse__ParametersEntry e = INFERENCE__MODEL_INFER_RESPONSE__PARAMETERS_ENTRY__INIT;
        Inference__InferParameter v = INFERENCE__INFER_PARAMETER__INIT;
        b->pe[np] = e;
        b->pv[np] = v;
        b->pe[np].key = "finish_reason";
        b->pv[np].parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_STRING_PARAM;
        b->pv[np].string_param = (char *)g4_finish_name(g->finish);
        b->pe[np].value = &b->pv[np];
        b->pep[np] = &b->pe[np];
        np++;
    }
    b->r.n_parameters = np;
    b->r.parameters = b->pep;
    if (!with_output) return;
    size_t pl = k->prompt_text && !k->stream ? strlen(k->prompt_text) : 0;
    size_t n = pl + g->text.len;
    b->raw.len = 4 + n;
    b->raw.data = malloc(b->raw.len);
    if (!b->raw.data) return;
    b->raw.data[0] = (uint8_t)n, b->raw.data[1] = (uint8_t)(n >> 8);
    b->raw.data[2] = (uint8_t)(n >> 16), b->raw.data[3] = (uint8_t)(n >> 24);
    if (pl) memcpy(b->raw.data + 4, k->prompt_text, pl);
    if (g->text.len) memcpy(b->raw.data + 4 + pl, g->text.data, g->text.len);
    Inference__ModelInferResponse__InferOutputTensor ot = INFERENCE__MODEL_INFER_RESPONSE__INFER_OUTPUT_TENSOR__INIT;
    b->out = ot;
    b->out.name = "text_output";
    b->out.datatype = "BYTES";
    b->shape = 1;
    b->out.n_shape = 1;
    b->out.shape = &b->shape;
    b->outp = &b->out;
    b->r.n_outputs = 1;
    b->r.outputs = &b->outp;
    b->r.n_raw_output_contents = 1;
    b->r.raw_output_contents = &b->raw;
}

/* ---- ModelInfer (unary) ------------------------------------------------------------------ */

static void infer_pump(g4_gcall *c) {
    kstate *ks = c->svc;
    if (!ks || !ks->head) return;
    g4_gen_collect(c);
    g4_gen *g = ks->head;
    if (!g->finished || g->final_sent || g4_gcall_over(c)) return;
    g->final_sent = true;
    if (g->finish == G4_FINISH_ERROR) {
        g4_gcall_finish(c, GRPC_STATUS_INTERNAL, "generation failed: %s", g->error ? g->error : "engine error");
        return;
    }
    if (g->finish == G4_FINISH_ABORT) {
        g4_gcall_finish(c, GRPC_STATUS_CANCELLED, "the request was aborted");
        return;
    }
    kresp b;
    build_resp(&b, c->srv, g, g->svc, true, true, false);
    g4_gcall_reply(c, &b.r.base);
    free(b.raw.data);
}

static void infer_message(g4_gcall *c, const uint8_t *d, size_t n) {
    Inference__ModelInferRequest *rq = inference__model_infer_request__unpack(NULL, n, d);
    if (!rq) {
        g4_gcall_finish(c, GRPC_STATUS_INVALID_ARGUMENT, "ModelInferRequest does not parse");
        return;
    }
    kstate *ks = calloc(1, sizeof *ks);
    g4_gen *g = ks ? g4_gen_new(c, G4_DETOK_SKIP_SPECIAL) : NULL;
    if (!g) {
        free(ks);
        g4_gcall_finish(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    } else {
        ks->head = ks->tail = g;
        c->svc = ks;
        grpc_status_code code;
        g4_error err = {{0}};
        if (start_request(c, rq, g, &code, &err)) {
            g4_grpc_count_refusal(c->srv, code);
            g->finished = g->final_sent = true;
            g4_gcall_finish(c, code, "%s", err.msg);
        } else if (c->cancelled) {
            g4_gen_cancel(g);
        }
    }
    inference__model_infer_request__free_unpacked(rq, NULL);
}

static void kserve_cancel(g4_gcall *c) {
    kstate *ks = c->svc;
    if (ks)
        for (g4_gen *g = ks->head; g; g = g->next) g4_gen_cancel(g);
}

static void kserve_free(g4_gcall *c) {
    kstate *ks = c->svc;
    if (!ks) return;
    while (ks->head) {
        g4_gen *g = ks->head;
        ks->head = g->next;
        g4_gen_free(g);
    }
    free(ks);
}

/* ---- ModelStreamInfer (bidi) ------------------------------------------------------------- */

static void send_stream(g4_gcall *c, g4_gen *g, bool with_output, bool final) {
    kresp b;
    build_resp(&b, c->srv, g, g->svc, with_output, final, true);
    Inference__ModelStreamInferResponse r = INFERENCE__MODEL_STREAM_INFER_RESPONSE__INIT;
    r.infer_response = &b.r;
    if (g4_gcall_send(c, &r.base) == 0) g4_gen_clear_output(g);
    free(b.raw.data);
}

static void stream_pump(g4_gcall *c) {
    kstate *ks = c->svc;
    if (!ks) {
        if (g4_grpc_draining(c->srv) && !c->send_busy)
            g4_gcall_finish(c, GRPC_STATUS_UNAVAILABLE, "the server is shutting down");
        return;
    }
    g4_gen_collect(c);
    for (g4_gen **pg = &ks->head; *pg;) {
        g4_gen *g = *pg;
        kreq *k = g->svc;
        if (g->final_sent) { /* done: unlink and free */
            *pg = g->next;
            if (ks->tail == g) {
                ks->tail = NULL;
                for (g4_gen *t = ks->head; t; t = t->next) ks->tail = t;
            }
            g4_gen_free(g);
            continue;
        }
        if (!g4_gcall_over(c) && !c->send_busy) {
            if (g->finished && (g->finish == G4_FINISH_ERROR || g->error)) {
                Inference__ModelInferResponse ri = INFERENCE__MODEL_INFER_RESPONSE__INIT;
                ri.model_name = c->srv->served_name;
                ri.model_version = "1";
                ri.id = k && k->id ? k->id : "";
                Inference__ModelStreamInferResponse r = INFERENCE__MODEL_STREAM_INFER_RESPONSE__INIT;
                r.error_message = g->error ? g->error : "generation failed";
                r.infer_response = &ri;
                if (g4_gcall_send(c, &r.base) == 0) g->final_sent = true;
            } else if (k->stream) {
                if (g->finished) {
                    if (k->empty_final && g->text.len) send_stream(c, g, true, false);
                    else {
                        send_stream(c, g, !k->empty_final, true);
                        g->final_sent = c->send_busy;
                    }
                } else if (g->text.len) {
                    send_stream(c, g, true, false);
                }
            } else if (g->finished) {
                send_stream(c, g, true, true);
                g->final_sent = c->send_busy;
            }
        }
        if (g4_gcall_over(c) && g->finished) g->final_sent = true; /* nobody to tell */
        pg = &g->next;
    }
    if (c->half_closed && !ks->head && !c->send_busy) g4_gcall_finish(c, GRPC_STATUS_OK, "%s", "");
    /* Draining: a stream with nothing left to answer ends, so it does not hold the drain open. */
    else if (g4_grpc_draining(c->srv) && !ks->head && !c->send_busy)
        g4_gcall_finish(c, GRPC_STATUS_UNAVAILABLE, "the server is shutting down");
}

static void stream_message(g4_gcall *c, const uint8_t *d, size_t n) {
    kstate *ks = c->svc;
    if (!ks) {
        ks = calloc(1, sizeof *ks);
        if (!ks) {
            g4_gcall_finish(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
            return;
        }
        c->svc = ks;
    }
    g4_gen *g = g4_gen_new(c, G4_DETOK_SKIP_SPECIAL);
    if (!g) {
        g4_gcall_finish(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    if (ks->tail) ks->tail->next = g;
    else ks->head = g;
    ks->tail = g;
    Inference__ModelInferRequest *rq = inference__model_infer_request__unpack(NULL, n, d);
    grpc_status_code code;
    g4_error err = {{0}};
    if (!rq) {
        g4_fail(&err, "ModelInferRequest does not parse");
        g->finished = true;
        g->error = strdup(err.msg);
    } else if (start_request(c, rq, g, &code, &err)) {
        g4_grpc_count_refusal(c->srv, code);
        g->finished = true;
        g->finish = G4_FINISH_ERROR;
        g->error = strdup(err.msg);
    }
    if (rq) inference__model_infer_request__free_unpacked(rq, NULL);
    if (c->cancelled) g4_gen_cancel(g);
    stream_pump(c);
}

static void stream_half_close(g4_gcall *c) { stream_pump(c); }

const g4_grpc_method g4_kserve_methods[] = {
    {.path = "/inference.GRPCInferenceService/ServerLive",
     .kind = G4_RPC_UNARY,
     .open = true,
     .on_message = server_live},
    {.path = "/inference.GRPCInferenceService/ServerReady",
     .kind = G4_RPC_UNARY,
     .open = true,
     .on_message = server_ready},
    {.path = "/inference.GRPCInferenceService/ModelReady",
     .kind = G4_RPC_UNARY,
     .open = true,
     .on_message = model_ready},
    {.path = "/inference.GRPCInferenceService/ServerMetadata", .kind = G4_RPC_UNARY, .on_message = server_metadata},
    {.path = "/inference.GRPCInferenceService/ModelMetadata", .kind = G4_RPC_UNARY, .on_message = model_metadata},
    {.path = "/inference.GRPCInferenceService/ModelInfer",
     .request = &inference__model_infer_request__descriptor,
     .kind = G4_RPC_UNARY,
     .on_message = infer_message,
     .pump = infer_pump,
     .on_cancel = kserve_cancel,
     .on_free = kserve_free},
    {.path = "/inference.GRPCInferenceService/ModelStreamInfer",
     .request = &inference__model_infer_request__descriptor,
     .kind = G4_RPC_BIDI,
     .on_message = stream_message,
     .on_half_close = stream_half_close,
     .pump = stream_pump,
     .on_cancel = kserve_cancel,
     .on_free = kserve_free},
    {0},
};
