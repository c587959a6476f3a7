/* svc_native.c - g4serve.v1.G4Serve: Generate (server streaming), Tokenize, Detokenize,
 * ModelInfo, Abort. Field meanings: proto/g4serve.proto.
 *
 * Generate: validate -> build the prompt (text, ids, or chat template) -> register the request
 * id -> submit. The pump sends what the engine produced since the last message (one send in
 * flight), the last message with finish reason and usage, then status OK. A cancelled call
 * (client cancel, deadline) cancels the engine request; its KV blocks are freed by the engine.
 * Chat output goes through the text layer's output parser: content, reasoning and tool calls
 * arrive in their own response fields (special tokens are kept for the parser to see). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "g4serve.pb-c.h"
#include "server/grpc/grpc_impl.h"
#include "media/vision_input.h"
#include "text/output_parser.h"
#include "text/prompt.h"

typedef struct gen_state {
    g4_gen *g;
    char rid[160];
    bool registered;
    g4_output_parser *parser;  /* chat requests: splits content / reasoning / tool calls */
} gen_state;

/* ---- prompt ------------------------------------------------------------------------------ */

/* The chat template's input, built from the protobuf fields (roles and names checked here, where
 * the field paths are known). */
static int chat_input(const G4serve__V1__ChatInput *ci, g4_chat_input *in, g4_error *err) {
    static const char *const roles[] = {"system", "developer", "user", "assistant", "tool"};
    if (ci->n_messages == 0) return g4_fail(err, "chat.messages is empty");
    for (size_t i = 0; i < ci->n_messages; i++) {
        const G4serve__V1__ChatMessage *m = ci->messages[i];
        if (!m->role[0]) return g4_fail(err, "chat.messages[%zu].role is empty", i);
        bool known = false;
        for (size_t r = 0; r < sizeof roles / sizeof roles[0]; r++) known |= !strcmp(m->role, roles[r]);
        if (!known)
            return g4_fail(err, "chat.messages[%zu].role \"%s\" is not one of system, developer, user, assistant, tool",
                           i, m->role);
        if (g4_chat_input_message(in, m->role, m->content, m->reasoning, m->tool_call_id, m->name, err)) return -1;
        for (size_t k = 0; k < m->n_tool_calls; k++) {
            const G4serve__V1__ToolCall *tc = m->tool_calls[k];
            int rc = g4_chat_input_tool_call(in, tc->id, tc->name, tc->arguments, err);
            if (rc == G4_PROMPT_BAD_INPUT)
                return g4_fail(err, "chat.messages[%zu].tool_calls[%zu].arguments must be a JSON object", i, k);
            if (rc) return -1;
        }
    }
    for (size_t i = 0; i < ci->n_tools; i++) {
        const G4serve__V1__Tool *t = ci->tools[i];
        if (!t->name[0]) return g4_fail(err, "chat.tools[%zu].name is empty", i);
        int rc = g4_chat_input_tool(in, t->name, t->description, t->parameters_json, err);
        if (rc == G4_PROMPT_BAD_INPUT) return g4_fail(err, "chat.tools[%zu].parameters_json must be a JSON object", i);
        if (rc) return -1;
    }
    return 0;
}

/* A video's frame count and fps, checked as HTTP checks a video_url part; its fps (0 = 1). */
static int video_check(const G4serve__V1__Video *v, size_t i, size_t k, double *fps, g4_error *err) {
    if (v->n_frames == 0) return g4_fail(err, "chat.messages[%zu].videos[%zu] has no frames", i, k);
    if (g4_vision_frames_fit(v->n_frames, err)) return g4_fail_prefix(err, "chat.messages[%zu].videos[%zu]", i, k);
    if (!(v->fps >= 0 && v->fps <= 1000))
        return g4_fail(err, "chat.messages[%zu].videos[%zu].fps must be in (0, 1000] (0 = 1 frame per second)", i, k);
    *fps = v->fps > 0 ? v->fps : 1.0;
    return 0;
}

/* Each message's images and videos (in message order, each message's images, then its videos'
 * frames, before its text) into im (media/vision_input.h) and the template's input. */
static int chat_images_load(g4_grpc_server *s, const G4serve__V1__ChatInput *ci, g4_chat_input *in, g4_vision_input *im,
                            g4_error *err) {
    size_t n = 0;
    double fps = 1;
    for (size_t i = 0; i < ci->n_messages; i++) {
        const G4serve__V1__ChatMessage *m = ci->messages[i];
        n += m->n_images;
        for (size_t k = 0; k < m->n_videos; k++) {
            if (!s->model.vision) {
                g4_vision_unsupported(1, err);
                return g4_fail_prefix(err, "chat.messages[%zu].videos[%zu]", i, k);
            }
            if (video_check(m->videos[k], i, k, &fps, err)) return -1;
            n += m->videos[k]->n_frames;
        }
    }
    if (n == 0) return 0;
    g4_vision_limits lim = {.image = s->model.image_limits,
                            .grid = s->model.vision ? s->model.cfg.vision.pos_size : 0,
                            .max_model_len = s->model.eo.max_model_len};
    int budget = ci->max_soft_tokens ? ci->max_soft_tokens : G4_VISION_DEFAULT_BUDGET;
    if (g4_vision_input_begin(im, &lim, n, budget, 0, err)) return g4_fail_prefix(err, "chat.messages");
    if (!g4_vision_budget_valid(budget))
        return g4_fail(err, "chat.max_soft_tokens must be 0 or one of 70, 140, 280, 560, 1120");
    int n_videos = 0;
    for (size_t i = 0; i < ci->n_messages; i++) {
        const G4serve__V1__ChatMessage *m = ci->messages[i];
        for (size_t k = 0; k < m->n_images; k++) {
            const ProtobufCBinaryData *f = &m->images[k];
            if (g4_vision_input_add(im, f->data, f->len, -1, 0, err))
                return g4_fail_prefix(err, "chat.messages[%zu].images[%zu]", i, k);
            if (g4_chat_input_image(in, (int)i, err)) return -1;
        }
        for (size_t k = 0; k < m->n_videos; k++, n_videos++) {
            const G4serve__V1__Video *v = m->videos[k];
            if (video_check(v, i, k, &fps, err)) return -1;
            for (size_t f = 0; f < v->n_frames; f++)
                if (g4_vision_input_add(im, v->frames[f].data, v->frames[f].len, n_videos, (double)f / fps, err))
                    return g4_fail_prefix(err, "chat.messages[%zu].videos[%zu].frames[%zu]", i, k, f);
            if (g4_chat_input_video(in, (int)i, err)) return -1;
        }
    }
    return 0;
}

/* text, ids or chat -> prompt ids (text: plain text, one BOS). INVALID_ARGUMENT on error
 * (message in err). */
static int build_prompt(g4_grpc_server *s, const char *text, const G4serve__V1__TokenIds *ids,
                        const G4serve__V1__ChatInput *chat, g4_vision_input *im, g4_tokens *out, bool *in_reasoning,
                        g4_error *err) {
    const g4_tokenizer *tok = s->model.tok;
    if (!tok && !ids) return g4_fail(err, "this server has no tokenizer; send token_ids");
    g4_prompt_input in;
    g4_chat_input ci = {0};
    g4_prompt_input_init(&in, text ? G4_PROMPT_TEXT : ids ? G4_PROMPT_IDS : G4_PROMPT_CHAT);
    if (text) {
        in.text = text;
        in.text_len = strlen(text);
        in.encode_flags = G4_ENCODE_ADD_BOS;
    } else if (ids) {
        in.ids = ids->ids;
        in.n_ids = ids->n_ids;
        in.ids_field = "token_ids.ids";
        in.vocab = s->model.cfg.vocab;
    } else {
        if (g4_chat_input_init(&ci, err) || chat_input(chat, &ci, err) ||
            (im ? chat_images_load(s, chat, &ci, im, err) : 0)) {
            g4_chat_input_free(&ci);
            return -1;
        }
        in.messages = ci.messages;
        in.tools = ci.tools;
        in.chat.enable_thinking = chat->enable_thinking;
        if (im) {
            in.image_tokens = im->n_tokens;
            in.n_images = im->n;
            in.image_pos = im->pos;
            in.image_video = im->video;
            in.frame_seconds = im->seconds;
        }
    }
    int rc = g4_prompt_build(tok, &in, out, in_reasoning, err);
    g4_chat_input_free(&ci);
    if (rc) return -1;
    if (im) g4_vision_input_items(im);
    return 0;
}

/* ---- Generate ---------------------------------------------------------------------------- */

static int fill_params(g4_grpc_server *s, const G4serve__V1__GenerateRequest *rq, g4_request_params *p, g4_error *err) {
    p->sampling = s->model.eo.defaults; /* greedy, or the model's generation_config.json */
    g4_stop_rules_default(&p->stop);
    const G4serve__V1__SamplingParams *sp = rq->sampling;
    if (sp) {
        if (sp->temperature_opt_case == G4SERVE__V1__SAMPLING_PARAMS__TEMPERATURE_OPT_TEMPERATURE) {
            if (!(sp->temperature >= 0 && sp->temperature <= 100))
                return g4_fail(err, "sampling.temperature must be in [0, 100]");
            p->sampling.temperature = sp->temperature;
        }
        if (sp->top_k < 0) return g4_fail(err, "sampling.top_k must be >= 0");
        if (sp->top_k) p->sampling.top_k = sp->top_k;
        if (!(sp->top_p >= 0 && sp->top_p <= 1)) return g4_fail(err, "sampling.top_p must be in [0, 1]");
        if (sp->top_p > 0) p->sampling.top_p = sp->top_p;
        if (!(sp->min_p >= 0 && sp->min_p <= 1)) return g4_fail(err, "sampling.min_p must be in [0, 1]");
        if (sp->min_p > 0) p->sampling.min_p = sp->min_p;
        if (!(sp->repetition_penalty >= 0 && sp->repetition_penalty <= 100))
            return g4_fail(err, "sampling.repetition_penalty must be in [0, 100]");
        if (sp->repetition_penalty > 0) p->sampling.repetition_penalty = sp->repetition_penalty;
        if (!(sp->presence_penalty >= -2 && sp->presence_penalty <= 2))
            return g4_fail(err, "sampling.presence_penalty must be in [-2, 2]");
        if (!(sp->frequency_penalty >= -2 && sp->frequency_penalty <= 2))
            return g4_fail(err, "sampling.frequency_penalty must be in [-2, 2]");
        p->sampling.presence_penalty = sp->presence_penalty;
        p->sampling.frequency_penalty = sp->frequency_penalty;
        if (sp->seed_opt_case == G4SERVE__V1__SAMPLING_PARAMS__SEED_OPT_SEED) {
            p->sampling.has_seed = true;
            p->sampling.seed = sp->seed;
        }
    }
    p->sampling.logprobs = -1;
    if (rq->logprobs) {
        if (rq->top_logprobs < 0 || rq->top_logprobs > G4_MAX_TOP_LOGPROBS)
            return g4_fail(err, "top_logprobs must be in [0, %d]", G4_MAX_TOP_LOGPROBS);
        p->sampling.logprobs = rq->top_logprobs;
    }
    const G4serve__V1__StopRules *st = rq->stop;
    if (st) {
        if (st->max_tokens < 0) return g4_fail(err, "stop.max_tokens must be >= 0");
        if (st->min_tokens < 0) return g4_fail(err, "stop.min_tokens must be >= 0");
        if (st->n_stop > 16) return g4_fail(err, "stop.stop has %zu strings; at most 16", st->n_stop);
        for (size_t i = 0; i < st->n_stop; i++)
            if (!st->stop[i][0]) return g4_fail(err, "stop.stop[%zu] is empty", i);
        for (size_t i = 0; i < st->n_stop_token_ids; i++)
            if (st->stop_token_ids[i] < 0 || st->stop_token_ids[i] >= s->model.cfg.vocab)
                return g4_fail(err, "stop.stop_token_ids[%zu] = %d is outside the vocabulary", i,
                               st->stop_token_ids[i]);
        p->stop.max_tokens = st->max_tokens;
        p->stop.min_tokens = st->min_tokens;
        p->stop.ignore_eos = st->ignore_eos;
        p->stop.include_stop_str_in_output = st->include_stop_str_in_output;
        p->stop.stop_ids = st->stop_token_ids;
        p->stop.n_stop_ids = (int)st->n_stop_token_ids;
        p->stop.stop_strings = (const char *const *)st->stop;
        p->stop.n_stop_strings = (int)st->n_stop;
    } else {
        p->stop.max_tokens = 0;
    }
    if (p->stop.min_tokens > 0 && p->stop.max_tokens > 0 && p->stop.min_tokens > p->stop.max_tokens)
        return g4_fail(err, "stop.min_tokens (%d) exceeds stop.max_tokens (%d)", p->stop.min_tokens,
                       p->stop.max_tokens);
    p->priority = rq->priority;
    return 0;
}

/* The request's structured-output constraint, compiled here (the call's thread, never the
 * engine's) through the server's cache, into p (the engine owns it from submit on). 0 when the
 * request has none; -1 with err naming the field. */
static int structured(g4_grpc_server *s, const G4serve__V1__GenerateRequest *rq, bool in_reasoning,
                      g4_request_params *p, g4_error *err) {
    const G4serve__V1__StructuredOutput *so = rq->structured;
    if (!so || so->kind_case == G4SERVE__V1__STRUCTURED_OUTPUT__KIND__NOT_SET) return 0;
    if (!s->so_cache) return g4_fail(err, "structured: needs the server's tokenizer");
    g4_so_spec spec = {0};
    char *owned = NULL;
    const char *field = "structured";
    switch (so->kind_case) {
    case G4SERVE__V1__STRUCTURED_OUTPUT__KIND_JSON_SCHEMA:
        spec = (g4_so_spec){G4_SO_JSON_SCHEMA, so->json_schema, strlen(so->json_schema)},
        field = "structured.json_schema";
        break;
    case G4SERVE__V1__STRUCTURED_OUTPUT__KIND_JSON_OBJECT:
        if (!so->json_object) return 0;
        spec = (g4_so_spec){G4_SO_JSON_SCHEMA, "{\"type\":\"object\"}", strlen("{\"type\":\"object\"}")};
        field = "structured.json_object";
        break;
    case G4SERVE__V1__STRUCTURED_OUTPUT__KIND_REGEX:
        spec = (g4_so_spec){G4_SO_REGEX, so->regex, strlen(so->regex)}, field = "structured.regex";
        break;
    case G4SERVE__V1__STRUCTURED_OUTPUT__KIND_GRAMMAR:
        spec = (g4_so_spec){G4_SO_GRAMMAR, so->grammar, strlen(so->grammar)}, field = "structured.grammar";
        break;
    case G4SERVE__V1__STRUCTURED_OUTPUT__KIND_CHOICE: {
        field = "structured.choice";
        if (!so->choice || !so->choice->n_choices) return g4_fail(err, "%s: at least one choice is needed", field);
        cJSON *a = cJSON_CreateStringArray((const char *const *)so->choice->choices, (int)so->choice->n_choices);
        owned = a ? cJSON_PrintUnformatted(a) : NULL;
        cJSON_Delete(a);
        if (!owned) return g4_fail(err, "out of memory");
        spec = (g4_so_spec){G4_SO_CHOICE, owned, strlen(owned)};
        break;
    }
    default: return g4_fail(err, "structured: unknown kind %d", (int)so->kind_case);
    }
    g4_so_grammar *gr = NULL;
    g4_error cerr = {{0}};
    int rc = g4_so_cache_get(s->so_cache, &spec, &gr, &cerr);
    cJSON_free(owned);
    if (rc) return g4_fail(err, "%s cannot be honoured: %s", field, cerr.msg);
    bool chat = rq->input_case == G4SERVE__V1__GENERATE_REQUEST__INPUT_CHAT;
    g4_so_thought th = {.enabled = chat && rq->chat->enable_thinking, .started = in_reasoning};
    p->constraint = g4_so_constraint_new(gr, &th);
    p->constraint_fn = &g4_so_constraint_fn;
    g4_so_grammar_unref(gr); /* the constraint holds its own reference */
    return p->constraint ? 0 : g4_fail(err, "out of memory for a constraint");
}

/* Chat output: runs the new text (and, at the end, the flush) through the parser into content,
 * reasoning and whole tool calls. Strings live in the caller's buffers until the send. */
typedef struct parsed_out {
    g4_strbuf content, reasoning;
    g4_parse_events ev;
    G4serve__V1__ToolCallDelta *calls, **callp;
    char (*ids)[200];
    size_t n_calls;
} parsed_out;

static void parse_output(gen_state *st, const g4_strbuf *text, bool final, parsed_out *po,
                         G4serve__V1__GenerateResponse *r) {
    g4_error err = {{0}};
    int rc = g4_output_parser_feed(st->parser, text->data ? text->data : "", text->len, &po->ev, &err);
    if (rc == 0 && final) rc = g4_output_parser_finish(st->parser, &po->ev, &err);
    size_t n_calls = 0;
    for (size_t i = 0; i < po->ev.n; i++) n_calls += po->ev.ev[i].kind == G4_PARSE_TOOL_CALL;
    if (n_calls) {
        po->calls = calloc(n_calls, sizeof *po->calls);
        po->callp = calloc(n_calls, sizeof *po->callp);
        po->ids = calloc(n_calls, sizeof *po->ids);
        if (!po->calls || !po->callp || !po->ids) n_calls = 0;
    }
    for (size_t i = 0; i < po->ev.n; i++) {
        const g4_parse_event *e = &po->ev.ev[i];
        if (e->kind == G4_PARSE_CONTENT) g4_strbuf_append(&po->content, e->text, e->len);
        else if (e->kind == G4_PARSE_REASONING) g4_strbuf_append(&po->reasoning, e->text, e->len);
        else if (po->n_calls < n_calls) {
            G4serve__V1__ToolCallDelta init = G4SERVE__V1__TOOL_CALL_DELTA__INIT, *d = &po->calls[po->n_calls];
            *d = init;
            d->index = e->index;
            snprintf(po->ids[po->n_calls], sizeof po->ids[0], "call_%s_%d", st->rid, e->index);
            d->id = po->ids[po->n_calls];
            d->name = e->name;
            d->arguments = e->text;
            po->callp[po->n_calls] = d;
            po->n_calls++;
        }
    }
    (void)rc; /* out of memory: the text that was parsed so far still goes out */
    r->text = po->content.data ? po->content.data : "";
    r->reasoning = po->reasoning.data ? po->reasoning.data : "";
    r->n_tool_calls = po->n_calls;
    r->tool_calls = po->callp;
}

static void parsed_out_free(parsed_out *po) {
    g4_strbuf_free(&po->content);
    g4_strbuf_free(&po->reasoning);
    g4_parse_events_free(&po->ev);
    free(po->calls);
    free(po->callp);
    free(po->ids);
}

static void send_generate(g4_gcall *c, gen_state *st, bool final) {
    g4_gen *g = st->g;
    G4serve__V1__GenerateResponse r = G4SERVE__V1__GENERATE_RESPONSE__INIT;
    parsed_out po = {0};
    r.request_id = st->rid;
    r.n_token_ids = (size_t)g->n_ids;
    r.token_ids = g->ids;
    r.text = g->text.data ? g->text.data : "";
    if (st->parser) parse_output(st, &g->text, final, &po, &r);
    r.stop_token_id = -1;
    G4serve__V1__TokenLogprob *lps = NULL, **lpp = NULL;
    if (g->n_lp) {
        lps = calloc((size_t)g->n_lp, sizeof *lps);
        lpp = calloc((size_t)g->n_lp, sizeof *lpp);
        if (lps && lpp) {
            for (int i = 0; i < g->n_lp; i++) {
                G4serve__V1__TokenLogprob init = G4SERVE__V1__TOKEN_LOGPROB__INIT;
                lps[i] = init;
                lps[i].token_id = g->lp[i].token;
                lps[i].logprob = g->lp[i].logprob;
                lps[i].n_top_ids = lps[i].n_top_logprobs = (size_t)g->lp[i].n_top;
                lps[i].top_ids = g->lp[i].top_ids;
                lps[i].top_logprobs = g->lp[i].top_logprobs;
                lpp[i] = &lps[i];
            }
            r.n_logprobs = (size_t)g->n_lp;
            r.logprobs = lpp;
        }
    }
    G4serve__V1__Usage usage = G4SERVE__V1__USAGE__INIT;
    if (final) {
        switch (g->finish) {
        case G4_FINISH_STOP: r.finish_reason = G4SERVE__V1__FINISH_REASON__FINISH_REASON_STOP; break;
        case G4_FINISH_LENGTH: r.finish_reason = G4SERVE__V1__FINISH_REASON__FINISH_REASON_LENGTH; break;
        default: r.finish_reason = G4SERVE__V1__FINISH_REASON__FINISH_REASON_ABORT; break;
        }
        if (st->parser && g4_output_parser_n_calls(st->parser) > 0 && g->finish == G4_FINISH_STOP)
            r.finish_reason = G4SERVE__V1__FINISH_REASON__FINISH_REASON_TOOL_CALLS;
        usage.prompt_tokens = g->prompt_tokens;
        usage.completion_tokens = g->completion_tokens;
        usage.cached_tokens = g->cached_tokens;
        usage.spec_draft_tokens = g->spec_draft_tokens;
        usage.spec_accepted_tokens = g->spec_accepted_tokens;
        r.usage = &usage;
        if (g->stop_string) r.stop_string = g->stop_string;
        r.stop_token_id = g->stop_token;
    }
    /* the parser has consumed the text: never hand it the same text twice */
    if (g4_gcall_send(c, &r.base) == 0 || st->parser) g4_gen_clear_output(g);
    free(lps);
    free(lpp);
    parsed_out_free(&po);
}

static void generate_pump(g4_gcall *c) {
    gen_state *st = c->svc;
    if (!st || !st->g) return;
    g4_gen_collect(c);
    g4_gen *g = st->g;
    if (g->finished && st->registered) {
        g4_grpc_rid_remove(c->srv, st->rid);
        st->registered = false;
    }
    if (g4_gcall_over(c) || c->send_busy || g->final_sent) return;
    if (g->finished) {
        g->final_sent = true;
        if (g->finish == G4_FINISH_ERROR) {
            g4_gcall_finish(c, GRPC_STATUS_INTERNAL, "generation failed: %s", g->error ? g->error : "engine error");
            return;
        }
        send_generate(c, st, true);
        g4_gcall_finish(c, GRPC_STATUS_OK, "%s", "");
    } else if (g->n_ids || g->text.len) {
        send_generate(c, st, false);
    }
}

static void generate_message(g4_gcall *c, const uint8_t *data, size_t len) {
    g4_grpc_server *s = c->srv;
    G4serve__V1__GenerateRequest *rq = g4serve__v1__generate_request__unpack(NULL, len, data);
    g4_tokens prompt = {0};
    g4_vision_input images = {0}; /* until the engine has copied them at submit */
    g4_error err = {{0}};
    gen_state *st = NULL;
    bool in_reasoning = false, submitted = false;
    if (!rq) {
        g4_gcall_finish(c, GRPC_STATUS_INVALID_ARGUMENT, "GenerateRequest does not parse");
        return;
    }
    if (g4_grpc_check_utf8(&rq->base, &err)) {
        g4_gcall_finish(c, GRPC_STATUS_INVALID_ARGUMENT, "GenerateRequest.%s", err.msg);
        goto out;
    }
    if (!g4_grpc_ready(s)) {
        g4_gcall_finish(c, GRPC_STATUS_UNAVAILABLE, "the model is not ready");
        goto out;
    }
    if (!g4_grpc_model_matches(s, rq->model)) {
        g4_gcall_finish(c, GRPC_STATUS_NOT_FOUND, "model \"%s\" is not served here (served: \"%s\")", rq->model,
                        s->served_name);
        goto out;
    }
    g4_request_params p;
    memset(&p, 0, sizeof p);
    if (fill_params(s, rq, &p, &err)) {
        g4_gcall_finish(c, GRPC_STATUS_INVALID_ARGUMENT, "%s", err.msg);
        goto out;
    }
    switch (rq->input_case) {
    case G4SERVE__V1__GENERATE_REQUEST__INPUT_TEXT:
        if (build_prompt(s, rq->text, NULL, NULL, NULL, &prompt, NULL, &err)) goto bad;
        break;
    case G4SERVE__V1__GENERATE_REQUEST__INPUT_CHAT:
        if (build_prompt(s, NULL, NULL, rq->chat, &images, &prompt, &in_reasoning, &err)) goto bad;
        p.mm = images.n ? images.items : NULL;
        p.n_mm = images.n;
        break;
    case G4SERVE__V1__GENERATE_REQUEST__INPUT_TOKEN_IDS:
        if (build_prompt(s, NULL, rq->token_ids, NULL, NULL, &prompt, NULL, &err)) goto bad;
        break;
    default: g4_fail(&err, "one of text, token_ids or chat is required"); goto bad;
    }
    p.prompt = prompt.ids;
    p.n_prompt = (int)prompt.n;
    if (g4_grpc_check_lengths(s, &p, &err) || structured(s, rq, in_reasoning, &p, &err)) goto bad;
    bool chat = rq->input_case == G4SERVE__V1__GENERATE_REQUEST__INPUT_CHAT;
    st = calloc(1, sizeof *st);
    if (!st || !(st->g = g4_gen_new(c, chat || rq->keep_special_tokens ? 0u : G4_DETOK_SKIP_SPECIAL)) ||
        (chat && g4_output_parser_new(in_reasoning ? G4_PARSE_START_IN_REASONING : 0, &st->parser, &err))) {
        if (st) g4_gen_free(st->g);
        free(st);
        if (p.constraint) p.constraint_fn->free(p.constraint); /* not handed to the engine */
        g4_gcall_finish(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    if (rq->request_id[0]) snprintf(st->rid, sizeof st->rid, "%s", rq->request_id);
    else if (g4_grpc_new_rid(st->rid, sizeof st->rid)) {
        g4_gcall_finish(c, GRPC_STATUS_INTERNAL, "no randomness for a request id");
        g4_gen_free(st->g);
        g4_output_parser_free(st->parser);
        free(st);
        goto out;
    }
    if (g4_grpc_rid_add(s, st->rid)) {
        g4_gcall_finish(c, GRPC_STATUS_ALREADY_EXISTS, "request_id \"%s\" is already running", st->rid);
        g4_gen_free(st->g);
        g4_output_parser_free(st->parser);
        free(st);
        if (p.constraint) p.constraint_fn->free(p.constraint); /* not handed to the engine */
        goto out;
    }
    st->registered = true;
    c->svc = st;
    grpc_status_code code;
    if (g4_gen_submit(st->g, &p, &code, &err)) {
        g4_grpc_rid_remove(s, st->rid);
        st->registered = false;
        g4_gcall_finish(c, code, "%s", err.msg);
        goto out;
    }
    submitted = true;
    if (g4_grpc_rid_bind(s, st->rid, st->g->eid)) g4_gen_cancel(st->g);
    if (c->cancelled) g4_gen_cancel(st->g); /* the client left while we were submitting */
    goto out;
bad:
    g4_gcall_finish(c, GRPC_STATUS_INVALID_ARGUMENT, "%s", err.msg);
out:
    if (!submitted) g4_grpc_count_refusal(s, c->status_queued ? c->status : GRPC_STATUS_INTERNAL);
    g4_tokens_free(&prompt);
    g4_vision_input_free(&images);
    g4serve__v1__generate_request__free_unpacked(rq, NULL);
}

static void generate_cancel(g4_gcall *c) {
    gen_state *st = c->svc;
    if (st && st->g) g4_gen_cancel(st->g);
}

static void generate_free(g4_gcall *c) {
    gen_state *st = c->svc;
    if (!st) return;
    if (st->registered) g4_grpc_rid_remove(c->srv, st->rid);
    g4_gen_free(st->g);
    g4_output_parser_free(st->parser);
    free(st);
}

/* ---- unary methods ----------------------------------------------------------------------- */

static void tokenize_message(g4_gcall *c, const uint8_t *data, size_t len) {
    g4_grpc_server *s = c->srv;
    G4serve__V1__TokenizeRequest *rq = g4serve__v1__tokenize_request__unpack(NULL, len, data);
    if (!rq) {
        g4_gcall_finish(c, GRPC_STATUS_INVALID_ARGUMENT, "TokenizeRequest does not parse");
        return;
    }
    g4_tokens ids = {0};
    g4_vision_input images = {0};
    g4_error err = {{0}};
    if (g4_grpc_check_utf8(&rq->base, &err)) {
        g4_gcall_finish(c, GRPC_STATUS_INVALID_ARGUMENT, "TokenizeRequest.%s", err.msg);
    } else if (!atomic_load(&s->attached)) {
        g4_gcall_finish(c, GRPC_STATUS_UNAVAILABLE, "the model is not loaded yet");
    } else if (!g4_grpc_model_matches(s, rq->model)) {
        g4_gcall_finish(c, GRPC_STATUS_NOT_FOUND, "model \"%s\" is not served here", rq->model);
    } else if (rq->input_case == G4SERVE__V1__TOKENIZE_REQUEST__INPUT__NOT_SET) {
        g4_gcall_finish(c, GRPC_STATUS_INVALID_ARGUMENT, "one of text or chat is required");
    } else if (build_prompt(s, rq->input_case == G4SERVE__V1__TOKENIZE_REQUEST__INPUT_TEXT ? rq->text : NULL, NULL,
                            rq->chat, &images, &ids, NULL, &err)) {
        g4_gcall_finish(c, GRPC_STATUS_INVALID_ARGUMENT, "%s", err.msg);
    } else {
        G4serve__V1__TokenizeResponse r = G4SERVE__V1__TOKENIZE_RESPONSE__INIT;
        r.n_ids = ids.n;
        r.ids = ids.ids;
        r.max_model_len = s->model.eo.max_model_len;
        g4_gcall_reply(c, &r.base);
    }
    g4_tokens_free(&ids);
    g4_vision_input_free(&images);
    g4serve__v1__tokenize_request__free_unpacked(rq, NULL);
}

static void detokenize_message(g4_gcall *c, const uint8_t *data, size_t len) {
    g4_grpc_server *s = c->srv;
    G4serve__V1__DetokenizeRequest *rq = g4serve__v1__detokenize_request__unpack(NULL, len, data);
    if (!rq) {
        g4_gcall_finish(c, GRPC_STATUS_INVALID_ARGUMENT, "DetokenizeRequest does not parse");
        return;
    }
    g4_strbuf text = {0};
    g4_error err = {{0}};
    int32_t n_vocab = s->model.tok ? g4_tokenizer_n_vocab(s->model.tok) : 0;
    size_t bad = rq->n_ids;
    for (size_t i = 0; i < rq->n_ids && bad == rq->n_ids; i++)
        if (rq->ids[i] < 0 || rq->ids[i] >= n_vocab) bad = i;
    if (g4_grpc_check_utf8(&rq->base, &err)) {
        g4_gcall_finish(c, GRPC_STATUS_INVALID_ARGUMENT, "DetokenizeRequest.%s", err.msg);
    } else if (!atomic_load(&s->attached) || !s->model.tok) {
        g4_gcall_finish(c, GRPC_STATUS_UNAVAILABLE, "the model is not loaded yet");
    } else if (!g4_grpc_model_matches(s, rq->model)) {
        g4_gcall_finish(c, GRPC_STATUS_NOT_FOUND, "model \"%s\" is not served here", rq->model);
    } else if (bad < rq->n_ids) {
        g4_gcall_finish(c, GRPC_STATUS_INVALID_ARGUMENT, "ids[%zu] = %d is outside the vocabulary [0, %d)", bad,
                        rq->ids[bad], n_vocab);
    } else if (g4_tokenizer_decode(s->model.tok, rq->ids, rq->n_ids,
                                   rq->keep_special_tokens ? 0 : G4_DECODE_SKIP_SPECIAL, &text, &err)) {
        g4_gcall_finish(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "%s", err.msg);
    } else {
        G4serve__V1__DetokenizeResponse r = G4SERVE__V1__DETOKENIZE_RESPONSE__INIT;
        r.text = text.data ? text.data : "";
        g4_gcall_reply(c, &r.base);
    }
    g4_strbuf_free(&text);
    g4serve__v1__detokenize_request__free_unpacked(rq, NULL);
}

static void model_info_message(g4_gcall *c, const uint8_t *data, size_t len) {
    (void)data, (void)len;
    g4_grpc_server *s = c->srv;
    if (!atomic_load(&s->attached)) {
        g4_gcall_finish(c, GRPC_STATUS_UNAVAILABLE, "the model is not loaded yet");
        return;
    }
    const g4_config *cf = &s->model.cfg;
    const g4_engine_opts *eo = &s->model.eo;
    g4_engine_stats es;
    g4_engine_stats_get(s->model.engine, &es);
    G4serve__V1__ModelInfoResponse r = G4SERVE__V1__MODEL_INFO_RESPONSE__INIT;
    G4serve__V1__EngineLoad load = G4SERVE__V1__ENGINE_LOAD__INIT;
    r.model = s->served_name;
    r.model_path = s->model_path;
    r.architecture = cf->moe ? "gemma4-moe" : "gemma4-dense";
    r.vocab_size = cf->vocab;
    r.hidden_size = cf->hidden;
    r.num_layers = cf->n_layers;
    r.num_heads = cf->n_heads;
    r.num_kv_heads = cf->n_kv_heads;
    r.num_global_kv_heads = cf->n_global_kv_heads;
    r.head_dim = cf->head_dim;
    r.global_head_dim = cf->global_head_dim;
    r.sliding_window = cf->sliding_window;
    r.num_experts = cf->moe ? cf->n_experts : 0;
    r.experts_per_token = cf->moe ? cf->top_k : 0;
    r.max_model_len = eo->max_model_len;
    r.max_running = eo->max_running;
    r.tp_size = s->model.tp_size > 0 ? s->model.tp_size : 1;
    r.kv_block_size = eo->block_size;
    r.kv_blocks_sliding_total = es.blocks_sliding_total;
    r.kv_blocks_global_total = es.blocks_global_total;
    r.kv_capacity_tokens = es.blocks_global_total * eo->block_size;
    int32_t eos[G4_MAX_EOS];
    r.n_eos_token_ids = (size_t)(cf->n_eos < G4_MAX_EOS ? cf->n_eos : G4_MAX_EOS);
    for (size_t i = 0; i < r.n_eos_token_ids; i++) eos[i] = cf->eos_ids[i];
    r.eos_token_ids = eos;
    load.running = es.running;
    load.waiting = es.waiting;
    load.kv_blocks_sliding_used = es.blocks_sliding_used;
    load.kv_blocks_global_used = es.blocks_global_used;
    load.kv_blocks_cached = es.blocks_cached;
    load.preemptions = es.preemptions;
    load.finished_stop = es.finished[G4_FINISH_STOP];
    load.finished_length = es.finished[G4_FINISH_LENGTH];
    load.finished_abort = es.finished[G4_FINISH_ABORT];
    load.finished_error = es.finished[G4_FINISH_ERROR];
    r.load = &load;
    g4_gcall_reply(c, &r.base);
}

static void abort_message(g4_gcall *c, const uint8_t *data, size_t len) {
    G4serve__V1__AbortRequest *rq = g4serve__v1__abort_request__unpack(NULL, len, data);
    if (!rq) {
        g4_gcall_finish(c, GRPC_STATUS_INVALID_ARGUMENT, "AbortRequest does not parse");
        return;
    }
    g4_error err = {{0}};
    if (!rq->request_id[0]) {
        g4_gcall_finish(c, GRPC_STATUS_INVALID_ARGUMENT, "request_id is empty");
    } else if (g4_grpc_check_utf8(&rq->base, &err)) {
        g4_gcall_finish(c, GRPC_STATUS_INVALID_ARGUMENT, "AbortRequest.%s", err.msg);
    } else {
        G4serve__V1__AbortResponse r = G4SERVE__V1__ABORT_RESPONSE__INIT;
        r.found = g4_grpc_rid_abort(c->srv, rq->request_id);
        g4_gcall_reply(c, &r.base);
    }
    g4serve__v1__abort_request__free_unpacked(rq, NULL);
}

const g4_grpc_method g4_native_methods[] = {
    {.path = "/g4serve.v1.G4Serve/Generate",
     .request = &g4serve__v1__generate_request__descriptor,
     .kind = G4_RPC_SERVER_STREAM,
     .on_message = generate_message,
     .pump = generate_pump,
     .on_cancel = generate_cancel,
     .on_free = generate_free},
    {.path = "/g4serve.v1.G4Serve/Tokenize",
     .request = &g4serve__v1__tokenize_request__descriptor,
     .kind = G4_RPC_UNARY,
     .on_message = tokenize_message},
    {.path = "/g4serve.v1.G4Serve/Detokenize", .kind = G4_RPC_UNARY, .on_message = detokenize_message},
    {.path = "/g4serve.v1.G4Serve/ModelInfo", .kind = G4_RPC_UNARY, .on_message = model_info_message},
    {.path = "/g4serve.v1.G4Serve/Abort",
     .request = &g4serve__v1__abort_request__descriptor,
     .kind = G4_RPC_UNARY,
     .on_message = abort_message},
    {0},
};
