/* sampling_defaults.c — request sampling defaults from a checkpoint's generation_config.json
 * (Hugging Face transformers' GenerationConfig fields). A missing file keeps greedy defaults;
 * do_sample false means greedy whatever temperature says. Not here: the sampler (sampling.c). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>

#include "engine/sampling.h"

static int read_file(const char *path, char **out) {
    FILE *f = fopen(path, "rb");
    if (!f) return 1;
    char *buf = NULL;
    long n = -1;
    if (fseek(f, 0, SEEK_END) == 0) n = ftell(f);
    if (n >= 0 && fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n + 1)) && fread(buf, 1, (size_t)n, f) == (size_t)n) {
        buf[n] = 0;
        fclose(f);
        *out = buf;
        return 0;
    }
    free(buf);
    fclose(f);
    return -1;
}

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
    char *text = NULL;
    int rc = read_file(path, &text);
    if (rc > 0) return 0;
    if (rc < 0) return g4_fail(err, "%s: cannot read", path);
    cJSON *j = cJSON_Parse(text);
    free(text);
    if (!j || !cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return g4_fail(err, "%s: not a JSON object", path);
    }
    g4_sampling d = *s;
    float top_k = (float)d.top_k, temp = 1.0f;
    int do_sample = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "do_sample"));
    int fail = get_num(j, "temperature", 0, 100, &temp, err) || get_num(j, "top_k", 0, 1e9, &top_k, err) ||
               get_num(j, "top_p", 0, 1, &d.top_p, err) || get_num(j, "min_p", 0, 1, &d.min_p, err) ||
               get_num(j, "repetition_penalty", 1e-6, 100, &d.repetition_penalty, err);
    cJSON_Delete(j);
    if (fail) return -1;
    d.top_k = (int)top_k;
    d.temperature = do_sample ? temp : 0.0f; /* transformers: greedy unless do_sample */
    *s = d;
    return 0;
}
