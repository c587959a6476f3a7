/* suite_check.c - runs JSON-Schema-Test-Suite cases (prepared by run_suite.py) through the
 * schema compiler and the byte matcher.
 *
 * Input: a JSON file [{file, description, schema (text), tests: [{description, valid,
 * texts: [serialisations]}]}]; each text is one compact serialisation of the instance (object
 * keys in every order, up to a cap). A valid instance passes when some serialisation is accepted;
 * an invalid one when none is. A case the compiler refuses is counted as refused, with the reason.
 * Prints per-file counts; exits 1 on any invalid instance accepted or valid instance rejected. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "grammar/json_schema.h"
#include "grammar/matcher.h"

typedef struct counts {
    int cases, refused, valid_ok, valid_rejected, invalid_ok, invalid_accepted;
} counts;

static int accepts(const g4_grammar *g, const char *text) {
    g4_matcher *m = g4_matcher_new(g);
    if (!m) return -1;
    int ok = g4_matcher_advance(m, text, strlen(text)) == 0 && g4_matcher_accepting(m);
    g4_matcher_free(m);
    return ok;
}

static void print_counts(const char *name, const counts *c) {
    printf("%-28s cases %3d  refused %3d  valid %3d ok / %d rejected  invalid %3d ok / %d accepted\n", name, c->cases,
           c->refused, c->valid_ok, c->valid_rejected, c->invalid_ok, c->invalid_accepted);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s cases.json [-v]\n", argv[0]);
        return 2;
    }
    int verbose = argc > 2 && !strcmp(argv[2], "-v");
    size_t len;
    char *text = NULL;
    g4_error err = {{0}};
    if (g4_read_file(argv[1], (size_t)1 << 30, &text, &len, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 2;
    }
    cJSON *cases = cJSON_ParseWithLength(text, len);
    free(text);
    if (!cJSON_IsArray(cases)) {
        fprintf(stderr, "bad cases file\n");
        return 2;
    }
    counts file = {0}, total = {0};
    const char *cur = NULL;
    const cJSON *c;
    int bad = 0;
    cJSON_ArrayForEach(c, cases) {
        const char *fname = cJSON_GetObjectItem(c, "file")->valuestring;
        if (cur && strcmp(cur, fname)) {
            print_counts(cur, &file);
            memset(&file, 0, sizeof file);
        }
        cur = fname;
        const char *desc = cJSON_GetObjectItem(c, "description")->valuestring;
        const char *schema = cJSON_GetObjectItem(c, "schema")->valuestring;
        file.cases++;
        total.cases++;
        g4_grammar *g = NULL;
        if (g4_json_schema_compile(schema, strlen(schema), NULL, NULL, &g, &err)) {
            file.refused++;
            total.refused++;
            if (verbose) printf("  refused: %s: %s: %s\n", fname, desc, err.msg);
            continue;
        }
        const cJSON *t;
        cJSON_ArrayForEach(t, cJSON_GetObjectItem(c, "tests")) {
            int valid = cJSON_IsTrue(cJSON_GetObjectItem(t, "valid"));
            int any = 0;
            const cJSON *s;
            cJSON_ArrayForEach(s, cJSON_GetObjectItem(t, "texts")) if (accepts(g, s->valuestring) == 1) {
                any = 1;
                break;
            }
            const char *first =
                cJSON_GetObjectItem(t, "texts")->child ? cJSON_GetObjectItem(t, "texts")->child->valuestring : "";
            if (valid && any) {
                file.valid_ok++;
                total.valid_ok++;
            } else if (valid) {
                file.valid_rejected++;
                total.valid_rejected++;
                bad = 1;
                printf("  VALID REJECTED: %s: %s / %s: %s\n    schema %s\n", fname, desc,
                       cJSON_GetObjectItem(t, "description")->valuestring, first, schema);
            } else if (!any) {
                file.invalid_ok++;
                total.invalid_ok++;
            } else {
                file.invalid_accepted++;
                total.invalid_accepted++;
                bad = 1;
                printf("  INVALID ACCEPTED: %s: %s / %s: %s\n    schema %s\n", fname, desc,
                       cJSON_GetObjectItem(t, "description")->valuestring, first, schema);
            }
        }
        g4_grammar_free(g);
    }
    if (cur) print_counts(cur, &file);
    print_counts("TOTAL", &total);
    cJSON_Delete(cases);
    return bad;
}
