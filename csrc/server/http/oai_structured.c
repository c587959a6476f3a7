/* oai_structured.c - the structured-output fields of an OpenAI request (see oai_structured.h). */
#include "server/http/oai_structured.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/http/oai_request.h"

/* What OpenAI's json_object asks for: any JSON object. */
static const char json_object_schema[] = "{\"type\":\"object\"}";

/* Records one constraint; a second one is refused. text is copied. */
static int set(g4_oai_structured *s, g4_so_kind kind, const char *param, const char *text, g4_http_error *e) {
    if (s->set)
        return g4_http_fail(e, 400, param,
                            "only one structured-output constraint per request: '%s' and '%s' both set "
                            "one",
                            s->param, param);
    s->owned = strdup(text);
    if (!s->owned) return g4_http_fail(e, 500, NULL, "out of memory");
    s->set = true;
    s->spec = (g4_so_spec){.kind = kind, .text = s->owned, .len = strlen(s->owned)};
    snprintf(s->param, sizeof s->param, "%s", param);
    return 0;
}

/* A JSON value as compact text (the cache key of a schema or a choice list). */
static int set_json(g4_oai_structured *s, g4_so_kind kind, const char *param, const cJSON *v, g4_http_error *e) {
    char *t = cJSON_PrintUnformatted(v);
    if (!t) return g4_http_fail(e, 500, NULL, "out of memory");
    int rc = set(s, kind, param, t, e);
    cJSON_free(t);
    return rc;
}

/* A schema given as an object, or as a string holding one (vLLM accepts both). */
static int set_schema(g4_oai_structured *s, const char *param, const cJSON *v, g4_http_error *e) {
    if (cJSON_IsObject(v) || cJSON_IsBool(v)) return set_json(s, G4_SO_JSON_SCHEMA, param, v, e);
    if (!cJSON_IsString(v))
        return g4_http_fail(e, 400, param, "'%s' must be a JSON schema (an object, or a string holding one)", param);
    cJSON *parsed = cJSON_Parse(v->valuestring);
    if (!parsed || !(cJSON_IsObject(parsed) || cJSON_IsBool(parsed))) {
        cJSON_Delete(parsed);
        return g4_http_fail(e, 400, param, "'%s' is a string that does not hold a JSON schema object", param);
    }
    int rc = set_json(s, G4_SO_JSON_SCHEMA, param, parsed, e);
    cJSON_Delete(parsed);
    return rc;
}

static int set_choice(g4_oai_structured *s, const char *param, const cJSON *v, g4_http_error *e) {
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) < 1)
        return g4_http_fail(e, 400, param, "'%s' must be a non-empty array of strings", param);
    for (const cJSON *x = v->child; x; x = x->next)
        if (!cJSON_IsString(x) || !x->valuestring[0])
            return g4_http_fail(e, 400, param, "'%s' must hold non-empty strings only", param);
    return set_json(s, G4_SO_CHOICE, param, v, e);
}

static int set_string(g4_oai_structured *s, g4_so_kind kind, const char *param, const cJSON *v, g4_http_error *e) {
    if (!cJSON_IsString(v) || !v->valuestring[0])
        return g4_http_fail(e, 400, param, "'%s' must be a non-empty string", param);
    return set(s, kind, param, v->valuestring, e);
}

static int response_format(g4_oai_structured *s, const cJSON *rf, g4_http_error *e) {
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(rf, "type");
    if (!cJSON_IsObject(rf) || !cJSON_IsString(t))
        return g4_http_fail(e, 400, "response_format", "'response_format' must be an object with a string 'type'");
    if (!strcmp(t->valuestring, "text")) return 0;
    if (!strcmp(t->valuestring, "json_object"))
        return set(s, G4_SO_JSON_SCHEMA, "response_format", json_object_schema, e);
    if (!strcmp(t->valuestring, "json_schema")) {
        const cJSON *js = cJSON_GetObjectItemCaseSensitive(rf, "json_schema");
        if (!cJSON_IsObject(js))
            return g4_http_fail(e, 400, "response_format",
                                "response_format 'json_schema' needs a 'json_schema' object "
                                "with 'name' and 'schema'");
        const cJSON *strict = cJSON_GetObjectItemCaseSensitive(js, "strict");
        if (strict && !cJSON_IsBool(strict) && !cJSON_IsNull(strict))
            return g4_http_fail(e, 400, "response_format", "'json_schema.strict' must be a boolean");
        /* strict or not, the output follows the schema: a non-strict schema is honoured strictly */
        const cJSON *schema = cJSON_GetObjectItemCaseSensitive(js, "schema");
        if (!schema) return set(s, G4_SO_JSON_SCHEMA, "response_format", json_object_schema, e);
        return set_schema(s, "response_format", schema, e);
    }
    if (!strcmp(t->valuestring, "structural_tag") || !strcmp(t->valuestring, "grammar"))
        return g4_http_fail(e, 400, "response_format", "response_format type '%s' is not supported yet",
                            t->valuestring);
    return g4_http_fail(e, 400, "response_format", "unknown response_format type '%s'", t->valuestring);
}

/* vLLM's structured_outputs object. */
static int structured_outputs(g4_oai_structured *s, const cJSON *so, g4_http_error *e) {
    if (cJSON_IsNull(so)) return 0;
    if (!cJSON_IsObject(so))
        return g4_http_fail(e, 400, "structured_outputs", "'structured_outputs' must be an object");
    for (const cJSON *x = so->child; x; x = x->next) {
        const char *k = x->string;
        if (cJSON_IsNull(x)) continue;
        int rc = 0;
        if (!strcmp(k, "json")) rc = set_schema(s, "structured_outputs.json", x, e);
        else if (!strcmp(k, "regex")) rc = set_string(s, G4_SO_REGEX, "structured_outputs.regex", x, e);
        else if (!strcmp(k, "choice")) rc = set_choice(s, "structured_outputs.choice", x, e);
        else if (!strcmp(k, "grammar")) rc = set_string(s, G4_SO_GRAMMAR, "structured_outputs.grammar", x, e);
        else if (!strcmp(k, "json_object")) {
            if (!cJSON_IsBool(x))
                return g4_http_fail(e, 400, "structured_outputs.json_object", "'json_object' must be a boolean");
            if (cJSON_IsTrue(x))
                rc = set(s, G4_SO_JSON_SCHEMA, "structured_outputs.json_object", json_object_schema, e);
        } else if (!strcmp(k, "disable_fallback") || !strcmp(k, "disable_any_whitespace")) {
            /* no fallback backend exists, and the output is compact already */
            if (!cJSON_IsBool(x)) return g4_http_fail(e, 400, "structured_outputs", "'%s' must be a boolean", k);
        } else {
            return g4_http_fail(e, 400, "structured_outputs", "structured_outputs '%s' is not supported", k);
        }
        if (rc < 0) return -1;
    }
    return 0;
}

int g4_oai_structured_parse(const cJSON *o, g4_oai_structured *s, g4_http_error *e) {
    memset(s, 0, sizeof *s);
    const cJSON *v;
    int rc = 0;
    if ((v = cJSON_GetObjectItemCaseSensitive(o, "response_format")) && !cJSON_IsNull(v)) rc = response_format(s, v, e);
    if (!rc && (v = cJSON_GetObjectItemCaseSensitive(o, "structured_outputs"))) rc = structured_outputs(s, v, e);
    if (!rc && (v = cJSON_GetObjectItemCaseSensitive(o, "guided_json")) && !cJSON_IsNull(v))
        rc = set_schema(s, "guided_json", v, e);
    if (!rc && (v = cJSON_GetObjectItemCaseSensitive(o, "guided_regex")) && !cJSON_IsNull(v))
        rc = set_string(s, G4_SO_REGEX, "guided_regex", v, e);
    if (!rc && (v = cJSON_GetObjectItemCaseSensitive(o, "guided_choice")) && !cJSON_IsNull(v))
        rc = set_choice(s, "guided_choice", v, e);
    if (!rc && (v = cJSON_GetObjectItemCaseSensitive(o, "guided_grammar")) && !cJSON_IsNull(v))
        rc = set_string(s, G4_SO_GRAMMAR, "guided_grammar", v, e);
    if (!rc && (v = cJSON_GetObjectItemCaseSensitive(o, "guided_whitespace_pattern")) && !cJSON_IsNull(v))
        rc = g4_http_fail(e, 400, "guided_whitespace_pattern",
                          "'guided_whitespace_pattern' is not supported (the "
                          "output is compact JSON)");
    if (rc) {
        g4_oai_structured_free(s);
        return -1;
    }
    return 0;
}

int g4_oai_structured_tool_choice(g4_oai_structured *s, const cJSON *tools, const char *named, g4_http_error *e) {
    cJSON *arr = cJSON_CreateArray();
    if (!arr) return g4_http_fail(e, 500, NULL, "out of memory");
    const cJSON *t;
    cJSON_ArrayForEach(t, tools) {
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(t, "function");
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(fn, "name");
        if (!cJSON_IsString(name) || (named && strcmp(name->valuestring, named))) continue;
        cJSON *x = cJSON_CreateObject();
        const cJSON *params = cJSON_GetObjectItemCaseSensitive(fn, "parameters");
        cJSON_AddItemToArray(arr, x);
        if (!x || !cJSON_AddStringToObject(x, "name", name->valuestring) ||
            (params && !cJSON_AddItemToObject(x, "parameters", cJSON_Duplicate(params, 1)))) {
            cJSON_Delete(arr);
            return g4_http_fail(e, 500, NULL, "out of memory");
        }
    }
    if (cJSON_GetArraySize(arr) == 0) {
        cJSON_Delete(arr);
        return named ? g4_http_fail(e, 400, "tool_choice", "tool_choice names '%s', which is not in 'tools'", named)
                     : g4_http_fail(e, 400, "tool_choice", "tool_choice \"required\" needs at least one function tool");
    }
    int rc = set_json(s, G4_SO_TOOL_CALL, "tool_choice", arr, e);
    cJSON_Delete(arr);
    return rc;
}

void g4_oai_structured_free(g4_oai_structured *s) {
    free(s->owned);
    memset(s, 0, sizeof *s);
}

int g4_oai_structured_compile(g4_so_cache *cache, const g4_oai_structured *s, g4_so_grammar **out, g4_http_error *e) {
    *out = NULL;
    if (!cache) return g4_http_fail(e, 500, NULL, "structured output is unavailable (out of memory at startup)");
    g4_error err = {{0}};
    if (g4_so_cache_get(cache, &s->spec, out, &err) < 0)
        return g4_http_fail(e, 400, s->param, "'%s' cannot be honoured: %s", s->param, err.msg);
    return 0;
}
