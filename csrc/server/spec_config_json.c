/* spec_config_json.c — vLLM's --speculative-config JSON ⇄ g4_spec_config (spec_config_json.h). */
#include "server/spec_config_json.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

/* The fields, in the order the description writes them. */
enum { F_METHOD, F_MODEL, F_K, F_LOOKUP_MAX, F_LOOKUP_MIN, F_DISABLE, N_FIELDS };
static const char *const field_names[N_FIELDS] = {
    "method", "model", "num_speculative_tokens", "prompt_lookup_max", "prompt_lookup_min", "disable_by_batch_size",
};
static const char *const accepted_list =
    "method, model, num_speculative_tokens, prompt_lookup_max, prompt_lookup_min, disable_by_batch_size";

static int field_index(const char *name) {
    for (int i = 0; i < N_FIELDS; i++)
        if (!strcmp(name, field_names[i])) return i;
    return -1;
}

/* An integer in [lo, hi]: a JSON number without a fraction (not a string, not a boolean). */
static int get_int(const cJSON *v, const char *name, int lo, int hi, int *out, g4_error *err) {
    double d = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    if (!(d >= lo && d <= hi) || d != floor(d)) {
        char *text = cJSON_PrintUnformatted(v);
        int rc = g4_fail(err, "%s: expected an integer %d..%d, got %.64s", name, lo, hi, text ? text : "?");
        cJSON_free(text);
        return rc;
    }
    *out = (int)d;
    return 0;
}

static int get_string(const cJSON *v, const char *name, const char **out, g4_error *err) {
    if (!cJSON_IsString(v) || !v->valuestring[0]) return g4_fail(err, "%s: expected a non-empty string", name);
    *out = v->valuestring;
    return 0;
}

static bool is_ngram_model(const char *m) { return m && (!strcmp(m, "ngram") || !strcmp(m, "[ngram]")); }

/* method + model → the proposer; refuses what g4serve does not have. */
static int choose_method(const char *method, const char *model, g4_spec_config *out, g4_error *err) {
    if (!method) {
        if (!model) return g4_fail(err, "method: needed (\"ngram\" or \"draft_model\"), or a draft \"model\"");
        out->method = is_ngram_model(model) ? G4_SPEC_NGRAM : G4_SPEC_DRAFT;
        return 0;
    }
    if (!strcmp(method, "ngram") || !strcmp(method, "[ngram]")) {
        if (model && !is_ngram_model(model))
            return g4_fail(err, "model: method \"ngram\" looks up the request's own tokens and takes no model");
        out->method = G4_SPEC_NGRAM;
        return 0;
    }
    if (!strcmp(method, "draft_model")) {
        if (!model || is_ngram_model(model))
            return g4_fail(err, "model: method \"draft_model\" needs the draft checkpoint's directory");
        out->method = G4_SPEC_DRAFT;
        return 0;
    }
    return g4_fail(err, "method: \"%.64s\" is not supported (g4serve has \"ngram\" and \"draft_model\")", method);
}

static int parse_object(const cJSON *root, g4_spec_config *out, char *path_buf, size_t path_cap, g4_error *err) {
    if (!cJSON_IsObject(root)) return g4_fail(err, "expected a JSON object");
    const cJSON *f[N_FIELDS] = {0};
    for (const cJSON *c = root->child; c; c = c->next) {
        int i = field_index(c->string);
        if (i < 0) return g4_fail(err, "%.64s: unknown field (accepted: %s)", c->string, accepted_list);
        if (f[i]) return g4_fail(err, "%s: given twice", field_names[i]);
        f[i] = c;
    }
    for (int i = 0; i < N_FIELDS; i++)
        if (f[i] && cJSON_IsNull(f[i])) f[i] = NULL; /* null = absent, as vLLM reads it */
    const char *method = NULL, *model = NULL;
    if (f[F_METHOD] && get_string(f[F_METHOD], "method", &method, err) < 0) return -1;
    if (f[F_MODEL] && get_string(f[F_MODEL], "model", &model, err) < 0) return -1;
    if (choose_method(method, model, out, err) < 0) return -1;
    if (!f[F_K]) return g4_fail(err, "num_speculative_tokens: needed (1..%d)", G4_SPEC_MAX_TOKENS);
    if (get_int(f[F_K], "num_speculative_tokens", 1, G4_SPEC_MAX_TOKENS, &out->num_speculative_tokens, err) < 0)
        return -1;
    if (f[F_DISABLE] &&
        get_int(f[F_DISABLE], "disable_by_batch_size", 2, 1 << 30, &out->disable_by_batch_size, err) < 0)
        return -1;
    if (out->method == G4_SPEC_DRAFT) {
        for (int i = F_LOOKUP_MAX; i <= F_LOOKUP_MIN; i++)
            if (f[i]) return g4_fail(err, "%s: only for method \"ngram\"", field_names[i]);
        if (strstr(model, "://"))
            return g4_fail(err, "model: '%.200s': only local directories can be loaded (no downloads)", model);
        if (snprintf(path_buf, path_cap, "%s", model) >= (int)path_cap)
            return g4_fail(err, "model: directory name too long (%zu bytes)", strlen(model));
        out->draft_model = path_buf;
        return 0;
    }
    int mx = 0, mn = 0;
    if (f[F_LOOKUP_MAX] && get_int(f[F_LOOKUP_MAX], "prompt_lookup_max", 1, 1 << 20, &mx, err) < 0) return -1;
    if (f[F_LOOKUP_MIN] && get_int(f[F_LOOKUP_MIN], "prompt_lookup_min", 1, 1 << 20, &mn, err) < 0) return -1;
    if (!mx && !mn) mx = mn = 5; /* vLLM's defaults */
    else if (!mx) mx = mn;
    else if (!mn) mn = mx;
    if (mn > mx) return g4_fail(err, "prompt_lookup_min: %d is more than prompt_lookup_max %d", mn, mx);
    out->prompt_lookup_min = mn;
    out->prompt_lookup_max = mx;
    return 0;
}

int g4_spec_config_from_json(const char *json, g4_spec_config *out, char *path_buf, size_t path_cap, g4_error *err) {
    memset(out, 0, sizeof *out);
    const char *p = json ? json : "";
    while (isspace((unsigned char)*p)) p++;
    if (!*p) return 0; /* off */
    cJSON *root = cJSON_ParseWithOpts(p, NULL, 1); /* nothing but blanks after the value */
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        return g4_fail(err, "not valid JSON (near '%.24s')", at && *at ? at : "the end");
    }
    int rc = parse_object(root, out, path_buf, path_cap, err);
    cJSON_Delete(root);
    if (rc < 0) memset(out, 0, sizeof *out);
    return rc;
}

int g4_spec_config_check_draft(const g4_spec_config *c, g4_error *err) {
    if (c->method != G4_SPEC_DRAFT) return 0;
    char p[4200];
    struct stat st;
    if (!c->draft_model || snprintf(p, sizeof p, "%s/config.json", c->draft_model) >= (int)sizeof p)
        return g4_fail(err, "model: no directory name, or one too long");
    if (stat(p, &st) < 0) return g4_fail(err, "model: %s does not exist (a draft checkpoint directory)", p);
    return 0;
}

const char *g4_spec_config_describe(const g4_spec_config *c, char *buf, size_t n) {
    if (c->method == G4_SPEC_OFF) {
        snprintf(buf, n, "off");
        return buf;
    }
    cJSON *o = cJSON_CreateObject();
    bool ok = o != NULL;
    if (c->method == G4_SPEC_NGRAM) {
        ok = ok && cJSON_AddStringToObject(o, "method", "ngram") &&
             cJSON_AddNumberToObject(o, "num_speculative_tokens", c->num_speculative_tokens) &&
             cJSON_AddNumberToObject(o, "prompt_lookup_max", c->prompt_lookup_max) &&
             cJSON_AddNumberToObject(o, "prompt_lookup_min", c->prompt_lookup_min);
    } else {
        ok = ok && cJSON_AddStringToObject(o, "method", "draft_model") &&
             cJSON_AddStringToObject(o, "model", c->draft_model ? c->draft_model : "") &&
             cJSON_AddNumberToObject(o, "num_speculative_tokens", c->num_speculative_tokens);
    }
    if (ok && c->disable_by_batch_size > 0)
        ok = cJSON_AddNumberToObject(o, "disable_by_batch_size", c->disable_by_batch_size) != NULL;
    char *text = ok ? cJSON_PrintUnformatted(o) : NULL;
    snprintf(buf, n, "%s", text ? text : "(out of memory)");
    cJSON_free(text);
    cJSON_Delete(o);
    return buf;
}
