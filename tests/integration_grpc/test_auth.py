"""test_auth.py - access control and exposure (docs/operations.md, "API keys"; issue 20).

A real g4serve with an API key (VLLM_API_KEY, or --api-key) on loopback, driven by the official
clients: `openai` (api_key → "Authorization: Bearer"), grpcio (metadata "authorization"),
tritonclient (headers). Checks that every API route / method refuses a missing, wrong, truncated or
extended key (HTTP 401 with a JSON error, gRPC UNAUTHENTICATED), accepts the right one, and that
health (and, by default, metrics) stays open; --protect-metrics closes metrics too. Also: gRPC
request ids the server assigns are 128 random bits, so another client cannot abort a generation
by guessing (sequential "g4-N" ids before); /v1/models does not reveal the model directory."""
import json
import os
import re
import urllib.error
import urllib.request

import grpc
import pytest

from conftest import SERVED, start_server, stop_server

openai = pytest.importorskip("openai")

KEY = "sk-test-0123456789abcdef"
API_ROUTES = [("GET", "/v1/models", None), ("GET", "/tokenizer_info", None),
              ("POST", "/v1/chat/completions", {"model": SERVED, "messages": [{"role": "user", "content": "hi"}],
                                                "max_tokens": 2}),
              ("POST", "/v1/completions", {"model": SERVED, "prompt": "hi", "max_tokens": 2}),
              ("POST", "/invocations", {"model": SERVED, "prompt": "hi", "max_tokens": 2}),
              ("POST", "/tokenize", {"prompt": "hi"}), ("POST", "/detokenize", {"tokens": [1, 2]})]
OPEN_ROUTES = ["/v1/health/live", "/v1/health/ready", "/health", "/v1/version", "/version"]
WRONG = [None, "Bearer", "Bearer ", "Bearer wrong", "Bearer " + KEY[:-1], "Bearer " + KEY + "x", "Basic " + KEY, KEY]


def http(srv, method, path, body=None, auth=None):
    req = urllib.request.Request(f"http://127.0.0.1:{srv.http_port}{path}", method=method,
                                 data=json.dumps(body).encode() if body is not None else None)
    req.add_header("Content-Type", "application/json")
    if auth is not None:
        req.add_header("Authorization", auth)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


@pytest.fixture(scope="module")
def keyed():
    os.environ["VLLM_API_KEY"] = KEY  # the environment form; --api-key is checked below
    try:
        srv = start_server()
    finally:
        del os.environ["VLLM_API_KEY"]
    yield srv
    stop_server(srv)


def test_http_api_routes_want_the_key(keyed):
    for method, path, body in API_ROUTES:
        for auth in WRONG:
            status, headers, raw = http(keyed, method, path, body, auth)
            assert status == 401, (path, auth, status, raw)
            err = json.loads(raw)["error"]
            assert err["code"] == 401 and "API key" in err["message"]
            assert headers["WWW-Authenticate"] == "Bearer"
        status, _, raw = http(keyed, method, path, body, "Bearer " + KEY)
        assert status == 200, (path, raw)
        status, _, raw = http(keyed, method, path, body, "bearer  " + KEY)  # scheme case-insensitive
        assert status == 200, (path, raw)


def test_http_health_and_metrics_stay_open(keyed):
    for path in OPEN_ROUTES + ["/metrics", "/v1/metrics"]:
        status, _, raw = http(keyed, "GET", path)
        assert status == 200, (path, raw)


def test_openai_client_with_and_without_the_key(keyed):
    base = f"http://127.0.0.1:{keyed.http_port}/v1"
    good = openai.OpenAI(base_url=base, api_key=KEY, max_retries=0, timeout=60)
    bad = openai.OpenAI(base_url=base, api_key="sk-wrong", max_retries=0, timeout=60)
    assert [m.id for m in good.models.list().data] == [SERVED]
    r = good.chat.completions.create(model=SERVED, messages=[{"role": "user", "content": "hi"}], max_tokens=3)
    assert r.usage.completion_tokens >= 1
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()
    with pytest.raises(openai.AuthenticationError):
        bad.chat.completions.create(model=SERVED, messages=[{"role": "user", "content": "hi"}], max_tokens=3)
    with pytest.raises(openai.AuthenticationError):
        list(bad.completions.create(model=SERVED, prompt="hi", max_tokens=3, stream=True))


def test_models_does_not_reveal_the_model_directory(keyed):
    status, _, raw = http(keyed, "GET", "/v1/models", auth="Bearer " + KEY)
    m = json.loads(raw)["data"][0]
    assert status == 200 and m["root"] == SERVED
    assert "/" not in json.dumps(m).replace("\\/", "")


def test_grpc_methods_want_the_key(keyed, pb):
    P, H = pb.g4serve_pb2, pb.health_pb2
    with grpc.insecure_channel(keyed.addr) as ch:
        stub = pb.g4serve_pb2_grpc.G4ServeStub(ch)
        calls = [lambda md: list(stub.Generate(P.GenerateRequest(model=SERVED, text="hi",
                                                                 stop=P.StopRules(max_tokens=2)),
                                               metadata=md, timeout=30)),
                 lambda md: stub.Tokenize(P.TokenizeRequest(text="hi"), metadata=md, timeout=30),
                 lambda md: stub.Detokenize(P.DetokenizeRequest(ids=[1]), metadata=md, timeout=30),
                 lambda md: stub.ModelInfo(P.ModelInfoRequest(), metadata=md, timeout=30),
                 lambda md: stub.Abort(P.AbortRequest(request_id="x"), metadata=md, timeout=30)]
        for call in calls:
            for auth in WRONG:
                md = [("authorization", auth)] if auth is not None else None
                with pytest.raises(grpc.RpcError) as ei:
                    call(md)
                assert ei.value.code() == grpc.StatusCode.UNAUTHENTICATED, (auth, ei.value)
            call([("authorization", "Bearer " + KEY)])  # no error
        health = pb.health_pb2_grpc.HealthStub(ch)
        st = health.Check(H.HealthCheckRequest(service=""), timeout=30).status
        assert st == H.HealthCheckResponse.SERVING


def test_kserve_wants_the_key_but_its_probes_are_open(keyed):
    tc = pytest.importorskip("tritonclient.grpc")
    from tritonclient.utils import InferenceServerException
    c = tc.InferenceServerClient(url=keyed.addr)
    assert c.is_server_live() and c.is_server_ready() and c.is_model_ready(SERVED)
    with pytest.raises(InferenceServerException) as ei:
        c.get_server_metadata()
    assert "UNAUTHENTICATED" in str(ei.value.status())
    with pytest.raises(InferenceServerException):
        c.get_model_metadata(SERVED, headers={"authorization": "Bearer nope"})
    assert c.get_model_metadata(SERVED, headers={"authorization": "Bearer " + KEY}).name == SERVED


def test_protect_metrics_and_the_flag_form():
    srv = start_server(["--api-key", KEY, "--protect-metrics"])
    try:
        for path in ("/metrics", "/v1/metrics"):
            assert http(srv, "GET", path)[0] == 401
            assert http(srv, "GET", path, auth="Bearer " + KEY)[0] == 200
        assert http(srv, "GET", "/v1/health/ready")[0] == 200
        assert http(srv, "POST", "/tokenize", {"prompt": "hi"})[0] == 401
    finally:
        stop_server(srv)


def test_grpc_request_ids_cannot_be_guessed(pb):
    """Another client cannot abort a generation by guessing its id (issue 20: 3 of 3 were aborted)."""
    srv = start_server()
    P = pb.g4serve_pb2
    try:
        with grpc.insecure_channel(srv.addr) as ch:
            stub = pb.g4serve_pb2_grpc.G4ServeStub(ch)
            ids, streams = [], []
            for _ in range(3):
                it = stub.Generate(P.GenerateRequest(model=SERVED, text="hello",
                                                     stop=P.StopRules(max_tokens=3000, ignore_eos=True)),
                                   timeout=120)
                ids.append(next(it).request_id)
                streams.append(it)
            for rid in ids:
                assert re.fullmatch(r"g4-[0-9a-f]{32}", rid), rid
            assert len(set(ids)) == 3
            # The attacker's guesses: sequential ids of the old scheme and near neighbours.
            guesses = [f"g4-{n}" for n in range(0, 64)] + [ids[0][:-1] + c for c in "0123456789abcdef"
                                                           if ids[0][:-1] + c != ids[0]]
            for g in guesses:
                assert not stub.Abort(P.AbortRequest(request_id=g), timeout=30).found, g
            # The owner, who holds the id, can.
            for rid in ids:
                assert stub.Abort(P.AbortRequest(request_id=rid), timeout=30).found
            for it in streams:
                last = list(it)[-1]
                assert P.FinishReason.Name(last.finish_reason) == "FINISH_REASON_ABORT"
    finally:
        stop_server(srv)
