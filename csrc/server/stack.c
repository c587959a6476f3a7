/* stack.c — the composition root (stack.h): builds a served model from options, in order, and
 * takes it down in reverse. */
#include "server/stack.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/sampling.h"
#include "server/default_model.h"
#include "server/detok_seam.h"
#include "engine/spec_draft.h"
#include "server/spec_config_json.h"

void g4_stack_opts_default(g4_stack_opts *o) {
    memset(o, 0, sizeof *o);
    o->default_model = "tiny-dense";
    o->backend = "cpu";
    o->tp = 1;
    g4_model_opts_default(&o->model);
    o->max_waiting = -1;
    o->max_running_per_client = -1;
    o->prefix_cache = -1;
}

static bool exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* --- the checkpoint directory ---------------------------------------------------------------- */

static int choose_dir(g4_stack *s, const g4_stack_opts *o, g4_error *err) {
    const char *given = o->model_dir ? o->model_dir : o->default_model_dir;
    if (given && snprintf(s->dir, sizeof s->dir, "%s", given) >= (int)sizeof s->dir)
        return g4_fail(err, "model directory name too long: %.64s...", given);
    if (o->model_dir) return 0;
    if (!given) {
        const char *t = getenv("TMPDIR");
        snprintf(s->dir, sizeof s->dir, "%s/g4-model-XXXXXX", t && *t ? t : "/tmp");
        if (!mkdtemp(s->dir))
            return g4_fail(err, "cannot create a temporary directory %s: %s", s->dir, strerror(errno));
        s->dir_is_temporary = true;
    }
    return g4_default_model_write(s->dir, o->default_model ? o->default_model : "tiny-dense", !o->no_tokenizer, err);
}

static void remove_temporary_dir(g4_stack *s) {
    if (!s->dir_is_temporary) return;
    static const char *const files[] = {"config.json", "model.safetensors", "tokenizer.json"};
    char p[G4_STACK_PATH_MAX + 32];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", s->dir, files[i]);
        if (unlink(p) < 0 && errno != ENOENT) fprintf(stderr, "g4serve: cannot remove %s: %s\n", p, strerror(errno));
    }
    if (rmdir(s->dir) < 0) fprintf(stderr, "g4serve: cannot remove %s: %s\n", s->dir, strerror(errno));
}

/* --- the backend or group, and the model ------------------------------------------------------ */

static int open_model(g4_stack *s, const g4_stack_opts *o, g4_error *err) {
    s->tp_size = o->tp > 1 ? o->tp : 1;
    if (s->tp_size > 1) { /* t ranks, each with its own backend, stepping together */
        if (!(s->tp = g4_tp_open(s->dir, o->backend, &o->backend_opts, s->tp_size, &o->model, err))) return -1;
        s->model = g4_tp_model(s->tp, 0);
        return 0;
    }
    if (!(s->backend = g4_backend_create(o->backend, &o->backend_opts, err))) return -1;
    return g4_model_open(&s->model, s->dir, s->backend, &o->model, err) < 0 ? -1 : 0;
}

/* The draft model of speculative decoding (method draft): opened with the target's model options
 * on its backend, checked to fit the target's block tables (spec_draft.h). Without its vision
 * tower: the draft proposes from token ids only (its passes carry no image runs), so a tower in
 * its checkpoint would be bytes on the device that nothing reads. */
static int open_draft(g4_stack *s, const g4_stack_opts *o, g4_error *err) {
    if (o->spec.method != G4_SPEC_DRAFT) return 0;
    if (s->tp) return g4_fail(err, "speculative config: a draft model with tensor parallelism is not supported yet");
    g4_model_opts mo = o->model;
    mo.no_vision = 1;
    if (g4_model_open(&s->draft, o->spec.draft_model, s->backend, &mo, err) < 0)
        return g4_fail_prefix(err, "speculative config: draft model %s", o->spec.draft_model);
    if (g4_spec_draft_check(s->model, s->draft, err) < 0)
        return g4_fail_prefix(err, "speculative config: draft model %s", o->spec.draft_model);
    g4_executor_local(&s->draft_ex, s->draft);
    s->eo.spec_draft = &s->draft_ex;
    return 0;
}

/* --- the tokenizer ------------------------------------------------------------------------------ */

/* An explicit file, else the checkpoint's tokenizer.json; never another checkpoint's. */
static int open_tokenizer(g4_stack *s, const g4_stack_opts *o, g4_error *err) {
    if (o->no_tokenizer) return 0;
    if (o->tokenizer) {
        snprintf(s->tokenizer_path, sizeof s->tokenizer_path, "%s", o->tokenizer);
    } else {
        if (snprintf(s->tokenizer_path, sizeof s->tokenizer_path, "%s/tokenizer.json", s->dir) >=
            (int)sizeof s->tokenizer_path)
            return g4_fail(err, "checkpoint directory name too long: %s", s->dir);
        if (!exists(s->tokenizer_path))
            return g4_fail(err,
                           "no tokenizer: %s does not exist (a checkpoint directory needs its "
                           "tokenizer.json, or pass --tokenizer FILE)",
                           s->tokenizer_path);
    }
    return g4_tokenizer_load(s->tokenizer_path, &s->tok, err) < 0 ? g4_fail_prefix(err, "tokenizer") : 0;
}

static int check_vocab(const g4_stack *s, g4_error *err) {
    if (s->tok && g4_tokenizer_n_vocab(s->tok) > s->model->cfg.vocab)
        return g4_fail(err, "tokenizer %s has %d ids but the model's vocabulary is %d", s->tokenizer_path,
                       (int)g4_tokenizer_n_vocab(s->tok), (int)s->model->cfg.vocab);
    return 0;
}

/* --- engine options ----------------------------------------------------------------------------- */

static void add_stop_id(g4_stack *s, int32_t id) {
    if (id < 0 || s->eo.n_eos == G4_STACK_MAX_EOS) return;
    for (int i = 0; i < s->eo.n_eos; i++)
        if (s->eos[i] == id) return;
    s->eos[s->eo.n_eos++] = id;
}

static int engine_opts(g4_stack *s, const g4_stack_opts *o, g4_error *err) {
    g4_engine_opts_from_model(&s->eo, s->model);
    if (g4_sampling_load_defaults(&s->eo.defaults, s->dir, err) < 0) /* generation_config.json, if any */
        return -1;
    if (o->max_waiting >= 0) s->eo.max_waiting = o->max_waiting;
    if (o->max_running_per_client >= 0) s->eo.max_running_per_client = o->max_running_per_client;
    s->eo.spec = o->spec;
    if (o->prefix_cache >= 0) s->eo.prefix_cache = o->prefix_cache != 0;
    /* Stop ids: the model's, plus Gemma 4's chat stops as the tokenizer names them (<eos>,
     * <turn|>, <|tool_response>), which an instruction-tuned generation_config lists but
     * config.json may not. */
    const int32_t *model_eos = s->eo.eos_ids;
    int n_model = s->eo.n_eos;
    s->eo.n_eos = 0;
    for (int i = 0; i < n_model; i++) add_stop_id(s, model_eos[i]);
    if (s->tok) {
        const g4_special_ids *sp = g4_tokenizer_specials(s->tok);
        add_stop_id(s, sp->eos);
        add_stop_id(s, sp->turn_end);
        add_stop_id(s, sp->tool_response_start);
    }
    s->eo.eos_ids = s->eos;
    return 0;
}

/* --- warm-up: one short request through the whole engine ------------------------------------ */

typedef struct warm {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    g4_finish_reason finish;
    char error[256];
} warm;

static void warm_event(void *user, const g4_event *ev) {
    warm *w = user;
    if (ev->finish == G4_FINISH_NONE) return;
    pthread_mutex_lock(&w->mu);
    w->done = true;
    w->finish = ev->finish;
    snprintf(w->error, sizeof w->error, "%s", ev->error ? ev->error : "");
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static int warm_up(g4_stack *s, g4_error *err) {
    g4_tokens ids = {0};
    if (g4_tokenizer_encode(s->tok, "Hello", 5, G4_ENCODE_ADD_BOS, &ids, err) < 0)
        return g4_fail_prefix(err, "warm-up prompt");
    warm w = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    g4_request_params p = {.prompt = ids.ids, .n_prompt = (int)ids.n, .on_event = warm_event, .user = &w};
    g4_sampling_default(&p.sampling);
    g4_stop_rules_default(&p.stop);
    p.stop.max_tokens = 2;
    int code = 0;
    uint64_t id = g4_engine_submit(s->engine, &p, &code, err);
    g4_tokens_free(&ids);
    if (!id) return g4_fail_prefix(err, "warm-up request");
    pthread_mutex_lock(&w.mu);
    while (!w.done) pthread_cond_wait(&w.cv, &w.mu);
    pthread_mutex_unlock(&w.mu);
    if (w.finish == G4_FINISH_ERROR || w.finish == G4_FINISH_ABORT)
        return g4_fail(err, "warm-up request failed: %s", w.error[0] ? w.error : "aborted");
    return 0;
}

/* --- the whole stack ------------------------------------------------------------------------ */

int g4_stack_open(g4_stack **out, const g4_stack_opts *o, g4_error *err) {
    *out = NULL;
    if (o->warm_up && o->no_tokenizer) return g4_fail(err, "stack: warm-up needs a tokenizer");
    /* a draft model's directory before the target's weights load (minutes on a GPU) */
    if (g4_spec_config_check_draft(&o->spec, err) < 0) return g4_fail_prefix(err, "speculative config");
    g4_stack *s = calloc(1, sizeof *s);
    if (!s) return g4_fail(err, "stack: out of memory");
    /* the tokenizer before the model: a missing file is reported before minutes of loading */
    if (choose_dir(s, o, err) < 0 || open_tokenizer(s, o, err) < 0 || open_model(s, o, err) < 0 ||
        check_vocab(s, err) < 0 || engine_opts(s, o, err) < 0 || open_draft(s, o, err) < 0)
        goto fail;
    if (s->tp) g4_executor_tp(&s->ex, s->tp);
    else g4_executor_local(&s->ex, s->model);
    if (s->tok) s->detok = g4_detok_iface_for(s->tok);
    if (!(s->engine = g4_engine_create(&s->eo, &s->ex, s->tok ? &s->detok : NULL, err))) goto fail;
    if (o->warm_up && warm_up(s, err) < 0) goto fail;
    *out = s;
    return 0;
fail:
    g4_stack_close(s);
    return -1;
}

void g4_stack_close(g4_stack *s) {
    if (!s) return;
    if (s->engine) g4_engine_destroy(s->engine);
    if (s->draft) g4_model_close(s->draft);
    g4_tokenizer_free(s->tok);
    if (s->tp) g4_tp_close(s->tp);
    else if (s->model) g4_model_close(s->model);
    if (s->backend) g4_backend_destroy(s->backend);
    remove_temporary_dir(s);
    free(s);
}
