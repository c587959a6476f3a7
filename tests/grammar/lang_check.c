/* lang_check.c - checks regex, pattern, GBNF and choice constraints against expectations computed by
 * run_regex.py with Python's `re` (the independent reference).
 *
 * Input: [{kind: "regex"|"pattern"|"gbnf"|"choice"|"schema", source (or choices), texts, expect: [0/1...]}
 * ...] plus {kind: "refuse", source, lang, needle}: the compiler must refuse with a message that
 * contains needle. regex: the whole text must match; pattern: a JSON Schema string with that
 * pattern, texts are JSON strings (re.search semantics); gbnf: the grammar language.
 * Exit 1 on any disagreement. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "grammar/gbnf.h"
#include "grammar/json_schema.h"
#include "grammar/matcher.h"

static int accepts(const g4_grammar *g, const char *text) {
    g4_matcher *m = g4_matcher_new(g);
    int ok = g4_matcher_advance(m, text, strlen(text)) == 0 && g4_matcher_accepting(m);
    g4_matcher_free(m);
    return ok;
}

static int compile(const char *kind, const cJSON *c, g4_grammar **g, g4_error *err) {
    const cJSON *src = cJSON_GetObjectItem(c, "source");
    if (!strcmp(kind, "regex")) return g4_regex_compile(src->valuestring, strlen(src->valuestring), NULL, g, err);
    if (!strcmp(kind, "gbnf")) return g4_gbnf_compile(src->valuestring, strlen(src->valuestring), NULL, g, err);
    if (!strcmp(kind, "schema"))
        return g4_json_schema_compile(src->valuestring, strlen(src->valuestring), NULL, NULL, g, err);
    if (!strcmp(kind, "pattern")) {
        cJSON *s = cJSON_CreateObject();
        cJSON_AddStringToObject(s, "type", "string");
        cJSON_AddStringToObject(s, "pattern", src->valuestring);
        char *txt = cJSON_PrintUnformatted(s);
        int rc = g4_json_schema_compile(txt, strlen(txt), NULL, NULL, g, err);
        free(txt);
        cJSON_Delete(s);
        return rc;
    }
    const cJSON *ch = cJSON_GetObjectItem(c, "choices");
    int n = cJSON_GetArraySize(ch);
    const char **v = calloc((size_t)n + 1, sizeof *v);
    for (int i = 0; i < n; i++) v[i] = cJSON_GetArrayItem(ch, i)->valuestring;
    int rc = g4_choice_compile(v, n, NULL, g, err);
    free(v);
    return rc;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s cases.json\n", argv[0]);
        return 2;
    }
    char *text;
    size_t len;
    g4_error err = {{0}};
    if (g4_read_file(argv[1], (size_t)1 << 30, &text, &len, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 2;
    }
    cJSON *cases = cJSON_ParseWithLength(text, len);
    free(text);
    int bad = 0;
    long n_cases[6] = {0}, n_texts[6] = {0}, n_refused = 0;
    const char *kinds[6] = {"regex", "pattern", "gbnf", "choice", "refuse", "schema"};
    const cJSON *c;
    cJSON_ArrayForEach(c, cases) {
        const char *kind = cJSON_GetObjectItem(c, "kind")->valuestring;
        int ki = 0;
        while (ki < 6 && strcmp(kinds[ki], kind)) ki++;
        if (ki == 6) {
            fprintf(stderr, "unknown kind %s\n", kind);
            return 2;
        }
        n_cases[ki]++;
        g4_grammar *g = NULL;
        if (ki == 4) {
            const char *needle = cJSON_GetObjectItem(c, "needle")->valuestring;
            int rc = compile(cJSON_GetObjectItem(c, "lang")->valuestring, c, &g, &err);
            if (rc == 0 || !strstr(err.msg, needle)) {
                printf("NOT REFUSED AS EXPECTED: %s (wanted '%s', got '%s')\n",
                       cJSON_GetObjectItem(c, "source")->valuestring, needle, rc ? err.msg : "compiled");
                bad = 1;
            } else n_refused++;
            g4_grammar_free(g);
            continue;
        }
        if (compile(kind, c, &g, &err)) {
            /* refusing a constraint nothing satisfies is right when no text is expected to pass */
            int none = strstr(err.msg, "no finite string") != NULL;
            const cJSON *x;
            cJSON_ArrayForEach(x, cJSON_GetObjectItem(c, "expect")) if (x->valueint) none = 0;
            if (none) {
                n_texts[ki] += cJSON_GetArraySize(cJSON_GetObjectItem(c, "expect"));
                continue;
            }
            printf("REFUSED: %s %s: %s\n", kind,
                   cJSON_GetObjectItem(c, "source") ? cJSON_GetObjectItem(c, "source")->valuestring : "", err.msg);
            bad = 1;
            continue;
        }
        const cJSON *texts = cJSON_GetObjectItem(c, "texts"), *expect = cJSON_GetObjectItem(c, "expect");
        for (int i = 0; i < cJSON_GetArraySize(texts); i++) {
            const char *t = cJSON_GetArrayItem(texts, i)->valuestring;
            int want = cJSON_GetArrayItem(expect, i)->valueint, got = accepts(g, t);
            n_texts[ki]++;
            if (want != got) {
                printf("MISMATCH %s %s on %s: expected %d, matcher %d\n", kind,
                       cJSON_GetObjectItem(c, "source") ? cJSON_GetObjectItem(c, "source")->valuestring : "(choices)",
                       t, want, got);
                bad = 1;
            }
        }
        g4_grammar_free(g);
    }
    printf("%-8s %5ld constraints, %6ld texts checked\n", kinds[5], n_cases[5], n_texts[5]);
    for (int k = 0; k < 4; k++) printf("%-8s %5ld constraints, %6ld texts checked\n", kinds[k], n_cases[k], n_texts[k]);
    printf("refuse   %5ld constructs refused with the expected message\n", n_refused);
    cJSON_Delete(cases);
    return bad;
}
