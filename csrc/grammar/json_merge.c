/* json_merge.c - allOf (and sibling keywords) merged into one schema, and the disjointness test
 * that lets oneOf be compiled exactly. Refuses what it cannot merge exactly. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "grammar/json_schema_impl.h"

const cJSON *g4_js_deref(js *j, const cJSON *s, int *err) {
    for (int k = 0; k < 64; k++) {
        if (!cJSON_IsObject(s)) return s;
        const cJSON *r = cJSON_GetObjectItemCaseSensitive(s, "$ref");
        if (!r) return s;
        if (cJSON_GetArraySize(s) > 1) return s; /* siblings: flattened by the caller */
        if (!cJSON_IsString(r)) {
            *err = g4_js_fail(j, "$ref must be a string%s", "");
            return NULL;
        }
        s = g4_js_resolve_ref(j, r->valuestring);
        if (!s) {
            *err = -1;
            return NULL;
        }
    }
    *err = g4_js_fail(j, "$ref chain too long%s", "");
    return NULL;
}

/* Appends the conjuncts of s to list (resolving $ref, flattening allOf). */
int g4_js_conjuncts(js *j, const cJSON *s, const cJSON ***list, int *n, int *cap, int depth) {
    if (depth > 32) return g4_js_fail(j, "allOf / $ref nesting too deep to merge (recursive allOf?)%s", "");
    int err = 0;
    s = g4_js_deref(j, s, &err);
    if (err) return -1;
    if (cJSON_IsTrue(s)) return 0;
    if (*n == *cap) {
        int nc = *cap ? *cap * 2 : 8;
        void *q = realloc(*list, (size_t)nc * sizeof **list);
        if (!q) return g4_js_fail(j, "out of memory%s", "");
        *list = q;
        *cap = nc;
    }
    if (!cJSON_IsObject(s)) {
        (*list)[(*n)++] = s;
        return 0;
    }
    const cJSON *all = cJSON_GetObjectItemCaseSensitive(s, "allOf");
    const cJSON *ref = cJSON_GetObjectItemCaseSensitive(s, "$ref");
    if (!all && !ref) {
        (*list)[(*n)++] = s;
        return 0;
    }
    /* the rest of s without allOf / $ref */
    cJSON *rest = cJSON_CreateObject();
    if (g4_js_own(j, rest)) return -1;
    const cJSON *e;
    cJSON_ArrayForEach(e, s) {
        if (!strcmp(e->string, "allOf") || !strcmp(e->string, "$ref")) continue;
        cJSON_AddItemReferenceToObject(rest, e->string, (cJSON *)e);
    }
    (*list)[(*n)++] = rest;
    if (ref) {
        if (!cJSON_IsString(ref)) return g4_js_fail(j, "$ref must be a string%s", "");
        const cJSON *t = g4_js_resolve_ref(j, ref->valuestring);
        if (!t || g4_js_conjuncts(j, t, list, n, cap, depth + 1)) return -1;
    }
    if (all) {
        if (!cJSON_IsArray(all) || !cJSON_GetArraySize(all))
            return g4_js_fail(j, "allOf must be a non-empty array%s", "");
        cJSON_ArrayForEach(e, all) if (g4_js_conjuncts(j, e, list, n, cap, depth + 1)) return -1;
    }
    return 0;
}

static cJSON *type_array(int m) {
    cJSON *a = cJSON_CreateArray();
    const char *names[] = {"null", "boolean", "object", "array", "string", "number", "integer"};
    for (int i = 0; i < 7; i++)
        if (m & (1 << i)) cJSON_AddItemToArray(a, cJSON_CreateString(names[i]));
    return a;
}

/* Merges the conjuncts into one schema (owned by j). NULL on a refusal. */
const cJSON *g4_js_merge(js *j, const cJSON *const *list, int n) {
    cJSON *m = cJSON_CreateObject();
    if (g4_js_own(j, m)) return NULL;
    int types = T_ALL | T_INTEGER, any_false = 0;
    /* items counts from the end of its own schema's prefixItems: it cannot move to another part */
    for (int a = 0; a < n; a++)
        for (int b = 0; b < n; b++) {
            if (a == b || !cJSON_IsObject(list[a]) || !cJSON_IsObject(list[b])) continue;
            const cJSON *pa = cJSON_GetObjectItemCaseSensitive(list[a], "prefixItems");
            const cJSON *pb = cJSON_GetObjectItemCaseSensitive(list[b], "prefixItems");
            const cJSON *ia = cJSON_GetObjectItemCaseSensitive(list[a], "items");
            const cJSON *ib = cJSON_GetObjectItemCaseSensitive(list[b], "items");
            if ((ia && cJSON_IsArray(ia)) || (ib && cJSON_IsArray(ib)) || (ia && pb && !cJSON_Compare(pa, pb, 1))) {
                if (ia && (pb || (ib && cJSON_IsArray(ib)) || cJSON_IsArray(ia))) {
                    g4_js_fail(j, "allOf: items / prefixItems in different parts cannot be merged%s", "");
                    return NULL;
                }
            }
        }
    for (int i = 0; i < n; i++) {
        const cJSON *s = list[i];
        if (cJSON_IsFalse(s)) {
            any_false = 1;
            continue;
        }
        if (!cJSON_IsObject(s)) {
            g4_js_fail(j, "a schema must be an object or a boolean%s", "");
            return NULL;
        }
        const cJSON *e;
        cJSON_ArrayForEach(e, s) {
            const char *k = e->string;
            if (g4_js_in_list(G4_JS_ANNOTATIONS, k)) continue;
            if (!g4_js_in_list(G4_JS_KEYWORDS, k)) {
                g4_js_fail(j, "keyword '%s' is not supported", k);
                return NULL;
            }
            if (!strcmp(k, "type") || !strcmp(k, "nullable")) continue;
            cJSON *cur = cJSON_GetObjectItemCaseSensitive(m, k);
            if (!cur) {
                cJSON_AddItemReferenceToObject(m, k, (cJSON *)e);
                continue;
            }
            if (cJSON_Compare(cur, e, 1)) continue;
            if (!strcmp(k, "required")) {
                cJSON *u = cJSON_Duplicate(cur, 1);
                const cJSON *x;
                cJSON_ArrayForEach(x, e) cJSON_AddItemToArray(u, cJSON_Duplicate(x, 1));
                cJSON_ReplaceItemInObjectCaseSensitive(m, k, u);
            } else if (!strcmp(k, "properties")) {
                cJSON *u = cJSON_CreateObject();
                const cJSON *x;
                cJSON_ArrayForEach(x, cur) {
                    const cJSON *y = cJSON_GetObjectItemCaseSensitive(e, x->string);
                    if (!y) {
                        cJSON_AddItemReferenceToObject(u, x->string, (cJSON *)x);
                        continue;
                    }
                    cJSON *both = cJSON_CreateObject(), *arr = cJSON_CreateArray();
                    cJSON_AddItemReferenceToArray(arr, (cJSON *)x);
                    cJSON_AddItemReferenceToArray(arr, (cJSON *)y);
                    cJSON_AddItemToObject(both, "allOf", arr);
                    cJSON_AddItemToObject(u, x->string, both);
                }
                cJSON_ArrayForEach(x, e) if (!cJSON_GetObjectItemCaseSensitive(cur, x->string))
                    cJSON_AddItemReferenceToObject(u, x->string, (cJSON *)x);
                cJSON_ReplaceItemInObjectCaseSensitive(m, k, u);
            } else if (!strcmp(k, "minimum") || !strcmp(k, "minLength") || !strcmp(k, "minItems") ||
                       (!strcmp(k, "exclusiveMinimum") && cJSON_IsNumber(e) && cJSON_IsNumber(cur))) {
                if (!cJSON_IsNumber(e) || !cJSON_IsNumber(cur)) {
                    g4_js_fail(j, "allOf: cannot merge '%s'", k);
                    return NULL;
                }
                if (e->valuedouble > cur->valuedouble)
                    cJSON_ReplaceItemInObjectCaseSensitive(m, k, cJSON_Duplicate(e, 1));
            } else if (!strcmp(k, "maximum") || !strcmp(k, "maxLength") || !strcmp(k, "maxItems") ||
                       (!strcmp(k, "exclusiveMaximum") && cJSON_IsNumber(e) && cJSON_IsNumber(cur))) {
                if (!cJSON_IsNumber(e) || !cJSON_IsNumber(cur)) {
                    g4_js_fail(j, "allOf: cannot merge '%s'", k);
                    return NULL;
                }
                if (e->valuedouble < cur->valuedouble)
                    cJSON_ReplaceItemInObjectCaseSensitive(m, k, cJSON_Duplicate(e, 1));
            } else if (!strcmp(k, "items") && !cJSON_IsArray(e) && !cJSON_IsArray(cur)) {
                cJSON *both = cJSON_CreateObject(), *arr = cJSON_CreateArray();
                cJSON_AddItemToArray(arr, cJSON_Duplicate(cur, 1));
                cJSON_AddItemReferenceToArray(arr, (cJSON *)e);
                cJSON_AddItemToObject(both, "allOf", arr);
                cJSON_ReplaceItemInObjectCaseSensitive(m, k, both);
            } else {
                g4_js_fail(j, "allOf: cannot merge two different '%s'", k);
                return NULL;
            }
        }
        int t = g4_js_types_of(j, s);
        if (t < 0) return NULL;
        /* intersect with integer inside number */
        int tt = t & T_NUMBER ? t | T_INTEGER : t;
        types &= tt;
    }
    if (any_false) {
        cJSON *f = cJSON_CreateFalse();
        return g4_js_own(j, f) ? NULL : f;
    }
    if (types & T_NUMBER) types &= ~T_INTEGER;
    if ((types & (T_ALL | T_INTEGER)) != (T_ALL)) {
        if (!types) {
            cJSON *f = cJSON_CreateFalse();
            return g4_js_own(j, f) ? NULL : f;
        }
        cJSON_AddItemToObject(m, "type", type_array(types));
    }
    /* additionalProperties of a part constrains the properties the other parts add */
    cJSON *props = cJSON_GetObjectItemCaseSensitive(m, "properties");
    int n_addl = 0;
    for (int i = 0; i < n; i++)
        if (cJSON_IsObject(list[i]) && cJSON_GetObjectItemCaseSensitive(list[i], "additionalProperties")) n_addl++;
    if (n_addl && props) { /* a private copy: the entries are rewritten below */
        cJSON *dup = cJSON_Duplicate(props, 1);
        if (!dup) {
            g4_js_fail(j, "out of memory%s", "");
            return NULL;
        }
        cJSON_ReplaceItemInObjectCaseSensitive(m, "properties", dup);
        props = dup;
    }
    if (n_addl) {
        cJSON *all_addl = cJSON_CreateArray();
        for (int i = 0; i < n; i++) {
            const cJSON *a = cJSON_GetObjectItemCaseSensitive(list[i], "additionalProperties");
            if (!a) continue;
            cJSON_AddItemReferenceToArray(all_addl, (cJSON *)a);
            const cJSON *own_props = cJSON_GetObjectItemCaseSensitive(list[i], "properties");
            cJSON *x, *nx;
            for (x = props ? props->child : NULL; x; x = nx) {
                nx = x->next; /* x is replaced below */
                if (own_props && cJSON_GetObjectItemCaseSensitive(own_props, x->string)) continue;
                cJSON *both = cJSON_CreateObject(), *arr = cJSON_CreateArray();
                cJSON_AddItemToArray(arr, cJSON_Duplicate(x, 1));
                cJSON_AddItemReferenceToArray(arr, (cJSON *)a);
                cJSON_AddItemToObject(both, "allOf", arr);
                cJSON_ReplaceItemInObjectCaseSensitive(props, x->string, both);
            }
            /* required names that are not in properties are additional too: handled by object_grammar
             * through the merged additionalProperties below */
        }
        cJSON *both = cJSON_CreateObject();
        cJSON_AddItemToObject(both, "allOf", all_addl);
        cJSON_ReplaceItemInObjectCaseSensitive(m, "additionalProperties", both);
    }
    return m;
}

/* ------------------------------------------------------------------ anyOf / oneOf */

/* 1 when no instance can be valid for both a and b (by type and by enum/const values). */
static int in_required(const cJSON *s, const char *name) {
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(s, "required"), *e;
    cJSON_ArrayForEach(e, r) if (cJSON_IsString(e) && !strcmp(e->valuestring, name)) return 1;
    return 0;
}

int g4_js_disjoint(js *j, const cJSON *a, const cJSON *b, int depth) {
    if (depth > 8) return 0;
    int err = 0;
    a = g4_js_deref(j, a, &err);
    if (err) return -1;
    b = g4_js_deref(j, b, &err);
    if (err) return -1;
    if (cJSON_IsFalse(a) || cJSON_IsFalse(b)) return 1;
    if (!cJSON_IsObject(a) || !cJSON_IsObject(b)) return 0;
    if (cJSON_GetObjectItemCaseSensitive(a, "$ref") || cJSON_GetObjectItemCaseSensitive(b, "$ref") ||
        cJSON_GetObjectItemCaseSensitive(a, "allOf") || cJSON_GetObjectItemCaseSensitive(b, "allOf") ||
        cJSON_GetObjectItemCaseSensitive(a, "anyOf") || cJSON_GetObjectItemCaseSensitive(b, "anyOf") ||
        cJSON_GetObjectItemCaseSensitive(a, "oneOf") || cJSON_GetObjectItemCaseSensitive(b, "oneOf"))
        return 0;
    int ta = g4_js_types_of(j, a), tb = g4_js_types_of(j, b);
    if (ta < 0 || tb < 0) return -1;
    if (ta & T_NUMBER) ta |= T_INTEGER;
    if (tb & T_NUMBER) tb |= T_INTEGER;
    if (!(ta & tb)) return 1;
    const cJSON *va = cJSON_GetObjectItemCaseSensitive(a, "const"), *vb = cJSON_GetObjectItemCaseSensitive(b, "const");
    const cJSON *ea = cJSON_GetObjectItemCaseSensitive(a, "enum"), *eb = cJSON_GetObjectItemCaseSensitive(b, "enum");
    if ((va || ea) && (vb || eb)) {
        cJSON *la = va ? cJSON_CreateArray() : NULL, *lb = vb ? cJSON_CreateArray() : NULL;
        if (la) cJSON_AddItemReferenceToArray(la, (cJSON *)va);
        if (lb) cJSON_AddItemReferenceToArray(lb, (cJSON *)vb);
        const cJSON *xa = la ? la : ea, *xb = lb ? lb : eb, *x, *y;
        int overlap = 0;
        cJSON_ArrayForEach(x, xa) cJSON_ArrayForEach(y, xb) {
            if (cJSON_Compare(x, y, 1)) overlap = 1;
            if (cJSON_IsNumber(x) && cJSON_IsNumber(y) && x->valuedouble == y->valuedouble) overlap = 1;
        }
        cJSON_Delete(la);
        cJSON_Delete(lb);
        return !overlap;
    }
    /* objects only, with a property both require whose schemas are disjoint (a discriminator) */
    if ((ta & tb) == T_OBJECT) {
        const cJSON *pa = cJSON_GetObjectItemCaseSensitive(a, "properties"),
                    *pb = cJSON_GetObjectItemCaseSensitive(b, "properties"), *x;
        cJSON_ArrayForEach(x, pa) {
            const cJSON *y = cJSON_GetObjectItemCaseSensitive(pb, x->string);
            if (!y || !in_required(a, x->string) || !in_required(b, x->string)) continue;
            int d = g4_js_disjoint(j, x, y, depth + 1);
            if (d) return d;
        }
    }
    return 0;
}
