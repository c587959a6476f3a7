"""test_drain.py - SIGTERM drains both protocols (docs/operations.md, "Drain").

A real g4serve on loopback with streams in flight on both protocols (the official `openai` client
on HTTP, grpcio on gRPC), then SIGTERM:
- readiness flips at once: /v1/health/ready 503, grpc.health.v1 Check NOT_SERVING;
- new work is refused: HTTP 503 with Retry-After, gRPC Generate UNAVAILABLE;
- with a long grace every in-flight stream finishes normally (finish_reason "length", all its
  tokens; HTTP ends with [DONE], gRPC with status OK) and the process exits 0;
- with a short grace the rest are cancelled cleanly (finish_reason "abort" and [DONE]; last gRPC
  message with FINISH_REASON_ABORT, status OK), exit 0 within the grace plus a bound;
- a second signal during the drain ends the process at once (128 + signal).
Before the drain existed, SIGTERM aborted every HTTP stream at once and gRPC kept accepting.

Load (issue 20, item 3): 50 HTTP and 50 gRPC streams in flight at once against one g4serve, all
of them running (--max-num-seqs above their sum), 25 + 25 under sanitizers (G4_SANITIZE=1: the
CPU model is many times slower there), both protocols concurrently either way. Every wait is
bounded (threads joined with a deadline, client timeouts), so a hung drain fails, never hangs."""
import json
import os
import signal
import threading
import time
import urllib.error
import urllib.request

import grpc
import pytest

from conftest import SERVED, start_server

openai = pytest.importorskip("openai")

SAN = os.environ.get("G4_SANITIZE") == "1"
N = 25 if SAN else 50  # streams per protocol
# All 2N streams run at once (the default running cap, 64, would queue some and they would not
# have started at SIGTERM).
LOAD = ["--max-num-seqs", str(4 * N)]


class Streams:
    """N HTTP and N gRPC streams running in threads; each records its chunks and how it ended."""

    def __init__(self, srv, pb, max_tokens):
        self.srv, self.pb, self.max_tokens = srv, pb, max_tokens
        self.http = [dict(started=threading.Event(), tokens=0, finish=None, done=False, error=None) for _ in range(N)]
        self.grpc = [dict(started=threading.Event(), tokens=0, finish=None, code=None, error=None) for _ in range(N)]
        self.threads = [threading.Thread(target=self.run_http, args=(r,), daemon=True) for r in self.http]
        self.threads += [threading.Thread(target=self.run_grpc, args=(r,), daemon=True) for r in self.grpc]
        for t in self.threads:
            t.start()

    def run_http(self, rec):
        # Raw SSE through urllib, so [DONE] itself is seen (the openai client swallows it).
        body = json.dumps({"model": SERVED, "prompt": "hello", "max_tokens": self.max_tokens, "stream": True,
                           "ignore_eos": True, "stream_options": {"include_usage": True}}).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{self.srv.http_port}/v1/completions", data=body,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                for raw in r:
                    line = raw.decode().strip()
                    if line == "data: [DONE]":
                        rec["done"] = True
                    elif line.startswith("data: "):
                        chunk = json.loads(line[6:])
                        rec["started"].set()
                        if chunk.get("usage"):
                            rec["tokens"] = chunk["usage"]["completion_tokens"]
                        for ch in chunk["choices"]:
                            if ch.get("finish_reason"):
                                rec["finish"] = ch["finish_reason"]
        except Exception as e:  # recorded, asserted on below
            rec["error"] = repr(e)
        rec["started"].set()

    def run_grpc(self, rec):
        P = self.pb.g4serve_pb2
        ch = grpc.insecure_channel(self.srv.addr)
        stub = self.pb.g4serve_pb2_grpc.G4ServeStub(ch)
        req = P.GenerateRequest(model=SERVED, text="hello",
                                stop=P.StopRules(max_tokens=self.max_tokens, ignore_eos=True))
        try:
            for m in stub.Generate(req, timeout=120):
                rec["tokens"] += len(m.token_ids)
                if m.token_ids:
                    rec["started"].set()
                if m.finish_reason:
                    rec["finish"] = P.FinishReason.Name(m.finish_reason)
            rec["code"] = grpc.StatusCode.OK
        except grpc.RpcError as e:
            rec["code"] = e.code()
            rec["error"] = e.details()
        ch.close()
        rec["started"].set()

    def wait_started(self, timeout=180):
        deadline = time.time() + timeout
        for r in self.http + self.grpc:
            assert r["started"].wait(max(0.1, deadline - time.time())), "a stream never started"
        assert all(r["finish"] is None for r in self.http + self.grpc), "streams ended before SIGTERM: too fast"

    def join(self, timeout):
        deadline = time.time() + timeout
        for t in self.threads:
            t.join(max(0.1, deadline - time.time()))
        assert not any(t.is_alive() for t in self.threads), "streams still open after the drain"
        assert len(self.http) == len(self.grpc) == N


def ready_status(srv):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{srv.http_port}/v1/health/ready", timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def check_refusals(srv, pb):
    """Readiness flipped and new work refused, on both protocols."""
    deadline = time.time() + 5
    while ready_status(srv) != 503 and time.time() < deadline:
        time.sleep(0.02)
    assert ready_status(srv) == 503
    H = pb.health_pb2
    with grpc.insecure_channel(srv.addr) as ch:
        st = pb.health_pb2_grpc.HealthStub(ch).Check(H.HealthCheckRequest(service=""), timeout=10).status
        assert st == H.HealthCheckResponse.NOT_SERVING
        P = pb.g4serve_pb2
        with pytest.raises(grpc.RpcError) as ei:
            list(pb.g4serve_pb2_grpc.G4ServeStub(ch).Generate(
                P.GenerateRequest(model=SERVED, text="hi", stop=P.StopRules(max_tokens=2)), timeout=10))
        assert ei.value.code() == grpc.StatusCode.UNAVAILABLE
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{srv.http_port}/v1", api_key="none", max_retries=0, timeout=10)
    with pytest.raises(openai.APIStatusError) as ei:
        client.with_raw_response.completions.create(model=SERVED, prompt="hi", max_tokens=2)
    assert ei.value.status_code == 503
    assert int(ei.value.response.headers["Retry-After"]) > 0
    assert "shutting down" in ei.value.response.json()["error"]["message"]


def test_in_flight_streams_finish_within_the_grace_period(pb):
    srv = start_server(["--drain-timeout", "100", *LOAD])
    # Long enough that none of the 2N streams ends before the last one starts; short enough to
    # finish well within the grace (the sanitized server generates many times slower).
    max_tokens = 24 if SAN else 48
    s = Streams(srv, pb, max_tokens)
    s.wait_started()
    t0 = time.time()
    srv.proc.send_signal(signal.SIGTERM)
    check_refusals(srv, pb)
    s.join(100)
    rc = srv.proc.wait(30)
    assert rc == 0, srv.log()
    assert time.time() - t0 < 100
    for r in s.http:
        assert (r["error"], r["finish"], r["tokens"], r["done"]) == (None, "length", max_tokens, True), r
    for r in s.grpc:
        assert (r["code"], r["finish"], r["tokens"]) == (grpc.StatusCode.OK, "FINISH_REASON_LENGTH", max_tokens), r


def test_streams_left_at_the_grace_period_end_cleanly(pb):
    grace = 2
    srv = start_server(["--drain-timeout", str(grace), *LOAD])
    s = Streams(srv, pb, 3000)
    s.wait_started()
    t0 = time.time()
    srv.proc.send_signal(signal.SIGTERM)
    check_refusals(srv, pb)
    s.join(grace + 60)
    rc = srv.proc.wait(30)
    took = time.time() - t0
    assert rc == 0, srv.log()
    assert grace - 0.5 < took < grace + 60, took
    for r in s.http:
        assert (r["error"], r["finish"], r["done"]) == (None, "abort", True), r
        assert 0 < r["tokens"] < 3000
    for r in s.grpc:
        assert (r["code"], r["finish"]) == (grpc.StatusCode.OK, "FINISH_REASON_ABORT"), r
        assert 0 < r["tokens"] < 3000


def test_a_second_signal_exits_at_once(pb):
    srv = start_server(["--drain-timeout", "100", *LOAD])
    s = Streams(srv, pb, 3000)
    s.wait_started()
    srv.proc.send_signal(signal.SIGTERM)
    check_refusals(srv, pb)
    t0 = time.time()
    srv.proc.send_signal(signal.SIGINT)
    rc = srv.proc.wait(10)
    assert time.time() - t0 < 5
    assert rc == 128 + signal.SIGINT, srv.log()
    s.join(30)  # the connections closed with the process


def test_an_idle_kserve_stream_does_not_hold_the_drain(pb):
    """An open ModelStreamInfer stream with nothing to answer (tritonclient keeps one open between
    requests) ends with UNAVAILABLE at SIGTERM instead of holding the process for the whole grace."""
    tc = pytest.importorskip("tritonclient.grpc")
    srv = start_server(["--drain-timeout", "100"])
    c = tc.InferenceServerClient(url=srv.addr)
    errors = []
    got = threading.Event()

    def callback(result, error):
        errors.append(error)
        got.set()

    c.start_stream(callback=callback)
    time.sleep(1.0)  # the call reaches the server (nothing to wait on: the stream sends nothing)
    t0 = time.time()
    srv.proc.send_signal(signal.SIGTERM)
    assert got.wait(20), "the stream was not ended"
    assert "shutting down" in str(errors[0]) or "UNAVAILABLE" in str(errors[0]), errors
    rc = srv.proc.wait(30)
    assert rc == 0, srv.log()
    assert time.time() - t0 < 20
    c.stop_stream()
    c.close()
