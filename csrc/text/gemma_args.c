/* gemma_args.c - recursive-descent parser for Gemma's key:value call syntax, building cJSON
 * (see gemma_args.h). Numbers keep their literal text (cJSON raw nodes) so 12345678901234567890
 * is not rounded through a double. Nesting deeper than GEMMA_MAX_DEPTH is rejected, so hostile
 * model output cannot exhaust the stack. */
#include "text/gemma_args.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define DELIM "<|\"|>"
#define DELIM_LEN 5
#define GEMMA_MAX_DEPTH 64

typedef struct cursor {
    const char *s;
    size_t n, i;
} cursor;

static void skip_ws(cursor *c) {
    while (c->i < c->n && (c->s[c->i] == ' ' || c->s[c->i] == '\n' || c->s[c->i] == '\t' || c->s[c->i] == '\r')) c->i++;
}

static int at_delim(const cursor *c) { return c->n - c->i >= DELIM_LEN && !memcmp(c->s + c->i, DELIM, DELIM_LEN); }

/* <|"|>...<|"|> -> the raw text between (start/len), cursor after the closing delimiter. */
static int delimited(cursor *c, size_t *start, size_t *len) {
    c->i += DELIM_LEN;
    for (size_t j = c->i; j + DELIM_LEN <= c->n; j++) {
        if (!memcmp(c->s + j, DELIM, DELIM_LEN)) {
            *start = c->i;
            *len = j - c->i;
            c->i = j + DELIM_LEN;
            return 0;
        }
    }
    return -1;
}

static char *dup_range(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = 0;
    }
    return d;
}

static int is_json_number(const char *s) {
    const char *p = s;
    if (*p == '-') p++;
    if (*p == '0') p++;
    else if (*p >= '1' && *p <= '9')
        while (*p >= '0' && *p <= '9') p++;
    else return 0;
    if (*p == '.') {
        p++;
        if (!(*p >= '0' && *p <= '9')) return 0;
        while (*p >= '0' && *p <= '9') p++;
    }
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-') p++;
        if (!(*p >= '0' && *p <= '9')) return 0;
        while (*p >= '0' && *p <= '9') p++;
    }
    return *p == 0;
}

static int ieq(const char *a, const char *b) {
    for (; *a && *b; a++, b++) {
        char x = *a >= 'A' && *a <= 'Z' ? *a + 32 : *a, y = *b;
        if (x != y) return 0;
    }
    return !*a && !*b;
}

/* A bare word: true/false, null/none/nil, a number, else the (trimmed) text as a string. */
static cJSON *bare_value(const char *s, size_t n) {
    char *w = dup_range(s, n);
    if (!w) return NULL;
    cJSON *v;
    char *end;
    double d = strtod(w, &end);
    /* Decimal only, as Python's float(): strtod also reads hex ("0x1F" is 31 to it), which the
     * format's rule leaves a string. */
    int numeric =
        *end == 0 && strchr("+-.0123456789", w[0]) && strspn(w, "+-.0123456789eE") == strlen(w) && isfinite(d);
    if (!strcmp(w, "true")) v = cJSON_CreateTrue();
    else if (!strcmp(w, "false")) v = cJSON_CreateFalse();
    else if (ieq(w, "null") || ieq(w, "none") || ieq(w, "nil")) v = cJSON_CreateNull();
    else if (is_json_number(w)) v = cJSON_CreateRaw(w); /* keep the literal digits */
    else if (numeric) v = cJSON_CreateNumber(d);        /* "+3", ".5": Python float() accepts */
    else v = cJSON_CreateString(w);
    free(w);
    return v;
}

static cJSON *parse_value(cursor *c, int depth);

static cJSON *parse_object(cursor *c, int depth) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    c->i++; /* '{' */
    for (;;) {
        skip_ws(c);
        if (c->i >= c->n) goto bad;
        if (c->s[c->i] == '}') {
            c->i++;
            return o;
        }
        size_t ks, kl;
        if (at_delim(c)) {
            if (delimited(c, &ks, &kl)) goto bad;
            skip_ws(c);
            if (c->i >= c->n || c->s[c->i] != ':') goto bad;
        } else {
            ks = c->i;
            while (c->i < c->n && !strchr(":,{}[]", c->s[c->i])) c->i++;
            if (c->i >= c->n || c->s[c->i] != ':') goto bad;
            kl = c->i - ks;
            while (kl && strchr(" \t\r\n", c->s[ks + kl - 1])) kl--;
            if (!kl) goto bad;
        }
        c->i++; /* ':' */
        char *key = dup_range(c->s + ks, kl);
        cJSON *v = key ? parse_value(c, depth + 1) : NULL;
        if (!v) {
            free(key);
            goto bad;
        }
        if (cJSON_GetObjectItemCaseSensitive(o, key)) /* duplicate key: last one wins */
            cJSON_ReplaceItemInObjectCaseSensitive(o, key, v);
        else cJSON_AddItemToObject(o, key, v);
        free(key);
        skip_ws(c);
        if (c->i < c->n && c->s[c->i] == ',') c->i++;
        else if (!(c->i < c->n && c->s[c->i] == '}')) goto bad;
    }
bad:
    cJSON_Delete(o);
    return NULL;
}

static cJSON *parse_array(cursor *c, int depth) {
    cJSON *a = cJSON_CreateArray();
    if (!a) return NULL;
    c->i++; /* '[' */
    for (;;) {
        skip_ws(c);
        if (c->i >= c->n) goto bad;
        if (c->s[c->i] == ']') {
            c->i++;
            return a;
        }
        cJSON *v = parse_value(c, depth + 1);
        if (!v) goto bad;
        cJSON_AddItemToArray(a, v);
        skip_ws(c);
        if (c->i < c->n && c->s[c->i] == ',') c->i++;
        else if (!(c->i < c->n && c->s[c->i] == ']')) goto bad;
    }
bad:
    cJSON_Delete(a);
    return NULL;
}

static cJSON *parse_value(cursor *c, int depth) {
    if (depth > GEMMA_MAX_DEPTH) return NULL;
    skip_ws(c);
    if (c->i >= c->n) return NULL;
    if (at_delim(c)) {
        size_t s, l;
        if (delimited(c, &s, &l)) return NULL;
        char *str = dup_range(c->s + s, l);
        cJSON *v = str ? cJSON_CreateString(str) : NULL;
        free(str);
        return v;
    }
    if (c->s[c->i] == '{') return parse_object(c, depth);
    if (c->s[c->i] == '[') return parse_array(c, depth);
    size_t s = c->i;
    while (c->i < c->n && !strchr(",}]{[", c->s[c->i]) && !at_delim(c)) c->i++;
    size_t e = c->i;
    while (e > s && strchr(" \t\r\n", c->s[e - 1])) e--;
    if (e == s) return NULL;
    return bare_value(c->s + s, e - s);
}

static int emit(cJSON *v, g4_strbuf *json) {
    char *p = cJSON_PrintUnformatted(v);
    int rc = !p || g4_strbuf_puts(json, p);
    free(p);
    return rc ? -1 : 0;
}

int g4_gemma_value_to_json(const char *s, size_t n, g4_strbuf *json) {
    cursor c = {s, n, 0};
    cJSON *v = parse_value(&c, 0);
    skip_ws(&c);
    int rc = !v || c.i != n ? -1 : emit(v, json);
    cJSON_Delete(v);
    return rc;
}

int g4_gemma_parse_call(const char *s, size_t n, g4_strbuf *name, g4_strbuf *args_json) {
    cursor c = {s, n, 0};
    skip_ws(&c);
    if (n - c.i < 5 || memcmp(s + c.i, "call:", 5)) return -1;
    c.i += 5;
    size_t ns = c.i;
    while (c.i < n && s[c.i] != '{') {
        char ch = s[c.i];
        if (ch == ' ' || ch == '\n' || ch == '\t' || ch == '\r' || ch == '<' || ch == '}') return -1;
        c.i++;
    }
    if (c.i >= n || c.i == ns) return -1;
    size_t ne = c.i;
    cJSON *v = parse_object(&c, 0);
    skip_ws(&c);
    int rc = -1;
    if (v && c.i == n) {
        size_t old = name->len;
        rc = g4_strbuf_append(name, s + ns, ne - ns) || emit(v, args_json) ? -1 : 0;
        if (rc) name->len = old;
    }
    cJSON_Delete(v);
    return rc;
}
