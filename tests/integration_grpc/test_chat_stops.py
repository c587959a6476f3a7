"""test_chat_stops.py - Gemma 4's chat stop tokens end a gRPC generation (token ids or chat
messages) of the real g4serve, also when the checkpoint's config.json lists only <eos> (g4serve adds <turn|> and <|tool_response>,
found by name in tokenizer.json). The gRPC-only test binary this suite used to start did not.

A random tiny model never picks a given id by itself, so the test makes it: the tiny model ties
its LM head to the embedding, so swapping two rows of the embedding (a, the token the model
greedily generates first, and the stop token s) relabels the vocabulary and nothing else. The
swapped model must generate exactly the original tokens with a and s exchanged (checked with
ignore_eos), so its first token is s; without ignore_eos the stream must end right there with
FINISH_REASON_STOP, stop_token_id = s and one completion token (the stop id, not sent as output,
as for <eos>)."""
import json
import os
import shutil
import struct
import subprocess
import tempfile

import pytest

from conftest import ROOT, _tmp_base, start_server, stop_server

TOKENIZER = os.path.join(ROOT, "tests", "text", "data", "tokenizer.json")
EMBED = "model.language_model.embed_tokens.weight"
PROMPT = [2, 818, 5010, 1045, 563, 496]
MAX_TOKENS = 6


def token_id(content):
    """The id tokenizer.json gives a special token (the independent reference for the stop id)."""
    with open(TOKENIZER) as f:
        tok = json.load(f)
    ids = [t["id"] for t in tok["added_tokens"] if t["content"] == content]
    assert len(ids) == 1, content
    return ids[0]


def make_tiny(out):
    tool = os.environ.get("G4_MAKE_TINY") or os.path.join(os.path.dirname(os.environ.get("G4SERVE", "")), "..",
                                                          "tools", "g4-make-tiny")
    if not os.path.exists(tool):
        pytest.skip(f"{tool} is not built")
    subprocess.run([tool, "--config", "tiny-dense", "--seed", "1", "--out", out], check=True, capture_output=True,
                   timeout=120)


def only_eos_in_config(d):
    """config.json lists <eos> alone, as a base model's config may; <turn|> must come from g4serve."""
    path = os.path.join(d, "config.json")
    with open(path) as f:
        cfg = json.load(f)
    for c in (cfg, cfg.get("text_config") or {}):
        if "eos_token_id" in c:
            c["eos_token_id"] = [token_id("<eos>")]
    with open(path, "w") as f:
        json.dump(cfg, f)


def swap_embedding_rows(d, a, b):
    """Exchanges rows a and b of the embedding in d/model.safetensors, in place."""
    path = os.path.join(d, "model.safetensors")
    with open(path, "r+b") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        t = header[EMBED]
        rows, cols = t["shape"]
        assert max(a, b) < rows
        row = (t["data_offsets"][1] - t["data_offsets"][0]) // rows
        base = 8 + n + t["data_offsets"][0]
        f.seek(base + a * row)
        ra = f.read(row)
        f.seek(base + b * row)
        rb = f.read(row)
        assert ra != rb
        f.seek(base + a * row)
        f.write(rb)
        f.seek(base + b * row)
        f.write(ra)


def prompt(P, kind):
    """The request input: token ids, or a chat (rendered with the template: <|turn>, <turn|>)."""
    if kind == "ids":
        return {"token_ids": P.TokenIds(ids=PROMPT)}
    return {"chat": P.ChatInput(messages=[P.ChatMessage(role="user", content="Hello there")])}


def generate(pb, srv, ignore_eos, kind="ids"):
    """(generated ids, last response, prompt ids as the server tokenized them)."""
    import grpc

    P = pb.g4serve_pb2
    with grpc.insecure_channel(srv.addr) as ch:
        stub = pb.g4serve_pb2_grpc.G4ServeStub(ch)
        rq = P.GenerateRequest(**prompt(P, kind), sampling=P.SamplingParams(temperature=0),
                               stop=P.StopRules(max_tokens=MAX_TOKENS, ignore_eos=ignore_eos))
        ids, last = [], None
        for r in stub.Generate(rq, timeout=60):
            ids += list(r.token_ids)
            last = r
        tk = PROMPT if kind == "ids" else list(stub.Tokenize(P.TokenizeRequest(**prompt(P, kind)), timeout=30).ids)
    return ids, last, tk


def serve(d, fn):
    srv = start_server(model_args=["--model", d])
    try:
        return fn(srv)
    finally:
        stop_server(srv)


@pytest.fixture(scope="module")
def original(pb):
    """A tiny checkpoint whose config lists only <eos>, with its tokenizer.json, and the tokens
    the model generates greedily from PROMPT when nothing stops it."""
    d = tempfile.mkdtemp(prefix="stops-", dir=_tmp_base())
    make_tiny(d)
    only_eos_in_config(d)
    shutil.copy(TOKENIZER, os.path.join(d, "tokenizer.json"))
    def both(srv):
        return {kind: generate(pb, srv, ignore_eos=True, kind=kind) for kind in ("ids", "chat")}

    out = serve(d, both)
    for ids, last, _ in out.values():
        assert len(ids) == MAX_TOKENS and last.finish_reason == pb.g4serve_pb2.FINISH_REASON_LENGTH
    return d, out


# A chat prompt holds <turn|> itself, so relabelling <turn|> is tried with an ids prompt only.
@pytest.mark.parametrize("stop,kind", [("<turn|>", "ids"), ("<|tool_response>", "ids"), ("<|tool_response>", "chat")])
def test_chat_stop_token_ends_generation(pb, original, stop, kind):
    P = pb.g4serve_pb2
    d0, out = original
    ids0, _, prompt0 = out[kind]
    s, a = token_id(stop), ids0[0]
    assert a not in (s, token_id("<eos>")) and s not in ids0 and a not in prompt0 and s not in prompt0
    d = tempfile.mkdtemp(prefix="stops-swapped-", dir=_tmp_base())
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        shutil.copy(os.path.join(d0, name), os.path.join(d, name))
    swap_embedding_rows(d, a, s)

    def check(srv):
        relabelled = [s if t == a else a if t == s else t for t in ids0]
        ids, last, tk = generate(pb, srv, ignore_eos=True, kind=kind)
        assert tk == prompt0
        assert ids == relabelled, "swapping two embedding rows must only exchange those two ids"
        assert last.finish_reason == P.FINISH_REASON_LENGTH
        ids, last, _ = generate(pb, srv, ignore_eos=False, kind=kind)
        # an eos-like stop ends the stream at once; like <eos>, the id is reported, not sent as output
        assert last.finish_reason == P.FINISH_REASON_STOP, f"generation did not stop at {stop} ({s}): {ids}"
        assert last.stop_token_id == s and ids == [] and last.usage.completion_tokens == 1

    serve(d, check)
