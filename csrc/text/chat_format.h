/* chat_format.h - value formatting for the chat template: Python/Jinja semantics over cJSON and
 * the Gemma serialization of arguments and tool declarations. Internal to csrc/text.
 *
 * Python semantics reproduced: str() of numbers (int vs float repr), True/False/None, list and
 * dict repr; truthiness; Jinja dictsort (case-insensitive, stable). A NULL cJSON pointer stands
 * for a Jinja Undefined (missing key), which prints as "" — unlike JSON null ("None"). */
#ifndef G4_TEXT_CHAT_FORMAT_H
#define G4_TEXT_CHAT_FORMAT_H

#include <cjson/cJSON.h>

#include "base/strbuf.h"

/* Python truthiness: missing, null, false, 0, "", [] and {} are false. */
int g4_py_truthy(const cJSON *v);

/* Python str(v): strings raw, numbers as Python prints them, True/False/None, repr for lists
 * and dicts; "" for a missing value. Returns 0 / -1 (OOM). */
int g4_py_str(g4_strbuf *b, const cJSON *v);

/* Python number formatting: integral doubles below 2^53 as integers, others as repr(float). */
void g4_py_number(double x, char out[32]);

/* Python `==` for the scalars the template compares (ids): None/missing equal each other. */
int g4_py_equal(const cJSON *a, const cJSON *b);

/* obj[key] as a Python dict built by json.loads sees it: a JSON object may repeat a key, and
 * the last occurrence wins. NULL when obj is not an object or lacks the key. */
const cJSON *g4_py_get(const cJSON *obj, const char *key);

/* The members of a JSON object as the Python dict json.loads builds: a repeated key keeps the
 * position of its first occurrence and the value of its last. Returns a malloc'd array of *n
 * child pointers (free it), or NULL with *n = 0 for empty / not an object / OOM (*oom set
 * when oom is not NULL). */
const cJSON **g4_dict_items(const cJSON *obj, int *n, int *oom);

/* Those members sorted like Jinja's dictsort (ASCII case-insensitive, stable). Same contract. */
const cJSON **g4_dictsort(const cJSON *obj, int *n);

/* The template's format_argument: null, <|"|>str<|"|>, true/false, {k:v,...} (keys sorted,
 * wrapped in <|"|> when escape_keys), [a,b], numbers; "" for missing. */
int g4_gemma_format_argument(g4_strbuf *b, const cJSON *v, int escape_keys);

/* The template's format_function_declaration for one OpenAI tool ({function: {...}}), already
 * trimmed. Returns -1 with a reason in why (static string) where the template raises:
 * tool.function missing, null, a number or a boolean; parameters.properties truthy but not an
 * object; a `required` list or an items `type` list that is a number or a boolean. */
int g4_gemma_format_declaration(g4_strbuf *b, const cJSON *tool, const char **why);

/* Python str.upper() restricted to ASCII, in place. */
void g4_ascii_upper(char *s, size_t n);

#endif
