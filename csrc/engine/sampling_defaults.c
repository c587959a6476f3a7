/* sampling_defaults.c — request sampling defaults from a checkpoint's generation_config.json
 * (Hugging Face transformers' GenerationConfig fields). A missing file keeps greedy defaults.
 * As in vLLM, the sampling fields present are taken as they are and do_sample is not consulted
 * (Gemma 4's file sets temperature 1.0, top_k 64, top_p 0.95). Not here: the sampler. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>

#include <unistd.h>

#include "base/file.h"
#include "engine/sampling.h"

static int get_num(const cJSON *j, const char *name, double lo, double hi, float *out, g4_error *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, name);
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsNumber(v) || v->valuedouble < lo || v->valuedouble > hi)
        return g4_fail(err, "generation_config.json: %s must be a number in [%g, %g]", name, lo, hi);
    *out = (float)v->valuedouble;
    return 0;
}

int g4_sampling_load_defaults(g4_sampling *s, const char *model_dir, g4_error *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/generation_config.json", model_dir);
    if (access(path, F_OK) != 0) return 0; /* no file: greedy */
    char *text = NULL;
    if (g4_read_file(path, 1u << 20, &text, NULL, err)) return -1;
    cJSON *j = cJSON_Parse(text);
    free(text);
    if (!j || !cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return g4_fail(err, "%s: not a JSON object", path);
    }
    g4_sampling d = *s;
    float top_k = (float)d.top_k;
    int fail = get_num(j, "temperature", 0, 100, &d.temperature, err) || get_num(j, "top_k", 0, 1e9, &top_k, err) ||
               get_num(j, "top_p", 0, 1, &d.top_p, err) || get_num(j, "min_p", 0, 1, &d.min_p, err) ||
               get_num(j, "repetition_penalty", 1e-6, 100, &d.repetition_penalty, err);
    cJSON_Delete(j);
    if (fail) return -1;
    d.top_k = (int)top_k;
    *s = d;
    return 0;
}
