"""test_metrics.py - gRPC generations are counted in /metrics: one g4serve process serving HTTP
and gRPC (the binary that ships), a real grpcio client (native g4serve.v1 Generate) and a real
tritonclient (KServe ModelInfer), then /metrics scraped and parsed with prometheus_client's
parser. The counts are checked against what the gRPC responses themselves report (usage, token
ids), and a refused request against the failure counters."""
import json
import os
import signal
import subprocess
import tempfile
import time

import grpc
import numpy as np
import pytest
import requests

prom = pytest.importorskip("prometheus_client.parser")
tg = pytest.importorskip("tritonclient.grpc")

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MODEL = "g4serve-tiny"


@pytest.fixture(scope="module")
def both():
    """g4serve with HTTP and gRPC on ephemeral loopback ports: (http base url, grpc address)."""
    binary = os.environ.get("G4SERVE")
    if not binary or not os.path.exists(binary):
        pytest.skip("g4serve (HTTP + gRPC) is not built")
    base = os.environ.get("G4_GRPC_TEST_TMP") or tempfile.gettempdir()
    work = tempfile.mkdtemp(prefix="both-", dir=base)
    err_path = os.path.join(work, "stderr.txt")
    proc = subprocess.Popen([binary, "--host", "127.0.0.1", "--port", "0", "--grpc-port", "0",
                             "--default-model-dir", os.path.join(work, "tiny-dense")],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=open(err_path, "w"), text=True)

    def log():
        with open(err_path, errors="replace") as f:
            return f.read()

    line = proc.stdout.readline()
    if not line.startswith("g4serve: port "):
        proc.kill()
        raise AssertionError("g4serve did not start:\n" + log())
    http = "http://127.0.0.1:%d" % int(line.split()[-1])
    deadline, addr = time.time() + 120, None
    while time.time() < deadline:
        assert proc.poll() is None, "g4serve exited:\n" + log()
        for l in log().splitlines():
            if l.startswith("g4serve: gRPC on "):
                addr = "127.0.0.1:" + l.rsplit(":", 1)[1]
        try:
            if addr and requests.get(http + "/v1/health/ready", timeout=2).status_code == 200:
                break
        except requests.RequestException:
            pass
        time.sleep(0.05)
    else:
        proc.kill()
        raise AssertionError("g4serve not ready:\n" + log())
    yield http, addr
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0, log()


def scrape(http):
    r = requests.get(http + "/metrics", timeout=10)
    assert r.status_code == 200
    out = {}
    for fam in prom.text_string_to_metric_families(r.text):
        for s in fam.samples:
            out.setdefault(s.name, []).append(s)
    return out


def total(m, name, **labels):
    return sum(s.value for s in m.get(name, []) if all(s.labels.get(k) == v for k, v in labels.items()))


def kserve_inputs(text, max_tokens):
    ins = []
    for name, dtype, arr in (
            ("text_input", "BYTES", np.array([text.encode()], dtype=np.object_)),
            ("stream", "BOOL", np.array([False], dtype=bool)),
            ("sampling_parameters", "BYTES",
             np.array([json.dumps({"temperature": "0", "max_tokens": str(max_tokens), "ignore_eos": 1})
                       .encode()], dtype=np.object_))):
        t = tg.InferInput(name, list(arr.shape), dtype)
        t.set_data_from_numpy(arr)
        ins.append(t)
    return ins


def test_grpc_generations_are_counted(pb, both):
    http, addr = both
    before = scrape(http)

    # native g4serve.v1 Generate (server streaming), 5 tokens, ends by length
    with grpc.insecure_channel(addr) as ch:
        grpc.channel_ready_future(ch).result(timeout=30)
        P = pb.g4serve_pb2
        stub = pb.g4serve_pb2_grpc.G4ServeStub(ch)
        msgs = list(stub.Generate(P.GenerateRequest(text="The capital of France is",
                                                    stop=P.StopRules(max_tokens=5, ignore_eos=True)), timeout=60))
        usage = msgs[-1].usage
        assert sum(len(m.token_ids) for m in msgs) == usage.completion_tokens == 5
        # a refused request: a model this server does not serve
        with pytest.raises(grpc.RpcError) as e:
            list(stub.Generate(P.GenerateRequest(model="not-served", text="x"), timeout=30))
        assert e.value.code() == grpc.StatusCode.NOT_FOUND

    # KServe ModelInfer, 3 tokens
    kc = tg.InferenceServerClient(url=addr)
    try:
        kc.infer(MODEL, kserve_inputs("hello", 3))
    finally:
        kc.close()

    after = scrape(http)
    for p in ("vllm:", ""):
        assert total(after, p + "request_success_total", finished_reason="length") == \
            total(before, p + "request_success_total", finished_reason="length") + 2
        assert total(after, p + "generation_tokens_total") == total(before, p + "generation_tokens_total") + 5 + 3
        assert total(after, p + "prompt_tokens_total") >= total(before, p + "prompt_tokens_total") + \
            usage.prompt_tokens + 1
        for h in ("time_to_first_token_seconds", "e2e_request_latency_seconds", "request_generation_tokens"):
            assert total(after, p + h + "_count") == total(before, p + h + "_count") + 2, h
    assert total(after, "request_failure_total") == total(before, "request_failure_total") + 1
    assert total(after, "g4_http_rejected_total") == total(before, "g4_http_rejected_total") + 1


# Every per-request family HTTP feeds (http/generate.c: request_done + request_params), each
# observed once per finished request: N gRPC calls must add N to each count.
PER_REQUEST = ("time_to_first_token_seconds", "e2e_request_latency_seconds", "request_prompt_tokens",
               "request_generation_tokens", "time_per_output_token_seconds", "request_queue_time_seconds",
               "request_prefill_time_seconds", "request_decode_time_seconds", "request_inference_time_seconds",
               "request_time_per_output_token_seconds", "request_params_n", "request_params_max_tokens",
               "request_max_num_generation_tokens")


def test_grpc_feeds_every_vllm_request_family(pb, both):
    """N native Generate calls (max_tokens 2..N+1, eos ignored) and /metrics: every vllm:
    per-request histogram counts N more, request_success N more; the sums say what was observed:
    n = 1 each, the max_tokens asked, the tokens generated, and a queue time (submit -> first
    engine step) that is the scheduler's, not 0."""
    http, addr = both
    n_calls = 4
    max_tokens = [2 + i for i in range(n_calls)]
    before = scrape(http)
    with grpc.insecure_channel(addr) as ch:
        grpc.channel_ready_future(ch).result(timeout=30)
        P = pb.g4serve_pb2
        stub = pb.g4serve_pb2_grpc.G4ServeStub(ch)
        for mt in max_tokens:
            msgs = list(stub.Generate(P.GenerateRequest(text="Count: one two",
                                                        stop=P.StopRules(max_tokens=mt, ignore_eos=True)), timeout=60))
            assert msgs[-1].usage.completion_tokens == mt
    after = scrape(http)

    def grew(name):
        return total(after, "vllm:" + name) - total(before, "vllm:" + name)

    for h in PER_REQUEST:
        assert grew(h + "_count") == n_calls, h
    assert grew("request_success_total") == n_calls
    assert grew("inter_token_latency_seconds_count") == sum(mt - 1 for mt in max_tokens)
    assert grew("request_params_n_sum") == n_calls
    assert grew("request_params_max_tokens_sum") == sum(max_tokens)
    assert grew("request_max_num_generation_tokens_sum") == sum(max_tokens)
    assert grew("request_generation_tokens_sum") == sum(max_tokens)
    assert grew("request_queue_time_seconds_sum") > 0
