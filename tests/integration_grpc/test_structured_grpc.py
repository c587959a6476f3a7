"""test_structured_grpc.py - structured output on the native gRPC API (GenerateRequest.structured)
through a real grpcio client on the tiny random model, temperature 1 and several seeds: JSON
schema outputs validate with `jsonschema`, regex outputs `re.fullmatch`, choices are one of the
choices, json_object gives an object; a keyword the compiler refuses is INVALID_ARGUMENT naming
it. Without the constraint the random model's output is random tokens."""
import json
import re

import grpc
import pytest

jsonschema = pytest.importorskip("jsonschema")

SCHEMA = {"type": "object",
          "properties": {"n": {"type": "integer", "minimum": -5, "maximum": 500},
                         "s": {"type": "string", "maxLength": 5}, "e": {"enum": ["a", "b", None]}},
          "required": ["n", "s", "e"], "additionalProperties": False}


@pytest.fixture(scope="module")
def stub(pb, channel):
    return pb.g4serve_pb2_grpc.G4ServeStub(channel)


def generate(pb, stub, structured, seed, chat=False, max_tokens=200):
    P = pb.g4serve_pb2
    kw = {"chat": P.ChatInput(messages=[P.ChatMessage(role="user", content="answer")])} if chat else \
        {"text": "Answer:"}
    rq = P.GenerateRequest(sampling=P.SamplingParams(temperature=1.0, seed=seed),
                           stop=P.StopRules(max_tokens=max_tokens), structured=structured, **kw)
    text, last = "", None
    for r in stub.Generate(rq, timeout=60):
        text += r.text
        last = r
    assert last.finish_reason == P.FINISH_REASON_STOP, (last.finish_reason, text)
    return text


def test_json_schema_regex_choice(pb, stub):
    P = pb.g4serve_pb2
    choices = ["alpha", "beta", "gamma delta"]
    for seed in range(5):
        out = generate(pb, stub, P.StructuredOutput(json_schema=json.dumps(SCHEMA)), seed, chat=seed % 2 == 0)
        jsonschema.validate(json.loads(out), SCHEMA)
        out = generate(pb, stub, P.StructuredOutput(regex=r"[xyz]{2,5}\.\d{3}"), seed)
        assert re.fullmatch(r"[xyz]{2,5}\.\d{3}", out), out
        out = generate(pb, stub, P.StructuredOutput(choice=P.ChoiceList(choices=choices)), seed)
        assert out in choices, out


def test_refused_keyword_is_invalid_argument(pb, stub):
    P = pb.g4serve_pb2
    bad = json.dumps({"type": "object", "propertyNames": {"maxLength": 3}})
    with pytest.raises(grpc.RpcError) as ei:
        generate(pb, stub, P.StructuredOutput(json_schema=bad), 1)
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "propertyNames" in ei.value.details()
