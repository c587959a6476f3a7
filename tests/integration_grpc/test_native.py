"""test_native.py - g4serve.v1.G4Serve through a real grpcio client with stubs generated from
proto/g4serve.proto: streaming Generate (text, ids, chat with a tool, include_stop_str_in_output), Tokenize/Detokenize,
ModelInfo, Abort, deadline exceeded, cancel by closing the stream, error status codes."""
import threading
import time

import grpc
import pytest


@pytest.fixture(scope="module")
def stub(pb, channel):
    return pb.g4serve_pb2_grpc.G4ServeStub(channel)


def collect(stream):
    ids, text, last = [], "", None
    for r in stream:
        ids += list(r.token_ids)
        text += r.text
        last = r
    return ids, text, last


def wait_idle(stub, pb, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        load = stub.ModelInfo(pb.g4serve_pb2.ModelInfoRequest(), timeout=5).load
        if load.running == 0 and load.waiting == 0:
            return load
        time.sleep(0.05)
    raise AssertionError("engine did not go idle")


def test_generate_text_streams_tokens_and_matches_ids(pb, stub):
    P = pb.g4serve_pb2
    rq = P.GenerateRequest(text="The capital of France is", stop=P.StopRules(max_tokens=6, ignore_eos=True),
                           logprobs=True, top_logprobs=2)
    msgs = list(stub.Generate(rq, timeout=60))
    assert len(msgs) >= 1
    ids = [t for m in msgs for t in m.token_ids]
    assert len(ids) == 6
    last = msgs[-1]
    assert all(m.finish_reason == P.FINISH_REASON_UNSPECIFIED for m in msgs[:-1])
    assert last.finish_reason == P.FINISH_REASON_LENGTH
    assert last.usage.completion_tokens == 6
    prompt = stub.Tokenize(P.TokenizeRequest(text="The capital of France is"), timeout=10).ids
    assert last.usage.prompt_tokens == len(prompt)
    lps = [lp for m in msgs for lp in m.logprobs]
    assert [lp.token_id for lp in lps] == ids
    for lp in lps:
        assert lp.logprob <= 0 and len(lp.top_ids) == 2 and lp.top_logprobs[0] >= lp.top_logprobs[1]
        assert lp.top_logprobs[0] >= lp.logprob - 1e-4  # greedy: the chosen token is the best
    # The same prompt as ids gives the same (greedy) tokens; text equals Detokenize of the ids.
    ids2, text2, _ = collect(stub.Generate(P.GenerateRequest(token_ids=P.TokenIds(ids=list(prompt)),
                                                             stop=P.StopRules(max_tokens=6, ignore_eos=True)),
                                           timeout=60))
    assert ids2 == ids
    detok = stub.Detokenize(P.DetokenizeRequest(ids=ids), timeout=10).text
    assert text2 == detok
    assert "".join(m.text for m in msgs) == detok


def test_include_stop_str_in_output(pb, stub):
    """StopRules.include_stop_str_in_output (vLLM's): the text without it plus the stop string,
    the same token ids; a stop id is then the last token, its text that of the same request cut
    by max_tokens there. Without it a stop id is in neither."""
    P = pb.g4serve_pb2

    def gen(**stop):
        rq = P.GenerateRequest(text="Once upon a time", sampling=P.SamplingParams(temperature=0),
                               stop=P.StopRules(ignore_eos=True, **stop))
        return collect(stub.Generate(rq, timeout=60))

    ids, text, _ = gen(max_tokens=12)
    assert len(text) >= 6
    stop = text[len(text) // 2: len(text) // 2 + 3]
    cut = text[: text.index(stop)]
    plain = gen(max_tokens=12, stop=[stop])
    inc = gen(max_tokens=12, stop=[stop], include_stop_str_in_output=True)
    assert plain[1] == cut and inc[1] == cut + stop and inc[0] == plain[0]
    assert inc[2].finish_reason == P.FINISH_REASON_STOP and inc[2].stop_string == stop
    at = ids.index(ids[6])
    for include in (False, True):
        got = gen(max_tokens=12, stop_token_ids=[ids[6]], include_stop_str_in_output=include)
        assert got[0] == ids[: at + include] and got[1] == gen(max_tokens=at + include)[1]
        assert got[2].stop_token_id == ids[6] and got[2].usage.completion_tokens == at + 1


def test_request_id_is_echoed(pb, stub):
    P = pb.g4serve_pb2
    msgs = list(stub.Generate(P.GenerateRequest(request_id="my-req-1", text="hi", stop=P.StopRules(max_tokens=2)),
                              timeout=60))
    assert msgs and all(m.request_id == "my-req-1" for m in msgs)


def test_chat_with_tools_renders_and_generates(pb, stub):
    P = pb.g4serve_pb2
    chat = P.ChatInput(
        messages=[P.ChatMessage(role="system", content="You can call tools."),
                  P.ChatMessage(role="user", content="Weather in Paris?"),
                  P.ChatMessage(role="assistant", tool_calls=[P.ToolCall(id="c1", name="get_weather",
                                                                         arguments='{"city": "Paris"}')]),
                  P.ChatMessage(role="tool", tool_call_id="c1", name="get_weather", content='{"temp": 21}')],
        tools=[P.Tool(name="get_weather", description="Current weather",
                      parameters_json='{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}')])
    toks = stub.Tokenize(P.TokenizeRequest(chat=chat), timeout=10).ids
    text = stub.Detokenize(P.DetokenizeRequest(ids=toks, keep_special_tokens=True), timeout=10).text
    assert "get_weather" in text and "Paris" in text and "<|tool>" in text
    ids, _, last = collect(stub.Generate(P.GenerateRequest(chat=chat, stop=P.StopRules(max_tokens=3)), timeout=60))
    assert last.usage.prompt_tokens == len(toks)
    assert 1 <= len(ids) <= 3
    # A bad tool argument is named in the error.
    bad = P.ChatInput(messages=[P.ChatMessage(role="assistant", tool_calls=[P.ToolCall(name="f", arguments="[1]")])])
    with pytest.raises(grpc.RpcError) as e:
        list(stub.Generate(P.GenerateRequest(chat=bad), timeout=10))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "arguments" in e.value.details()


def test_errors_map_to_status_codes(pb, stub):
    P = pb.g4serve_pb2
    cases = [
        (P.GenerateRequest(text="x", model="other-model"), grpc.StatusCode.NOT_FOUND, "other-model"),
        (P.GenerateRequest(), grpc.StatusCode.INVALID_ARGUMENT, "text, token_ids or chat"),
        (P.GenerateRequest(token_ids=P.TokenIds(ids=[5, 999999999])), grpc.StatusCode.INVALID_ARGUMENT, "ids[1]"),
        (P.GenerateRequest(text="x", sampling=P.SamplingParams(top_p=1.5)), grpc.StatusCode.INVALID_ARGUMENT, "top_p"),
        (P.GenerateRequest(text="x", stop=P.StopRules(max_tokens=100000)), grpc.StatusCode.INVALID_ARGUMENT,
         "model length"),
    ]
    for rq, code, words in cases:
        with pytest.raises(grpc.RpcError) as e:
            list(stub.Generate(rq, timeout=10))
        assert e.value.code() == code, (rq, e.value.details())
        assert words in e.value.details()


def test_unimplemented_method(channel):
    fn = channel.unary_unary("/g4serve.v1.G4Serve/NoSuchMethod", request_serializer=lambda x: x,
                             response_deserializer=lambda x: x)
    with pytest.raises(grpc.RpcError) as e:
        fn(b"", timeout=5)
    assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_abort_by_request_id(pb, stub):
    P = pb.g4serve_pb2
    rq = P.GenerateRequest(request_id="to-abort", text="count", stop=P.StopRules(max_tokens=3000, ignore_eos=True))
    stream = stub.Generate(rq, timeout=120)
    first = next(stream)
    assert first.request_id == "to-abort"
    assert stub.Abort(P.AbortRequest(request_id="to-abort"), timeout=5).found
    rest = list(stream)
    last = rest[-1] if rest else first
    assert last.finish_reason == P.FINISH_REASON_ABORT
    assert last.usage.completion_tokens < 3000
    assert not stub.Abort(P.AbortRequest(request_id="to-abort"), timeout=5).found
    load = wait_idle(stub, pb)
    assert load.kv_blocks_global_used == 0 and load.kv_blocks_sliding_used == 0


def test_deadline_exceeded_aborts_engine_request(pb, stub):
    P = pb.g4serve_pb2
    before = stub.ModelInfo(P.ModelInfoRequest(), timeout=5).load.finished_abort
    rq = P.GenerateRequest(text="long", stop=P.StopRules(max_tokens=3000, ignore_eos=True))
    with pytest.raises(grpc.RpcError) as e:
        list(stub.Generate(rq, timeout=0.5))
    assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    load = wait_idle(stub, pb)
    after = stub.ModelInfo(P.ModelInfoRequest(), timeout=5).load.finished_abort
    assert after == before + 1
    assert load.kv_blocks_global_used == 0 and load.kv_blocks_sliding_used == 0


def test_cancel_by_closing_the_stream(pb, stub):
    P = pb.g4serve_pb2
    before = stub.ModelInfo(P.ModelInfoRequest(), timeout=5).load.finished_abort
    stream = stub.Generate(P.GenerateRequest(text="go", stop=P.StopRules(max_tokens=3000, ignore_eos=True)),
                           timeout=120)
    got = [next(stream) for _ in range(2)]
    assert all(m.token_ids for m in got)
    stream.cancel()
    with pytest.raises(grpc.RpcError) as e:
        list(stream)
    assert e.value.code() == grpc.StatusCode.CANCELLED
    load = wait_idle(stub, pb)
    assert stub.ModelInfo(P.ModelInfoRequest(), timeout=5).load.finished_abort == before + 1
    assert load.kv_blocks_global_used == 0 and load.kv_blocks_sliding_used == 0


def test_concurrent_generates_from_threads(pb, stub):
    P = pb.g4serve_pb2
    results, errors = {}, []

    def run(i):
        try:
            results[i] = collect(stub.Generate(P.GenerateRequest(text=f"prompt {i}", stop=P.StopRules(max_tokens=4)),
                                               timeout=120))
        except Exception as ex:  # noqa: BLE001
            errors.append(ex)

    ths = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    [t.start() for t in ths]
    [t.join(150) for t in ths]
    assert not errors and len(results) == 8
    for i, (ids, _, last) in results.items():
        alone, _, _ = collect(stub.Generate(P.GenerateRequest(text=f"prompt {i}", stop=P.StopRules(max_tokens=4)),
                                            timeout=60))
        assert ids == alone  # greedy: batched == alone
