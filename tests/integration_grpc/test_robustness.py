"""test_robustness.py - bad input over gRPC: malformed protobuf bytes, wrong wire types, invalid
UTF-8 in string fields, out-of-range ids, empty chats, bad JSON in tool parameters and KServe
sampling_parameters, huge max_tokens, unknown methods, and many such calls at once. Every call
the client got wrong ends with a non-OK status other than INTERNAL / UNKNOWN whose message names
the problem; the server stays up, and afterwards ModelInfo reports nothing running or waiting
and no KV block in use. Also: a streaming client killed outright (SIGKILL, socket closed without
reading) gives its KV blocks back. Loopback only, seeded randomness, every wait bounded."""
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time

import grpc
import pytest

from conftest import SERVED

LIGHT = os.environ.get("G4_SANITIZE") == "1"
CLIENT_FAULT = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.OK}
NATIVE = "/g4serve.v1.G4Serve/"
KSERVE = "/inference.GRPCInferenceService/"


@pytest.fixture(scope="module")
def stub(pb, channel):
    return pb.g4serve_pb2_grpc.G4ServeStub(channel)


def raw_unary(channel, method, data, timeout=30):
    """Sends data as the request bytes, as is: (code, details, response bytes or None)."""
    call = channel.unary_unary(method)
    try:
        return grpc.StatusCode.OK, "", call(data, timeout=timeout)
    except grpc.RpcError as e:
        return e.code(), e.details() or "", None


def raw_stream(channel, method, data, timeout=30):
    call = channel.unary_stream(method)
    out = []
    try:
        for r in call(data, timeout=timeout):
            out.append(r)
        return grpc.StatusCode.OK, "", out
    except grpc.RpcError as e:
        return e.code(), e.details() or "", out


def expect_bad(code, details, *words, want=grpc.StatusCode.INVALID_ARGUMENT):
    assert code not in CLIENT_FAULT, (code, details)
    if want is not None:
        assert code == want, (code, details)
    for w in words:
        assert w.lower() in details.lower(), (w, details)


def rpc_error(fn, *a, **kw):
    try:
        r = fn(*a, **kw)
        if hasattr(r, "__iter__") and not hasattr(r, "ListFields"):
            list(r)
    except grpc.RpcError as e:
        return e.code(), e.details() or ""
    return grpc.StatusCode.OK, ""


def assert_clean(pb, stub, deadline_s=30):
    P = pb.g4serve_pb2
    deadline = time.time() + deadline_s
    while True:
        load = stub.ModelInfo(P.ModelInfoRequest(), timeout=10).load
        if load.running == 0 and load.waiting == 0 and load.kv_blocks_global_used == 0 \
                and load.kv_blocks_sliding_used == 0:
            break
        assert time.time() < deadline, str(load)
        time.sleep(0.05)
    # a normal request still works
    last = None
    for r in stub.Generate(P.GenerateRequest(text="still fine?", stop=P.StopRules(max_tokens=2)), timeout=60):
        last = r
    assert last is not None and last.finish_reason in (P.FINISH_REASON_STOP, P.FINISH_REASON_LENGTH)


# --- protobuf-level garbage -------------------------------------------------------------------

METHODS = [(NATIVE + m, m == "Generate") for m in ("Generate", "Tokenize", "Detokenize", "ModelInfo", "Abort")] + \
          [(KSERVE + m, False) for m in ("ModelInfer", "ModelReady", "ModelMetadata", "ServerLive")]


def test_malformed_protobuf_bytes(pb, stub, channel):
    rnd = random.Random(4242)
    samples = [b"\x08", b"\x0a\x05ab", b"\x0a\xff\xff\xff\xff\x0f", b"\xff" * 12, b"\x00", b"\x07\x01",
               b"\x0b\x0c", b"\x0a\x80", b"\x12\x03abc\x22", b"\x8a\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01"]
    samples += [bytes(rnd.getrandbits(8) for _ in range(rnd.randint(1, 64))) for _ in range(40)]
    for method, streaming in METHODS:
        for data in samples:
            code, details, _ = (raw_stream if streaming else raw_unary)(channel, method, data)
            # random bytes may happen to parse (then the request is judged on its fields)
            assert code not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN), (method, data, code, details)
            if code != grpc.StatusCode.OK:
                assert details, (method, data, code)
    # the fixed samples cannot parse: INVALID_ARGUMENT saying so
    for method, streaming in METHODS:
        if method.endswith(("ModelInfo", "ServerLive")):
            continue  # empty requests: the bytes are not read
        for data in samples[:10]:
            code, details, _ = (raw_stream if streaming else raw_unary)(channel, method, data)
            expect_bad(code, details, "parse")
    assert_clean(pb, stub)


def test_wrong_wire_types_and_invalid_utf8(pb, stub, channel):
    text = b"\x1a\x02hi"  # GenerateRequest.text = "hi"
    cases = [
        (b"\x08\x01" + text, "parse"),             # request_id (string) sent as a varint
        (b"\x1d\x00\x00\x80\x3f", "parse"),        # text (string) as a fixed32
        (text + b"\x22\x05\x08\x01", "parse"),     # token_ids message truncated
        (text + b"\x32\x02\x10", "parse"),         # sampling message truncated
        (text + b"\x48\x05\x4d", "parse"),         # dangling tag
    ]
    for data, word in cases:
        code, details, _ = raw_stream(channel, NATIVE + "Generate", data)
        expect_bad(code, details, word)
    # invalid UTF-8 in string fields: proto3 strings must be UTF-8 (the reply would not parse)
    for field in (b"\x0a", b"\x12", b"\x1a"):  # request_id, model, text
        for bad in (b"\xff", b"\xc3", b"\xed\xa0\x80", b"ok\xfe"):
            data = field + bytes([len(bad)]) + bad + (text if field != b"\x1a" else b"")
            code, details, out = raw_stream(channel, NATIVE + "Generate", data)
            expect_bad(code, details, "utf-8")
    for method, data in ((NATIVE + "Tokenize", b"\x12\x01\xff"), (NATIVE + "Abort", b"\x0a\x02\xc3\x28"),
                         (KSERVE + "ModelInfer", b"\x0a\x01\xff")):
        code, details, _ = raw_unary(channel, method, data)
        expect_bad(code, details, "utf-8")
    assert_clean(pb, stub)


def test_unknown_methods(pb, stub, channel):
    for m in ("/g4serve.v1.G4Serve/Nope", "/nope.Service/Generate", "/inference.GRPCInferenceService/RepositoryIndex",
              "/g4serve.v1.G4Serve/generate", "/" + "x" * 2000):
        code, details, _ = raw_unary(channel, m, b"")
        assert code == grpc.StatusCode.UNIMPLEMENTED, (m, code, details)
    assert_clean(pb, stub)


# --- field values ---------------------------------------------------------------------------------

def bad_generate_requests(P, vocab):
    S, T = P.StopRules, P.TokenIds
    msg = P.ChatMessage
    return [
        (P.GenerateRequest(token_ids=T(ids=[-1])), "vocabulary"),
        (P.GenerateRequest(token_ids=T(ids=[vocab])), "vocabulary"),
        (P.GenerateRequest(token_ids=T(ids=[2, 2 ** 31 - 1])), "vocabulary"),
        (P.GenerateRequest(token_ids=T(ids=[])), "empty"),
        (P.GenerateRequest(), "required"),
        (P.GenerateRequest(text="x", stop=S(max_tokens=2 ** 31 - 1)), "max_tokens"),
        (P.GenerateRequest(text="x", stop=S(max_tokens=-5)), "max_tokens"),
        (P.GenerateRequest(text="x", stop=S(max_tokens=4, min_tokens=9)), "min_tokens"),
        (P.GenerateRequest(text="x", stop=S(stop_token_ids=[-3])), "stop_token_ids"),
        (P.GenerateRequest(text="x", stop=S(stop_token_ids=[vocab + 5])), "stop_token_ids"),
        (P.GenerateRequest(text="x", stop=S(stop=["s%d" % i for i in range(100)])), "stop"),
        (P.GenerateRequest(text="x", stop=S(stop=["a", ""])), "stop"),
        (P.GenerateRequest(text="x", logprobs=True, top_logprobs=1000), "top_logprobs"),
        (P.GenerateRequest(text="x", logprobs=True, top_logprobs=-1), "top_logprobs"),
        (P.GenerateRequest(text="x", sampling=P.SamplingParams(temperature=float("nan"))), "temperature"),
        (P.GenerateRequest(text="x", sampling=P.SamplingParams(temperature=float("inf"))), "temperature"),
        (P.GenerateRequest(text="x", sampling=P.SamplingParams(top_k=-1)), "top_k"),
        (P.GenerateRequest(text="x", sampling=P.SamplingParams(top_p=1.5)), "top_p"),
        (P.GenerateRequest(text="x", sampling=P.SamplingParams(min_p=float("nan"))), "min_p"),
        (P.GenerateRequest(text="x", sampling=P.SamplingParams(presence_penalty=1e30)), "presence_penalty"),
        (P.GenerateRequest(text="x" * 40000), "limit"),
        (P.GenerateRequest(chat=P.ChatInput()), "empty"),
        (P.GenerateRequest(chat=P.ChatInput(messages=[msg(role="", content="x")])), "role"),
        (P.GenerateRequest(chat=P.ChatInput(messages=[msg(role="wizard", content="x")])), "role"),
        (P.GenerateRequest(chat=P.ChatInput(messages=[msg(role="user", content="x")],
                                            tools=[P.Tool(name="f", parameters_json="{not json")])), "parameters_json"),
        (P.GenerateRequest(chat=P.ChatInput(messages=[msg(role="user", content="x")],
                                            tools=[P.Tool(name="f", parameters_json="[1, 2]")])), "parameters_json"),
        (P.GenerateRequest(chat=P.ChatInput(messages=[msg(role="user", content="x")],
                                            tools=[P.Tool(name="", parameters_json="{}")])), "name"),
        (P.GenerateRequest(chat=P.ChatInput(messages=[
            msg(role="user", content="x"),
            msg(role="assistant", tool_calls=[P.ToolCall(id="1", name="f", arguments="nope")])])), "arguments"),
        (P.GenerateRequest(chat=P.ChatInput(messages=[msg(role="user", content="x")],
                                            tools=[P.Tool(name="f", parameters_json="[" * 5000)])), "parameters_json"),
        (P.GenerateRequest(text="x", model="no-such-model"), "no-such-model"),
    ]


def test_bad_field_values(pb, stub):
    P = pb.g4serve_pb2
    vocab = stub.ModelInfo(P.ModelInfoRequest(), timeout=10).vocab_size
    for rq, word in bad_generate_requests(P, vocab):
        code, details = rpc_error(stub.Generate, rq, timeout=30)
        want = grpc.StatusCode.NOT_FOUND if rq.model else grpc.StatusCode.INVALID_ARGUMENT
        expect_bad(code, details, word, want=want)
    # Detokenize / Tokenize / Abort
    for ids in ([-1], [vocab], [0, 2 ** 31 - 1]):
        code, details = rpc_error(stub.Detokenize, P.DetokenizeRequest(ids=ids), timeout=10)
        expect_bad(code, details, "vocabulary")
    code, details = rpc_error(stub.Tokenize, P.TokenizeRequest(), timeout=10)
    expect_bad(code, details, "required")
    code, details = rpc_error(stub.Tokenize, P.TokenizeRequest(chat=P.ChatInput()), timeout=10)
    expect_bad(code, details, "empty")
    code, details = rpc_error(stub.Abort, P.AbortRequest(), timeout=10)
    expect_bad(code, details, "request_id")
    assert stub.Abort(P.AbortRequest(request_id="never-existed"), timeout=10).found is False
    # a NUL in any text field would end the C string there (the rest silently lost): refused,
    # naming the field, on every method that takes text (HTTP refuses the same)
    nul_cases = [
        (stub.Generate, P.GenerateRequest(text="a\x00b", stop=P.StopRules(max_tokens=1)), "text"),
        (stub.Generate, P.GenerateRequest(chat=P.ChatInput(messages=[
            P.ChatMessage(role="user", content="hi"), P.ChatMessage(role="assistant", content="x\x00y")]),
            stop=P.StopRules(max_tokens=1)), "chat.messages[1].content"),
        (stub.Generate, P.GenerateRequest(text="x", stop=P.StopRules(max_tokens=1, stop=["a\x00"])), "stop.stop[0]"),
        (stub.Tokenize, P.TokenizeRequest(text="\x00"), "text"),
        (stub.Abort, P.AbortRequest(request_id="r\x00"), "request_id"),
    ]
    for method, rq, field in nul_cases:
        code, details = rpc_error(method, rq, timeout=30)
        assert code == grpc.StatusCode.INVALID_ARGUMENT, (rq, code, details)
        assert "field " + field + " contains a NUL" in details, details
    # valid but unusual: accepted
    for rq in (P.GenerateRequest(text="x", stop=P.StopRules(max_tokens=1), sampling=P.SamplingParams(top_k=2 ** 31 - 1)),
               P.GenerateRequest(text="x", stop=P.StopRules(max_tokens=1), logprobs=True),
               P.GenerateRequest(chat=P.ChatInput(messages=[P.ChatMessage(role="user", content="x")],
                                                  tools=[P.Tool(name="f", parameters_json="")]),
                                 stop=P.StopRules(max_tokens=1))):
        code, details = rpc_error(stub.Generate, rq, timeout=30)
        assert code == grpc.StatusCode.OK, (rq, code, details)
    assert_clean(pb, stub)


def kserve_request(text="hello", sampling=None, extra_inputs=(), model=SERVED, raw_sampling=None):
    from tritonclient.grpc import service_pb2 as K
    rq = K.ModelInferRequest(model_name=model, id="rb")
    t = rq.inputs.add(name="text_input", datatype="BYTES", shape=[1])
    t.contents.bytes_contents.append(text.encode() if isinstance(text, str) else text)
    if sampling is not None or raw_sampling is not None:
        s = rq.inputs.add(name="sampling_parameters", datatype="BYTES", shape=[1])
        s.contents.bytes_contents.append(raw_sampling if raw_sampling is not None else json.dumps(sampling).encode())
    for name in extra_inputs:
        rq.inputs.add(name=name, datatype="INT32", shape=[1]).contents.int_contents.append(1)
    return rq.SerializeToString()


def test_kserve_bad_sampling_parameters(pb, stub, channel):
    pytest.importorskip("tritonclient.grpc")
    cases = [
        (dict(raw_sampling=b"{not json"), "sampling_parameters"),
        (dict(raw_sampling=b"[1, 2]"), "sampling_parameters"),
        (dict(raw_sampling=b"[" * 5000), "sampling_parameters"),
        (dict(sampling={"temperature": "hot"}), "temperature"),
        (dict(sampling={"temperature": "nan"}), "temperature"),
        (dict(sampling={"top_k": 1e300}), "top_k"),
        (dict(sampling={"top_k": "nan"}), "top_k"),
        (dict(sampling={"top_k": 2.5}), "top_k"),
        (dict(sampling={"seed": -1}), "seed"),
        (dict(sampling={"seed": 1e300}), "seed"),
        (dict(sampling={"seed": "inf"}), "seed"),
        (dict(sampling={"stop_token_ids": [1e300]}), "stop_token_ids"),
        (dict(sampling={"stop_token_ids": [-1]}), "stop_token_ids"),
        (dict(sampling={"stop_token_ids": "x"}), "stop_token_ids"),
        (dict(sampling={"stop": [""]}), "stop"),
        (dict(sampling={"stop": ["s"] * 100}), "stop"),
        (dict(sampling={"max_tokens": 2 ** 31 - 1}), "max_tokens"),
        (dict(sampling={"max_tokens": 0}), "max_tokens"),
        (dict(sampling={"max_tokens": "1e300"}), "max_tokens"),
        (dict(sampling={"min_tokens": "nan"}), "min_tokens"),
        (dict(sampling={"frobnicate": 1}), "frobnicate"),
        (dict(extra_inputs=["bogus_input"]), "bogus_input"),
        (dict(text=b"\xff\xfe"), None),  # BYTES: any bytes; tokenized as bytes, answered OK
    ]
    for kw, word in cases:
        code, details, _ = raw_unary(channel, KSERVE + "ModelInfer", kserve_request(**kw))
        if word is None:
            assert code == grpc.StatusCode.OK, (kw, code, details)
        else:
            expect_bad(code, details, word)
    code, details, _ = raw_unary(channel, KSERVE + "ModelInfer", kserve_request(model="nope"))
    expect_bad(code, details, "nope", want=grpc.StatusCode.NOT_FOUND)
    assert_clean(pb, stub)


# --- many at once ---------------------------------------------------------------------------------

def test_concurrent_bad_calls_mixed_with_good(pb, stub, channel):
    P = pb.g4serve_pb2
    vocab = stub.ModelInfo(P.ModelInfoRequest(), timeout=10).vocab_size
    bads = bad_generate_requests(P, vocab)
    rnd = random.Random(7)
    n = 60 if LIGHT else 240
    plan = []
    for i in range(n):
        r = rnd.random()
        if r < 0.25:
            plan.append(("good", P.GenerateRequest(text="good %d" % i, stop=P.StopRules(max_tokens=rnd.randint(1, 4)))))
        elif r < 0.4:
            plan.append(("garbage", bytes(rnd.getrandbits(8) for _ in range(rnd.randint(1, 32)))))
        else:
            plan.append(("bad", rnd.choice(bads)[0]))
    results = [None] * n
    nxt = [0]
    lock = threading.Lock()
    gen_raw = channel.unary_stream(NATIVE + "Generate")

    def worker():
        while True:
            with lock:
                i = nxt[0]
                nxt[0] += 1
            if i >= n:
                return
            kind, rq = plan[i]
            if kind == "garbage":
                try:
                    list(gen_raw(rq, timeout=60))
                    results[i] = (grpc.StatusCode.OK, "")
                except grpc.RpcError as e:
                    results[i] = (e.code(), e.details())
            else:
                results[i] = rpc_error(stub.Generate, rq, timeout=60)

    threads = [threading.Thread(target=worker) for _ in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "calls still running after 120 s"
    for (kind, rq), res in zip(plan, results):
        assert res is not None, kind
        code, details = res
        if kind == "good":
            assert code == grpc.StatusCode.OK, (code, details)
        elif kind == "bad":
            assert code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND), (rq, code, details)
        else:
            assert code not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN), (rq, code, details)
    assert_clean(pb, stub)


# --- clients that vanish --------------------------------------------------------------------------

KILLED_CLIENT = r"""
import sys, time
sys.path.insert(0, sys.argv[1])
import grpc, g4serve_pb2 as P, g4serve_pb2_grpc as G
ch = grpc.insecure_channel(sys.argv[2])
stub = G.G4ServeStub(ch)
streams = [stub.Generate(P.GenerateRequest(text="a long story %d" % i,
                                           stop=P.StopRules(max_tokens=3000, ignore_eos=True)), timeout=300)
           for i in range(int(sys.argv[3]))]
for s in streams:
    next(iter(s))  # running: the first message arrived
print("started", flush=True)
time.sleep(300)  # never read more; the parent kills us
"""


def test_streaming_client_killed(pb, stub, server):
    P = pb.g4serve_pb2
    before = stub.ModelInfo(P.ModelInfoRequest(), timeout=10).load
    pbdir = os.path.dirname(pb.g4serve_pb2.__file__)
    n = 3 if LIGHT else 8
    proc = subprocess.Popen([sys.executable, "-c", KILLED_CLIENT, pbdir, server.addr, str(n)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = ""
        deadline = time.time() + 60
        while time.time() < deadline and not line:
            line = proc.stdout.readline()
        assert line.strip() == "started", proc.stderr.read() if proc.poll() is not None else line
        load = stub.ModelInfo(P.ModelInfoRequest(), timeout=10).load
        assert load.running + load.waiting > 0 and load.kv_blocks_global_used > 0, str(load)
        proc.send_signal(signal.SIGKILL)  # the sockets close with nothing read
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert_clean(pb, stub, deadline_s=40)
    after = stub.ModelInfo(P.ModelInfoRequest(), timeout=10).load
    assert after.finished_abort - before.finished_abort == n
    assert server.proc.poll() is None
