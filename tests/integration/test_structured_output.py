"""Structured output over HTTP with the official `openai` client against g4serve on the tiny random
model (issue 16): response_format json_schema / json_object, vLLM's structured_outputs and guided_*
fields, the client's .parse() helper with a pydantic model, streaming, n > 1, stop strings, and the
refusals (a keyword the compiler cannot honour, two constraints) leaving no KV block behind.

The model's weights are random, so without the constraint its output is random tokens: every
assertion below fails without the feature. Outputs are checked by independent references: the
`jsonschema` library, Python's `re.fullmatch`, pydantic. Schemas bound their strings and numbers
(maxLength, enums, ranges) because a random model at temperature 1 almost never closes an unbounded
string; every output must still end by the grammar (finish_reason "stop"), not by max_tokens."""
import json
import re
import time

import pytest
import requests

jsonschema = pytest.importorskip("jsonschema")
pydantic = pytest.importorskip("pydantic")
openai = pytest.importorskip("openai")

from conftest import gauges  # noqa: E402

MSG = [{"role": "user", "content": "Answer in the requested format."}]
SEEDS = range(6)

SCHEMAS = [
    {"type": "object",
     "properties": {"name": {"type": "string", "maxLength": 6}, "age": {"type": "integer", "minimum": 0, "maximum": 120},
                    "ok": {"type": "boolean"}},
     "required": ["name", "age", "ok"], "additionalProperties": False},
    {"type": "array", "items": {"enum": ["red", "green", 3, None]}, "minItems": 1, "maxItems": 4},
    {"type": "object",
     "properties": {"id": {"type": "string", "format": "uuid"},
                    "when": {"type": "string", "format": "date"},
                    "score": {"type": "number", "minimum": -1.5, "maximum": 2.5},
                    "tags": {"type": "array", "items": {"type": "string", "pattern": "^[a-z]{1,4}$"}, "maxItems": 3}},
     "required": ["id", "when", "score"], "additionalProperties": False},
    {"$defs": {"node": {"type": "object",
                        "properties": {"v": {"type": "integer", "minimum": 0, "maximum": 9},
                                       "next": {"anyOf": [{"$ref": "#/$defs/node"}, {"type": "null"}]}},
                        "required": ["v", "next"], "additionalProperties": False}},
     "$ref": "#/$defs/node"},
    {"anyOf": [{"type": "integer", "minimum": 10, "maximum": 99}, {"const": "none"},
               {"type": "object", "properties": {"x": {"enum": [1, 2]}}, "required": ["x"], "additionalProperties": False}]},
]

REGEXES = [r"[a-c]{3}-\d{2}", r"(yes|no|maybe)!?", r"\d{4}-\d{2}-\d{2}", r"[A-Z][a-z]{0,5}( [A-Z][a-z]{0,5}){0,2}",
           r"0x[0-9a-f]{1,8}"]


def chat(client, **kw):
    kw.setdefault("messages", MSG)
    kw.setdefault("max_tokens", 300)
    kw.setdefault("temperature", 1.0)
    return client.chat.completions.create(model="g4serve-tiny", **kw)


def done(choice):
    assert choice.finish_reason == "stop", (choice.finish_reason, choice)


@pytest.mark.parametrize("schema_i", range(len(SCHEMAS)))
def test_response_format_json_schema_validates(client, schema_i):
    schema = SCHEMAS[schema_i]
    for seed in SEEDS:
        r = chat(client, seed=seed, n=2,
                 response_format={"type": "json_schema", "json_schema": {"name": "s%d" % schema_i, "schema": schema,
                                                                         "strict": True}})
        for c in r.choices:
            done(c)
            jsonschema.validate(json.loads(c.message.content), schema)


def test_guided_json_and_structured_outputs_on_completions(client):
    schema = SCHEMAS[0]
    for seed in SEEDS:
        for extra in ({"guided_json": schema}, {"guided_json": json.dumps(schema)},
                      {"structured_outputs": {"json": schema}}):
            r = client.completions.create(model="g4serve-tiny", prompt="JSON:", max_tokens=200, temperature=1.0,
                                          seed=seed, extra_body=extra)
            done(r.choices[0])
            jsonschema.validate(json.loads(r.choices[0].text), schema)


def test_json_object_parses(client, server):
    # any object: keys are unbounded strings, so '"' and '}' get a bias (the constraint still decides)
    ids = requests.post(server.base + "/tokenize", json={"prompt": '"}', "add_special_tokens": False}).json()
    quote_close = requests.post(server.base + "/tokenize", json={"prompt": '"', "add_special_tokens": False}).json()
    brace = requests.post(server.base + "/tokenize", json={"prompt": "}", "add_special_tokens": False}).json()
    bias = {str(t): 25 for t in ids["tokens"] + quote_close["tokens"] + brace["tokens"]}
    for seed in SEEDS:
        r = chat(client, seed=seed, response_format={"type": "json_object"}, logit_bias=bias, max_tokens=400)
        done(r.choices[0])
        v = json.loads(r.choices[0].message.content)
        assert isinstance(v, dict)
    r = chat(client, seed=1, extra_body={"structured_outputs": {"json_object": True}}, logit_bias=bias)
    assert isinstance(json.loads(r.choices[0].message.content), dict)


@pytest.mark.parametrize("regex", REGEXES)
def test_regex_fullmatch(client, regex):
    for seed in SEEDS:
        for extra in ({"guided_regex": regex}, {"structured_outputs": {"regex": regex}}):
            r = chat(client, seed=seed, max_tokens=100, extra_body=extra)
            done(r.choices[0])
            assert re.fullmatch(regex, r.choices[0].message.content), r.choices[0].message.content


def test_choice(client):
    choices = ["yes", "no", "maybe so", "Ünïcode ✓"]
    seen = set()
    for seed in SEEDS:
        for extra in ({"guided_choice": choices}, {"structured_outputs": {"choice": choices}}):
            r = chat(client, seed=seed, n=3, max_tokens=50, extra_body=extra)
            for c in r.choices:
                done(c)
                assert c.message.content in choices, c.message.content
                seen.add(c.message.content)
    assert len(seen) >= 2, seen  # temperature 1: the choice is sampled, not fixed


def test_grammar(client):
    grammar = 'root ::= expr\nexpr ::= term (("+" | "-") term){0,3}\nterm ::= [0-9]{1,2} | "(" expr ")"\n'
    # the same language, as far as a regex can say it: balanced parentheses are checked by hand
    for seed in SEEDS:
        r = chat(client, seed=seed, max_tokens=100, extra_body={"guided_grammar": grammar})
        done(r.choices[0])
        out = r.choices[0].message.content
        assert re.fullmatch(r"[0-9+\-()]+", out), out
        depth = 0
        for ch in out:
            depth += {"(": 1, ")": -1}.get(ch, 0)
            assert depth >= 0, out
        assert depth == 0, out


class Pet(pydantic.BaseModel):
    name: str = pydantic.Field(max_length=8)
    legs: int = pydantic.Field(ge=0, le=8)
    kind: str = pydantic.Field(pattern="^(cat|dog|bird)$")
    vaccinated: bool


def test_parse_helper_with_pydantic(client):
    parse = client.chat.completions.parse if hasattr(client.chat.completions, "parse") \
        else client.beta.chat.completions.parse
    for seed in SEEDS:
        r = parse(model="g4serve-tiny", messages=MSG, response_format=Pet, temperature=1.0, seed=seed,
                  max_tokens=200)
        done(r.choices[0])
        pet = r.choices[0].message.parsed
        assert isinstance(pet, Pet), r.choices[0].message.content
        Pet.model_validate_json(r.choices[0].message.content)


def test_streaming_n2(client):
    schema = SCHEMAS[1]
    for seed in SEEDS[:3]:
        stream = chat(client, seed=seed, n=2, stream=True,
                      response_format={"type": "json_schema", "json_schema": {"name": "a", "schema": schema}})
        text, finish = {}, {}
        for chunk in stream:
            for c in chunk.choices:
                text[c.index] = text.get(c.index, "") + (c.delta.content or "")
                if c.finish_reason:
                    finish[c.index] = c.finish_reason
        assert sorted(text) == [0, 1] and finish == {0: "stop", 1: "stop"}, (text, finish)
        for t in text.values():
            jsonschema.validate(json.loads(t), schema)


def test_stop_string_cuts_constrained_output(client):
    regex = r"[ab]{30}"
    for seed in SEEDS:
        r = chat(client, seed=seed, max_tokens=100, stop=["b"], extra_body={"guided_regex": regex})
        out = r.choices[0].message.content
        assert r.choices[0].finish_reason == "stop"
        assert re.fullmatch(r"a{0,30}", out), out  # cut before the first b (or complete without one)


def test_refusals_name_the_problem_and_leak_nothing(client, server):
    with pytest.raises(openai.BadRequestError) as ei:
        chat(client, response_format={"type": "json_schema", "json_schema": {
            "name": "bad", "schema": {"type": "object", "patternProperties": {"^x": {"type": "integer"}}}}})
    assert ei.value.status_code == 400 and "patternProperties" in str(ei.value)
    with pytest.raises(openai.BadRequestError) as ei:
        chat(client, extra_body={"guided_regex": r"(a)\1"})
    assert "backreference" in str(ei.value).lower()
    with pytest.raises(openai.BadRequestError) as ei:
        chat(client, response_format={"type": "json_object"}, extra_body={"guided_regex": "a+"})
    assert "only one" in str(ei.value)
    with pytest.raises(openai.BadRequestError) as ei:
        chat(client, extra_body={"structured_outputs": {"regex": "a", "choice": ["a"]}})
    assert "only one" in str(ei.value)
    with pytest.raises(openai.BadRequestError):
        chat(client, extra_body={"structured_outputs": {"whitespace_pattern": " "}})
    with pytest.raises(openai.BadRequestError):
        chat(client, extra_body={"guided_choice": []})
    # a refused request never reached the engine; one that ran gave its blocks back
    chat(client, seed=1, extra_body={"guided_choice": ["x", "y"]})
    deadline = time.time() + 30
    while True:
        g = gauges(server.base)
        if g.get("g4_kv_blocks_used", 0) == 0 and g.get("vllm:num_requests_running", 0) == 0:
            break
        assert time.time() < deadline, g
        time.sleep(0.05)


def test_reasoning_then_constrained_answer(client, server):
    """Thinking on: the thought channel is free, the answer after <channel|> follows the schema.
    The random model is steered into and out of the channel with logit_bias on the two markers
    (the mask decides where they may appear: never inside the answer)."""
    def tid(text):
        ids = requests.post(server.base + "/tokenize", json={"prompt": text, "add_special_tokens": False}).json()
        assert len(ids["tokens"]) == 1, ids
        return ids["tokens"][0]
    open_id, close_id = tid("<|channel>"), tid("<channel|>")
    schema = SCHEMAS[0]
    for seed in SEEDS[:3]:
        r = chat(client, seed=seed, logit_bias={str(open_id): 30, str(close_id): 60},
                 extra_body={"chat_template_kwargs": {"enable_thinking": True}, "return_token_ids": True},
                 response_format={"type": "json_schema", "json_schema": {"name": "s", "schema": schema}})
        c = r.choices[0]
        done(c)
        assert close_id in c.token_ids, c.token_ids  # the channel was closed, then the answer came
        jsonschema.validate(json.loads(c.message.content), schema)


WEATHER = {"type": "object",
           "properties": {"city": {"type": "string", "maxLength": 8}, "unit": {"enum": ["c", "f"]},
                          "days": {"type": "integer", "minimum": 1, "maximum": 7},
                          "at": {"type": "string", "format": "date"}},
           "required": ["city", "unit"], "additionalProperties": False}
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER}},
         {"type": "function", "function": {"name": "ping"}},
         {"type": "function", "function": {"name": "add", "parameters": {
             "type": "object", "properties": {"a": {"type": "integer", "minimum": 0, "maximum": 99},
                                              "b": {"type": "number", "minimum": -1, "maximum": 1}},
             "required": ["a", "b"], "additionalProperties": False}}}]


def test_tool_choice_forces_a_gemma_tool_call(client):
    """tool_choice named / required: the model writes one Gemma 4 tool call (<|tool_call>call:NAME{..}
    <tool_call|>, Gemma's argument syntax) whose arguments follow the tool's schema; the server's
    output parser turns it into an OpenAI tool call."""
    schemas = {t["function"]["name"]: t["function"].get("parameters", {"type": "object", "additionalProperties": False})
               for t in TOOLS}
    names = set()
    for seed in SEEDS:
        for choice in ({"type": "function", "function": {"name": "get_weather"}},
                       {"type": "function", "function": {"name": "add"}}, "required"):
            r = chat(client, seed=seed, tools=TOOLS, tool_choice=choice, max_tokens=150)
            c = r.choices[0]
            assert c.finish_reason == "tool_calls" and len(c.message.tool_calls) == 1, c
            call = c.message.tool_calls[0].function
            if choice != "required":
                assert call.name == choice["function"]["name"]
            names.add(call.name)
            jsonschema.validate(json.loads(call.arguments), schemas[call.name])
    assert names >= {"get_weather", "add"}, names
    with pytest.raises(openai.BadRequestError) as ei:
        chat(client, tools=TOOLS, tool_choice="required", response_format={"type": "json_object"})
    assert "only one" in str(ei.value)
