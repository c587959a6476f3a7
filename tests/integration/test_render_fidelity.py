"""Renderer fidelity through HTTP (issue 20): the chat renderer equals jinja2 with the official
template, or refuses where the template raises, as a clear 400 naming the field, never a crash.

The reference is tests/text/data/chat_cases.json (tests/text/make_chat_cases.py renders the
official template with jinja2; test_chat_template.c checks the renderer itself against it). Here
each case goes through POST /tokenize, the body sent as the raw JSON text where the case has one
(duplicate keys, -0), and the ids come back through /detokenize: the prompt must equal jinja2's
"expected_fixed" text (the server applies the documented generation-prompt fix). A U+0000 in any
string is refused as a 400 naming the field (cJSON would end the text there silently).

Uses the session `server` (conftest.py)."""
import json
import pathlib

import pytest
import requests
from openai import BadRequestError, OpenAI

ROOT = pathlib.Path(__file__).resolve().parents[2]
CASES = json.loads((ROOT / "tests/text/data/chat_cases.json").read_text())["cases"]


def body_of(case, **extra):
    """The /tokenize body as JSON text, keeping a case's raw text (duplicate keys) as it is."""
    opts = case["options"]
    parts = ['"messages":' + case.get("messages_json", json.dumps(case.get("messages")))]
    if "tools_json" in case or "tools" in case:
        parts.append('"tools":' + case.get("tools_json", json.dumps(case.get("tools"))))
    kwargs = {"enable_thinking": opts["enable_thinking"], "preserve_thinking": opts["preserve_thinking"]}
    fields = {"add_generation_prompt": opts["add_generation_prompt"], "chat_template_kwargs": kwargs}
    if opts.get("continue_final_message"):
        fields["continue_final_message"] = True
    fields.update(extra)
    parts += ['"%s":%s' % (k, json.dumps(v)) for k, v in fields.items()]
    return "{" + ",".join(parts) + "}"


def post(server, path, text):
    return requests.post(server.base + path, data=text.encode(), timeout=30,
                         headers={"Content-Type": "application/json"})


def alive(server):
    assert requests.get(server.base + "/v1/health/live", timeout=10).status_code == 200


def detokenized(server, ids):
    r = requests.post(server.base + "/detokenize", json={"tokens": ids}, timeout=30)
    assert r.status_code == 200, r.text[:300]
    return r.json()["prompt"]


ISSUE20 = [c for c in CASES if c["name"] in {
    "tool_content_missing", "tool_name_null_falls_back", "tool_responses_missing_and_null",
    "tool_responses_mapping", "tool_responses_string", "reasoning_list_before_last_user_ignored",
    "negative_zero", "duplicate_keys", "schema_required_string", "schema_required_mapping",
    "schema_nested_properties_list", "schema_items_type_mapping_and_numbers"}]
# Shapes the template renders but the OpenAI request validation refuses first (documented in
# docs/operations.md): content given as an object, a text part whose text is not a string, a
# tool whose function or parameters is not an object. A clear 400 naming the field.
STRICTER = {"system_content_mapping": "messages[0].content", "text_null_parts": "text",
            "schema_odd_shapes": "parameters"}
# The server decodes OpenAI's string arguments (g4_chat_options.decode_string_arguments).
DECODED = {"tool_call_string_arguments_error"}
ERRORS = [c for c in CASES if c.get("error") and c["name"] not in DECODED]


def test_the_golden_file_has_the_issue_20_cases():
    assert len(ISSUE20) == 12 and len(ERRORS) >= 17
    assert set(STRICTER) <= {c["name"] for c in CASES}


@pytest.mark.parametrize("name", sorted(STRICTER))
def test_request_validation_is_stricter_than_the_template(server, name):
    case = next(c for c in CASES if c["name"] == name)
    r = post(server, "/tokenize", body_of(case))
    assert r.status_code == 400, r.text[:300]
    assert STRICTER[name] in r.json()["error"]["message"], r.text[:300]
    alive(server)


@pytest.mark.parametrize("case", ISSUE20, ids=[c["name"] for c in ISSUE20])
def test_prompt_equals_jinja2(server, case):
    r = post(server, "/tokenize", body_of(case))
    assert r.status_code == 200, r.text[:300]
    assert detokenized(server, r.json()["tokens"]) == case["expected_fixed"]


@pytest.mark.parametrize("case", ERRORS, ids=[c["name"] for c in ERRORS])
def test_template_raises_so_the_server_answers_400(server, case):
    r = post(server, "/tokenize", body_of(case))
    assert r.status_code == 400, r.text[:300]
    err = r.json()["error"]
    assert err["type"] == "BadRequestError" and err["message"], err
    assert any(w in err["message"] for w in ("messages[", "tool")), err
    alive(server)


@pytest.mark.parametrize("where,body,field", [
    ("user content", '{"messages":[{"role":"user","content":"a\\u0000b"}]}', "messages[0].content"),
    ("user part", '{"messages":[{"role":"user","content":[{"type":"text","text":"x\\u0000"}]}]}',
     "messages[0].content[0].text"),
    ("tool argument key", '{"messages":[{"role":"user","content":"q"},{"role":"assistant","tool_calls":'
     '[{"id":"c","type":"function","function":{"name":"f","arguments":{"k\\u0000":1}}}]}]}',
     "messages[1].tool_calls[0].function.arguments.k"),
    ("tool description", '{"messages":[{"role":"user","content":"q"}],"tools":[{"type":"function",'
     '"function":{"name":"f","description":"\\u0000"}}]}', "tools[0].function.description"),
])
def test_nul_is_refused_naming_the_field(server, where, body, field):
    r = post(server, "/tokenize", body)
    assert r.status_code == 400, (where, r.text[:300])
    err = r.json()["error"]
    assert err["message"].startswith(field + " ") and "NUL" in err["message"], err
    r = post(server, "/v1/chat/completions", body[:-1] + ',"model":"g4serve-tiny","max_tokens":1}')
    assert r.status_code == 400, (where, r.text[:300])
    err = r.json()["error"]
    assert err["param"] == field and "NUL" in err["message"], err
    alive(server)


def test_nul_is_refused_on_chat_completions_and_escaped_text_is_not(server):
    c = OpenAI(base_url=server.base + "/v1", api_key="none", max_retries=0)
    with pytest.raises(BadRequestError) as e:
        c.chat.completions.create(model="g4serve-tiny", max_tokens=1,
                                  messages=[{"role": "user", "content": "before\x00after"}])
    assert "messages[0].content" in str(e.value)
    # the six characters \u0000 written as text (an escaped backslash) are ordinary text
    r = post(server, "/tokenize", '{"messages":[{"role":"user","content":"a\\\\u0000b"}]}')
    assert r.status_code == 200, r.text[:300]
    assert "a\\u0000b" in detokenized(server, r.json()["tokens"])
