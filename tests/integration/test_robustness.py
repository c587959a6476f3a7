"""Robustness of the HTTP server against bad input: every malformed, mistyped or hostile request
gets a 4xx with an OpenAI error object whose message (or `param`) names what is wrong — or a 200
where the input is in fact valid — never a 5xx, never a hang; and afterwards the server is ready,
a normal request still works, and /metrics shows no KV block in use and nothing running or
waiting. Also: slowloris-style partial bodies, many concurrent bad requests mixed with good ones,
and streaming clients that vanish (socket reset without reading) must give their KV blocks back.

Uses the session `server` (conftest.py). Loopback only, seeded randomness, every loop bounded,
every socket with a timeout."""
import http.client
import json
import os
import random
import socket
import struct
import threading
import time

import requests

from conftest import gauges

LIGHT = os.environ.get("G4_SANITIZE") == "1"  # ASan build: the CPU model is ~20x slower
CHAT = "/v1/chat/completions"
CMPL = "/v1/completions"
TIMEOUT = 60


# --- helpers ----------------------------------------------------------------------------------

def raw(server, method, path, body=b"", headers=None, timeout=TIMEOUT):
    """One request on a fresh connection: (status, body bytes). Sends bytes exactly as given."""
    if isinstance(body, str):
        body = body.encode()
    h = {"Content-Type": "application/json"}
    h.update(headers or {})
    c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
    try:
        c.request(method, path, body=body if method not in ("GET", "HEAD") or body else None, headers=h)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def chat_body(**kw):
    b = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
    b.update(kw)
    return json.dumps(b)


def error_of(status, body):
    """The OpenAI error object of a 4xx answer (strict: the body must be UTF-8 JSON)."""
    assert 400 <= status < 500, (status, body[:300])
    doc = json.loads(body.decode("utf-8"))  # strict UTF-8: what httpx / the openai client do
    err = doc.get("error")
    assert isinstance(err, dict), doc
    assert isinstance(err.get("message"), str) and err["message"], doc
    assert isinstance(err.get("type"), str) and err["type"], doc
    assert err.get("code") == status, doc
    assert "param" in err, doc
    return err


def assert_names(status, body, *words):
    """4xx whose message or param mentions every word (case-insensitive)."""
    err = error_of(status, body)
    text = (err["message"] + " " + (err.get("param") or "")).lower()
    for w in words:
        assert w.lower() in text, (w, err)
    return err


def assert_clean(server, deadline_s=30):
    """Ready, nothing running or waiting, zero KV blocks in use, and a normal request works."""
    assert requests.get(server.base + "/v1/health/ready", timeout=10).status_code == 200
    deadline = time.time() + deadline_s
    while True:
        g = gauges(server.base)
        state = {k: g.get(k) for k in ("g4_kv_blocks_used", "vllm:num_requests_running", "vllm:num_requests_waiting")}
        if all(v == 0 for v in state.values()):
            break
        assert time.time() < deadline, state
        time.sleep(0.05)
    st, body = raw(server, "POST", CHAT, chat_body(max_tokens=2))
    assert st == 200, body[:300]
    doc = json.loads(body)
    assert doc["choices"][0]["finish_reason"] in ("stop", "length")
    assert server.proc.poll() is None, server.stderr()


def nested(depth, leaf="1"):
    return '{"a":' * depth + leaf + "}" * depth


# --- malformed bodies -------------------------------------------------------------------------

def test_malformed_and_truncated_json(server):
    good = chat_body(temperature=0.5, stop=["zz"], tools=[{"type": "function", "function": {"name": "f"}}])
    bodies = ["", " ", "{", "}", "[", "null", "true", "42", '"str"', "[]", "{]", '{"messages":}',
              "{'messages': []}", '{"messages": [,]}', good + "}", good + "x", good[:-1] + ",}",
              '{"a":1,,"b":2}', "\x00", "{\x00}", '{"messages":[{"role":"user","content":"x"}],"max_tokens":1} junk']
    rnd = random.Random(1234)
    cuts = sorted(rnd.sample(range(1, len(good) - 1), 30))
    bodies += [good[:k] for k in cuts]  # truncated at 30 random points
    for b in bodies:
        for path in (CHAT, CMPL, "/tokenize", "/detokenize"):
            st, body = raw(server, "POST", path, b)
            err = error_of(st, body)
            msg = (err["message"] + " " + (err.get("param") or "")).lower()
            # not valid JSON, or valid JSON that is not an object / lacks the required field
            assert any(w in msg for w in ("json", "object", "prompt", "messages", "tokens")), (b, err)
    assert_clean(server)


def test_nan_infinity_and_deep_nesting(server):
    for lit in ("NaN", "Infinity", "-Infinity", "nan", "inf", "1e999", "-1e999"):
        st, body = raw(server, "POST", CHAT, '{"messages":[{"role":"user","content":"x"}],"temperature":%s}' % lit)
        assert_names(st, body, "temperature") if st != 400 or b"JSON" not in body else error_of(st, body)
    # 10k levels of arrays / objects, at the top and inside fields
    deep_arr = "[" * 10000 + "]" * 10000
    for b in (deep_arr, nested(10000), chat_body()[:-1] + ',"user":' + nested(10000) + "}",
              '{"messages":[{"role":"user","content":' + deep_arr + "}]}", "[" * 10000):
        for path in (CHAT, CMPL, "/tokenize", "/detokenize"):
            st, body = raw(server, "POST", path, b)
            error_of(st, body)
    # just inside cJSON's nesting limit, in places the chat template walks recursively
    d = 900
    schema = {"type": "object", "properties": {}}
    cur = schema["properties"]
    for _ in range(d // 2):
        cur["p"] = {"type": "object", "properties": {}}
        cur = cur["p"]["properties"]
    tools = [{"type": "function", "function": {"name": "f", "parameters": schema}}]
    st, body = raw(server, "POST", "/tokenize", json.dumps({"messages": [{"role": "user", "content": "x"}],
                                                             "tools": tools}))
    assert st in (200, 400), body[:300]
    if st == 400:
        error_of(st, body)
    msgs = [{"role": "user", "content": "x"},
            {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": json.loads(nested(d))}}]}]
    st, body = raw(server, "POST", "/tokenize", json.dumps({"messages": msgs}))
    assert st == 200, body[:300]
    assert_clean(server)


def test_assistant_text_part_without_text(server):
    """Issue 20: an assistant text part without a string "text" read out of bounds in the chat
    renderer's thinking-stripper (heap-buffer-overflow under ASan, the process aborted). /tokenize
    skipped chat validation and reached the renderer directly. Both must answer 400 naming the
    message, and /tokenize must refuse exactly what chat refuses."""
    parts = [[{"type": "text"}], [{"type": "text", "text": None}], [{"type": "text", "text": 7}],
             [{"type": "text", "text": "ok"}, {"type": "text"}]]
    for content in parts:
        msgs = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": content},
                {"role": "user", "content": "again"}]
        for path, body in (("/tokenize", {"messages": msgs}),
                           (CHAT, {"messages": msgs, "max_tokens": 1})):
            st, out = raw(server, "POST", path, json.dumps(body))
            assert_names(st, out, "messages", "text")
    # the same validation as chat: what chat refuses, /tokenize refuses (and names the same field)
    for bad in ([{"role": "wizard", "content": "x"}], [{"role": "user", "content": [{"type": "image_url"}]}],
                [], {"role": "user"}):
        st_t, out_t = raw(server, "POST", "/tokenize", json.dumps({"messages": bad}))
        st_c, out_c = raw(server, "POST", CHAT, json.dumps({"messages": bad, "max_tokens": 1}))
        assert st_t == st_c == 400, (bad, st_t, st_c)
        assert error_of(st_t, out_t)["message"] == error_of(st_c, out_c)["message"]
    assert_clean(server)


def test_error_message_cut_is_utf8(server):
    """Issue 20: user strings echoed into the 1,024-byte error message were cut at a byte, so a 4xx
    body could be invalid UTF-8. Every offset of 1- to 4-byte characters across the cut."""
    for ch in ("\u00e9", "\u20ac", "\U0001F600"):
        for pad in range(4):
            role = "x" * pad + ch * 600
            st, body = raw(server, "POST", CHAT, json.dumps({"messages": [{"role": role, "content": "x"}],
                                                              "max_tokens": 1}))
            assert_names(st, body, "role")  # strict UTF-8 decode of the body
            st, body = raw(server, "POST", "/tokenize", json.dumps({"messages": [{"role": role, "content": "x"}]}))
            assert_names(st, body, "role")


def test_wrong_types_for_every_chat_field(server):
    fields = ["model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "top_k", "min_p",
              "n", "stream", "stream_options", "stop", "stop_token_ids", "seed", "presence_penalty",
              "frequency_penalty", "repetition_penalty", "logprobs", "top_logprobs", "tools", "tool_choice",
              "parallel_tool_calls", "response_format", "logit_bias", "ignore_eos", "min_tokens",
              "skip_special_tokens", "chat_template_kwargs", "reasoning_effort", "include_reasoning",
              "add_generation_prompt", "continue_final_message", "priority", "request_id", "echo", "best_of",
              "use_beam_search", "user", "allowed_token_ids", "return_token_ids"]
    values = ["1", "abc", "", {}, {"a": 1}, [], [1], ["x"], [None], None, 1e300, -1e300, -1, 0, 2.5, True, False,
              2 ** 63, "x" * 10000]
    seen = 0
    for f in fields:
        for v in values:
            if f == "stream" and v is True:
                continue  # valid, and an SSE answer: covered by the streaming tests
            # the other length field keeps valid-but-null values short (null max_tokens = up to the context)
            other = {"max_tokens": {"max_completion_tokens": 1}}.get(f, {})
            st, body = raw(server, "POST", CHAT, chat_body(**other, **{f: v}))
            if st == 200:
                doc = json.loads(body.decode("utf-8"))
                assert doc["choices"], (f, v, doc)
            else:
                err = error_of(st, body)
                text = (err["message"] + " " + (err.get("param") or "")).lower()
                # names the field (or, for values that reach the template / length check, what failed)
                assert f.lower() in text or (f in ("messages", "max_tokens", "max_completion_tokens")
                                             and "context length" in text), (f, v, err)
                seen += 1
    assert seen > len(fields) * 5  # most wrong values are refused, not silently ignored


def test_named_bad_values(server):
    cases = [
        (dict(messages=[]), "messages"),
        (dict(messages={"role": "user", "content": "x"}), "messages"),
        (dict(messages=[{"role": "wizard", "content": "x"}]), "role"),
        (dict(messages=[{"role": "", "content": "x"}]), "role"),
        (dict(messages=[{"content": "x"}]), "role"),
        (dict(messages=["hello"]), "messages"),
        (dict(messages=[{"role": "user", "content": 5}]), "content"),
        (dict(messages=[{"role": "user", "content": [{"type": "text"}]}]), "text"),
        (dict(messages=[{"role": "user", "content": [{"type": "audio_x", "x": 1}]}]), "audio_x"),
        (dict(n=0), "'n'"), (dict(n=1000), "'n'"), (dict(n="2"), "'n'"),
        (dict(max_tokens=0), "max_tokens"), (dict(max_tokens=-1), "max_tokens"),
        (dict(max_tokens=10 ** 12), "max_tokens"), (dict(max_tokens=1e300), "max_tokens"),
        (dict(max_tokens=4096), "context length"),
        (dict(temperature="0.5"), "temperature"), (dict(temperature=-1), "temperature"),
        (dict(top_p=0), "top_p"), (dict(top_k=-5), "top_k"), (dict(seed=1e300), "seed"),
        (dict(stop=["s%d" % i for i in range(100)]), "stop"), (dict(stop=[""]), "stop"), (dict(stop=[5]), "stop"),
        (dict(stop_token_ids=[-1]), "stop_token_ids"), (dict(stop_token_ids=[1 << 40]), "stop_token_ids"),
        (dict(top_logprobs=5), "top_logprobs"), (dict(logprobs=True, top_logprobs=21), "top_logprobs"),
        (dict(logprobs=1), "logprobs"),
        (dict(tools=[{"type": "function", "function": {"name": "f", "parameters": "{not json"}}]), "parameters"),
        (dict(tools=[{"type": "function", "function": {"name": "f", "parameters": [1]}}]), "parameters"),
        (dict(tools=[{"type": "function", "function": {"parameters": {}}}]), "tool"),
        (dict(tools=[{"type": "retrieval"}]), "tool"), (dict(tools=[5]), "tool"),
        (dict(tools=[{"type": "function", "function": {"name": "f"}}], tool_choice={"function": {"name": "g"}}),
         "tool_choice"),
        (dict(tool_choice="required"), "tool_choice"), (dict(tool_choice="sometimes"), "tool_choice"),
        (dict(messages=[{"role": "user", "content": "x"},
                        {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "{oops"}}]}]),
         "arguments"),
        (dict(messages=[{"role": "user", "content": "x"},
                        {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "[1,2]"}}]}]),
         "arguments"),
        (dict(messages=[{"role": "user", "content": "x"},
                        {"role": "assistant", "tool_calls": [{"function": {"name": 7, "arguments": "{}"}}]}]),
         "name"),
        (dict(messages=[{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": {"a": 1}}]),
         "tool_calls"),
        (dict(response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {"not": {}}}}), "not"),
        (dict(response_format={"type": "xml"}), "response_format"),
        (dict(stream_options={"include_usage": True}), "stream_options"),
        (dict(model="no-such-model"), "no-such-model"), (dict(model="m" * 100000), "model"),
    ]
    for kw, word in cases:
        st, body = raw(server, "POST", CHAT, chat_body(**kw))
        assert_names(st, body, word)
    assert_clean(server)


def test_valid_but_unusual_input_is_accepted(server):
    """Things that look odd but are valid: 200, not an error."""
    ok = [
        dict(messages=[{"role": "user", "content": "\U0001F600 \u00e9 \u4e2d"}]),    # multi-byte UTF-8
        dict(logprobs=True),                                                        # logprobs, no top_logprobs
        dict(logprobs=True, top_logprobs=0),
        dict(stop="", temperature=None, seed=None),                                 # null = not given
        dict(messages=[{"role": "user", "content": None}, {"role": "user", "content": []}]),
        dict(tools=[{"type": "function", "function": {"name": "f", "parameters": {
            "type": "object", "properties": {"a": {"type": ["string", {"weird": 1}], "enum": [1, None, {}]},
                                             "b": 5, "c": {"items": {"items": {"type": 7}}}},
            "required": "notalist"}}}]),
        dict(user={"any": "thing"}, metadata=[1, 2], store=True),                   # bookkeeping fields
        dict(messages=[{"role": "user", "content": "hello world " * 300}]),          # long but fits
    ]
    for kw in ok:
        st, body = raw(server, "POST", CHAT, chat_body(**kw))
        assert st == 200, (kw if len(str(kw)) < 300 else list(kw), body[:300])
        doc = json.loads(body.decode("utf-8"))
        assert doc["choices"][0]["message"]["role"] == "assistant"
        if kw.get("logprobs"):
            assert doc["choices"][0]["logprobs"]["content"], doc
    # A NUL in a string, escaped or raw (the raw byte is not valid JSON), is refused naming the
    # field: the parsed text would end there silently (issue 20; test_render_fidelity.py).
    for nul in (b"\\u0000", b"\x00"):
        st, body = raw(server, "POST", CHAT, b'{"messages":[{"role":"user","content":"a%sb"}],"max_tokens":1}' % nul)
        assert_names(st, body, "NUL", "messages[0].content")
    assert_clean(server)


def test_invalid_utf8_in_content_and_keys(server):
    base = b'{"messages":[{"role":"user","content":"%s"}],"max_tokens":1%s}'
    bad = [b"\xff", b"\xc3", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"ok\xfe\xfeok", b"\x80"]
    for x in bad:
        for body in (base % (x, b""), base % (b"x", b',"' + x + b'":1'),
                     b'{"messages":[{"role":"' + x + b'","content":"x"}]}', b'{"model":"' + x + b'"}'):
            st, out = raw(server, "POST", CHAT, body)
            assert_names(st, out, "utf-8")  # the error itself must be valid UTF-8 JSON (error_of decodes strictly)
            st, out = raw(server, "POST", CMPL, b'{"prompt":"' + x + b'","max_tokens":1}')
            assert_names(st, out, "utf-8")
            st, out = raw(server, "POST", "/tokenize", b'{"prompt":"' + x + b'"}')
            assert_names(st, out, "utf-8")
    assert_clean(server)


def test_completions_prompt_ids(server):
    for prompt, word in (([1, 262144], "prompt"), ([-1], "prompt"), ([1 << 40], "prompt"), ([1.5], "prompt"),
                         ([], "prompt"), ([[]], "prompt"), ([[1], []], "prompt"), ([None], "prompt"),
                         ([[1], ["a"]], "prompt"), (["x", 5], "prompt"), ([1, "a"], "prompt"), (["x"] * 300, "prompt"),
                         ([[2], [1] * 5000], "context length"),
                         ({"a": 1}, "prompt"), (None, "prompt"), ([1] * 5000, "context length")):
        st, body = raw(server, "POST", CMPL, json.dumps({"prompt": prompt, "max_tokens": 1}))
        assert_names(st, body, word)
    st, body = raw(server, "POST", CMPL, json.dumps({"prompt": [2, 100, 200], "max_tokens": 1}))
    assert st == 200, body
    st, body = raw(server, "POST", CMPL, json.dumps({"prompt": [[2, 100], [2, 200]], "max_tokens": 1}))
    assert st == 200 and len(json.loads(body)["choices"]) == 2, body
    for toks in ([262144], [-1], ["a"], [1e300], {"a": 1}):
        st, body = raw(server, "POST", "/detokenize", json.dumps({"tokens": toks}))
        assert_names(st, body, "tokens")
    assert_clean(server)


# --- HTTP-level oddities ----------------------------------------------------------------------

def test_methods_paths_and_content_types(server):
    for m in ("GET", "PUT", "DELETE", "PATCH", "OPTIONS", "BOGUS"):
        st, body = raw(server, m, CHAT, chat_body() if m != "GET" else b"")
        assert_names(st, body, "post")
        assert st == 405
    for path in ("/v1/models", "/v1/health/ready", "/metrics"):
        st, body = raw(server, "POST", path, b"{}")
        assert st == 405 and assert_names(st, body, "get")
    for path in ("/", "/v1", "/v1/chat", "/v1/chat/completions/", "/v2/models", "/v1/embeddings", "/%00",
                 "/v1/chat/completions?x=1&y", "/../../etc/passwd", "/" + "a" * 2000):
        st, body = raw(server, "POST", path, chat_body())
        if path.startswith(CHAT + "?"):
            assert st == 200, body  # the query string is not part of the path
        else:
            assert st == 404 and assert_names(st, body, "endpoint")
    # The server reads JSON whatever the Content-Type says: valid JSON is answered, garbage is a 400.
    for ct in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
               "application/octet-stream", "", "application/json; charset=latin-1"):
        st, body = raw(server, "POST", CHAT, chat_body(), {"Content-Type": ct})
        assert st == 200, (ct, body[:200])
        st, body = raw(server, "POST", CHAT, b"a=1&b=2", {"Content-Type": ct})
        assert_names(st, body, "json")
    assert_clean(server)


def send_raw(port, data, read=True, timeout=20):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        if not read:
            return b""
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            out += chunk
        return out
    finally:
        s.close()


def status_of(resp):
    assert resp.startswith(b"HTTP/1."), resp[:200]
    return int(resp.split(b" ", 2)[1])


def test_chunked_bodies(server):
    body = chat_body(max_tokens=1).encode()
    parts = [body[i:i + 7] for i in range(0, len(body), 7)]
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"
    head = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
    r = send_raw(server.port, head + chunked)
    assert status_of(r) == 200, r[:300]
    # chunked garbage JSON: a 400 naming JSON
    bad = b"5\r\n{\"mes\r\n0\r\n\r\n"
    r = send_raw(server.port, head + bad)
    assert status_of(r) == 400 and b"JSON" in r, r[:300]
    # broken chunk framing: a 4xx from the HTTP layer or a closed connection, never 5xx
    for framing in (b"zz\r\nabc\r\n0\r\n\r\n", b"ffffffffffffffffffff\r\nx\r\n", b"3\r\nabcdef\r\n0\r\n\r\n"):
        r = send_raw(server.port, head + framing, timeout=5)
        assert r == b"" or 400 <= status_of(r) < 500, r[:300]
    # headers the server cannot honour
    for extra in (b"Content-Length: -5\r\n", b"Content-Length: abc\r\n", b"Content-Length: 99999999999999999999\r\n"):
        r = send_raw(server.port, b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n" + extra +
                     b"Connection: close\r\n\r\n{}", timeout=5)
        assert r == b"" or 400 <= status_of(r) < 500, (extra, r[:300])
    r = send_raw(server.port, b"GARBAGE\r\n\r\n", timeout=5)
    assert r == b"" or 400 <= status_of(r) < 500, r[:300]
    assert_clean(server)


def test_slowloris_partial_bodies(server):
    """Connections that send half a body and stall, or hang up, must not block anyone else."""
    socks = []
    body = chat_body(max_tokens=1).encode()
    head = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body))
    try:
        for i in range(40):
            s = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            s.sendall(head + body[: (i * 7) % (len(body) - 1)])
            socks.append(s)
        # a good request goes through while 40 connections stall mid-body
        t0 = time.time()
        st, out = raw(server, "POST", CHAT, chat_body(max_tokens=1), timeout=30)
        assert st == 200, out[:300]
        assert time.time() - t0 < 20
        # half of them hang up (some with a reset), the others finish with a truncated JSON body
        for i, s in enumerate(socks):
            if i % 2 == 0:
                if i % 4 == 0:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                s.close()
        for i, s in enumerate(socks):
            if i % 2 == 1:
                sent = (i * 7) % (len(body) - 1)
                s.sendall(b"}" * (len(body) - sent))  # right length, wrong bytes
        for i, s in enumerate(socks):
            if i % 2 == 1:
                r = b""
                while b"\r\n\r\n" not in r or len(r) < 40:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    r += chunk
                assert 400 <= status_of(r) < 500, r[:300]
    finally:
        for s in socks:
            s.close()
    # a body that promises more than it sends, then the client half-closes: no crash, never a 5xx
    # (the server may keep the half-open connection until its idle timeout)
    s = socket.create_connection(("127.0.0.1", server.port), timeout=1)
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n{\"messages\":")
    s.shutdown(socket.SHUT_WR)
    try:
        r = s.recv(4096)
        assert r == b"" or 400 <= status_of(r) < 500, r[:300]
    except socket.timeout:
        pass
    s.close()
    assert_clean(server)


# --- concurrency ------------------------------------------------------------------------------

def bad_bodies():
    return [
        (CHAT, b"{", 400), (CHAT, b'{"messages":[]}', 400), (CHAT, chat_body(n=1000).encode(), 400),
        (CHAT, chat_body(max_tokens=10 ** 9).encode(), 400), (CHAT, b'{"messages":[{"role":"\xff"}]}', 400),
        (CMPL, b'{"prompt":[1,999999999]}', 400), (CHAT, chat_body(model="nope").encode(), 404),
        ("/nope", b"{}", 404), (CHAT, ("[" * 10000).encode(), 400),
        (CHAT, chat_body(stop=["x"] * 100).encode(), 400),
    ]


def test_concurrent_bad_requests_mixed_with_good(server):
    rnd = random.Random(99)
    n = 60 if LIGHT else 240
    plan = []
    bads = bad_bodies()
    for i in range(n):
        if rnd.random() < 0.25:
            plan.append(("good", CHAT, chat_body(max_tokens=rnd.randint(1, 4), seed=i, stream=rnd.random() < 0.3)
                         .encode(), 200))
        else:
            plan.append(("bad",) + rnd.choice(bads))
    results = [None] * n
    barrier = threading.Barrier(min(n, 32))
    lock = threading.Lock()
    nxt = [0]

    def worker():
        try:
            barrier.wait(timeout=30)
        except threading.BrokenBarrierError:
            pass
        while True:
            with lock:
                i = nxt[0]
                nxt[0] += 1
            if i >= n:
                return
            kind, path, body, want = plan[i]
            try:
                results[i] = raw(server, "POST", path, body, timeout=TIMEOUT)
            except Exception as e:  # noqa: BLE001 - reported below
                results[i] = ("exc", repr(e))

    threads = [threading.Thread(target=worker) for _ in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "requests still running after 120 s"
    for (kind, path, body, want), res in zip(plan, results):
        assert res is not None and res[0] != "exc", (kind, body[:80], res)
        st, out = res
        assert st == want, (kind, body[:80], st, out[:200])
        if st != 200:
            error_of(st, out)
    assert_clean(server)


# --- clients that vanish ----------------------------------------------------------------------

def test_streaming_client_killed_returns_kv_blocks(server):
    """Clients reset their sockets without reading anything: every KV block comes back. Streaming
    clients are noticed on the next write; non-streaming ones (every third) while they wait."""
    before = gauges(server.base)
    n = 6 if LIGHT else 12
    socks = []
    for i in range(n):
        body = json.dumps({"messages": [{"role": "user", "content": "tell me a long story %d" % i}],
                           "max_tokens": 3000, "stream": i % 3 != 0, "ignore_eos": True, "seed": i}).encode()
        s = socket.create_connection(("127.0.0.1", server.port), timeout=30)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        socks.append(s)
    # wait until the server is generating for them (blocks in use), reading nothing
    deadline = time.time() + 30
    while gauges(server.base).get("g4_kv_blocks_used", 0) == 0:
        assert time.time() < deadline, "the streams never started"
        time.sleep(0.02)
    for s in socks:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST, unread data dropped
        s.close()
    assert_clean(server, deadline_s=40)
    # assert_clean's own request may still be counted until the engine's next publish: poll
    deadline = time.time() + 10
    while True:
        after = gauges(server.base)
        if after["vllm:num_requests_running"] == 0 and after["g4_kv_blocks_used"] == 0:
            break
        assert time.time() < deadline, after
        time.sleep(0.05)
    # they were cancelled, not run to their 3000 tokens
    gen = after.get("vllm:generation_tokens_total", 0) - before.get("vllm:generation_tokens_total", 0)
    assert gen < n * 3000, gen
