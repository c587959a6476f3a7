/* json_schema_impl.h - what json_schema.c and json_merge.c share: the compile context and its
 * helpers. Internal to the JSON Schema compiler. */
#ifndef G4_GRAMMAR_JSON_SCHEMA_IMPL_H
#define G4_GRAMMAR_JSON_SCHEMA_IMPL_H

#include <cjson/cJSON.h>

#include "grammar/json_schema.h"

enum { T_NULL = 1, T_BOOL = 2, T_OBJECT = 4, T_ARRAY = 8, T_STRING = 16, T_NUMBER = 32, T_INTEGER = 64 };
#define T_ALL (T_NULL | T_BOOL | T_OBJECT | T_ARRAY | T_STRING | T_NUMBER)

typedef struct memo {
    const cJSON *node;
    int32_t rule;
} memo;

typedef struct js {
    g4_grammar *g;
    const cJSON *root;
    g4_json_schema_opts o;
    memo *memo;
    int32_t n_memo, cap_memo;
    cJSON **owned;
    int32_t n_owned, cap_owned; /* merged schemas, freed at the end */
    int32_t r_value; /* the any-value rule, -1 until made */
    char **str_key;
    int32_t *str_rule;
    int32_t n_str, cap_str; /* one rule per kind of string */
    int depth;
} js;

extern const char *const G4_JS_ANNOTATIONS[]; /* skipped keywords (NULL-terminated) */
extern const char *const G4_JS_KEYWORDS[];    /* honoured keywords (NULL-terminated) */

int g4_js_fail(js *j, const char *fmt, const char *arg); /* sets the grammar's error, returns -1 */
int g4_js_own(js *j, cJSON *x);                          /* x is freed with the context */
int g4_js_in_list(const char *const *l, const char *s);
const cJSON *g4_js_resolve_ref(js *j, const char *ref);  /* NULL (error set) when unresolvable */
int g4_js_types_of(js *j, const cJSON *s);               /* T_* mask, -1 on a bad "type" */

/* json_merge.c: s with top-level $refs followed (*err = -1 on failure) */
const cJSON *g4_js_deref(js *j, const cJSON *s, int *err);
/* Appends the conjuncts of s (its own keywords, its $ref target, its allOf parts) to *list. */
int g4_js_conjuncts(js *j, const cJSON *s, const cJSON ***list, int *n, int *cap, int depth);
/* One schema equivalent to all of list[0..n) (owned by j); NULL with the error set on a refusal. */
const cJSON *g4_js_merge(js *j, const cJSON *const *list, int n);
/* 1 when no instance can satisfy both a and b (by types, enum/const values, a discriminator). */
int g4_js_disjoint(js *j, const cJSON *a, const cJSON *b, int depth);

#endif
