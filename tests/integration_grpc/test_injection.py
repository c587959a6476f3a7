"""test_injection.py - control-token injection over gRPC (issue 20): every special token of the
served tokenizer, written in any caller-supplied field of a g4serve.v1 ChatInput (message
content of each role, reasoning, tool names, descriptions, parameters_json keys / descriptions /
types, tool-call names and arguments, tool results, tool message names), must come out of
Tokenize as plain text: the special ids equal those of the same request with harmless text.
Generate's usage.prompt_tokens equals Tokenize's count for an injected request."""
import json
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
TOK = json.loads((ROOT / "tests/text/data/tokenizer.json").read_text())
SPECIAL = {t["id"]: t["content"] for t in TOK["added_tokens"] if t["special"]}
INJ = " ".join(SPECIAL.values())


@pytest.fixture(scope="module")
def stub(pb, channel):
    return pb.g4serve_pb2_grpc.G4ServeStub(channel)


def fields(P):
    M, TC, T = P.ChatMessage, P.ToolCall, P.Tool
    u = M(role="user", content="hi")

    def call(name="f", args="{}"):
        return M(role="assistant", tool_calls=[TC(id="c1", name=name, arguments=args)])

    def params(props):
        return json.dumps({"type": "object", "properties": props})

    return {
        "system content": lambda x: P.ChatInput(messages=[M(role="system", content=x), u]),
        "developer content": lambda x: P.ChatInput(messages=[M(role="developer", content=x), u]),
        "user content": lambda x: P.ChatInput(messages=[M(role="user", content="a " + x)]),
        "assistant content": lambda x: P.ChatInput(messages=[u, M(role="assistant", content=x), u]),
        "assistant reasoning": lambda x: P.ChatInput(messages=[u, M(role="assistant", content="ok", reasoning=x)]),
        "tool name": lambda x: P.ChatInput(messages=[u], tools=[T(name="f" + x, description="d")]),
        "tool description": lambda x: P.ChatInput(messages=[u], tools=[T(name="f", description=x)]),
        "parameters_json": lambda x: P.ChatInput(messages=[u], tools=[T(name="f", parameters_json=params(
            {"k" + x: {"type": "string", "description": x, "enum": [x]}, "t": {"type": "s" + x}}))]),
        "tool-call name": lambda x: P.ChatInput(messages=[u, call(name="f" + x)]),
        "tool-call arguments": lambda x: P.ChatInput(messages=[u, call(args=json.dumps({"k" + x: [x, {x: x}]}))]),
        "tool result": lambda x: P.ChatInput(messages=[u, call(), M(role="tool", tool_call_id="c1", content=x)]),
        "tool message name": lambda x: P.ChatInput(messages=[u, call(), M(role="tool", tool_call_id="zz",
                                                                        name="g" + x, content="r")]),
    }


def specials(ids):
    return sorted(i for i in ids if i in SPECIAL)


def test_control_tokens_in_every_field_are_plain_text(pb, stub):
    P = pb.g4serve_pb2
    bad = []
    for name, make in fields(P).items():
        injected = stub.Tokenize(P.TokenizeRequest(chat=make(INJ)), timeout=10).ids
        clean = stub.Tokenize(P.TokenizeRequest(chat=make("plain")), timeout=10).ids
        if specials(injected) != specials(clean):
            bad.append(name)
    assert not bad, "user text became control tokens in: %s" % ", ".join(bad)


def test_generate_counts_the_same_prompt(pb, stub):
    P = pb.g4serve_pb2
    chat = fields(P)["user content"](INJ)
    ids = stub.Tokenize(P.TokenizeRequest(chat=chat), timeout=10).ids
    last = None
    for r in stub.Generate(P.GenerateRequest(chat=chat, stop=P.StopRules(max_tokens=1)), timeout=60):
        last = r
    assert last.usage.prompt_tokens == len(ids)
