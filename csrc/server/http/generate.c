/* generate.c - one generation request from HTTP body to engine and back (chat and completions).
 *
 * A g4_job holds the parsed request, one g4_choice per requested choice (n > 1 submits n engine
 * requests, or with use_beam_search one search whose n outputs are the choices, engine/beam.h;
 * several completions prompts give n choices each, numbered prompt · n + i), a queue of copied
 * engine events and the SSE bytes not yet written. Threads:
 *   engine thread  on_event(): copies the event into the job's queue, resumes the connection;
 *   MHD thread     the access handler (submit, final JSON) and the SSE content reader, which
 *                  turn queued events into chunks (output parsing happens here, off the engine).
 *   ticker thread  keep-alive comments during long prefill, request timeouts.
 * One mutex per job guards everything mutable in it; suspend and resume happen under it, so a
 * wake-up can never be lost. Lifetime: a reference for the connection, one per unfinished choice
 * (engine request or search output) and one for a streaming response; the job is freed when the
 * last one drops. A client that hangs up (MHD completion code not OK) cancels its unfinished
 * engine requests and searches.
 * Not here: JSON shapes of chunks and responses (oai_format.c). */
#include "server/http/generate_impl.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "media/media_source.h"
#include "media/vision_input.h"
#include "text/prompt.h"

/* --- job lifetime ---------------------------------------------------------------------- */

static void job_free(g4_job *j) {
    for (int i = 0; i < j->n; i++) {
        g4_stream_sink_release(&j->ch[i].sink);
        g4_choice_release(&j->ch[i]);
    }
    for (int i = 0; i < j->n_prompts && j->prompt_ids; i++) g4_tokens_free(&j->prompt_ids[i]);
    for (int i = 0; i < j->n_prompts && j->beams; i++) g4_beam_release(j->beams[i]);
    free(j->prompt_ids);
    free(j->beams);
    g4_stream_free(j->events);
    g4_strbuf_free(&j->out);
    g4_oai_request_free(&j->req);
    pthread_mutex_destroy(&j->mu);
    free(j);
}

static void job_unref(g4_job *j) {
    pthread_mutex_lock(&j->mu);
    int left = --j->refs;
    pthread_mutex_unlock(&j->mu);
    if (left > 0) return;
    g4_http_server *s = j->srv;
    pthread_mutex_lock(&s->jobs_mu);
    for (g4_job **p = &s->jobs; *p; p = &(*p)->next_live)
        if (*p == j) {
            *p = j->next_live;
            break;
        }
    pthread_mutex_unlock(&s->jobs_mu);
    job_free(j);
}

/* Under j->mu: wakes the connection if it sleeps. */
static void job_wake(g4_job *j) {
    if (j->suspended && j->conn) {
        j->suspended = false;
        MHD_resume_connection(j->conn);
    }
}

/* --- engine side ----------------------------------------------------------------------- */

/* Under j->mu, every choice's last event in: one parameter record per prompt (vLLM counts a
 * prompt with its n choices as a request). */
static void record_params(g4_job *j) {
    int n = j->req.n;
    for (int p = 0; p < j->n_prompts; p++) {
        int most = 0;
        for (int i = p * n; i < (p + 1) * n; i++) most = j->ch[i].engine_tokens > most ? j->ch[i].engine_tokens : most;
        g4_metrics_request_params(j->srv->metrics, n, j->ch[p * n].max_tokens, most);
    }
}

/* Engine thread: the event goes into the job's queue (its last event always does: the sink
 * holds it preallocated, so a stream always ends), then the bookkeeping and the wake-up. */
static void on_event(void *user, const g4_event *ev) {
    g4_choice *ch = user;
    g4_job *j = ch->job;
    double now = g4_now();
    bool last = ev->finish != G4_FINISH_NONE;
    /* Metrics first: once the event is queued the client may see the end of its answer, and a
     * scrape after that must count this request. */
    pthread_mutex_lock(&j->mu);
    if (ev->n_tokens > 0 && ch->t_first == 0) ch->t_first = now;
    if (last) {
        g4_request_record rec = {
            .finish = ev->finish,
            .prompt_tokens = ev->prompt_tokens,
            .generation_tokens = ev->completion_tokens,
            .cached_tokens = ev->cached_tokens,
            .queue_s = ch->t_first > 0 ? ch->t_first - j->t_submit : -1,
            .ttft_s = ch->t_first > 0 ? ch->t_first - j->t_arrival : -1,
            .e2e_s = now - j->t_arrival,
            .sched_wait_s = ev->queue_s,
        };
        g4_metrics_request_done(j->srv->metrics, &rec);
        ch->engine_tokens = ev->completion_tokens;
        if (++j->n_recorded == j->n) record_params(j);
    }
    pthread_mutex_unlock(&j->mu);
    g4_stream_sink_push(&ch->sink, ev);
    pthread_mutex_lock(&j->mu);
    if (last) {
        ch->engine_done = true;
        j->n_engine_done++;
    }
    if (j->stream || j->n_engine_done == j->n) job_wake(j);
    pthread_mutex_unlock(&j->mu);
    if (last) job_unref(j);
}

/* Cancels every unfinished engine request of j (any thread; takes j->mu). */
static void job_cancel(g4_job *j) {
    uint64_t ids[G4_OAI_MAX_CHOICES];
    int n = 0;
    pthread_mutex_lock(&j->mu);
    for (int i = 0; i < j->n; i++)
        if (j->ch[i].id && !j->ch[i].engine_done) ids[n++] = j->ch[i].id;
    pthread_mutex_unlock(&j->mu);
    g4_engine *e = atomic_load(&j->srv->engine);
    for (int i = 0; i < n; i++) g4_engine_cancel(e, ids[i]);
    for (int p = 0; p < j->n_prompts && j->beams; p++) {
        pthread_mutex_lock(&j->mu);
        g4_beam *b = j->beams[p]; /* released only with the job */
        pthread_mutex_unlock(&j->mu);
        if (b) g4_beam_cancel(b);
    }
}

/* --- prompt ------------------------------------------------------------------------------ */

void g4_http_images_free(g4_http_images *im) { g4_vision_input_free(im); }

/* Each image part and video frame: its bytes (media policy), then media/vision_input.c (limits,
 * preprocessing at the request's budget; a frame: the video budget). A failure is the request's:
 * 400 naming the message and the part (and, for a bad frame, the frame). */
static int load_images(g4_http_server *s, const g4_oai_request *r, g4_http_images *im, g4_http_error *e) {
    if (r->n_images == 0) return 0;
    const g4_oai_image *first = &r->images[0];
    g4_vision_limits lim = {.image = {.max_bytes = s->cfg.media.max_bytes, .max_pixels = s->cfg.max_image_pixels},
                            .grid = s->cfg.vision_grid,
                            .max_model_len = s->max_model_len};
    g4_error err = {{0}};
    if (g4_vision_input_begin(im, &lim, (size_t)r->n_images, r->image_budget ? r->image_budget : s->cfg.image_budget,
                              first->video >= 0, &err))
        return g4_http_fail(e, 400, "messages", "messages[%d].content[%d]: %s", first->message, first->part, err.msg);
    for (int i = 0, frame = -1; i < r->n_images; i++) {
        const g4_oai_image *g = &r->images[i];
        /* a video frame's number in its video, for errors */
        frame = g->video < 0 ? -1 : (i > 0 && r->images[i - 1].video == g->video ? frame + 1 : 0);
        uint8_t *data = NULL;
        size_t len = 0;
        int rc = g4_media_load(g->url, &s->cfg.media, &data, &len, &err);
        if (rc == 0) rc = g4_vision_input_add(im, data, len, g->video, g->seconds, &err);
        free(data);
        if (rc && rc != G4_VISION_TOO_LONG && frame >= 0)
            return g4_http_fail(e, 400, "messages", "messages[%d].content[%d]: video frame %d: %s", g->message, g->part,
                                frame, err.msg);
        if (rc) return g4_http_fail(e, 400, "messages", "messages[%d].content[%d]: %s", g->message, g->part, err.msg);
    }
    return 0;
}

/* vLLM's truncate_prompt_tokens on the built prompt: keep its last N ids (truncation_side "right":
 * the first N); -1 is max_model_len − 1, leaving room for one output token. Never cuts through
 * images: a prompt with images that would be cut is a 400. */
static int truncate_prompt(const g4_http_server *s, const g4_oai_request *r, g4_tokens *ids, const g4_http_images *im,
                           g4_http_error *e) {
    long long keep = r->truncate_tokens < 0 ? s->max_model_len - 1 : r->truncate_tokens;
    if (keep > s->max_model_len)
        return g4_http_fail(e, 400, "truncate_prompt_tokens",
                            "truncate_prompt_tokens=%lld cannot be greater than max_model_len=%d. Please request a "
                            "smaller truncation size.",
                            keep, s->max_model_len);
    if ((long long)ids->n <= keep) return 0;
    if (im->n > 0)
        return g4_http_fail(e, 400, "truncate_prompt_tokens",
                            "truncate_prompt_tokens would cut a prompt with images (%zu tokens, %lld kept)", ids->n,
                            keep);
    if (!r->truncate_right) memmove(ids->ids, ids->ids + (ids->n - (size_t)keep), (size_t)keep * sizeof *ids->ids);
    ids->n = (size_t)keep;
    return 0;
}

int g4_http_build_prompt(g4_http_server *s, const g4_oai_request *r, int prompt, g4_tokens *ids, unsigned *parse_flags,
                         g4_http_images *im, g4_http_error *e) {
    g4_error err = {{0}};
    g4_prompt_input in;
    *parse_flags = 0;
    const g4_oai_prompt *p = r->kind == G4_OAI_COMPLETION ? &r->prompts[prompt] : NULL;
    if (p && p->ids) {
        g4_prompt_input_init(&in, G4_PROMPT_IDS);
        in.ids = p->ids;
        in.n_ids = (size_t)p->n_ids;
        in.ids_field = "prompt";
    } else if (p) {
        /* Raw prompts may carry control tokens on purpose (the caller writes the whole prompt,
         * template included: docs/api-http.md); Gemma needs exactly one BOS. */
        g4_prompt_input_init(&in, G4_PROMPT_TEXT);
        in.text = p->text;
        in.text_len = strlen(p->text);
        in.encode_flags = G4_ENCODE_SPLIT_SPECIAL | G4_ENCODE_ADD_BOS;
    } else {
        g4_prompt_input_init(&in, G4_PROMPT_CHAT);
        in.messages = r->messages;
        in.tools = r->tool_choice == G4_TOOL_CHOICE_NONE ? NULL : r->tools;
        in.chat.enable_thinking = r->enable_thinking;
        in.chat.add_generation_prompt = r->add_generation_prompt;
        in.chat.continue_final_message = r->continue_final_message;
        in.chat.decode_string_arguments = 1;
        if (load_images(s, r, im, e) < 0) return -1;
        in.image_tokens = im->n_tokens;
        in.n_images = im->n;
        in.image_pos = im->pos;
        in.image_video = im->video;
        in.frame_seconds = im->seconds;
    }
    bool in_reasoning = false;
    int rc = g4_prompt_build(s->tok, &in, ids, &in_reasoning, &err);
    if (rc == G4_PROMPT_BAD_INPUT)
        return g4_http_fail(e, 400, r->kind == G4_OAI_CHAT ? "messages" : "prompt", "%s", err.msg);
    if (rc < 0) return g4_http_fail(e, 500, NULL, "tokenizer: %s", err.msg);
    if (in_reasoning) *parse_flags |= G4_PARSE_START_IN_REASONING;
    if (r->truncate_tokens && truncate_prompt(s, r, ids, im, e) < 0) return -1;
    g4_vision_input_items(im);
    return 0;
}

/* --- submit -------------------------------------------------------------------------------- */

static bool served_name(const g4_http_server *s, const char *name) {
    for (int i = 0; i < s->cfg.n_served_names; i++)
        if (!strcmp(s->cfg.served_names[i], name)) return true;
    return false;
}

static enum MHD_Result reject(g4_http_server *s, struct MHD_Connection *c, const g4_http_error *e) {
    g4_metrics_request_rejected(s->metrics, e->status);
    return g4_http_send_error(c, e);
}

static ssize_t sse_reader(void *cls, uint64_t pos, char *buf, size_t max);
static void sse_free(void *cls);

/* A token stream needs little socket buffer (tokens/s × a few hundred bytes); the kernel's
 * autotuning would give each up to several MiB, which thousands of streams whose clients stop
 * reading would pin, and would hide such a client from the stall rule for megabytes. */
#define G4_SSE_SNDBUF (64 * 1024)

static void cap_send_buffer(struct MHD_Connection *c) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    int v = G4_SSE_SNDBUF;
    if (ci && setsockopt(ci->connect_fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof v) != 0)
        fprintf(stderr, "g4serve: http: SO_SNDBUF on a stream: %s (kept the default)\n", strerror(errno));
}

#define G4_HTTP_MAX_PROMPT_LP_ENTRIES 1000000

/* Who the request comes from, for fair admission (g4_client_key): the x-g4-client-id header when
 * the operator trusts it, else the peer's IP address. */
static uint64_t client_key(const g4_http_server *s, struct MHD_Connection *c) {
    char addr[INET6_ADDRSTRLEN] = "";
    const char *id =
        s->cfg.trust_client_id ? MHD_lookup_connection_value(c, MHD_HEADER_KIND, G4_CLIENT_ID_HEADER) : NULL;
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = ci ? ci->client_addr : NULL;
    if (sa && sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, addr, sizeof addr);
    else if (sa && sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, addr, sizeof addr);
    return g4_client_key(id, id ? strlen(id) : 0, addr, strlen(addr));
}

enum MHD_Result g4_generate_start(g4_http_server *s, struct MHD_Connection *c, g4_conn *cn, g4_oai_kind kind) {
    g4_http_error e;
    g4_oai_request req;
    if (g4_oai_request_parse(&req, kind, cn->body.data ? cn->body.data : "", cn->body.len, g4_tokenizer_n_vocab(s->tok),
                             &s->defaults, &e) < 0)
        return reject(s, c, &e);
    if (req.model && !served_name(s, req.model)) {
        g4_http_fail(&e, 404, "model", "The model `%s` does not exist.", req.model);
        g4_oai_request_free(&req);
        return reject(s, c, &e);
    }
    /* Every prompt's ids and length limit first: a request is refused whole or runs whole. */
    int n_prompts = kind == G4_OAI_COMPLETION ? req.n_prompts : 1;
    g4_tokens *pids = calloc((size_t)n_prompts, sizeof *pids);
    int *pmax = calloc((size_t)n_prompts, sizeof *pmax);
    unsigned parse_flags = 0;
    g4_http_images im = {0}; /* chat: the images, until submit has copied them */
    g4_so_grammar *so = NULL; /* the request's compiled constraint, if any */
    int n_prompt_total = 0, max_tokens = 0;
    if (!pids || !pmax) {
        g4_http_fail(&e, 500, NULL, "out of memory");
        goto refuse;
    }
    for (int p = 0; p < n_prompts; p++) {
        if (g4_http_build_prompt(s, &req, p, &pids[p], &parse_flags, &im, &e) < 0) goto refuse;
        int n_prompt = (int)pids[p].n;
        int room = s->max_model_len - n_prompt;
        max_tokens = req.max_tokens              ? req.max_tokens
                     : kind == G4_OAI_COMPLETION ? s->cfg.default_completion_max_tokens
                                                 : room;
        if (n_prompt == 0 || room < 1 || max_tokens > room) {
            if (n_prompt == 0)
                g4_http_fail(&e, 400, "prompt", "the prompt%s is empty", n_prompts > 1 ? " (one of them)" : "");
            else
                g4_http_fail(&e, 400,
                             req.max_tokens        ? "max_tokens"
                             : kind == G4_OAI_CHAT ? "messages"
                                                   : "prompt",
                             "This model's maximum context length is %d tokens. However, you requested %d tokens "
                             "(%d in the messages, %d in the completion). Please reduce the length of the messages "
                             "or completion.",
                             s->max_model_len, n_prompt + max_tokens, n_prompt, max_tokens);
            goto refuse;
        }
        pmax[p] = max_tokens;
        n_prompt_total += n_prompt;
    }

    /* compiled here, on the connection's thread, never the engine's */
    if (req.structured.set && g4_oai_structured_compile(s->so_cache, &req.structured, &so, &e) < 0) goto refuse;
    if (so && req.beam_search) {
        g4_http_fail(&e, 400, "use_beam_search",
                     "beam search with structured output (response_format, structured_outputs or a forced "
                     "tool_choice) is not supported yet");
        goto refuse;
    }

    int n_choices = n_prompts * req.n;
    /* Prompt logprobs (vLLM's prompt_logprobs, or OpenAI's echo + logprobs) answer (1 + top)
     * entries per prompt token and choice: bounded, so a request cannot make the server build
     * gigabytes of JSON. */
    bool echo_lp = req.echo && kind == G4_OAI_COMPLETION; /* chat's echo is the last message's text */
    int plp_top = req.prompt_logprobs > (echo_lp ? req.logprobs : -1) ? req.prompt_logprobs
                  : echo_lp                                           ? req.logprobs
                                                                      : -1;
    if (plp_top >= 0 && (double)n_prompt_total * req.n * (plp_top + 1) > G4_HTTP_MAX_PROMPT_LP_ENTRIES) {
        g4_http_fail(&e, 400, req.prompt_logprobs >= 0 ? "prompt_logprobs" : "echo",
                     "prompt logprobs for %d prompt tokens × n = %d × %d alternatives exceed %d entries; send fewer "
                     "or shorter prompts",
                     n_prompt_total, req.n, plp_top + 1, G4_HTTP_MAX_PROMPT_LP_ENTRIES);
        goto refuse;
    }
    g4_job *j = calloc(1, sizeof *j + sizeof(g4_choice) * (size_t)n_choices);
    if (!j) {
        g4_http_fail(&e, 500, NULL, "out of memory");
        goto refuse;
    }
    pthread_mutex_init(&j->mu, NULL);
    j->srv = s;
    j->events = g4_stream_create();
    j->req = req;
    j->n = n_choices;
    j->n_prompts = n_prompts;
    j->prompt_ids = pids;
    j->beams = req.beam_search ? calloc((size_t)n_prompts, sizeof *j->beams) : NULL;
    j->stream = req.stream;
    j->conn = c;
    j->refs = 1; /* the connection's */
    j->t_arrival = cn->t_arrival;
    j->last_write = g4_now();
    j->created = (long)time(NULL);
    j->prompt_tokens = n_prompt_total;
    snprintf(j->id, sizeof j->id, "%s-%llx%08llx", kind == G4_OAI_CHAT ? "chatcmpl" : "cmpl",
             (unsigned long long)time(NULL), (unsigned long long)atomic_fetch_add(&s->next_id, 1));
    j->model = req.model ? req.model : s->cfg.served_names[0];
    for (int i = 0; i < j->n; i++) {
        int prompt = i / req.n;
        if (!j->events || (req.beam_search && !j->beams) ||
            g4_choice_init(&j->ch[i], j, i, prompt, kind == G4_OAI_CHAT, parse_flags) < 0 ||
            g4_stream_sink_init(&j->ch[i].sink, j->events, &j->ch[i]) < 0) {
            free(pmax);
            g4_so_grammar_unref(so);
            g4_http_images_free(&im);
            job_free(j);
            g4_http_fail(&e, 500, NULL, "out of memory");
            return reject(s, c, &e);
        }
        j->ch[i].max_tokens = pmax[prompt];
    }
    free(pmax);
    cn->job = j;
    pthread_mutex_lock(&s->jobs_mu);
    j->next_live = s->jobs;
    s->jobs = j;
    pthread_mutex_unlock(&s->jobs_mu);

    g4_engine *eng = atomic_load(&s->engine);
    j->t_submit = g4_now();
    int code = 0, submitted = 0;
    g4_error err = {{0}};
    uint64_t client = client_key(s, c); /* its n choices are n sequences of one client */
    for (int i = 0; i < j->n; i += j->beams ? req.n : 1) {
        const g4_tokens *ids = &j->prompt_ids[j->ch[i].prompt];
        g4_request_params p;
        memset(&p, 0, sizeof p);
        p.prompt = ids->ids;
        p.n_prompt = (int)ids->n;
        p.sampling = j->req.sampling;
        if (p.sampling.has_seed)
            p.sampling.seed += (uint64_t)(i % req.n); /* distinct but reproducible choices of a prompt */
        p.stop = j->req.stop;
        p.stop.max_tokens = j->ch[i].max_tokens;
        p.logit_bias = j->req.logit_bias;
        p.n_logit_bias = j->req.n_logit_bias;
        p.allowed_ids = j->req.allowed_ids;
        p.n_allowed_ids = j->req.n_allowed_ids;
        p.logprob_ids = j->req.logprob_ids;
        p.n_logprob_ids = j->req.n_logprob_ids;
        p.mm = im.n ? im.items : NULL;
        p.n_mm = im.n;
        p.prompt_logprobs = plp_top >= 0;
        p.prompt_logprobs_top = plp_top > 0 ? plp_top : 0;
        if (so) { /* one matcher per choice; the engine owns it from submit on */
            g4_so_thought th = {.enabled = kind == G4_OAI_CHAT && j->req.enable_thinking,
                                .started = parse_flags & G4_PARSE_START_IN_REASONING};
            if (!(p.constraint = g4_so_constraint_new(so, &th))) {
                code = G4_ERR_INVALID;
                snprintf(err.msg, sizeof err.msg, "out of memory for a constraint");
                break;
            }
            p.constraint_fn = &g4_so_constraint_fn;
        }
        p.priority = j->req.priority;
        p.client = client;
        /* Completions render special tokens as nothing when asked; chat keeps them for the
         * output parser. */
        if (kind == G4_OAI_COMPLETION && j->req.skip_special_tokens) p.detok_flags = G4_DETOK_SKIP_SPECIAL;
        p.on_event = on_event;
        p.user = &j->ch[i];
        if (j->beams) { /* one search for the prompt; its outputs are choices i .. i + n − 1 */
            g4_beam_out outs[G4_BEAM_MAX_WIDTH];
            for (int k = 0; k < req.n; k++) outs[k] = (g4_beam_out){on_event, &j->ch[i + k]};
            pthread_mutex_lock(&j->mu);
            j->refs += req.n;
            pthread_mutex_unlock(&j->mu);
            g4_beam *b = g4_beam_start(eng, &p, req.n, req.length_penalty, outs, &code, &err);
            if (!b) {
                pthread_mutex_lock(&j->mu);
                j->refs -= req.n;
                pthread_mutex_unlock(&j->mu);
                break;
            }
            pthread_mutex_lock(&j->mu);
            j->beams[j->ch[i].prompt] = b;
            pthread_mutex_unlock(&j->mu);
            submitted += req.n;
            continue;
        }
        pthread_mutex_lock(&j->mu);
        j->refs++;
        pthread_mutex_unlock(&j->mu);
        uint64_t id = g4_engine_submit(eng, &p, &code, &err);
        pthread_mutex_lock(&j->mu);
        j->ch[i].id = id;
        if (!id) j->refs--;
        pthread_mutex_unlock(&j->mu);
        if (!id) break;
        submitted++;
    }
    g4_so_grammar_unref(so); /* each constraint holds its own reference */
    g4_http_images_free(&im); /* the engine copied the patches at submit */
    if (submitted < j->n) {
        job_cancel(j); /* choices already submitted end with ABORT and drop their refs */
        int status = code == G4_ERR_QUEUE_FULL ? 429 : code == G4_ERR_STOPPED ? 503 : 400;
        g4_http_fail(&e, status, code == G4_ERR_TOO_LONG ? "max_tokens" : NULL, "%s",
                     code == G4_ERR_QUEUE_FULL ? "the server is busy (request queue full); retry later" : err.msg);
        pthread_mutex_lock(&j->mu);
        j->failed = true;
        pthread_mutex_unlock(&j->mu);
        return reject(s, c, &e);
    }
    if (s->cfg.log_requests)
        fprintf(stderr, "g4serve: %s %s prompts=%d n=%d prompt_tokens=%d max_tokens=%d stream=%d\n", j->id,
                kind == G4_OAI_CHAT ? "chat" : "completion", n_prompts, req.n, n_prompt_total, max_tokens,
                (int)j->stream);

    if (j->stream) {
        pthread_mutex_lock(&j->mu);
        j->refs++; /* the response's, dropped in sse_free */
        pthread_mutex_unlock(&j->mu);
        struct MHD_Response *r =
            MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, sse_reader, j, sse_free);
        if (!r) {
            job_unref(j);
            return MHD_NO;
        }
        MHD_add_response_header(r, "Content-Type", "text/event-stream");
        MHD_add_response_header(r, "Cache-Control", "no-cache");
        cap_send_buffer(c);
        enum MHD_Result ret = MHD_queue_response(c, 200, r);
        MHD_destroy_response(r);
        return ret;
    }
    /* Every choice may have finished already (a short request on a fast model): its wake-up
     * found no suspended connection, so answer now instead of sleeping forever. */
    pthread_mutex_lock(&j->mu);
    bool done = j->n_engine_done == j->n;
    if (!done) {
        j->suspended = true;
        MHD_suspend_connection(c);
    }
    pthread_mutex_unlock(&j->mu);
    return done ? g4_generate_resume(s, c, cn) : MHD_YES;

refuse: /* before the job exists: the prompts and the request are ours to free */
    g4_http_images_free(&im);
    for (int p = 0; pids && p < n_prompts; p++) g4_tokens_free(&pids[p]);
    free(pids);
    free(pmax);
    g4_so_grammar_unref(so);
    g4_oai_request_free(&req);
    return reject(s, c, &e);
}

/* Non-streaming: the connection was resumed; answer when every choice has finished. */
enum MHD_Result g4_generate_resume(g4_http_server *s, struct MHD_Connection *c, g4_conn *cn) {
    (void)s;
    g4_job *j = cn->job;
    pthread_mutex_lock(&j->mu);
    if (j->failed || j->stream) { /* an error response was queued already; should not be called */
        pthread_mutex_unlock(&j->mu);
        return MHD_YES;
    }
    if (j->n_engine_done < j->n) {
        j->suspended = true;
        MHD_suspend_connection(c);
        pthread_mutex_unlock(&j->mu);
        return MHD_YES;
    }
    g4_http_error e;
    char *json = NULL;
    int rc = g4_job_drain(j, &e) < 0 ? -1 : g4_job_final_json(j, &json, &e);
    pthread_mutex_unlock(&j->mu);
    if (rc < 0) return g4_http_send_error(c, &e);
    enum MHD_Result ret = g4_http_send_json(c, 200, json);
    free(json);
    return ret;
}

/* --- streaming ------------------------------------------------------------------------------ */

static ssize_t sse_reader(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    g4_job *j = cls;
    pthread_mutex_lock(&j->mu);
    if (j->out_pos == j->out.len) {
        g4_strbuf_clear(&j->out);
        j->out_pos = 0;
        g4_http_error e;
        if (g4_job_drain(j, &e) < 0) g4_job_sse_error(j, &e);
    }
    size_t avail = j->out.len - j->out_pos;
    if (avail > 0) {
        size_t n = avail < max ? avail : max;
        memcpy(buf, j->out.data + j->out_pos, n);
        j->out_pos += n;
        j->last_write = g4_now();
        pthread_mutex_unlock(&j->mu);
        return (ssize_t)n;
    }
    if (j->done_sent) {
        pthread_mutex_unlock(&j->mu);
        return MHD_CONTENT_READER_END_OF_STREAM;
    }
    j->suspended = true;
    MHD_suspend_connection(j->conn);
    pthread_mutex_unlock(&j->mu);
    return 0;
}

static void sse_free(void *cls) { job_unref(cls); }

void g4_generate_conn_closed(g4_http_server *s, g4_conn *cn, bool ok) {
    (void)s;
    g4_job *j = cn->job;
    pthread_mutex_lock(&j->mu);
    j->conn = NULL;
    j->suspended = false;
    pthread_mutex_unlock(&j->mu);
    if (!ok) job_cancel(j); /* the client hung up: free its KV blocks now */
    cn->job = NULL;
    job_unref(j);
}

/* --- ticker and shutdown -------------------------------------------------------------------- */

/* Under j->mu: true when the client of a suspended connection has closed or reset its socket.
 * MHD does not watch suspended connections, so a non-streaming client that leaves would
 * otherwise keep its generation (and KV blocks) until max_tokens. */
static bool client_gone(g4_job *j) {
    if (!j->conn || !j->suspended) return false;
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(j->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci) return false;
    char b;
    ssize_t n = recv(ci->connect_fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

/* Collects references to live jobs (so they cannot be freed while we look at them). */
static int live_jobs(g4_http_server *s, g4_job **out, int cap) {
    int n = 0;
    pthread_mutex_lock(&s->jobs_mu);
    for (g4_job *j = s->jobs; j && n < cap; j = j->next_live) {
        pthread_mutex_lock(&j->mu);
        if (j->refs > 0) {
            j->refs++;
            out[n++] = j;
        }
        pthread_mutex_unlock(&j->mu);
    }
    pthread_mutex_unlock(&s->jobs_mu);
    return n;
}

void g4_generate_tick(g4_http_server *s, double now) {
    enum { CAP = 8192 };
    static _Thread_local g4_job *jobs[CAP];
    int n = live_jobs(s, jobs, CAP);
    for (int i = 0; i < n; i++) {
        g4_job *j = jobs[i];
        bool cancel = false;
        pthread_mutex_lock(&j->mu);
        if (s->cfg.request_timeout_s > 0 && !j->timed_out && j->n_engine_done < j->n &&
            now - j->t_arrival > s->cfg.request_timeout_s) {
            j->timed_out = true;
            cancel = true;
        }
        if (!j->stream && j->n_engine_done < j->n && !j->client_left && client_gone(j)) {
            j->client_left = true;
            cancel = true;
        }
        /* A stream whose client reads nothing: keep-alives would have moved last_write, so the
         * socket has been full for stall_timeout_s. Its sequences are cancelled so they stop
         * holding running slots and KV blocks; the idle timeout closes the socket. */
        if (j->stream && j->conn && !j->stalled && !j->done_sent && s->cfg.stall_timeout_s > 0 &&
            s->cfg.keepalive_s > 0 && j->n_engine_done < j->n && now - j->last_write > s->cfg.stall_timeout_s) {
            j->stalled = true;
            cancel = true;
            fprintf(stderr, "g4serve: http: %s: the client read nothing for %g s; generation cancelled\n", j->id,
                    s->cfg.stall_timeout_s);
        }
        if (j->stream && j->conn && s->cfg.keepalive_s > 0 && now - j->last_write >= s->cfg.keepalive_s &&
            !j->done_sent && j->out_pos == j->out.len) {
            /* An SSE comment: clients ignore it, and writing it notices a client that left. */
            g4_strbuf_puts(&j->out, ": keep-alive\n\n");
            j->last_write = now;
            job_wake(j);
        }
        pthread_mutex_unlock(&j->mu);
        if (cancel) job_cancel(j);
        job_unref(j);
    }
}

void g4_generate_cancel_all(g4_http_server *s) {
    enum { CAP = 8192 };
    static g4_job *jobs[CAP];
    int n = live_jobs(s, jobs, CAP);
    for (int i = 0; i < n; i++) {
        job_cancel(jobs[i]);
        pthread_mutex_lock(&jobs[i]->mu);
        job_wake(jobs[i]);
        pthread_mutex_unlock(&jobs[i]->mu);
        job_unref(jobs[i]);
    }
}
