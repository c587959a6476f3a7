"""test_event_oom.py - a stream always ends, even when the engine thread cannot allocate.

http_faults_server (built beside the tests) serves the HTTP API over the engine on a mock model
with the engine's event allocation seam replaced: with --fail-event-allocs every copy of a token
event fails; only each request's last event, allocated when the request is made, exists. The
official openai client and a raw SSE read must still see the finish reason and `data: [DONE]`
(before the event queue had a preallocated last event, the last event could be dropped and the
stream never ended); a non-streaming request gets a 500 instead of a silent wrong answer, and a
server without injected faults answers the same requests normally."""
import os
import pathlib
import signal
import subprocess

import pytest
import requests

ROOT = pathlib.Path(__file__).resolve().parents[2]
MODEL = "g4serve-tiny"


def start(args, tmp_path):
    binary = os.environ.get("G4_HTTP_FAULTS_SERVER")
    if not binary or not os.path.exists(binary):
        pytest.skip("http_faults_server is not built (set G4_HTTP_FAULTS_SERVER)")
    err = open(tmp_path / "stderr.txt", "w")
    proc = subprocess.Popen([binary, str(ROOT / "tests" / "text" / "data" / "tokenizer.json"), *args],
                            stdout=subprocess.PIPE, stderr=err, text=True)
    line = proc.stdout.readline()
    if not line.startswith("g4serve: port "):
        proc.kill()
        raise AssertionError("http_faults_server did not start: " + (tmp_path / "stderr.txt").read_text())
    return proc, "http://127.0.0.1:%d" % int(line.split()[-1])


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0


@pytest.fixture()
def faulty(tmp_path):
    proc, base = start(["--fail-event-allocs"], tmp_path)
    yield base
    stop(proc)


@pytest.fixture()
def healthy(tmp_path):
    proc, base = start([], tmp_path)
    yield base
    stop(proc)


def sse_lines(base, path, body):
    r = requests.post(base + path, json=body, stream=True, timeout=30)
    assert r.status_code == 200
    return [l for l in r.iter_lines() if l.startswith(b"data: ")]


BODIES = {
    "/v1/chat/completions": {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 6,
                             "ignore_eos": True, "stream": True},
    "/v1/completions": {"model": MODEL, "prompt": "hi", "max_tokens": 6, "ignore_eos": True, "stream": True},
}


@pytest.mark.parametrize("path", sorted(BODIES))
def test_stream_ends_with_done_when_allocations_fail(faulty, path):
    lines = sse_lines(faulty, path, BODIES[path])  # bounded by the 30 s read timeout
    assert lines and lines[-1] == b"data: [DONE]"


def test_openai_client_stream_finishes_when_allocations_fail(faulty):
    import openai
    client = openai.OpenAI(base_url=faulty + "/v1", api_key="none", max_retries=0, timeout=30)
    chunks = list(client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}],
                                                 max_tokens=6, stream=True, extra_body={"ignore_eos": True}))
    assert chunks[-1].choices[0].finish_reason == "length"


def test_non_streaming_reports_lost_output(faulty):
    body = dict(BODIES["/v1/completions"], stream=False)
    r = requests.post(faulty + "/v1/completions", json=body, timeout=30)
    assert r.status_code == 500
    assert "out of memory" in r.json()["error"]["message"]


def test_without_faults_the_same_requests_succeed(healthy):
    import openai
    client = openai.OpenAI(base_url=healthy + "/v1", api_key="none", max_retries=0, timeout=30)
    chunks = list(client.completions.create(model=MODEL, prompt="hi", max_tokens=6, stream=True,
                                            extra_body={"ignore_eos": True}))
    assert chunks[-1].choices[0].finish_reason == "length"
    body = dict(BODIES["/v1/completions"], stream=False)
    r = requests.post(healthy + "/v1/completions", json=body, timeout=30)
    assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 6
    lines = sse_lines(healthy, "/v1/completions", BODIES["/v1/completions"])
    assert lines[-1] == b"data: [DONE]"
