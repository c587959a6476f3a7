/* json_schema.c - JSON Schema -> grammar (the contract is in json_schema.h).
 *
 * Every subschema that is a value position (property value, array item, $ref target) becomes a
 * rule, memoised by its node, so recursion through $ref is a recursive rule. allOf, and sibling
 * keywords next to $ref / anyOf / oneOf, are merged into one schema first (json_merge.c).
 * Not here: merging and oneOf disjointness (json_merge.c), numbers within bounds (json_number.c),
 * regex syntax (regex.c), character encodings (charset.c). */
#include "grammar/json_schema.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grammar/charset.h"
#include "grammar/json_number.h"
#include "grammar/regex.h"
#include "grammar/json_schema_impl.h"

int g4_js_fail(js *j, const char *fmt, const char *arg) { return g4_grammar_fail(j->g, fmt, arg); }

const char *const
    G4_JS_ANNOTATIONS[] = {"title",
                           "description",
                           "$comment",
                           "examples",
                           "default",
                           "$schema",
                           "readOnly",
                           "writeOnly",
                           "deprecated",
                           "contentMediaType",
                           "contentEncoding",
                           "$defs",
                           "definitions",
                           "$id",
                           "discriminator", /* OpenAPI / pydantic: a hint next to oneOf; oneOf itself is compiled exactly */
                           "strict", /* OpenAI / vLLM clients put a tool's "strict" flag inside its parameters */
                           NULL};
const char *const G4_JS_KEYWORDS[] = {"type",
                                      "enum",
                                      "const",
                                      "properties",
                                      "required",
                                      "additionalProperties",
                                      "items",
                                      "prefixItems",
                                      "additionalItems",
                                      "minItems",
                                      "maxItems",
                                      "minLength",
                                      "maxLength",
                                      "pattern",
                                      "format",
                                      "minimum",
                                      "maximum",
                                      "exclusiveMinimum",
                                      "exclusiveMaximum",
                                      "anyOf",
                                      "oneOf",
                                      "allOf",
                                      "$ref",
                                      "nullable",
                                      "uniqueItems",
                                      NULL};

int g4_js_in_list(const char *const *l, const char *s) {
    if (l == G4_JS_ANNOTATIONS && !strncmp(s, "x-", 2)) return 1; /* OpenAPI vendor extensions */
    for (; *l; l++)
        if (!strcmp(*l, s)) return 1;
    return 0;
}

int g4_js_own(js *j, cJSON *x) {
    if (!x) return g4_js_fail(j, "out of memory%s", "");
    if (j->n_owned == j->cap_owned) {
        int32_t nc = j->cap_owned ? j->cap_owned * 2 : 16;
        void *q = realloc(j->owned, (size_t)nc * sizeof *j->owned);
        if (!q) {
            cJSON_Delete(x);
            return g4_js_fail(j, "out of memory%s", "");
        }
        j->owned = q;
        j->cap_owned = nc;
    }
    j->owned[j->n_owned++] = x;
    return 0;
}

static g4_gx string_grammar(js *j, const cJSON *s);

/* ------------------------------------------------------------------ $ref */

const cJSON *g4_js_resolve_ref(js *j, const char *ref) {
    if (ref[0] != '#') {
        g4_js_fail(j, "$ref '%s': only references inside the schema (#...) are supported", ref);
        return NULL;
    }
    const cJSON *cur = j->root;
    const char *p = ref + 1;
    if (*p && *p != '/') {
        g4_js_fail(j, "$ref '%s': anchors are not supported", ref);
        return NULL;
    }
    while (*p == '/') {
        p++;
        char tok[256];
        size_t n = 0;
        while (*p && *p != '/' && n + 1 < sizeof tok) {
            if (p[0] == '~' && p[1] == '0') {
                tok[n++] = '~';
                p += 2;
            } else if (p[0] == '~' && p[1] == '1') {
                tok[n++] = '/';
                p += 2;
            } else if (p[0] == '%' && p[1] && p[2]) {
                char h[3] = {p[1], p[2], 0};
                tok[n++] = (char)strtol(h, NULL, 16);
                p += 3;
            } else tok[n++] = *p++;
        }
        tok[n] = 0;
        if (cJSON_IsArray(cur)) {
            char *e;
            long k = strtol(tok, &e, 10);
            cur = *e || e == tok ? NULL : cJSON_GetArrayItem(cur, (int)k);
        } else if (cJSON_IsObject(cur)) {
            cur = cJSON_GetObjectItemCaseSensitive(cur, tok);
        } else cur = NULL;
        if (!cur) {
            g4_js_fail(j, "$ref '%s' does not resolve inside the schema", ref);
            return NULL;
        }
    }
    return cur;
}

/* ------------------------------------------------------------------ helpers */

static g4_gx ws(js *j) {
    if (j->o.ws_max <= 0) return g4_gx_empty(j->g);
    uint8_t set[32] = {0};
    set[' ' >> 3] |= 1u << (' ' & 7);
    set['\t' >> 3] |= 1u << ('\t' & 7);
    set['\n' >> 3] |= 1u << ('\n' & 7);
    return g4_gx_repeat(j->g, g4_gx_bytes(j->g, set), 0, j->o.ws_max);
}
static g4_gx punct(js *j, const char *p) { return g4_gx_seq3(j->g, ws(j), g4_gx_str(j->g, p), ws(j)); }

/* The string syntax: JSON ("..." with canonical escapes) or Gemma's tool-call arguments
 * (<|"|>...<|"|>, content verbatim; '<' is left out of free content so the text can never hold
 * the closing delimiter). */
#define GEMMA_QUOTE "<|\"|>"
static g4_gx quote(js *j) { return g4_gx_str(j->g, j->o.gemma_args ? GEMMA_QUOTE : "\""); }
static int str_enc(const js *j) { return j->o.gemma_args ? G4_ENC_UTF8 : G4_ENC_JSON; }
static g4_gx any_char(js *j) {
    if (!j->o.gemma_args) return g4_any_char_gx(j->g, G4_ENC_JSON);
    g4_cpset not_lt = {0};
    g4_cpset_add(&not_lt, '<', '<');
    if (g4_cpset_negate(&not_lt)) {
        g4_cpset_free(&not_lt);
        return g4_js_fail(j, "out of memory%s", "");
    }
    g4_gx r = g4_cpset_gx(j->g, &not_lt, G4_ENC_UTF8);
    g4_cpset_free(&not_lt);
    return r;
}
/* A literal string value (enum / const): its text in the string syntax. */
static g4_gx str_lit(js *j, const char *t) {
    g4_gx body = j->o.gemma_args ? g4_gx_lit(j->g, t, strlen(t)) : g4_json_lit_gx(j->g, t, strlen(t));
    return g4_gx_seq3(j->g, quote(j), body, quote(j));
}
/* A listed property name: a JSON string, or in Gemma's syntax a bare key when it is a word. */
static g4_gx key_lit(js *j, const char *t) {
    if (j->o.gemma_args && (isalpha((unsigned char)t[0]) || t[0] == '_')) {
        int word = 1;
        for (const char *c = t; *c; c++) word &= isalnum((unsigned char)*c) || *c == '_';
        if (word) return g4_gx_str(j->g, t);
    }
    return str_lit(j, t);
}

/* Any JSON string content (inline: callers put it between the quotes of one rule, so inside a
 * string the matcher is in non-accepting states of that rule, one table lookup per byte). */
static g4_gx chars_ref(js *j) { return g4_gx_star(j->g, any_char(j)); }

/* Rule "value": any JSON value. */
static g4_gx any_value(js *j) {
    g4_grammar *g = j->g;
    if (j->r_value >= 0) return g4_gx_ref(g, j->r_value);
    j->r_value = g4_grammar_rule_new(g, "any-value");
    int32_t r_obj = g4_grammar_rule_new(g, "any-object"), r_arr = g4_grammar_rule_new(g, "any-array");
    cJSON *plain = cJSON_CreateObject();
    if (g4_js_own(j, plain)) return -1;
    g4_gx str = string_grammar(j, plain);
    g4_gx alts[7] = {g4_gx_ref(g, r_obj),
                     g4_gx_ref(g, r_arr),
                     str,
                     g4_json_number_gx(j->g, 0, (g4_num_bound){0}, (g4_num_bound){0}),
                     g4_gx_str(g, "true"),
                     g4_gx_str(g, "false"),
                     g4_gx_str(g, "null")};
    g4_grammar_rule_set(g, j->r_value, g4_gx_alt(g, alts, 7));
    g4_gx kv = g4_gx_seq3(g, str, punct(j, ":"), g4_gx_ref(g, j->r_value));
    g4_gx kvs = g4_gx_opt(g, g4_gx_seq2(g, kv, g4_gx_star(g, g4_gx_seq2(g, punct(j, ","), kv))));
    g4_grammar_rule_set(g, r_obj, g4_gx_seq3(g, punct(j, "{"), kvs, punct(j, "}")));
    g4_gx v = g4_gx_ref(g, j->r_value);
    g4_gx vs = g4_gx_opt(g, g4_gx_seq2(g, v, g4_gx_star(g, g4_gx_seq2(g, punct(j, ","), v))));
    g4_grammar_rule_set(g, r_arr, g4_gx_seq3(g, punct(j, "["), vs, punct(j, "]")));
    return g4_gx_ref(g, j->r_value);
}

static int type_bit(const char *t) {
    if (!strcmp(t, "null")) return T_NULL;
    if (!strcmp(t, "boolean")) return T_BOOL;
    if (!strcmp(t, "object")) return T_OBJECT;
    if (!strcmp(t, "array")) return T_ARRAY;
    if (!strcmp(t, "string")) return T_STRING;
    if (!strcmp(t, "number")) return T_NUMBER;
    if (!strcmp(t, "integer")) return T_INTEGER;
    return 0;
}

/* Allowed types of schema s (T_INTEGER alone means integers only). -1 on a bad "type". */
int g4_js_types_of(js *j, const cJSON *s) {
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(s, "type");
    int m = 0;
    if (!t) m = T_ALL;
    else if (cJSON_IsString(t)) {
        m = type_bit(t->valuestring);
        if (!m) return g4_js_fail(j, "type '%s' is not a JSON Schema type", t->valuestring);
    } else if (cJSON_IsArray(t)) {
        const cJSON *e;
        cJSON_ArrayForEach(e, t) {
            int b = cJSON_IsString(e) ? type_bit(e->valuestring) : 0;
            if (!b) return g4_js_fail(j, "type: bad entry in the type list%s", "");
            m |= b;
        }
    } else return g4_js_fail(j, "type must be a string or an array%s", "");
    if (m & T_NUMBER) m &= ~T_INTEGER;
    const cJSON *nb = cJSON_GetObjectItemCaseSensitive(s, "nullable");
    if (cJSON_IsTrue(nb)) m |= T_NULL;
    return m;
}

static int value_type(const cJSON *v) {
    if (cJSON_IsNull(v)) return T_NULL;
    if (cJSON_IsBool(v)) return T_BOOL;
    if (cJSON_IsObject(v)) return T_OBJECT;
    if (cJSON_IsArray(v)) return T_ARRAY;
    if (cJSON_IsString(v)) return T_STRING;
    double d = v->valuedouble;
    return d == floor(d) && fabs(d) < 9e15 ? (T_NUMBER | T_INTEGER) : T_NUMBER;
}

/* ------------------------------------------------------------------ enum / const literals */

static g4_gx value_lit(js *j, const cJSON *v, int depth) {
    g4_grammar *g = j->g;
    if (depth > 64) return g4_js_fail(j, "enum/const value nested too deeply%s", "");
    if (cJSON_IsNull(v)) return g4_gx_str(g, "null");
    if (cJSON_IsTrue(v)) return g4_gx_str(g, "true");
    if (cJSON_IsFalse(v)) return g4_gx_str(g, "false");
    if (cJSON_IsString(v)) return str_lit(j, v->valuestring);
    if (cJSON_IsNumber(v)) {
        double d = v->valuedouble;
        char buf[64];
        if (d == floor(d) && fabs(d) < 1e16) {
            snprintf(buf, sizeof buf, "%.0f", d);
            if (!strcmp(buf, "-0")) strcpy(buf, "0");
            g4_gx a = g4_gx_str(g, buf);
            return g4_gx_seq2(g, a, g4_gx_opt(g, g4_gx_str(g, ".0"))); /* one zero digit, as integers */
        }
        if (!isfinite(d)) return g4_js_fail(j, "enum/const: number out of range%s", "");
        for (int p = 1; p <= 17; p++) {
            snprintf(buf, sizeof buf, "%.*g", p, d);
            if (strtod(buf, NULL) == d) break;
        }
        return g4_gx_str(g, buf);
    }
    if (cJSON_IsArray(v)) {
        g4_gx acc = punct(j, "[");
        const cJSON *e;
        int first = 1;
        cJSON_ArrayForEach(e, v) {
            if (!first) acc = g4_gx_seq2(g, acc, punct(j, ","));
            acc = g4_gx_seq2(g, acc, value_lit(j, e, depth + 1));
            first = 0;
        }
        return g4_gx_seq2(g, acc, punct(j, "]"));
    }
    if (cJSON_IsObject(v)) {
        g4_gx acc = punct(j, "{");
        const cJSON *e;
        int first = 1;
        cJSON_ArrayForEach(e, v) {
            if (!first) acc = g4_gx_seq2(g, acc, punct(j, ","));
            g4_gx key = key_lit(j, e->string);
            acc = g4_gx_seq3(g, acc, key, g4_gx_seq2(g, punct(j, ":"), value_lit(j, e, depth + 1)));
            first = 0;
        }
        return g4_gx_seq2(g, acc, punct(j, "}"));
    }
    return g4_js_fail(j, "enum/const: unsupported value%s", "");
}

static g4_gx compile_enum(js *j, const cJSON *s, int types) {
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(s, "const");
    const cJSON *en = cJSON_GetObjectItemCaseSensitive(s, "enum");
    if (c && en) return g4_js_fail(j, "const together with enum is not supported%s", "");
    const cJSON *e;
    cJSON_ArrayForEach(e, s) {
        if (!strcmp(e->string, "const") || !strcmp(e->string, "enum") || !strcmp(e->string, "type") ||
            !strcmp(e->string, "nullable") || g4_js_in_list(G4_JS_ANNOTATIONS, e->string))
            continue;
        return g4_js_fail(j, "keyword '%s' together with enum/const is not supported", e->string);
    }
    if (en && !cJSON_IsArray(en)) return g4_js_fail(j, "enum must be an array%s", "");
    int n = c ? 1 : cJSON_GetArraySize(en);
    g4_gx *alts = calloc((size_t)n + 1, sizeof *alts);
    if (!alts) return g4_js_fail(j, "out of memory%s", "");
    int k = 0;
    if (c) {
        if (value_type(c) & types) alts[k++] = value_lit(j, c, 0);
    } else cJSON_ArrayForEach(e, en) if (value_type(e) & types) alts[k++] = value_lit(j, e, 0);
    g4_gx r = g4_gx_alt(j->g, alts, k);
    free(alts);
    return r;
}

/* ------------------------------------------------------------------ numbers (json_number.c) */

static int read_bounds(js *j, const cJSON *s, g4_num_bound *lo, g4_num_bound *hi) {
    memset(lo, 0, sizeof *lo);
    memset(hi, 0, sizeof *hi);
    const char *names[4] = {"minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"};
    const cJSON *v[4];
    for (int i = 0; i < 4; i++) v[i] = cJSON_GetObjectItemCaseSensitive(s, names[i]);
    for (int i = 0; i < 4; i += 2) {
        g4_num_bound *b = i == 0 ? lo : hi;
        if (v[i]) {
            if (!cJSON_IsNumber(v[i])) return g4_js_fail(j, "%s must be a number", names[i]);
            b->have = 1;
            b->incl = 1;
            b->v = v[i]->valuedouble;
        }
        if (cJSON_IsBool(v[i + 1])) { /* draft 4 */
            if (cJSON_IsTrue(v[i + 1])) {
                if (!b->have) return g4_js_fail(j, "%s: true without a bound", names[i + 1]);
                b->incl = 0;
            }
        } else if (v[i + 1]) {
            if (!cJSON_IsNumber(v[i + 1])) return g4_js_fail(j, "%s must be a number", names[i + 1]);
            double x = v[i + 1]->valuedouble;
            int tighter = !b->have || (i == 0 ? x >= b->v : x <= b->v);
            if (tighter) {
                b->have = 1;
                b->incl = 0;
                b->v = x;
            }
        }
    }
    for (int i = 0; i < 2; i++) {
        g4_num_bound *b = i ? hi : lo;
        if (b->have && !(fabs(b->v) < 1e17))
            return g4_js_fail(j, "%s out of the supported range (|bound| < 1e17)", i ? "maximum" : "minimum");
    }
    return 0;
}

static g4_gx int_grammar(js *j, const cJSON *s) {
    g4_num_bound lo, hi;
    if (read_bounds(j, s, &lo, &hi)) return -1;
    return g4_json_number_gx(j->g, 1, lo, hi);
}

static g4_gx number_grammar(js *j, const cJSON *s) {
    g4_num_bound lo, hi;
    if (read_bounds(j, s, &lo, &hi)) return -1;
    return g4_json_number_gx(j->g, 0, lo, hi);
}

/* Format grammars: a subset of each format's valid strings, exact where a checker is strict
 * (dates check the days of each month and leap years; no leap seconds; URIs follow RFC 3986's
 * shape with percent-escapes). */
static const struct {
    const char *name, *re;
} FORMATS[] = {
    {"date",
     "(([0-9]{3}[1-9]|[0-9]{2}[1-9]0|[0-9][1-9]00|[1-9]000)-(0[13578]|1[02])-(0[1-9]|[12][0-9]|3[01])|([0-9]{3}[1-9]|[0-9]{2}[1-9]0|[0-9][1-9]00|[1-9]000)-(0[469]|11)-(0[1-9]|[12][0-9]|30)|([0-9]{3}[1-9]|[0-9]{2}[1-9]0|[0-9][1-9]00|[1-9]000)-02-(0[1-9]|1[0-9]|2[0-8])|([0-9]{2}(0[48]|[2468][048]|[13579][26])|(0[48]|[2468][048]|[13579][26])00)-02-29)"},
    {"time", "([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]+)?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])"},
    {"date-time",
     "(([0-9]{3}[1-9]|[0-9]{2}[1-9]0|[0-9][1-9]00|[1-9]000)-(0[13578]|1[02])-(0[1-9]|[12][0-9]|3[01])|([0-9]{3}[1-9]|[0-9]{2}[1-9]0|[0-9][1-9]00|[1-9]000)-(0[469]|11)-(0[1-9]|[12][0-9]|30)|([0-9]{3}[1-9]|[0-9]{2}[1-9]0|[0-9][1-9]00|[1-9]000)-02-(0[1-9]|1[0-9]|2[0-8])|([0-9]{2}(0[48]|[2468][048]|[13579][26])|(0[48]|[2468][048]|[13579][26])00)-02-29)T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]+)?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])"},
    {"uuid", "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"},
    {"email",
     "[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)+"},
    {"ipv4", "((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"},
    {"uri",
     "[A-Za-z][A-Za-z0-9+.-]*:(//(([A-Za-z0-9\\-._~!$&'()*+,;=:]|%[0-9A-Fa-f]{2})*@)?([A-Za-z0-9\\-._~!$&'()*+,;=]|%[0-9A-Fa-f]{2})*(:[0-9]*)?(/([A-Za-z0-9\\-._~!$&'()*+,;=:@]|%[0-9A-Fa-f]{2})*)*|/?(([A-Za-z0-9\\-._~!$&'()*+,;=:@]|%[0-9A-Fa-f]{2})+(/([A-Za-z0-9\\-._~!$&'()*+,;=:@]|%[0-9A-Fa-f]{2})*)*)?)(\\?([A-Za-z0-9\\-._~!$&'()*+,;=:@/?]|%[0-9A-Fa-f]{2})*)?(#([A-Za-z0-9\\-._~!$&'()*+,;=:@/?]|%[0-9A-Fa-f]{2})*)?"},
    {NULL, NULL}};

static int int_kw(js *j, const cJSON *s, const char *kw, int def, int *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(s, kw);
    *out = def;
    if (!v) return 0;
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble != floor(v->valuedouble))
        return g4_js_fail(j, "%s must be a non-negative integer", kw);
    if (v->valuedouble > j->o.max_repeat) {
        char b[128];
        snprintf(b, sizeof b, "%s %.0f over the compile limit of %d", kw, v->valuedouble, j->o.max_repeat);
        return g4_js_fail(j, "%s", b);
    }
    *out = (int)v->valuedouble;
    return 0;
}

static g4_gx string_body(js *j, const cJSON *s) {
    g4_grammar *g = j->g;
    const cJSON *pat = cJSON_GetObjectItemCaseSensitive(s, "pattern");
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(s, "format");
    int mn, mx;
    if (int_kw(j, s, "minLength", 0, &mn) || int_kw(j, s, "maxLength", -1, &mx)) return -1;
    int has_len = cJSON_GetObjectItemCaseSensitive(s, "minLength") || cJSON_GetObjectItemCaseSensitive(s, "maxLength");
    g4_gx q = quote(j);
    if (mx >= 0 && mn > mx) return g4_gx_never(g);
    if (pat || fmt) {
        if (pat && fmt) return g4_js_fail(j, "pattern together with format is not supported%s", "");
        if (has_len && (mn > 0 || mx >= 0))
            return g4_js_fail(j, "%s together with minLength/maxLength is not supported", pat ? "pattern" : "format");
        if (pat) {
            if (!cJSON_IsString(pat)) return g4_js_fail(j, "pattern must be a string%s", "");
            return g4_gx_seq3(g, q, g4_regex_gx(g, pat->valuestring, strlen(pat->valuestring), str_enc(j), 1),
                              quote(j));
        }
        if (!cJSON_IsString(fmt)) return g4_js_fail(j, "format must be a string%s", "");
        for (int i = 0; FORMATS[i].name; i++)
            if (!strcmp(FORMATS[i].name, fmt->valuestring))
                return g4_gx_seq3(g, q, g4_regex_gx(g, FORMATS[i].re, strlen(FORMATS[i].re), str_enc(j), 0), quote(j));
        return g4_js_fail(j, "format '%s' is not supported", fmt->valuestring);
    }
    if (mn == 0 && mx < 0) return g4_gx_seq3(g, q, chars_ref(j), quote(j));
    return g4_gx_seq3(g, q, g4_gx_repeat(g, any_char(j), mn, mx), quote(j));
}

/* Strings are rules, one per kind (bounds, pattern, format), quotes included: every string of a
 * kind shares its states, so token_mask.c's per-state cache is built once per kind. */
static g4_gx string_grammar(js *j, const cJSON *s) {
    const cJSON *pat = cJSON_GetObjectItemCaseSensitive(s, "pattern");
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(s, "format");
    const cJSON *mn = cJSON_GetObjectItemCaseSensitive(s, "minLength"),
                *mx = cJSON_GetObjectItemCaseSensitive(s, "maxLength");
    size_t cap = 64 + (cJSON_IsString(pat) ? strlen(pat->valuestring) : 0) +
                 (cJSON_IsString(fmt) ? strlen(fmt->valuestring) : 0);
    char *key = malloc(cap);
    if (!key) return g4_js_fail(j, "out of memory%s", "");
    snprintf(key, cap, "%g|%g|%s|%s", cJSON_IsNumber(mn) ? mn->valuedouble : -1,
             cJSON_IsNumber(mx) ? mx->valuedouble : -1,
             cJSON_IsString(pat) ? pat->valuestring
             : pat               ? "?"
                                 : "",
             cJSON_IsString(fmt) ? fmt->valuestring
             : fmt               ? "?"
                                 : "");
    for (int32_t i = 0; i < j->n_str; i++)
        if (!strcmp(j->str_key[i], key)) {
            free(key);
            return g4_gx_ref(j->g, j->str_rule[i]);
        }
    g4_gx body = string_body(j, s);
    if (body < 0) {
        free(key);
        return -1;
    }
    if (j->n_str == j->cap_str) {
        int32_t nc = j->cap_str ? j->cap_str * 2 : 8;
        char **k2 = realloc(j->str_key, (size_t)nc * sizeof *k2);
        if (k2) j->str_key = k2;
        int32_t *r2 = realloc(j->str_rule, (size_t)nc * sizeof *r2);
        if (r2) j->str_rule = r2;
        if (!k2 || !r2) {
            free(key);
            return g4_js_fail(j, "out of memory%s", "");
        }
        j->cap_str = nc;
    }
    char name[32];
    snprintf(name, sizeof name, "string-%d", j->n_str);
    int32_t r = g4_grammar_rule_new(j->g, name);
    if (r < 0 || g4_grammar_rule_set(j->g, r, body)) {
        free(key);
        return -1;
    }
    j->str_key[j->n_str] = key;
    j->str_rule[j->n_str++] = r;
    return g4_gx_ref(j->g, r);
}

/* ------------------------------------------------------------------ forward */

static int32_t rule_of(js *j, const cJSON *s);
static g4_gx body_of(js *j, const cJSON *s);
static g4_gx value_ref(js *j, const cJSON *s) {
    if (cJSON_IsFalse(s)) return g4_gx_never(j->g);
    int32_t r = rule_of(j, s);
    return r < 0 ? -1 : g4_gx_ref(j->g, r);
}

/* ------------------------------------------------------------------ objects */

/* JSON string content whose decoded text is none of names[0..n) (trie over code points). */
typedef struct ktrie {
    uint32_t cp;
    int32_t first_child, next_sibling;
    int term;
} ktrie;

static g4_gx key_not_in_node(js *j, const ktrie *t, int32_t u, int depth) {
    g4_grammar *g = j->g;
    if (depth > 4096) return g4_js_fail(j, "property names too long%s", "");
    g4_cpset other = {0};
    int32_t nkids = 0;
    for (int32_t c = t[u].first_child; c >= 0; c = t[c].next_sibling) {
        g4_cpset_add(&other, t[c].cp, t[c].cp);
        nkids++;
    }
    if (j->o.gemma_args) g4_cpset_add(&other, '<', '<'); /* never in Gemma's free string content */
    if (g4_cpset_negate(&other)) {
        g4_cpset_free(&other);
        return g4_js_fail(j, "out of memory%s", "");
    }
    g4_gx *alts = calloc((size_t)nkids + 2, sizeof *alts);
    if (!alts) {
        g4_cpset_free(&other);
        return g4_js_fail(j, "out of memory%s", "");
    }
    int k = 0;
    alts[k++] = g4_gx_seq2(g, g4_cpset_gx(g, &other, str_enc(j)), chars_ref(j));
    g4_cpset_free(&other);
    if (!t[u].term) alts[k++] = g4_gx_empty(g);
    for (int32_t c = t[u].first_child; c >= 0; c = t[c].next_sibling) {
        g4_cpset one = {0};
        g4_cpset_add(&one, t[c].cp, t[c].cp);
        alts[k++] = g4_gx_seq2(g, g4_cpset_gx(g, &one, str_enc(j)), key_not_in_node(j, t, c, depth + 1));
        g4_cpset_free(&one);
    }
    g4_gx r = g4_gx_alt(g, alts, k);
    free(alts);
    return r;
}

static uint32_t decode_cp(const unsigned char **p) {
    const unsigned char *s = *p;
    uint32_t c = s[0];
    int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : 4;
    for (int i = 1; i < len; i++)
        if ((s[i] & 0xC0) != 0x80) {
            len = 1;
            break;
        }
    if (len == 2) c = ((c & 0x1F) << 6) | (s[1] & 0x3F);
    else if (len == 3) c = ((c & 0x0F) << 12) | ((s[1] & 0x3F) << 6) | (s[2] & 0x3F);
    else if (len == 4) c = ((c & 0x07) << 18) | ((s[1] & 0x3F) << 12) | ((s[2] & 0x3F) << 6) | (s[3] & 0x3F);
    *p = s + len;
    return c;
}

static g4_gx key_not_in(js *j, const char *const *names, int n) {
    int32_t cap = 1;
    for (int i = 0; i < n; i++) cap += (int32_t)strlen(names[i]);
    ktrie *t = calloc((size_t)cap, sizeof *t);
    if (!t) return g4_js_fail(j, "out of memory%s", "");
    int32_t nt = 1;
    t[0].first_child = t[0].next_sibling = -1;
    for (int i = 0; i < n; i++) {
        int32_t u = 0;
        const unsigned char *p = (const unsigned char *)names[i];
        while (*p) {
            uint32_t cp = decode_cp(&p);
            int32_t c = t[u].first_child;
            while (c >= 0 && t[c].cp != cp) c = t[c].next_sibling;
            if (c < 0) {
                c = nt++;
                t[c].cp = cp;
                t[c].first_child = -1;
                t[c].next_sibling = t[u].first_child;
                t[c].term = 0;
                t[u].first_child = c;
            }
            u = c;
        }
        t[u].term = 1;
    }
    g4_gx r = g4_gx_seq3(j->g, quote(j), key_not_in_node(j, t, 0, 0), quote(j));
    free(t);
    return r;
}

static g4_gx object_grammar(js *j, const cJSON *s) {
    g4_grammar *g = j->g;
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(s, "properties");
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(s, "required");
    const cJSON *addl = cJSON_GetObjectItemCaseSensitive(s, "additionalProperties");
    if (props && !cJSON_IsObject(props)) return g4_js_fail(j, "properties must be an object%s", "");
    if (req && !cJSON_IsArray(req)) return g4_js_fail(j, "required must be an array%s", "");
    if (addl && !cJSON_IsObject(addl) && !cJSON_IsBool(addl))
        return g4_js_fail(j, "additionalProperties must be a schema%s", "");
    int np = props ? cJSON_GetArraySize(props) : 0, nr = req ? cJSON_GetArraySize(req) : 0;
    const char **names = calloc((size_t)(np + nr + 1), sizeof *names);
    const cJSON **schemas = calloc((size_t)(np + nr + 1), sizeof *schemas);
    int *required = calloc((size_t)(np + nr + 1), sizeof *required);
    int32_t *rules = calloc((size_t)(2 * (np + nr) + 2), sizeof *rules);
    g4_gx result = -1;
    if (!names || !schemas || !required || !rules) {
        g4_js_fail(j, "out of memory%s", "");
        goto out;
    }
    int n = 0;
    const cJSON *e;
    if (props) cJSON_ArrayForEach(e, props) {
            names[n] = e->string;
            schemas[n] = e;
            n++;
        }
    if (req) cJSON_ArrayForEach(e, req) {
            if (!cJSON_IsString(e)) {
                g4_js_fail(j, "required: entries must be strings%s", "");
                goto out;
            }
            int k = 0;
            while (k < n && strcmp(names[k], e->valuestring)) k++;
            if (k == n) {
                names[n] = e->valuestring;
                schemas[n] = addl;
                n++;
            } /* NULL schema = any value */
            required[k] = 1;
        }
    /* a required property whose schema is false makes the object impossible */
    for (int i = 0; i < n; i++)
        if (required[i] && schemas[i] && cJSON_IsFalse(schemas[i])) {
            result = g4_gx_never(g);
            goto out;
        }
    int has_addl = !addl || !cJSON_IsFalse(addl);
    g4_gx kv_addl = -1;
    if (has_addl)
        kv_addl = g4_gx_seq3(g, key_not_in(j, names, n), punct(j, ":"), addl ? value_ref(j, addl) : any_value(j));
    /* T[i][f]: properties i.. with f = 1 while nothing has been written (no comma needed) */
    for (int i = 0; i <= n; i++)
        for (int f = 0; f < 2; f++) {
            char nm[32];
            snprintf(nm, sizeof nm, "obj-tail-%d-%d", i, f);
            rules[2 * i + f] = g4_grammar_rule_new(g, nm);
        }
    for (int f = 0; f < 2; f++) {
        g4_gx body;
        if (!has_addl) body = g4_gx_empty(g);
        else {
            g4_gx more = g4_gx_star(g, g4_gx_seq2(g, punct(j, ","), kv_addl));
            body = f ? g4_gx_opt(g, g4_gx_seq2(g, kv_addl, more)) : more;
        }
        g4_grammar_rule_set(g, rules[2 * n + f], body);
    }
    for (int i = n - 1; i >= 0; i--)
        for (int f = 0; f < 2; f++) {
            g4_gx key = key_lit(j, names[i]);
            g4_gx val = schemas[i] ? value_ref(j, schemas[i]) : any_value(j);
            g4_gx kv = g4_gx_seq3(g, key, punct(j, ":"), val);
            g4_gx with = g4_gx_seq3(g, f ? g4_gx_empty(g) : punct(j, ","), kv, g4_gx_ref(g, rules[2 * (i + 1)]));
            g4_gx body = required[i] ? with : g4_gx_alt2(g, with, g4_gx_ref(g, rules[2 * (i + 1) + f]));
            g4_grammar_rule_set(g, rules[2 * i + f], body);
        }
    result = g4_gx_seq3(g, punct(j, "{"), g4_gx_ref(g, rules[1]), punct(j, "}"));
out:
    free(names);
    free(schemas);
    free(required);
    free(rules);
    return result;
}

/* ------------------------------------------------------------------ arrays */

static g4_gx array_grammar(js *j, const cJSON *s) {
    g4_grammar *g = j->g;
    const cJSON *prefix = cJSON_GetObjectItemCaseSensitive(s, "prefixItems");
    const cJSON *items = cJSON_GetObjectItemCaseSensitive(s, "items");
    const cJSON *addi = cJSON_GetObjectItemCaseSensitive(s, "additionalItems");
    const cJSON *uniq = cJSON_GetObjectItemCaseSensitive(s, "uniqueItems");
    if (uniq && !cJSON_IsFalse(uniq)) return g4_js_fail(j, "uniqueItems: true is not supported%s", "");
    const cJSON *rest = items;
    if (cJSON_IsArray(items)) { /* drafts 4-7 tuple form */
        if (prefix) return g4_js_fail(j, "items as an array together with prefixItems%s", "");
        prefix = items;
        rest = addi;
    } else if (addi) {
        return g4_js_fail(j, "additionalItems without an items array is not supported%s", "");
    }
    if (prefix && !cJSON_IsArray(prefix)) return g4_js_fail(j, "prefixItems must be an array%s", "");
    if (rest && !cJSON_IsObject(rest) && !cJSON_IsBool(rest)) return g4_js_fail(j, "items must be a schema%s", "");
    int mn, mx;
    if (int_kw(j, s, "minItems", 0, &mn) || int_kw(j, s, "maxItems", -1, &mx)) return -1;
    int P = prefix ? cJSON_GetArraySize(prefix) : 0;
    if (rest && cJSON_IsFalse(rest)) mx = mx < 0 || mx > P ? P : mx;
    if (mx >= 0 && mn > mx) return g4_gx_never(g);
    int np = mx >= 0 && mx < P ? mx : P;
    /* the part after the prefix */
    g4_gx tail;
    int lo = mn > np ? mn - np : 0, hi = mx < 0 ? -1 : mx - np;
    g4_gx item = rest ? value_ref(j, rest) : any_value(j);
    if (np < P || hi == 0) tail = lo > 0 ? g4_gx_never(g) : g4_gx_empty(g);
    else if (np > 0) tail = g4_gx_repeat(g, g4_gx_seq2(g, punct(j, ","), item), lo, hi);
    else if (lo == 0)
        tail = g4_gx_opt(g, g4_gx_seq2(g, item,
                                       g4_gx_repeat(g, g4_gx_seq2(g, punct(j, ","), item), 0, hi < 0 ? -1 : hi - 1)));
    else tail = g4_gx_seq2(g, item, g4_gx_repeat(g, g4_gx_seq2(g, punct(j, ","), item), lo - 1, hi < 0 ? -1 : hi - 1));
    for (int i = np - 1; i >= 0; i--) {
        const cJSON *ps = cJSON_GetArrayItem(prefix, i);
        g4_gx el = g4_gx_seq3(g, i ? punct(j, ",") : g4_gx_empty(g), value_ref(j, ps), tail);
        tail = i >= mn ? g4_gx_alt2(g, el, g4_gx_empty(g)) : el;
    }
    return g4_gx_seq3(g, punct(j, "["), tail, punct(j, "]"));
}

static g4_gx compile_union(js *j, const cJSON *s, const char *kw) {
    const cJSON *branches = cJSON_GetObjectItemCaseSensitive(s, kw);
    if (!cJSON_IsArray(branches) || !cJSON_GetArraySize(branches))
        return g4_js_fail(j, "%s must be a non-empty array", kw);
    if (!strcmp(kw, "oneOf") && !j->o.oneof_as_anyof) {
        const cJSON *a, *b;
        for (a = branches->child; a; a = a->next)
            for (b = a->next; b; b = b->next) {
                int d = g4_js_disjoint(j, a, b, 0);
                if (d < 0) return -1;
                if (!d)
                    return g4_js_fail(
                        j,
                        "oneOf with branches that may overlap is not supported (only provably disjoint branches; or enable oneOf-as-anyOf)%s",
                        "");
            }
    }
    /* siblings other than annotations apply to every branch */
    int siblings = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, s) if (strcmp(e->string, kw) && !g4_js_in_list(G4_JS_ANNOTATIONS, e->string)) siblings = 1;
    int n = cJSON_GetArraySize(branches), k = 0;
    g4_gx *alts = calloc((size_t)n, sizeof *alts);
    if (!alts) return g4_js_fail(j, "out of memory%s", "");
    cJSON_ArrayForEach(e, branches) {
        if (!siblings) {
            alts[k++] = value_ref(j, e);
            continue;
        }
        cJSON *rest = cJSON_CreateObject();
        if (g4_js_own(j, rest)) {
            free(alts);
            return -1;
        }
        const cJSON *x;
        cJSON_ArrayForEach(x, s) if (strcmp(x->string, kw)) cJSON_AddItemReferenceToObject(rest, x->string, (cJSON *)x);
        cJSON *both = cJSON_CreateObject(), *arr = cJSON_CreateArray();
        if (g4_js_own(j, both) || !arr) {
            free(alts);
            cJSON_Delete(arr);
            return -1;
        }
        cJSON_AddItemReferenceToArray(arr, rest);
        cJSON_AddItemReferenceToArray(arr, (cJSON *)e);
        cJSON_AddItemToObject(both, "allOf", arr);
        alts[k++] = body_of(j, both);
    }
    g4_gx r = g4_gx_alt(j->g, alts, k);
    free(alts);
    return r;
}

/* ------------------------------------------------------------------ schema bodies */

static g4_gx body_of(js *j, const cJSON *s) {
    g4_grammar *g = j->g;
    if (g4_grammar_failed(g)) return -1;
    if (cJSON_IsTrue(s)) return any_value(j);
    if (cJSON_IsFalse(s)) return g4_gx_never(g);
    if (!cJSON_IsObject(s)) return g4_js_fail(j, "a schema must be an object or a boolean%s", "");
    if (++j->depth > 200) return g4_js_fail(j, "schema nested too deeply%s", "");
    g4_gx r = -1;
    const cJSON *e;
    cJSON_ArrayForEach(e, s) {
        if (g4_js_in_list(G4_JS_ANNOTATIONS, e->string) || g4_js_in_list(G4_JS_KEYWORDS, e->string)) continue;
        g4_js_fail(j, "keyword '%s' is not supported", e->string);
        goto out;
    }
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(s, "$id");
    if (id && s != j->root) {
        g4_js_fail(j, "$id inside a schema (a new base URI) is not supported%s", "");
        goto out;
    }
    const cJSON *ref = cJSON_GetObjectItemCaseSensitive(s, "$ref");
    const cJSON *all = cJSON_GetObjectItemCaseSensitive(s, "allOf");
    int n_constraining = 0;
    cJSON_ArrayForEach(e, s) if (!g4_js_in_list(G4_JS_ANNOTATIONS, e->string)) n_constraining++;
    if (ref && n_constraining == 1) {
        if (!cJSON_IsString(ref)) {
            g4_js_fail(j, "$ref must be a string%s", "");
            goto out;
        }
        const cJSON *t = g4_js_resolve_ref(j, ref->valuestring);
        if (!t) goto out;
        r = value_ref(j, t);
        goto out;
    }
    if (ref || all) {
        const cJSON **list = NULL;
        int n = 0, cap = 0;
        if (g4_js_conjuncts(j, s, &list, &n, &cap, 0)) {
            free(list);
            goto out;
        }
        const cJSON *m = g4_js_merge(j, list, n);
        free(list);
        if (!m) {
            if (!g4_grammar_failed(g)) r = g4_gx_never(g);
            goto out;
        }
        r = body_of(j, m);
        goto out;
    }
    const cJSON *any = cJSON_GetObjectItemCaseSensitive(s, "anyOf"),
                *one = cJSON_GetObjectItemCaseSensitive(s, "oneOf");
    if (any && one) {
        g4_js_fail(j, "anyOf together with oneOf in one schema is not supported%s", "");
        goto out;
    }
    if (any || one) {
        r = compile_union(j, s, any ? "anyOf" : "oneOf");
        goto out;
    }
    int types = g4_js_types_of(j, s);
    if (types < 0) goto out;
    if (cJSON_GetObjectItemCaseSensitive(s, "enum") || cJSON_GetObjectItemCaseSensitive(s, "const")) {
        r = compile_enum(j, s, types & T_NUMBER ? types | T_INTEGER : types);
        goto out;
    }
    g4_gx alts[6];
    int k = 0;
    if (types & T_NULL) alts[k++] = g4_gx_str(g, "null");
    if (types & T_BOOL) alts[k++] = g4_gx_alt2(g, g4_gx_str(g, "true"), g4_gx_str(g, "false"));
    if (types & T_OBJECT) alts[k++] = object_grammar(j, s);
    if (types & T_ARRAY) alts[k++] = array_grammar(j, s);
    if (types & T_STRING) alts[k++] = string_grammar(j, s);
    if (types & T_NUMBER) alts[k++] = number_grammar(j, s);
    else if (types & T_INTEGER) alts[k++] = int_grammar(j, s);
    /* keywords of types that are not allowed are fine (they never apply); check the rest are used */
    r = g4_gx_alt(g, alts, k);
out:
    j->depth--;
    return r;
}

static int32_t rule_of(js *j, const cJSON *s) {
    for (int32_t i = 0; i < j->n_memo; i++)
        if (j->memo[i].node == s) return j->memo[i].rule;
    char name[32];
    snprintf(name, sizeof name, "schema-%d", j->n_memo);
    int32_t r = g4_grammar_rule_new(j->g, name);
    if (r < 0) return -1;
    if (j->n_memo == j->cap_memo) {
        int32_t nc = j->cap_memo ? j->cap_memo * 2 : 16;
        void *q = realloc(j->memo, (size_t)nc * sizeof *j->memo);
        if (!q) return g4_js_fail(j, "out of memory%s", "");
        j->memo = q;
        j->cap_memo = nc;
    }
    j->memo[j->n_memo].node = s;
    j->memo[j->n_memo].rule = r;
    j->n_memo++;
    g4_gx body = body_of(j, s);
    if (body < 0 || g4_grammar_rule_set(j->g, r, body)) return -1;
    return r;
}

/* Everything a compile owns but its result: the grammar when it failed, merged schemas, the memo
 * and the string-rule table. */
static void js_free(js *j) {
    g4_grammar_free(j->g);
    for (int32_t i = 0; i < j->n_owned; i++) cJSON_Delete(j->owned[i]);
    free(j->owned);
    free(j->memo);
    for (int32_t i = 0; i < j->n_str; i++) free(j->str_key[i]);
    free(j->str_key);
    free(j->str_rule);
}

int g4_json_schema_compile(const char *schema, size_t len, const g4_json_schema_opts *opts,
                           const g4_grammar_limits *lim, g4_grammar **out, g4_error *err) {
    *out = NULL;
    /* cJSON ends strings at U+0000, so a schema string holding one would be silently cut */
    for (size_t i = 0; i + 5 < len; i++) {
        if (schema[i] != '\\') continue;
        if (!memcmp(schema + i + 1, "u0000", 5)) return g4_fail(err, "strings containing U+0000 are not supported");
        i++; /* skip the escaped character */
    }
    cJSON *root = cJSON_ParseWithLength(schema, len);
    if (!root) return g4_fail(err, "schema is not valid JSON");
    js j = {0};
    j.root = root;
    j.r_value = -1;
    if (opts) j.o = *opts;
    if (j.o.max_repeat <= 0) j.o.max_repeat = 4096;
    j.g = g4_grammar_new(lim);
    int rc = -1;
    if (!j.g) {
        g4_fail(err, "out of memory");
        goto done;
    }
    if (cJSON_IsFalse(root)) {
        g4_fail(err, "schema false admits no instance");
        goto done;
    }
    int32_t start = g4_grammar_rule_new(j.g, "root");
    g4_gx body = body_of(&j, root);
    g4_gx top = g4_gx_seq3(j.g, ws(&j), body, ws(&j));
    if (g4_grammar_rule_set(j.g, start, top) < 0 && !g4_grammar_failed(j.g))
        g4_grammar_fail(j.g, "schema compile failed");
    if (g4_grammar_compile(j.g, start, err)) goto done;
    *out = j.g;
    j.g = NULL;
    rc = 0;
done:
    js_free(&j);
    cJSON_Delete(root);
    return rc;
}

/* ------------------------------------------------------------------ Gemma 4 tool calls */

int g4_gemma_tool_call_compile(const char *tools, size_t len, const g4_json_schema_opts *opts,
                               const g4_grammar_limits *lim, g4_grammar **out, g4_error *err) {
    *out = NULL;
    cJSON *arr = cJSON_ParseWithLength(tools, len);
    int n = cJSON_IsArray(arr) ? cJSON_GetArraySize(arr) : 0;
    if (n < 1) {
        cJSON_Delete(arr);
        return g4_fail(err, "tool call: a non-empty array of tools is needed");
    }
    js j = {0};
    j.r_value = -1;
    if (opts) j.o = *opts;
    j.o.gemma_args = 1;
    j.o.ws_max = 0;
    if (j.o.max_repeat <= 0) j.o.max_repeat = 4096;
    j.g = g4_grammar_new(lim);
    g4_gx *alts = calloc((size_t)n, sizeof *alts);
    cJSON *empty = cJSON_Parse("{\"type\":\"object\",\"additionalProperties\":false}"); /* no parameters: {} */
    int rc = -1, k = 0;
    if (!j.g || !alts || !empty) {
        g4_fail(err, "out of memory");
        goto done;
    }
    const cJSON *t;
    cJSON_ArrayForEach(t, arr) {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(t, "name");
        const cJSON *params = cJSON_GetObjectItemCaseSensitive(t, "parameters");
        if (!cJSON_IsString(name) || !name->valuestring[0]) {
            g4_fail(err, "tool call: every tool needs a name");
            goto done;
        }
        if (!params || cJSON_IsNull(params)) params = empty;
        if (!cJSON_IsObject(params)) {
            g4_fail(err, "tool '%s': parameters must be an object", name->valuestring);
            goto done;
        }
        j.root = params; /* $refs of this tool's schema resolve inside it */
        g4_gx body = body_of(&j, params);
        if (g4_grammar_failed(j.g)) {
            g4_fail(err, "tool '%s': %s", name->valuestring, g4_grammar_error(j.g));
            goto done;
        }
        g4_gx head = g4_gx_seq2(j.g, g4_gx_str(j.g, "<|tool_call>call:"), g4_gx_str(j.g, name->valuestring));
        alts[k++] = g4_gx_seq3(j.g, head, body, g4_gx_str(j.g, "<tool_call|>"));
    }
    int32_t start = g4_grammar_rule_new(j.g, "root");
    if (g4_grammar_rule_set(j.g, start, g4_gx_alt(j.g, alts, k)) < 0 && !g4_grammar_failed(j.g))
        g4_grammar_fail(j.g, "tool call compile failed");
    if (g4_grammar_compile(j.g, start, err)) goto done;
    *out = j.g;
    j.g = NULL;
    rc = 0;
done:
    js_free(&j);
    free(alts);
    cJSON_Delete(empty);
    cJSON_Delete(arr);
    return rc;
}
