"""test_kserve.py - the KServe v2 / Triton subset through tritonclient[grpc] (the client
genai-perf and Triton users run): health and metadata, ModelInfer, stream_infer with several
requests on one stream (streaming and not, empty final response), include_stop_str_in_output,
errors, UNIMPLEMENTED."""
import json
import queue

import numpy as np
import pytest

tg = pytest.importorskip("tritonclient.grpc")
from tritonclient.utils import InferenceServerException  # noqa: E402

from conftest import SERVED  # noqa: E402


@pytest.fixture(scope="module")
def client(server):
    c = tg.InferenceServerClient(url=server.addr)
    yield c
    c.close()


def inputs(text, stream=False, max_tokens=4, sampling=None, exclude=True):
    ins = []

    def add(name, dtype, arr):
        t = tg.InferInput(name, list(arr.shape), dtype)
        t.set_data_from_numpy(arr)
        ins.append(t)

    add("text_input", "BYTES", np.array([text.encode()], dtype=np.object_))
    add("stream", "BOOL", np.array([stream], dtype=bool))
    add("exclude_input_in_output", "BOOL", np.array([exclude], dtype=bool))
    sp = {"temperature": "0", "max_tokens": str(max_tokens)}
    sp.update(sampling or {})
    add("sampling_parameters", "BYTES", np.array([json.dumps(sp).encode()], dtype=np.object_))
    return ins


def text_of(result):
    return result.as_numpy("text_output")[0].decode()


def test_health_and_metadata(client):
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready(SERVED)
    md = client.get_server_metadata()
    assert md.name == "g4serve"
    mm = client.get_model_metadata(SERVED)
    assert mm.name == SERVED and list(mm.versions) == ["1"]
    assert [i.name for i in mm.inputs][0] == "text_input" and mm.outputs[0].name == "text_output"
    # As Triton: an unknown model (or version) is not ready, not an error; its metadata is NOT_FOUND.
    assert client.is_model_ready("nope") is False
    assert client.is_model_ready(SERVED, model_version="7") is False
    with pytest.raises(InferenceServerException) as e:
        client.get_model_metadata("nope")
    assert "NOT_FOUND" in str(e.value.status()) or "not served" in str(e.value)


def test_model_infer_matches_streaming(client):
    r = client.infer(SERVED, inputs("Hello there", max_tokens=5), request_id="r1")
    full = text_of(r)
    assert full and r.get_response().id == "r1"
    # Not excluding the input: the prompt comes first (Triton vLLM-backend behaviour).
    r2 = client.infer(SERVED, inputs("Hello there", max_tokens=5, exclude=False))
    assert text_of(r2) == "Hello there" + full
    # The same request streamed: the deltas concatenate to the same text.
    q = queue.Queue()
    client.start_stream(callback=lambda result, error: q.put((result, error)))
    try:
        client.async_stream_infer(SERVED, inputs("Hello there", stream=True, max_tokens=5), request_id="s1")
        parts, final = [], False
        while not final:
            result, error = q.get(timeout=60)
            assert error is None, error
            resp = result.get_response()
            assert resp.id == "s1"
            parts.append(text_of(result))
            final = resp.parameters["triton_final_response"].bool_param
        assert "".join(parts) == full
    finally:
        client.stop_stream()


def test_include_stop_str_in_output(client):
    """sampling_parameters.include_stop_str_in_output (the Triton vLLM backend passes it to vLLM):
    the text without it plus the stop string."""
    full = text_of(client.infer(SERVED, inputs("Hello there", max_tokens=12, sampling={"ignore_eos": True})))
    assert len(full) >= 6
    stop = full[len(full) // 2: len(full) // 2 + 3]
    sp = {"ignore_eos": True, "stop": [stop]}
    plain = text_of(client.infer(SERVED, inputs("Hello there", max_tokens=12, sampling=sp)))
    inc = text_of(client.infer(SERVED, inputs("Hello there", max_tokens=12,
                                              sampling={**sp, "include_stop_str_in_output": True})))
    assert plain == full[: full.index(stop)] and inc == plain + stop


def test_stream_several_requests_and_empty_final(client):
    q = queue.Queue()
    client.start_stream(callback=lambda result, error: q.put((result, error)))
    try:
        for i in range(3):
            client.async_stream_infer(SERVED, inputs(f"story {i}", stream=i != 1, max_tokens=3), request_id=f"q{i}",
                                      enable_empty_final_response=(i == 2))
        client.async_stream_infer(SERVED, inputs("bad", sampling={"bogus_key": 1}), request_id="bad")
        done, texts, errors = set(), {}, []
        while len(done) < 3 or not errors:
            result, error = q.get(timeout=60)
            if error is not None:
                errors.append(str(error))
                continue
            resp = result.get_response()
            if resp.outputs:
                texts[resp.id] = texts.get(resp.id, "") + text_of(result)
            if resp.parameters["triton_final_response"].bool_param:
                if resp.id == "q2":
                    assert not resp.outputs  # the empty final response asked for
                done.add(resp.id)
        assert done == {"q0", "q1", "q2"}
        assert "bogus_key" in errors[0]
    finally:
        client.stop_stream()
    for i in range(3):
        alone = text_of(client.infer(SERVED, inputs(f"story {i}", max_tokens=3)))
        assert texts[f"q{i}"] == alone


def test_infer_errors(client):
    with pytest.raises(InferenceServerException) as e:
        client.infer("other", inputs("x"))
    assert "not served" in str(e.value)
    with pytest.raises(InferenceServerException) as e:
        client.infer(SERVED, inputs("x", sampling={"top_p": "2"}))
    assert "top_p" in str(e.value)
    with pytest.raises(InferenceServerException) as e:
        client.get_model_config(SERVED)
    assert "UNIMPLEMENTED" in str(e.value.status()) or "not implemented" in str(e.value)
