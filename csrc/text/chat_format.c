/* chat_format.c - Python/Jinja value semantics and Gemma argument / declaration syntax for the
 * chat template (see chat_format.h). The declaration code follows the template's
 * format_parameters / format_function_declaration macros branch by branch, including their
 * oddities (a parameters block without "type" is never closed; a list-valued "type" prints as
 * an upper-cased Python list repr). */
#include "text/chat_format.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text/utf8.h"

#define Q "<|\"|>"

/* <|"|>s<|"|> with s user text. */
static int put_quoted_user(g4_strbuf *b, const char *s) {
    return g4_strbuf_puts(b, Q) || g4_strbuf_puts_user(b, s) || g4_strbuf_puts(b, Q);
}

int g4_py_truthy(const cJSON *v) {
    if (!v || cJSON_IsNull(v) || cJSON_IsFalse(v)) return 0;
    if (cJSON_IsNumber(v)) return v->valuedouble != 0;
    if (cJSON_IsString(v)) return v->valuestring[0] != 0;
    if (cJSON_IsArray(v) || cJSON_IsObject(v)) return v->child != NULL;
    return 1;
}

void g4_py_number(double x, char out[32]) {
    if (x == 0) x = 0; /* JSON -0 is the integer 0 in Python (-0.0 would print "-0.0": see the header) */
    if (x == floor(x) && fabs(x) < 9007199254740992.0) {
        snprintf(out, 32, "%.0f", x);
        return;
    }
    if (isnan(x) || isinf(x)) {
        snprintf(out, 32, isnan(x) ? "nan" : x > 0 ? "inf" : "-inf");
        return;
    }
    char buf[40];
    for (int p = 1; p <= 17; p++) { /* shortest round-trip digits, as repr() */
        snprintf(buf, sizeof buf, "%.*e", p - 1, x);
        if (strtod(buf, NULL) == x) break;
    }
    const char *s = buf;
    char digits[24];
    int nd = 0, neg = 0;
    if (*s == '-') neg = 1, s++;
    for (; *s && *s != 'e'; s++)
        if (*s != '.') digits[nd++] = *s;
    int e = atoi(s + 1);
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    char *o = out;
    if (neg) *o++ = '-';
    if (e >= -4 && e < 16) {
        if (e >= 0) {
            for (int i = 0; i <= e; i++) *o++ = i < nd ? digits[i] : '0';
            *o++ = '.';
            if (nd > e + 1)
                for (int i = e + 1; i < nd; i++) *o++ = digits[i];
            else *o++ = '0';
        } else {
            *o++ = '0', *o++ = '.';
            for (int i = 0; i < -e - 1; i++) *o++ = '0';
            for (int i = 0; i < nd; i++) *o++ = digits[i];
        }
        *o = 0;
    } else {
        *o++ = digits[0];
        if (nd > 1) {
            *o++ = '.';
            for (int i = 1; i < nd; i++) *o++ = digits[i];
        }
        char ex[16];
        snprintf(ex, sizeof ex, "e%c%02d", e < 0 ? '-' : '+', e < 0 ? -e : e);
        memcpy(o, ex, strlen(ex) + 1);
    }
}

/* Python repr() of a string: single quotes unless it holds ' and no ". */
static int py_repr_str(g4_strbuf *b, const char *s) {
    char q = strchr(s, '\'') && !strchr(s, '"') ? '"' : '\'';
    int rc = g4_strbuf_putc(b, q);
    for (const unsigned char *p = (const unsigned char *)s; *p && !rc; p++) {
        if (*p == '\\' || *p == (unsigned char)q) rc = g4_strbuf_putc(b, '\\') || g4_strbuf_putc(b, (char)*p);
        else if (*p == '\n') rc = g4_strbuf_puts(b, "\\n");
        else if (*p == '\r') rc = g4_strbuf_puts(b, "\\r");
        else if (*p == '\t') rc = g4_strbuf_puts(b, "\\t");
        else if (*p < 0x20 || *p == 0x7f) rc = g4_strbuf_printf(b, "\\x%02x", *p);
        else rc = g4_strbuf_putc(b, (char)*p);
    }
    return rc || g4_strbuf_putc(b, q);
}

static int py_repr(g4_strbuf *b, const cJSON *v) {
    if (cJSON_IsString(v)) return py_repr_str(b, v->valuestring);
    if (cJSON_IsArray(v)) {
        int rc = g4_strbuf_putc(b, '[');
        for (const cJSON *c = v->child; c && !rc; c = c->next) {
            if (c != v->child) rc = g4_strbuf_puts(b, ", ");
            if (!rc) rc = py_repr(b, c);
        }
        return rc || g4_strbuf_putc(b, ']');
    }
    if (cJSON_IsObject(v)) {
        int n, oom, rc = g4_strbuf_putc(b, '{');
        const cJSON **kv = g4_dict_items(v, &n, &oom);
        for (int i = 0; i < n && !rc; i++)
            rc = (i && g4_strbuf_puts(b, ", ")) || py_repr_str(b, kv[i]->string) || g4_strbuf_puts(b, ": ") ||
                 py_repr(b, kv[i]);
        free(kv);
        return rc || oom || g4_strbuf_putc(b, '}');
    }
    return g4_py_str(b, v);
}

static int py_str(g4_strbuf *b, const cJSON *v);

/* str(v) of a caller's value: user text (see g4_strbuf.user). */
int g4_py_str(g4_strbuf *b, const cJSON *v) {
    g4_strbuf_user_begin(b);
    int rc = py_str(b, v);
    g4_strbuf_user_end(b);
    return rc;
}

static int py_str(g4_strbuf *b, const cJSON *v) {
    if (!v) return 0;
    if (cJSON_IsString(v)) return g4_strbuf_puts(b, v->valuestring);
    if (cJSON_IsNull(v)) return g4_strbuf_puts(b, "None");
    if (cJSON_IsTrue(v)) return g4_strbuf_puts(b, "True");
    if (cJSON_IsFalse(v)) return g4_strbuf_puts(b, "False");
    if (cJSON_IsNumber(v)) {
        char num[32];
        g4_py_number(v->valuedouble, num);
        return g4_strbuf_puts(b, num);
    }
    if (cJSON_IsRaw(v)) return g4_strbuf_puts(b, v->valuestring);
    return py_repr(b, v);
}

int g4_py_equal(const cJSON *a, const cJSON *b) {
    int na = !a || cJSON_IsNull(a), nb = !b || cJSON_IsNull(b);
    if (na || nb) return na && nb;
    if (cJSON_IsString(a) && cJSON_IsString(b)) return !strcmp(a->valuestring, b->valuestring);
    double x, y;
    if (cJSON_IsString(a) || cJSON_IsString(b)) return 0;
    if (!(cJSON_IsNumber(a) || cJSON_IsBool(a)) || !(cJSON_IsNumber(b) || cJSON_IsBool(b))) return 0;
    x = cJSON_IsBool(a) ? cJSON_IsTrue(a) : a->valuedouble;
    y = cJSON_IsBool(b) ? cJSON_IsTrue(b) : b->valuedouble;
    return x == y;
}

typedef struct dict_item {
    const cJSON *kv;
    int order;
} dict_item;

static int by_key_then_order(const void *pa, const void *pb) {
    const dict_item *a = pa, *b = pb;
    int c = strcmp(a->kv->string, b->kv->string);
    return c ? c : a->order - b->order;
}

static int by_order(const void *pa, const void *pb) {
    return ((const dict_item *)pa)->order - ((const dict_item *)pb)->order;
}

const cJSON *g4_py_get(const cJSON *obj, const char *key) {
    const cJSON *hit = NULL;
    if (cJSON_IsObject(obj))
        for (const cJSON *c = obj->child; c; c = c->next)
            if (c->string && !strcmp(c->string, key)) hit = c;
    return hit;
}

const cJSON **g4_dict_items(const cJSON *obj, int *n, int *oom) {
    *n = 0;
    if (oom) *oom = 0;
    int cnt = 0;
    for (const cJSON *c = cJSON_IsObject(obj) ? obj->child : NULL; c; c = c->next) cnt++;
    if (!cnt) return NULL;
    const cJSON **a = malloc(sizeof *a * (size_t)cnt);
    dict_item *it = malloc(sizeof *it * (size_t)cnt);
    if (!a || !it) {
        free(a);
        free(it);
        if (oom) *oom = 1;
        return NULL;
    }
    int i = 0;
    for (const cJSON *c = obj->child; c; c = c->next, i++) it[i] = (dict_item){c, i};
    /* Group equal keys (O(n log n)): the group's first position takes its last value. */
    qsort(it, (size_t)cnt, sizeof *it, by_key_then_order);
    int kept = 0;
    for (i = 0; i < cnt;) {
        int j = i;
        while (j + 1 < cnt && !strcmp(it[j + 1].kv->string, it[i].kv->string)) j++;
        it[kept++] = (dict_item){it[j].kv, it[i].order};
        i = j + 1;
    }
    qsort(it, (size_t)kept, sizeof *it, by_order);
    for (i = 0; i < kept; i++) a[i] = it[i].kv;
    free(it);
    *n = kept;
    return a;
}

static int lower_cmp(const char *a, const char *b) {
    for (;; a++, b++) {
        unsigned char x = (unsigned char)*a, y = (unsigned char)*b;
        if (x >= 'A' && x <= 'Z') x += 32;
        if (y >= 'A' && y <= 'Z') y += 32;
        if (x != y || !x) return (int)x - (int)y;
    }
}

static int dict_item_cmp(const void *pa, const void *pb) {
    const dict_item *a = pa, *b = pb;
    int c = lower_cmp(a->kv->string, b->kv->string);
    return c ? c : a->order - b->order; /* stable, as the template's dictsort */
}

const cJSON **g4_dictsort(const cJSON *obj, int *n) {
    const cJSON **a = g4_dict_items(obj, n, NULL);
    dict_item *it = a ? malloc(sizeof *it * (size_t)*n) : NULL;
    if (!it) {
        free(a);
        *n = 0;
        return NULL;
    }
    for (int i = 0; i < *n; i++) it[i] = (dict_item){a[i], i};
    qsort(it, (size_t)*n, sizeof *it, dict_item_cmp); /* O(n log n): objects can be large */
    for (int i = 0; i < *n; i++) a[i] = it[i].kv;
    free(it);
    return a;
}

void g4_ascii_upper(char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] >= 'a' && s[i] <= 'z') s[i] -= 32;
}

int g4_gemma_format_argument(g4_strbuf *b, const cJSON *v, int escape_keys) {
    if (!v) return 0;
    if (cJSON_IsNull(v)) return g4_strbuf_puts(b, "null");
    if (cJSON_IsString(v)) return put_quoted_user(b, v->valuestring);
    if (cJSON_IsBool(v)) return g4_strbuf_puts(b, cJSON_IsTrue(v) ? "true" : "false");
    if (cJSON_IsObject(v)) {
        int n, rc = g4_strbuf_putc(b, '{');
        const cJSON **kv = g4_dictsort(v, &n);
        if (!kv && v->child) return -1;
        for (int i = 0; i < n && !rc; i++) {
            if (i) rc = g4_strbuf_putc(b, ',');
            if (!rc) rc = escape_keys ? put_quoted_user(b, kv[i]->string) : g4_strbuf_puts_user(b, kv[i]->string);
            if (!rc) rc = g4_strbuf_putc(b, ':') || g4_gemma_format_argument(b, kv[i], escape_keys);
        }
        free(kv);
        return rc || g4_strbuf_putc(b, '}');
    }
    if (cJSON_IsArray(v)) {
        int rc = g4_strbuf_putc(b, '[');
        for (const cJSON *c = v->child; c && !rc; c = c->next) {
            if (c != v->child) rc = g4_strbuf_putc(b, ',');
            if (!rc) rc = g4_gemma_format_argument(b, c, escape_keys);
        }
        return rc || g4_strbuf_putc(b, ']');
    }
    return g4_py_str(b, v);
}

/* ---- declarations ----------------------------------------------------------------------- */

static const cJSON *get(const cJSON *o, const char *key) { return g4_py_get(o, key); }

/* str(v).upper() into a fresh buffer (caller frees u->data). */
static int upper_of(g4_strbuf *u, const cJSON *v) {
    if (g4_py_str(u, v) || g4_strbuf_reserve(u, 0)) return -1;
    if (u->data) u->data[u->len] = 0;
    g4_ascii_upper(u->data, u->len);
    return 0;
}

static int is_type(const g4_strbuf *u, const char *t) {
    return u->len == strlen(t) && (u->len == 0 || !memcmp(u->data, t, u->len));
}

static int comma(g4_strbuf *b, int *add_comma) {
    if (*add_comma) return g4_strbuf_putc(b, ',');
    *add_comma = 1;
    return 0;
}

/* list(v) as Python iterates v: a list's items, a dict's keys, a string's characters. *list is
 * v itself for a list, else *tmp (a new array the caller deletes). 1 when v is not iterable
 * (null, a number, a boolean: the template raises), -1 when out of memory. */
static int py_list(const cJSON *v, const cJSON **list, cJSON **tmp) {
    *tmp = NULL;
    *list = v;
    if (cJSON_IsArray(v)) return 0;
    if (!cJSON_IsObject(v) && !cJSON_IsString(v)) return 1;
    cJSON *a = cJSON_CreateArray();
    int rc = a ? 0 : -1;
    if (cJSON_IsObject(v)) {
        int n, oom;
        const cJSON **kv = g4_dict_items(v, &n, &oom);
        rc = rc || oom;
        for (int i = 0; i < n && !rc; i++) rc = !cJSON_AddItemToArray(a, cJSON_CreateString(kv[i]->string));
        free(kv);
    } else {
        const char *p = v->valuestring;
        size_t len = strlen(p);
        for (size_t i = 0; i < len && !rc;) {
            uint32_t cp;
            int l = g4_utf8_next(p + i, len - i, &cp);
            char one[5] = {0};
            if (l <= 0) l = 1; /* not UTF-8 (cannot come from a JSON parser): one byte */
            memcpy(one, p + i, (size_t)l);
            rc = !cJSON_AddItemToArray(a, cJSON_CreateString(one));
            i += (size_t)l;
        }
    }
    if (rc) {
        cJSON_Delete(a);
        return -1;
    }
    *list = *tmp = a;
    return 0;
}

/* required:[<|"|>a<|"|>,...] for `for item in required` (items printed with str()). */
static int required_list(g4_strbuf *b, const cJSON *req, const char **why) {
    const cJSON *list;
    cJSON *tmp;
    int r = py_list(req, &list, &tmp);
    if (r > 0)
        *why = "a 'required' field must be a list of property names (the template cannot iterate a "
               "number, a boolean or null)";
    int rc = r || g4_strbuf_puts(b, "required:[");
    for (const cJSON *c = rc ? NULL : list->child; c && !rc; c = c->next) {
        if (c != list->child) rc = g4_strbuf_putc(b, ',');
        rc = rc || g4_strbuf_puts(b, Q) || g4_py_str(b, c) || g4_strbuf_puts(b, Q);
    }
    cJSON_Delete(tmp);
    return rc || g4_strbuf_putc(b, ']');
}

static int format_parameters(g4_strbuf *b, const cJSON *props, int filter_keys, const char **why);

static int format_items(g4_strbuf *b, const cJSON *items, const char **why) {
    int n, rc = g4_strbuf_puts(b, "items:{"), found_first = 0;
    const cJSON **kv = g4_dictsort(items, &n);
    for (int i = 0; i < n && !rc; i++) {
        const cJSON *iv = kv[i];
        const char *ik = iv->string;
        if (cJSON_IsNull(iv)) continue;
        if (found_first) rc = g4_strbuf_putc(b, ',');
        found_first = 1;
        if (rc) break;
        if (!strcmp(ik, "properties")) {
            rc = g4_strbuf_puts(b, "properties:{") || (cJSON_IsObject(iv) && format_parameters(b, iv, 0, why)) ||
                 g4_strbuf_putc(b, '}');
        } else if (!strcmp(ik, "required")) {
            rc = required_list(b, iv, why);
        } else if (!strcmp(ik, "type")) {
            rc = g4_strbuf_puts(b, "type:");
            if (cJSON_IsString(iv)) {
                g4_strbuf u = {0};
                rc = rc || upper_of(&u, iv) || g4_strbuf_puts(b, Q) ||
                     g4_strbuf_append_user(b, u.data ? u.data : "", u.len) || g4_strbuf_puts(b, Q);
                g4_strbuf_free(&u);
            } else { /* map('upper') | list, then format_argument */
                const cJSON *list;
                cJSON *tmp = NULL;
                int r = rc ? -1 : py_list(iv, &list, &tmp);
                if (r > 0)
                    *why = "items.type must be a string or a list of type names (the template cannot iterate a "
                           "number or a boolean)";
                rc = r || g4_strbuf_putc(b, '[');
                for (const cJSON *c = rc ? NULL : list->child; c && !rc; c = c->next) {
                    g4_strbuf u = {0};
                    if (c != list->child) rc = g4_strbuf_putc(b, ',');
                    rc = rc || upper_of(&u, c) || g4_strbuf_puts(b, Q) ||
                         g4_strbuf_append_user(b, u.data ? u.data : "", u.len) || g4_strbuf_puts(b, Q);
                    g4_strbuf_free(&u);
                }
                cJSON_Delete(tmp);
                rc = rc || g4_strbuf_putc(b, ']');
            }
        } else {
            rc = g4_strbuf_puts_user(b, ik) || g4_strbuf_putc(b, ':') || g4_gemma_format_argument(b, iv, 1);
        }
    }
    free(kv);
    return rc || g4_strbuf_putc(b, '}');
}

static int is_standard_key(const char *k) {
    return !strcmp(k, "description") || !strcmp(k, "type") || !strcmp(k, "properties") || !strcmp(k, "required") ||
           !strcmp(k, "nullable");
}

static int format_parameters(g4_strbuf *b, const cJSON *props, int filter_keys, const char **why) {
    int n, rc = 0, found_first = 0;
    const cJSON **kv = g4_dictsort(props, &n);
    for (int i = 0; i < n && !rc; i++) {
        const cJSON *value = kv[i];
        const char *key = value->string;
        if (filter_keys && is_standard_key(key)) continue;
        if (found_first) rc = g4_strbuf_putc(b, ',');
        found_first = 1;
        int add_comma = 0;
        rc = rc || g4_strbuf_puts_user(b, key) || g4_strbuf_puts(b, ":{");
        const cJSON *desc = get(value, "description");
        if (g4_py_truthy(desc)) {
            rc = rc || g4_strbuf_puts(b, "description:" Q) || g4_py_str(b, desc) || g4_strbuf_puts(b, Q);
            add_comma = 1;
        }
        g4_strbuf type = {0};
        rc = rc || upper_of(&type, get(value, "type"));
        if (is_type(&type, "STRING")) {
            const cJSON *en = get(value, "enum");
            if (g4_py_truthy(en))
                rc = rc || comma(b, &add_comma) || g4_strbuf_puts(b, "enum:") || g4_gemma_format_argument(b, en, 1);
        } else if (is_type(&type, "ARRAY")) {
            const cJSON *items = get(value, "items");
            if (cJSON_IsObject(items) && items->child) rc = rc || comma(b, &add_comma) || format_items(b, items, why);
        }
        if (g4_py_truthy(get(value, "nullable"))) rc = rc || comma(b, &add_comma) || g4_strbuf_puts(b, "nullable:true");
        if (is_type(&type, "OBJECT")) {
            const cJSON *p = get(value, "properties");
            if (p && cJSON_IsObject(p)) {
                rc = rc || comma(b, &add_comma) || g4_strbuf_puts(b, "properties:{") ||
                     format_parameters(b, p, 0, why) || g4_strbuf_putc(b, '}');
            } else if (cJSON_IsObject(value)) {
                rc = rc || comma(b, &add_comma) || g4_strbuf_puts(b, "properties:{") ||
                     format_parameters(b, value, 1, why) || g4_strbuf_putc(b, '}');
            }
            const cJSON *req = get(value, "required");
            if (g4_py_truthy(req)) rc = rc || comma(b, &add_comma) || required_list(b, req, why);
        }
        rc = rc || comma(b, &add_comma) || g4_strbuf_puts(b, "type:" Q) ||
             g4_strbuf_append_user(b, type.data ? type.data : "", type.len) || g4_strbuf_puts(b, Q "}");
        g4_strbuf_free(&type);
    }
    free(kv);
    return rc;
}

int g4_gemma_format_declaration(g4_strbuf *out, const cJSON *tool, const char **why) {
    const cJSON *fn = get(tool, "function");
    if (!fn || cJSON_IsNull(fn) || cJSON_IsNumber(fn) || cJSON_IsBool(fn)) { /* `'response' in fn` raises */
        *why = "function is missing or not an object";
        return -1;
    }
    int has_response = 0; /* the template's `'response' in tool_data['function']` */
    if (cJSON_IsObject(fn)) has_response = get(fn, "response") != NULL;
    else if (cJSON_IsString(fn)) has_response = strstr(fn->valuestring, "response") != NULL;
    else
        for (const cJSON *c = fn->child; c && !has_response; c = c->next)
            has_response = cJSON_IsString(c) && !strcmp(c->valuestring, "response");
    if (has_response && !cJSON_IsObject(fn)) { /* fn['response'] is undefined; its ['description'] raises */
        *why = "function must be an object";
        return -1;
    }
    *why = "out of memory";
    g4_strbuf b = {0};
    int rc = (out->tracking && g4_strbuf_track_user(&b)) || g4_strbuf_puts(&b, "declaration:") ||
             g4_py_str(&b, get(fn, "name")) || g4_strbuf_puts(&b, "{description:" Q) ||
             g4_py_str(&b, get(fn, "description")) || g4_strbuf_puts(&b, Q);
    const cJSON *params = get(fn, "parameters");
    if (g4_py_truthy(params)) {
        rc = rc || g4_strbuf_puts(&b, ",parameters:{");
        const cJSON *props = get(params, "properties"), *req = get(params, "required");
        if (g4_py_truthy(props) && !cJSON_IsObject(props)) { /* dictsort calls .items() and raises */
            g4_strbuf_free(&b);
            *why = "function.parameters.properties must be an object";
            return -1;
        }
        if (g4_py_truthy(props))
            rc = rc || g4_strbuf_puts(&b, "properties:{") || format_parameters(&b, props, 0, why) ||
                 g4_strbuf_puts(&b, "},");
        if (g4_py_truthy(req)) rc = rc || required_list(&b, req, why) || g4_strbuf_putc(&b, ',');
        const cJSON *type = get(params, "type");
        if (g4_py_truthy(type)) {
            g4_strbuf u = {0};
            rc = rc || upper_of(&u, type) || g4_strbuf_puts(&b, "type:" Q) ||
                 g4_strbuf_append_user(&b, u.data ? u.data : "", u.len) || g4_strbuf_puts(&b, Q "}");
            g4_strbuf_free(&u);
        }
    }
    if (has_response) {
        const cJSON *resp = get(fn, "response");
        rc = rc || g4_strbuf_puts(&b, ",response:{");
        const cJSON *desc = get(resp, "description");
        if (g4_py_truthy(desc))
            rc = rc || g4_strbuf_puts(&b, "description:" Q) || g4_py_str(&b, desc) || g4_strbuf_puts(&b, Q ",");
        g4_strbuf u = {0};
        rc = rc || upper_of(&u, get(resp, "type"));
        if (!rc && is_type(&u, "OBJECT"))
            rc = g4_strbuf_puts(&b, "type:" Q) || g4_strbuf_append_user(&b, u.data, u.len) || g4_strbuf_puts(&b, Q "}");
        g4_strbuf_free(&u);
    }
    rc = rc || g4_strbuf_putc(&b, '}');
    if (!rc) { /* | trim */
        size_t s, e;
        g4_utf8_strip(b.data, b.len, &s, &e);
        rc = g4_strbuf_append_from(out, &b, s, e - s);
    }
    g4_strbuf_free(&b);
    return rc;
}
