/* generate_impl.h - the generation job shared by generate.c (threads, engine, connection) and
 * oai_format.c (turning engine events into OpenAI chunks / responses). Private to the server. */
#ifndef G4_SERVER_HTTP_GENERATE_IMPL_H
#define G4_SERVER_HTTP_GENERATE_IMPL_H

#include <stdbool.h>

#include <cjson/cJSON.h>

#include "engine/beam.h"
#include "engine/stream.h"
#include "server/http/server_impl.h"
#include "text/output_parser.h"

typedef struct g4_choice {
    g4_job *job;
    int index;                   /* prompt · n + i, as vLLM numbers several prompts' choices */
    int prompt;                  /* its prompt (completions may send several) */
    int max_tokens;
    uint64_t id;                 /* engine request id, 0 = not submitted */
    g4_stream_sink sink;         /* into job->events; its last event is allocated at init */
    bool engine_done;            /* its last event arrived (engine thread writes, under job mu) */
    int engine_tokens;           /* generated, as its last event says (engine thread, under job mu) */
    double t_first;              /* first token, monotonic s */
    /* MHD thread only, below */
    bool finished;               /* last event processed */
    bool role_sent;              /* stream: the role chunk went out */
    g4_finish_reason finish;
    int32_t stop_id;             /* vLLM's stop_reason: the stop id that ended it (not the tokenizer's
                                    eos), or −1 */
    int stop_string;             /* or the index of the stop string that ended it, or −1 */
    int completion_tokens, cached_tokens; /* so far (usage on every chunk), then the engine's */
    int reasoning_tokens;        /* tokens inside the thought channel (chat), markers excluded */
    int thought_depth;           /* > 0 while inside it */
    bool echo_sent;              /* the echoed prompt was taken (stream: sent), text_offset past it */
    g4_prompt_logprob *plp;      /* prompt logprobs so far, positions 1.. in order */
    int n_plp, cap_plp;
    bool chunk_sent;             /* stream: a chunk of this choice went out (prompt_token_ids go on the first) */
    g4_tokens ids;               /* return_token_ids: generated ids; ids_sent of them streamed */
    size_t ids_sent;
    g4_output_parser *parser;    /* chat only */
    g4_strbuf content, reasoning;
    cJSON *tool_calls;           /* non-stream: accumulated calls */
    cJSON *logprobs;             /* non-stream: chat content[] / completion object */
    size_t text_offset;          /* completions logprobs text_offset */
    char error[512];
} g4_choice;

struct g4_job {
    g4_job *next_live;           /* the server's list (jobs_mu) */
    pthread_mutex_t mu;
    int refs;
    g4_http_server *srv;
    struct MHD_Connection *conn; /* NULL once the connection is gone */
    bool suspended;
    bool stream;
    bool failed;                 /* an error response was sent at submit */
    bool timed_out;
    bool stalled;                /* a stream its client stopped reading: cancelled (stall_timeout_s) */
    bool client_left;            /* non-streaming client hung up while waiting: cancelled */
    bool oom;                    /* output lost to out of memory (non-streaming answers 500) */
    g4_oai_request req;
    char id[64];
    const char *model;
    long created;
    int prompt_tokens;           /* all prompts together */
    int n_prompts;
    g4_tokens *prompt_ids;       /* [n_prompts] each prompt's ids (echo, return_token_ids) */
    g4_beam **beams;             /* use_beam_search: [n_prompts] each prompt's search (its n choices
                                    are the search's outputs), NULL until started; else NULL */
    double t_arrival, t_submit, last_write;
    g4_stream *events;           /* engine events not yet processed (every choice's) */
    int n_engine_done;           /* choices whose last event arrived */
    int n_recorded;              /* choices whose last event reached the metrics (before it is queued) */
    int n_finished;              /* choices whose last event was processed */
    g4_strbuf out;               /* SSE bytes; out_pos of them already written */
    size_t out_pos;
    bool done_sent;
    int n;
    g4_choice ch[];
};

int g4_choice_init(g4_choice *c, g4_job *j, int index, int prompt, bool chat, unsigned parse_flags);
void g4_choice_release(g4_choice *c);

/* Under j->mu: turns the queued events into SSE text (stream) or accumulated output. A lost
 * token event or a last event whose text was lost sets j->oom. */
int g4_job_drain(g4_job *j, g4_http_error *e);
/* Under j->mu, every choice finished: the non-streaming response body (malloc'ed) or an error. */
int g4_job_final_json(g4_job *j, char **json, g4_http_error *e);
/* Under j->mu: appends an SSE error event. */
void g4_job_sse_error(g4_job *j, const g4_http_error *e);

#endif
