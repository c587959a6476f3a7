"""test_spec_grpc.py - per-request speculative decoding acceptance in the native Generate's last
message (Usage.spec_draft_tokens, spec_accepted_tokens), through a real grpcio client against a
g4serve started with --speculative-config (n-gram lookup), on repetitive and plain prompts,
greedy and sampled:
* every request's accepted count is at most its proposed count, and both are 0 without
  speculation (the module's plain server);
* summed over the requests, they equal what /metrics' vllm:spec_decode_num_draft_tokens_total and
  ..._num_accepted_tokens_total moved by (prometheus_client's parser);
* greedy requests give the same tokens with and without speculation."""
import json
import urllib.request

import pytest
from conftest import start_server, stop_server

prom = pytest.importorskip("prometheus_client.parser")

NGRAM = {"method": "ngram", "num_speculative_tokens": 4, "prompt_lookup_max": 3, "prompt_lookup_min": 1}
PROMPTS = ["one two three four five " * 8, "def f(x):\n    return x + 1\n\n" * 5, "The capital of France is"]


@pytest.fixture(scope="module")
def spec_server():
    srv = start_server(extra=["--speculative-config", json.dumps(NGRAM)])
    yield srv
    stop_server(srv)


def counters(srv):
    with urllib.request.urlopen(f"http://127.0.0.1:{srv.http_port}/metrics", timeout=10) as r:
        text = r.read().decode()
    out = {}
    for fam in prom.text_string_to_metric_families(text):
        if fam.name.startswith("vllm:spec_decode_num_") and not fam.name.endswith("per_pos"):
            out[fam.name] = sum(s.value for s in fam.samples)
    return out


def generate(pb, srv, text, sampled):
    import grpc

    P = pb.g4serve_pb2
    sp = P.SamplingParams(temperature=1.0, seed=7) if sampled else P.SamplingParams(temperature=0.0)
    rq = P.GenerateRequest(text=text, sampling=sp, stop=P.StopRules(max_tokens=24, ignore_eos=True))
    with grpc.insecure_channel(srv.addr) as ch:
        msgs = list(pb.g4serve_pb2_grpc.G4ServeStub(ch).Generate(rq, timeout=120))
    ids = [t for m in msgs for t in m.token_ids]
    assert len(ids) == 24 and msgs[-1].usage.completion_tokens == 24
    return ids, msgs[-1].usage


def test_final_message_reports_acceptance(pb, spec_server, server):
    before = counters(spec_server)
    assert set(before) == {"vllm:spec_decode_num_drafts", "vllm:spec_decode_num_draft_tokens",
                           "vllm:spec_decode_num_accepted_tokens"}
    drafted = accepted = 0
    for text in PROMPTS:
        for sampled in (False, True):
            ids, u = generate(pb, spec_server, text, sampled)
            assert 0 <= u.spec_accepted_tokens <= u.spec_draft_tokens, (text, u)
            drafted += u.spec_draft_tokens
            accepted += u.spec_accepted_tokens
            plain_ids, plain = generate(pb, server, text, sampled)
            assert plain.spec_draft_tokens == 0 and plain.spec_accepted_tokens == 0
            if not sampled:
                assert ids == plain_ids, text
    after = counters(spec_server)
    assert after["vllm:spec_decode_num_draft_tokens"] - before["vllm:spec_decode_num_draft_tokens"] == drafted
    assert after["vllm:spec_decode_num_accepted_tokens"] - before["vllm:spec_decode_num_accepted_tokens"] == accepted
