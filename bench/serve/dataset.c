/* dataset.c — random-id and ShareGPT request sets for the serving benchmark (dataset.h). */
#include "dataset.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arrival.h"

void g4_dataset_free(g4_bench_dataset *d) {
    for (int i = 0; i < d->n; i++) {
        free(d->items[i].ids);
        free(d->items[i].text);
    }
    free(d->items);
    d->items = NULL;
    d->n = 0;
}

int g4_dataset_random(g4_bench_dataset *d, int n, const g4_random_opts *o, g4_error *err) {
    memset(d, 0, sizeof *d);
    if (n < 1 || o->input_len < 1 || o->output_len < 1 || o->prefix_len < 0)
        return g4_fail(err, "random dataset: need num-prompts >= 1, input and output lengths >= 1, prefix >= 0");
    if (!(o->range_ratio >= 0 && o->range_ratio < 1))
        return g4_fail(err, "random dataset: --random-range-ratio %g must be in [0, 1)", o->range_ratio);
    if (o->id_min < 0 || o->vocab <= o->id_min)
        return g4_fail(err, "random dataset: token ids [%d, %ld) is empty", o->id_min, o->vocab);
    long in_lo = (long)floor(o->input_len * (1 - o->range_ratio)),
         in_hi = (long)ceil(o->input_len * (1 + o->range_ratio));
    long out_lo = (long)floor(o->output_len * (1 - o->range_ratio)),
         out_hi = (long)ceil(o->output_len * (1 + o->range_ratio));
    if (in_lo < 1) in_lo = 1;
    if (out_lo < 1) out_lo = 1;
    g4_rng rng;
    g4_rng_seed(&rng, o->seed);
    int32_t *prefix = malloc(sizeof(int32_t) * (size_t)(o->prefix_len + 1));
    d->items = calloc((size_t)n, sizeof *d->items);
    if (!prefix || !d->items) {
        free(prefix);
        free(d->items);
        d->items = NULL;
        return g4_fail(err, "random dataset: out of memory for %d requests", n);
    }
    for (int j = 0; j < o->prefix_len; j++) prefix[j] = (int32_t)g4_rng_range(&rng, o->id_min, o->vocab - 1);
    for (int i = 0; i < n; i++) {
        g4_bench_item *it = &d->items[i];
        int len = (int)g4_rng_range(&rng, in_lo, in_hi);
        it->output_len = (int)g4_rng_range(&rng, out_lo, out_hi);
        it->n_ids = it->prompt_len = o->prefix_len + len;
        it->ids = malloc(sizeof(int32_t) * (size_t)it->n_ids);
        if (!it->ids) {
            d->n = i;
            g4_dataset_free(d);
            free(prefix);
            return g4_fail(err, "random dataset: out of memory for request %d", i);
        }
        memcpy(it->ids, prefix, sizeof(int32_t) * (size_t)o->prefix_len);
        for (int j = 0; j < len; j++) it->ids[o->prefix_len + j] = (int32_t)g4_rng_range(&rng, o->id_min, o->vocab - 1);
        d->n = i + 1;
    }
    free(prefix);
    return 0;
}

static char *read_file(const char *path, g4_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        g4_fail(err, "sharegpt: cannot open '%s'", path);
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = len >= 0 ? malloc((size_t)len + 1) : NULL;
    if (!s || fread(s, 1, (size_t)len, f) != (size_t)len) {
        free(s);
        fclose(f);
        g4_fail(err, "sharegpt: cannot read '%s'", path);
        return NULL;
    }
    fclose(f);
    s[len] = 0;
    return s;
}

static int count_tokens(const g4_tokenizer *tok, const char *s, g4_error *err) {
    g4_tokens t = {0};
    if (g4_tokenizer_encode(tok, s, strlen(s), 0, &t, err) < 0) {
        g4_tokens_free(&t);
        return -1;
    }
    int n = (int)t.n;
    g4_tokens_free(&t);
    return n;
}

int g4_dataset_sharegpt(g4_bench_dataset *d, const char *path, int n, int output_len, const g4_tokenizer *tok,
                        uint64_t seed, g4_error *err) {
    memset(d, 0, sizeof *d);
    if (!tok)
        return g4_fail(err, "sharegpt: a tokenizer is needed to count prompt and answer tokens (--tokenizer FILE)");
    char *text = read_file(path, err);
    if (!text) return -1;
    cJSON *root = cJSON_Parse(text);
    free(text);
    if (!cJSON_IsArray(root)) {
        cJSON_Delete(root);
        return g4_fail(err, "sharegpt: '%s' is not a JSON list of conversations", path);
    }
    int total = cJSON_GetArraySize(root), n_conv = 0;
    const cJSON **conv = malloc(sizeof *conv * (size_t)(total + 1));
    d->items = calloc((size_t)(n > 0 ? n : 1), sizeof *d->items);
    if (!conv || !d->items) {
        free(conv);
        cJSON_Delete(root);
        return g4_fail(err, "sharegpt: out of memory");
    }
    const cJSON *e;
    cJSON_ArrayForEach(e, root) {
        const cJSON *c = cJSON_GetObjectItem(e, "conversations");
        if (cJSON_GetArraySize(c) >= 2 && cJSON_IsString(cJSON_GetObjectItem(cJSON_GetArrayItem(c, 0), "value")) &&
            cJSON_IsString(cJSON_GetObjectItem(cJSON_GetArrayItem(c, 1), "value")))
            conv[n_conv++] = c;
    }
    g4_rng rng;
    g4_rng_seed(&rng, seed);
    for (int i = n_conv - 1; i > 0; i--) { /* Fisher–Yates */
        int j = (int)g4_rng_range(&rng, 0, i);
        const cJSON *t = conv[i];
        conv[i] = conv[j];
        conv[j] = t;
    }
    int rc = 0;
    for (int i = 0; i < n_conv && d->n < n; i++) {
        const char *prompt = cJSON_GetObjectItem(cJSON_GetArrayItem(conv[i], 0), "value")->valuestring;
        const char *answer = cJSON_GetObjectItem(cJSON_GetArrayItem(conv[i], 1), "value")->valuestring;
        int pl = count_tokens(tok, prompt, err), ol = output_len > 0 ? output_len : count_tokens(tok, answer, err);
        if (pl < 0 || ol < 0) {
            rc = -1;
            break;
        }
        if (pl < 4 || pl > 1024 || (output_len <= 0 && (ol < 4 || pl + ol > 2048))) continue;
        g4_bench_item *it = &d->items[d->n];
        it->text = strdup(prompt);
        if (!it->text) {
            rc = g4_fail(err, "sharegpt: out of memory");
            break;
        }
        it->prompt_len = pl;
        it->output_len = ol;
        d->n++;
    }
    free(conv);
    cJSON_Delete(root);
    if (rc == 0 && d->n < n)
        rc = g4_fail(err, "sharegpt: '%s' has only %d usable conversations, %d requested", path, d->n, n);
    if (rc) g4_dataset_free(d);
    return rc;
}
