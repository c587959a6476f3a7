"""g4-bench-serve against a live g4serve (tiny default model, 127.0.0.1, ephemeral port):

* a small bounded load over /v1/completions: every request completes with exactly the asked
  number of tokens (ignore_eos) and input length; the reported metrics equal a reference
  computation (tests/bench/make_metrics_ref.py, vLLM's definitions in numpy) over the per-request
  timestamps the tool recorded in its result JSON;
* the same kind of load timed with the official `openai` Python client on the same server:
  TTFT and E2E latency agree with the tool's within a tolerance meant for a busy 2-core CI box;
* /v1/chat/completions with the test tokenizer; --offline in-process;
* --backend grpc (g4serve.v1 Generate on the same server's gRPC port): the same load as over
  HTTP gives the same input and output token counts per request, the metrics equal the
  reference over the recorded timestamps, ShareGPT text prompts work, failures carry the gRPC
  status, and TTFT / E2EL agree with a Python grpcio client (stubs from proto/g4serve.proto);
  when the tool or the server was built without gRPC, --backend grpc is refused instead.

Skipped (with the reason) only when the binaries (or, for the grpcio cross-check, the grpcio
and grpcio-tools packages) are missing."""
import json
import re
import pathlib
import signal
import statistics
import subprocess
import sys
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from make_metrics_ref import PCTS, reference  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "common"))
import built  # noqa: E402  (tests/common/built.py: where the build put a program)

TOKENIZER = ROOT / "tests" / "text" / "data" / "tokenizer.json"


def find(env, rel):
    return built.locate(env, rel) or pytest.skip("%s not built (build it, or set %s)" % (rel, env))


@pytest.fixture(scope="module")
def bench_bin():
    return find("G4_BENCH_SERVE", "bench/serve/g4-bench-serve")


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """The running g4serve: {"http": base URL, "grpc": HOST:PORT or None (built without gRPC)}."""
    binary = find("G4SERVE", "csrc/server/g4serve")
    tmp = tmp_path_factory.mktemp("benchsrv")
    err = open(tmp / "stderr.txt", "w")
    proc = subprocess.Popen([binary, "--host", "127.0.0.1", "--port", "0", "--grpc-port", "0",
                             "--default-model-dir", str(tmp / "tiny"), "--no-enable-prefix-caching"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=err, text=True)
    line = proc.stdout.readline()
    assert line.startswith("g4serve: port "), (tmp / "stderr.txt").read_text()
    base = "http://127.0.0.1:%d" % int(line.split()[-1])
    import urllib.request
    deadline = time.time() + 120
    while True:
        try:
            if urllib.request.urlopen(base + "/v1/health/ready", timeout=2).status == 200:
                break
        except Exception:
            pass
        assert proc.poll() is None and time.time() < deadline, (tmp / "stderr.txt").read_text()
        time.sleep(0.1)
    grpc_line = re.search(r"g4serve: gRPC on (\S+:\d+)", (tmp / "stderr.txt").read_text())
    yield {"http": base, "grpc": grpc_line.group(1) if grpc_line else None}
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def server(live):
    return live["http"]


def grpc_built(bench_bin):
    return "not built into this binary" not in subprocess.run([bench_bin, "--help"], capture_output=True,
                                                                text=True, timeout=30).stdout


@pytest.fixture(scope="module")
def grpc_server(bench_bin, live):
    if not grpc_built(bench_bin) or not live["grpc"]:
        pytest.skip("g4-bench-serve or g4serve built without gRPC (libgrpc-dev, libprotobuf-c-dev, protoc-c)")
    return live["grpc"]


def run_bench(bench_bin, tmp_path, *args):
    out = tmp_path / "result.json"
    p = subprocess.run([bench_bin, "--result-file", str(out), "--metric-percentiles", ",".join("%g" % x for x in PCTS)]
                       + list(args), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "Serving Benchmark Result" in p.stdout
    return json.loads(out.read_text()), p.stdout


def check_against_reference(res):
    recs = [{"ok": t["ok"], "prompt_len": i, "output_tokens": o, "t_send": t["send"], "t_end": t["end"],
             "chunks": t["chunks"]}
            for t, i, o in zip(res["timestamps"], res["input_lens"], res["output_lens"])]
    ref = reference(recs, res["duration"], None)
    assert res["completed"] == ref["completed"] and res["failed"] == ref["failed"]
    assert res["total_input_tokens"] == ref["total_input"] and res["total_output_tokens"] == ref["total_output"]
    for k in ("request_throughput", "output_throughput", "total_token_throughput"):
        assert res[k] == pytest.approx(ref[k], rel=1e-9), k
    assert res["max_output_tokens_per_s"] == ref["max_output_tokens_per_s"]
    assert res["max_concurrent_requests"] == ref["max_concurrent_requests"]
    for m in ("ttft", "tpot", "itl", "e2el"):
        assert res["mean_%s_ms" % m] == pytest.approx(ref[m]["mean"], rel=1e-9, abs=1e-9), m
        assert res["median_%s_ms" % m] == pytest.approx(ref[m]["median"], rel=1e-9, abs=1e-9), m
        assert res["std_%s_ms" % m] == pytest.approx(ref[m]["std"], rel=1e-7, abs=1e-7), m
        for p, v in zip(PCTS, ref[m]["pct"]):
            assert res["p%g_%s_ms" % (p, m)] == pytest.approx(v, rel=1e-9, abs=1e-9), (m, p)


def test_completions_metrics_match_reference(bench_bin, server, tmp_path):
    res, _ = run_bench(bench_bin, tmp_path, "--base-url", server, "--model", "g4serve-tiny", "--num-prompts", "12",
                       "--random-input-len", "48", "--random-output-len", "12", "--random-range-ratio", "0.5",
                       "--max-concurrency", "4", "--request-rate", "40", "--seed", "3",
                       "--goodput", "ttft:100000 tpot:100000")
    assert res["completed"] == 12 and res["failed"] == 0, res["errors"]
    assert all(24 <= n <= 72 for n in res["input_lens"])
    # ignore_eos + max_tokens: every request ran to its full length; usage agrees with the chunks
    assert all(6 <= n <= 18 for n in res["output_lens"]) and len(set(res["output_lens"])) > 1
    assert res["request_goodput"] == pytest.approx(res["request_throughput"])
    for t in res["timestamps"]:
        assert t["send"] < t["chunks"][0] <= t["chunks"][-1] <= t["end"]
    check_against_reference(res)


def openai_timings(base, n, prompt_len, out_len):
    import openai
    import random
    client = openai.OpenAI(base_url=base + "/v1", api_key="none", max_retries=0, timeout=120)
    rng = random.Random(5)
    ttfts, e2els = [], []
    for _ in range(n):
        prompt = [rng.randrange(256, 262144) for _ in range(prompt_len)]
        t0 = time.perf_counter()
        stream = client.completions.create(model="g4serve-tiny", prompt=prompt, max_tokens=out_len, stream=True,
                                           temperature=0.0, stream_options={"include_usage": True},
                                           extra_body={"ignore_eos": True})
        first = last = None
        usage = None
        for chunk in stream:
            now = time.perf_counter()
            if chunk.choices:
                first = first if first is not None else now
                last = now
            elif chunk.usage:
                usage = chunk.usage
        assert usage is not None and usage.completion_tokens == out_len
        ttfts.append(first - t0)
        e2els.append(last - t0)
    return statistics.median(ttfts) * 1000, statistics.median(e2els) * 1000


def test_cross_check_with_openai_client(bench_bin, server, tmp_path):
    # Same server, same load shape, one request at a time: the medians must agree. The slack is
    # for scheduling noise (CI runs other suites beside this one on 2 cores), not for a definition
    # mismatch: a wrong TTFT (e.g. taken at the response headers) or E2E would be off by a whole
    # prefill / decode in every attempt. Noise can spoil one attempt, so up to three are made.
    seen = []
    for attempt in range(3):
        res, _ = run_bench(bench_bin, tmp_path, "--base-url", server, "--model", "g4serve-tiny", "--num-prompts", "6",
                           "--random-input-len", "64", "--random-output-len", "16", "--max-concurrency", "1",
                           "--num-warmups", "2", "--seed", str(attempt))
        assert res["completed"] == 6 and res["median_e2el_ms"] > res["median_ttft_ms"] > 0
        ttft_ref, e2el_ref = openai_timings(server, 6, 64, 16)
        seen.append((res["median_ttft_ms"], ttft_ref, res["median_e2el_ms"], e2el_ref))
        if (res["median_ttft_ms"] == pytest.approx(ttft_ref, rel=0.5, abs=25) and
                res["median_e2el_ms"] == pytest.approx(e2el_ref, rel=0.35, abs=40)):
            return
    pytest.fail("g4-bench-serve vs openai client (TTFT tool, ref, E2EL tool, ref in ms): %s" % seen)


def test_chat_endpoint(bench_bin, server, tmp_path):
    res, _ = run_bench(bench_bin, tmp_path, "--base-url", server, "--backend", "openai-chat", "--tokenizer",
                       str(TOKENIZER), "--num-prompts", "4", "--random-input-len", "16", "--random-output-len", "5",
                       "--max-concurrency", "2")
    assert res["completed"] == 4 and res["failed"] == 0, res["errors"]
    assert res["output_lens"] == [5, 5, 5, 5]
    assert res["endpoint"] == "/v1/chat/completions"
    check_against_reference(res)


def test_failed_requests_are_counted(bench_bin, server, tmp_path):
    # a prompt longer than max_model_len (4096) is refused by the server with 400
    out = tmp_path / "r.json"
    p = subprocess.run([bench_bin, "--base-url", server, "--num-prompts", "2", "--num-warmups", "0",
                        "--random-input-len", "5000", "--random-output-len", "4", "--result-file", str(out)],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 1 and "Failed requests:                         2" in p.stdout, p.stdout + p.stderr
    assert "HTTP error" in p.stderr


def test_offline_mode(bench_bin, tmp_path):
    res, out = run_bench(bench_bin, tmp_path, "--offline", "--num-prompts", "6", "--random-input-len", "16",
                         "--random-output-len", "6", "--max-concurrency", "3", "--roofline")
    assert res["backend"] == "offline" and res["completed"] == 6 and res["output_lens"] == [6] * 6
    check_against_reference(res)
    assert "Roofline" in out


def test_grpc_backend_refused_when_not_built(bench_bin):
    if grpc_built(bench_bin):
        pytest.skip("this g4-bench-serve has the gRPC driver")
    p = subprocess.run([bench_bin, "--backend", "grpc"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 2 and "--backend grpc: not built into this binary" in p.stderr


GRPC_LOAD = ["--num-prompts", "12", "--random-input-len", "48", "--random-output-len", "12", "--random-range-ratio",
             "0.5", "--max-concurrency", "4", "--request-rate", "40", "--seed", "3"]


def test_grpc_metrics_and_token_counts(bench_bin, server, grpc_server, tmp_path):
    res, _ = run_bench(bench_bin, tmp_path, "--backend", "grpc", "--base-url", grpc_server, *GRPC_LOAD)
    assert res["completed"] == 12 and res["failed"] == 0, res["errors"]
    assert res["backend"] == "grpc" and res["endpoint"] == "/g4serve.v1.G4Serve/Generate"
    # the same load over HTTP: the server's usage there, the token_ids counted here
    http, _ = run_bench(bench_bin, tmp_path, "--base-url", server, "--model", "g4serve-tiny", *GRPC_LOAD)
    assert http["completed"] == 12
    assert res["input_lens"] == http["input_lens"] and res["output_lens"] == http["output_lens"]
    assert len(set(res["output_lens"])) > 1
    for t, n in zip(res["timestamps"], res["output_lens"]):
        assert t["send"] < t["chunks"][0] <= t["chunks"][-1] <= t["end"]
        assert 1 <= len(t["chunks"]) <= n  # a message carries one or more new tokens
    check_against_reference(res)


def test_grpc_sharegpt_text_prompts(bench_bin, grpc_server, tmp_path):
    words = "the quick brown fox jumps over a lazy dog while seven small birds sing".split()
    convs = [{"id": str(i), "conversations": [
        {"from": "human", "value": " ".join(words[(i + k) % len(words)] for k in range(8 + i))},
        {"from": "gpt", "value": "An answer of several words for the reference length."}]} for i in range(5)]
    path = tmp_path / "sharegpt.json"
    path.write_text(json.dumps(convs))
    res, _ = run_bench(bench_bin, tmp_path, "--backend", "grpc", "--base-url", grpc_server, "--dataset-name",
                       "sharegpt", "--dataset-path", str(path), "--tokenizer", str(TOKENIZER), "--num-prompts", "4",
                       "--num-warmups", "1", "--sharegpt-output-len", "7", "--max-concurrency", "2")
    assert res["completed"] == 4 and res["failed"] == 0, res["errors"]
    assert res["output_lens"] == [7] * 4
    check_against_reference(res)


def test_grpc_failed_requests_carry_the_status(bench_bin, grpc_server, tmp_path):
    # longer than max_model_len (4096): INVALID_ARGUMENT; an unknown model: NOT_FOUND
    for extra, status in ((["--random-input-len", "5000"], "INVALID_ARGUMENT"),
                          (["--model", "no-such-model", "--random-input-len", "8"], "NOT_FOUND")):
        p = subprocess.run([bench_bin, "--backend", "grpc", "--base-url", grpc_server, "--num-prompts", "2",
                            "--num-warmups", "0", "--random-output-len", "4", "--result-file", str(tmp_path / "r.json")]
                           + extra, cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert p.returncode == 1 and "Failed requests:                         2" in p.stdout, p.stdout + p.stderr
        assert "gRPC status %s" % status in p.stderr, p.stderr
        res = json.loads((tmp_path / "r.json").read_text())
        assert all(status in e for e in res["errors"]), res["errors"]


def grpcio_timings(target, n, prompt_len, out_len, tmp_path):
    grpc = pytest.importorskip("grpc")
    protoc = pytest.importorskip("grpc_tools.protoc")
    import random
    out = tmp_path / "pb"
    out.mkdir(exist_ok=True)
    assert protoc.main(["protoc", "-I%s" % (ROOT / "proto"), "--python_out=%s" % out, "--grpc_python_out=%s" % out,
                        str(ROOT / "proto" / "g4serve.proto")]) == 0
    sys.path.insert(0, str(out))
    import g4serve_pb2 as pb
    import g4serve_pb2_grpc as pbg
    rng = random.Random(5)
    ttfts, e2els = [], []
    with grpc.insecure_channel(target) as ch:
        stub = pbg.G4ServeStub(ch)
        for i in range(n + 1):  # the first one connects the channel (the tool connects before its clock) and is dropped
            req = pb.GenerateRequest(token_ids=pb.TokenIds(ids=[rng.randrange(256, 262144) for _ in range(prompt_len)]),
                                     sampling=pb.SamplingParams(temperature=0.0),
                                     stop=pb.StopRules(max_tokens=out_len, ignore_eos=True))
            t0 = time.perf_counter()
            first = last = None
            tokens, usage = 0, None
            for m in stub.Generate(req, timeout=120):
                now = time.perf_counter()
                if m.token_ids:
                    first = first if first is not None else now
                    tokens += len(m.token_ids)
                last = now
                if m.HasField("usage"):
                    usage = m.usage.completion_tokens
            assert tokens == usage == out_len
            if i:
                ttfts.append(first - t0)
                e2els.append(last - t0)
    return statistics.median(ttfts) * 1000, statistics.median(e2els) * 1000


def test_grpc_cross_check_with_grpcio_client(bench_bin, grpc_server, tmp_path):
    # as test_cross_check_with_openai_client, against Python's grpcio on the same gRPC port
    seen = []
    for attempt in range(3):
        res, _ = run_bench(bench_bin, tmp_path, "--backend", "grpc", "--base-url", grpc_server, "--num-prompts", "6",
                           "--random-input-len", "64", "--random-output-len", "16", "--max-concurrency", "1",
                           "--num-warmups", "2", "--seed", str(attempt))
        assert res["completed"] == 6 and res["output_lens"] == [16] * 6
        assert res["median_e2el_ms"] > res["median_ttft_ms"] > 0
        ttft_ref, e2el_ref = grpcio_timings(grpc_server, 6, 64, 16, tmp_path)
        seen.append((res["median_ttft_ms"], ttft_ref, res["median_e2el_ms"], e2el_ref))
        if (res["median_ttft_ms"] == pytest.approx(ttft_ref, rel=0.5, abs=25) and
                res["median_e2el_ms"] == pytest.approx(e2el_ref, rel=0.35, abs=40)):
            return
    pytest.fail("g4-bench-serve vs grpcio client (TTFT tool, ref, E2EL tool, ref in ms): %s" % seen)
