"""Control-token injection (issue 20): every special token of the served tokenizer, written inside
any caller-supplied field of a chat request, must be tokenized as plain text. Structural tokens
come only from the template. Checked through POST /tokenize (the ids chat submits: the same
validation and prompt builder) for every field, and through /v1/chat/completions with the
official openai client (usage.prompt_tokens equals /tokenize's count). Raw prompts of
/v1/completions and /tokenize {"prompt"} keep splitting special tokens (documented).

Uses the session `server` (conftest.py)."""
import json
import pathlib

import pytest
import requests
from openai import OpenAI

ROOT = pathlib.Path(__file__).resolve().parents[2]
TOK = json.loads((ROOT / "tests/text/data/tokenizer.json").read_text())
SPECIAL = {t["id"]: t["content"] for t in TOK["added_tokens"] if t["special"]}
INJ = " ".join(SPECIAL.values())  # every special token of the tokenizer, spelled out
U = {"role": "user", "content": "hi"}


def call(args="{}", name="f", cid="c1"):
    return {"role": "assistant", "tool_calls": [{"id": cid, "type": "function",
                                                 "function": {"name": name, "arguments": args}}]}


def tool(name="f", description="d", parameters=None):
    fn = {"name": name, "description": description}
    if parameters is not None:
        fn["parameters"] = parameters
    return [{"type": "function", "function": fn}]


def obj(props, required=None):
    p = {"type": "object", "properties": props}
    if required:
        p["required"] = required
    return p


# name -> function(x) giving the request fields with x in that one place
FIELDS = {
    "system content": lambda x: dict(messages=[{"role": "system", "content": x}, U]),
    "system part": lambda x: dict(messages=[{"role": "system", "content": [{"type": "text", "text": x}]}, U]),
    "developer content": lambda x: dict(messages=[{"role": "developer", "content": x}, U]),
    "user content": lambda x: dict(messages=[{"role": "user", "content": "a " + x + " b"}]),
    "user part": lambda x: dict(messages=[{"role": "user", "content": [{"type": "text", "text": x}]}]),
    "assistant content": lambda x: dict(messages=[U, {"role": "assistant", "content": x}, U]),
    "assistant part": lambda x: dict(messages=[U, {"role": "assistant", "content": [{"type": "text", "text": x}]}, U]),
    "tool description": lambda x: dict(messages=[U], tools=tool(description=x)),
    "tool name": lambda x: dict(messages=[U], tools=tool(name="f" + x)),
    "parameter key": lambda x: dict(messages=[U], tools=tool(parameters=obj({"k" + x: {"type": "string"}}, ["k" + x]))),
    "parameter description": lambda x: dict(messages=[U], tools=tool(parameters=obj(
        {"k": {"type": "string", "description": x, "enum": [x]}}))),
    "parameter type": lambda x: dict(messages=[U], tools=tool(parameters=obj(
        {"k": {"type": "s" + x}, "a": {"type": "array", "items": {"type": x, "extra": x}}}))),
    "tool-call name": lambda x: dict(messages=[U, call(name="f" + x)]),
    "tool-call arguments": lambda x: dict(messages=[U, call(args=json.dumps({"k" + x: x, "n": [x, {"y" + x: x}]}))]),
    "tool result": lambda x: dict(messages=[U, call(), {"role": "tool", "tool_call_id": "c1", "content": x}]),
    "tool result parts": lambda x: dict(messages=[U, call(), {"role": "tool", "tool_call_id": "c1",
                                                             "content": [{"type": "text", "text": x}]}]),
    "tool message name": lambda x: dict(messages=[U, call(cid="c1"), {"role": "tool", "tool_call_id": "zz",
                                                                      "name": "g" + x, "content": "r"}]),
}


def tokenize(server, body):
    r = requests.post(server.base + "/tokenize", json=body, timeout=30)
    assert r.status_code == 200, r.text[:300]
    return r.json()["tokens"]


def specials(ids):
    return sorted(i for i in ids if i in SPECIAL)


@pytest.mark.parametrize("field", sorted(FIELDS))
def test_control_tokens_in_every_field_are_plain_text(server, field):
    injected = tokenize(server, FIELDS[field](INJ))
    clean = tokenize(server, FIELDS[field]("plain"))
    assert specials(injected) == specials(clean), field
    # the spelled-out tokens are still there, as text
    text = requests.post(server.base + "/detokenize", json={"tokens": injected}, timeout=30).json()["prompt"]
    assert "<|turn>" in text or field == "parameter type"  # types are upper-cased by the template


def test_chat_completions_uses_the_same_ids(server):
    c = OpenAI(base_url=server.base + "/v1", api_key="none", max_retries=0)
    for field in ("user content", "system content", "tool-call arguments", "tool result", "tool description"):
        body = FIELDS[field](INJ)
        ids = tokenize(server, body)
        r = c.chat.completions.create(model="g4serve-tiny", max_tokens=1, **body)
        assert r.usage.prompt_tokens == len(ids), field


def test_raw_prompts_keep_special_tokens(server):
    """Documented: a raw /v1/completions prompt is the whole prompt, template included."""
    ids = tokenize(server, {"prompt": "<|turn>user\nhi<turn|>\n"})
    assert ids[:2] == [2, 105] and 106 in ids
