"""g4serve's OpenAI-compatible API driven by the official `openai` client (and `requests` for
what the client cannot send). The model is the embedded tiny random checkpoint, so outputs are
arbitrary token soup: tests check shapes, determinism and consistency, never meaning."""
import json

import openai
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

MODEL = "g4serve-tiny"
MSG = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello.", "name": "bob"}]


def chat_text(client, **kw):
    r = client.chat.completions.create(model=MODEL, messages=MSG, **kw)
    return r


# --- endpoints -----------------------------------------------------------------------------

def test_health_models_version(server):
    assert requests.get(server.base + "/v1/health/live").status_code == 200
    assert requests.get(server.base + "/v1/health/ready").status_code == 200
    v = requests.get(server.base + "/v1/version").json()
    assert v["release"] and v["api"]
    assert requests.get(server.base + "/v1/nope").status_code == 404
    assert requests.get(server.base + "/v1/chat/completions").status_code == 405


def test_models_lists_served_names(client, server):
    ids = [m.id for m in client.models.list().data]
    assert ids == [MODEL, "tiny-alias"]  # NIM_SERVED_MODEL_NAME with an alias
    raw = requests.get(server.base + "/v1/models").json()
    assert raw["object"] == "list" and raw["data"][0]["max_model_len"] > 0
    # the alias is accepted as a model name; unknown NIM_* variables were logged, not fatal
    r = client.completions.create(model="tiny-alias", prompt="x", max_tokens=1)
    assert r.model == "tiny-alias"
    assert "NIM_SOMETHING_UNKNOWN" in server.stderr()


# --- chat ----------------------------------------------------------------------------------

def test_chat_non_streaming(client):
    r = chat_text(client, max_tokens=6)
    assert r.object == "chat.completion" and r.id.startswith("chatcmpl-")
    c = r.choices[0]
    assert c.message.role == "assistant" and isinstance(c.message.content, str)
    assert c.finish_reason in ("stop", "length")
    assert r.usage.completion_tokens <= 6 and r.usage.prompt_tokens > 5
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    if c.finish_reason == "length":
        assert r.usage.completion_tokens == 6


def test_chat_streaming_matches_non_streaming(client):
    full = chat_text(client, max_tokens=8, temperature=0)
    chunks = list(chat_text(client, max_tokens=8, temperature=0, stream=True,
                            stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert len({c.id for c in chunks}) == 1
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish == [full.choices[0].finish_reason]
    assert text == full.choices[0].message.content  # greedy: same tokens either way
    usage = chunks[-1]
    assert usage.choices == [] and usage.usage.completion_tokens == full.usage.completion_tokens
    assert all(c.usage is None for c in chunks[:-1])


def test_stream_without_usage_has_no_usage_chunk(client):
    chunks = list(chat_text(client, max_tokens=3, stream=True))
    assert all(c.choices for c in chunks) and all(c.usage is None for c in chunks)


def test_n_choices(client):
    r = chat_text(client, max_tokens=4, n=3, temperature=1.0, seed=7)
    assert sorted(c.index for c in r.choices) == [0, 1, 2]
    assert r.usage.completion_tokens == sum(
        4 if c.finish_reason == "length" else 0 for c in r.choices) or r.usage.completion_tokens <= 12
    chunks = list(chat_text(client, max_tokens=4, n=2, stream=True, temperature=1.0, seed=7))
    per = {0: "", 1: ""}
    for c in chunks:
        for ch in c.choices:
            per[ch.index] += ch.delta.content or ""
    assert per[0] == r.choices[0].message.content and per[1] == r.choices[1].message.content


def test_seed_reproducible(client):
    a = chat_text(client, max_tokens=8, temperature=1.0, top_p=0.9, seed=1234)
    b = chat_text(client, max_tokens=8, temperature=1.0, top_p=0.9, seed=1234)
    c = chat_text(client, max_tokens=8, temperature=1.0, top_p=0.9, seed=99)
    assert a.choices[0].message.content == b.choices[0].message.content
    assert a.choices[0].message.content != c.choices[0].message.content


def test_sampling_fields_accepted(client):
    r = chat_text(client, max_completion_tokens=4, temperature=0.7, top_p=0.8, presence_penalty=0.5,
                  frequency_penalty=0.3, user="u1", metadata={"a": "b"},
                  extra_body={"top_k": 20, "min_p": 0.05, "repetition_penalty": 1.1, "min_tokens": 2,
                              "ignore_eos": True})
    assert r.usage.completion_tokens == 4  # ignore_eos + max_completion_tokens


def test_stop_string(client):
    base = chat_text(client, max_tokens=12, temperature=0, extra_body={"ignore_eos": True})
    text = base.choices[0].message.content
    assert len(text) >= 6
    stop = text[len(text) // 2: len(text) // 2 + 3]
    cut = text[: text.index(stop)]
    r = chat_text(client, max_tokens=12, temperature=0, stop=[stop], extra_body={"ignore_eos": True})
    assert r.choices[0].finish_reason == "stop"
    assert r.choices[0].message.content == cut


def _stream_text(chunks, chat):
    parts = [(ch.choices[0].delta.content if chat else ch.choices[0].text) for ch in chunks if ch.choices]
    return "".join(p for p in parts if p), [ch.choices[0].finish_reason for ch in chunks if ch.choices][-1]


@pytest.mark.parametrize("chat", [False, True])
def test_include_stop_str_in_output(client, chat):
    """vLLM's include_stop_str_in_output: the text without it plus the stop string (nothing after
    it), streamed and not; the tokens (up to the one completing the string) are the same."""
    def create(**kw):
        kw = dict(model=MODEL, max_tokens=12, temperature=0, **kw)
        if chat:
            return client.chat.completions.create(messages=MSG, **kw)
        return client.completions.create(prompt="Once upon a time", **kw)

    def text(r):
        return r.choices[0].message.content if chat else r.choices[0].text

    base = text(create(extra_body={"ignore_eos": True}))
    assert len(base) >= 6
    stop = base[len(base) // 2: len(base) // 2 + 3]
    cut = base[: base.index(stop)]
    body = {"ignore_eos": True, "return_token_ids": True}
    plain = create(stop=[stop], extra_body=body)
    inc = create(stop=[stop], extra_body={**body, "include_stop_str_in_output": True})
    assert plain.choices[0].finish_reason == inc.choices[0].finish_reason == "stop"
    assert text(plain) == cut and text(inc) == cut + stop
    assert inc.choices[0].token_ids == plain.choices[0].token_ids
    streamed = list(create(stop=[stop], stream=True, extra_body={"ignore_eos": True,
                                                                 "include_stop_str_in_output": True}))
    assert _stream_text(streamed, chat) == (cut + stop, "stop")
    # false is the default, and a non-boolean is refused naming the field
    assert text(create(stop=[stop], extra_body={**body, "include_stop_str_in_output": False})) == cut
    with pytest.raises(openai.BadRequestError) as ei:
        create(stop=[stop], extra_body={"include_stop_str_in_output": "yes"})
    assert ei.value.body["param"] == "include_stop_str_in_output"


def test_min_tokens_masks_stop_ids(client, server):
    """vLLM's min_tokens: the stop ids cannot be sampled until the output has min_tokens tokens,
    so with the eos forced by a bias the output is min_tokens other tokens, then the eos; the
    other tokens are the next most likely ones (the same request with the eos disallowed)."""
    eos = requests.get(server.base + "/tokenizer_info").json()["eos_token"]
    eos_id = requests.post(server.base + "/tokenize", json={"prompt": eos, "add_special_tokens": False}).json()["tokens"]
    kw = dict(model=MODEL, prompt="Once upon a time", temperature=0, max_tokens=10)
    for stream in (False, True):
        r = client.completions.create(**kw, stream=stream, logit_bias={str(eos_id[0]): 100},
                                      extra_body={"min_tokens": 3, "return_token_ids": True})
        if stream:
            r = list(r)
            ids = [t for ch in r if ch.choices for t in (ch.choices[0].token_ids or [])]
            finish = [ch.choices[0].finish_reason for ch in r if ch.choices and ch.choices[0].finish_reason]
            assert finish == ["stop"]
        else:
            ids, usage = r.choices[0].token_ids, r.usage
            assert r.choices[0].finish_reason == "stop" and usage.completion_tokens == 4  # 3 + the eos
        assert len(ids) == 3 and eos_id[0] not in ids
    without = client.completions.create(**kw, logit_bias={str(eos_id[0]): -100},
                                        extra_body={"ignore_eos": True, "return_token_ids": True})
    assert without.choices[0].token_ids[:3] == ids


def test_include_stop_str_in_output_stop_ids(client, server):
    """A stop id with include_stop_str_in_output is the output's last token, its text as the
    request renders it (the same request cut by max_tokens instead): vLLM. Without the flag the
    id is neither in the text nor in token_ids. The eos under skip_special_tokens adds nothing."""
    kw = dict(model=MODEL, prompt="Once upon a time", temperature=0, logprobs=1)
    body = {"ignore_eos": True, "return_token_ids": True}
    ids = client.completions.create(max_tokens=12, extra_body=body, **kw).choices[0].token_ids
    at = ids.index(ids[6])  # the first place of the id that ends the output
    upto = {n: client.completions.create(max_tokens=n, extra_body=body, **kw).choices[0] for n in (at, at + 1)}
    for include, want in ((False, upto[at]), (True, upto[at + 1])):
        for stream in (False, True):
            r = client.completions.create(max_tokens=12, stream=stream, **kw, extra_body={
                **body, "stop_token_ids": [ids[6]], "include_stop_str_in_output": include})
            if stream:
                r = list(r)
                got_ids = [t for ch in r if ch.choices for t in (ch.choices[0].token_ids or [])]
                assert _stream_text(r, False) == (want.text, "stop")
            else:
                c = r.choices[0]
                got_ids = c.token_ids
                assert c.text == want.text and c.finish_reason == "stop"
                assert len(c.logprobs.tokens) == len(got_ids)
                assert r.usage.completion_tokens == at + 1
            assert got_ids == ids[: at + include]
    # the eos, forced first: in token_ids with the flag, its text only without skip_special_tokens
    eos = requests.get(server.base + "/tokenizer_info").json()["eos_token"]
    eos_id = requests.post(server.base + "/tokenize", json={"prompt": eos, "add_special_tokens": False}).json()["tokens"]
    assert len(eos_id) == 1
    for include, skip, want_text in ((False, True, ""), (True, True, ""), (True, False, eos)):
        r = client.completions.create(max_tokens=4, logit_bias={str(eos_id[0]): 100}, **kw, extra_body={
            "return_token_ids": True, "include_stop_str_in_output": include, "skip_special_tokens": skip})
        c = r.choices[0]
        assert (c.text, c.finish_reason, c.token_ids) == (want_text, "stop", eos_id if include else [])
    r = client.chat.completions.create(model=MODEL, messages=MSG, max_tokens=4, logit_bias={str(eos_id[0]): 100},
                                       extra_body={"return_token_ids": True, "include_stop_str_in_output": True})
    assert (r.choices[0].message.content or "") == "" and r.choices[0].token_ids == eos_id
    with pytest.raises(openai.BadRequestError) as ei:  # beam search would ignore it: refused
        client.completions.create(max_tokens=4, n=2, **{k: v for k, v in kw.items() if k != "logprobs"},
                                  extra_body={"use_beam_search": True, "include_stop_str_in_output": True})
    assert ei.value.body["param"] == "include_stop_str_in_output"


def test_chat_logprobs(client):
    r = chat_text(client, max_tokens=4, logprobs=True, top_logprobs=3, temperature=0)
    lp = r.choices[0].logprobs.content
    assert len(lp) == r.usage.completion_tokens
    for e in lp:
        assert e.logprob <= 0 and len(e.top_logprobs) == 3
        assert e.top_logprobs[0].logprob >= e.top_logprobs[-1].logprob
        assert e.logprob == pytest.approx(e.top_logprobs[0].logprob, abs=1e-5)  # greedy picks the top one
        assert bytes(e.bytes).decode("utf-8", "replace") == e.token


def test_reasoning_field_with_thinking(client, server):
    r = chat_text(client, max_tokens=6, extra_body={"chat_template_kwargs": {"enable_thinking": True}})
    msg = r.choices[0].message.model_dump()
    assert "reasoning" in msg  # present (null unless the model opened a thought channel)
    # the thinking switch reaches the template: the prompt is longer with <|think|>
    t0 = requests.post(server.base + "/tokenize", json={"messages": MSG}).json()["count"]
    t1 = requests.post(server.base + "/tokenize", json={"messages": MSG, "chat_template_kwargs":
                                                        {"enable_thinking": True}}).json()["count"]
    assert r.usage.prompt_tokens != chat_text(client, max_tokens=1).usage.prompt_tokens or t1 >= t0


TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]


def test_tool_call_round_trip(client, server):
    # 1. a request offering tools is accepted (forced calls: test_api_gaps.py,
    #    test_structured_output.py)
    for choice in ("auto", "none"):
        r = client.chat.completions.create(model=MODEL, messages=MSG, tools=TOOLS, tool_choice=choice, max_tokens=4)
        assert r.choices[0].finish_reason in ("stop", "length", "tool_calls")
    # 2. the assistant's tool call and the tool result go back through the Gemma 4 template
    history = MSG + [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temp_c": 21}'},
    ]
    stream = client.chat.completions.create(model=MODEL, messages=history, tools=TOOLS, max_tokens=5, stream=True)
    calls, text = {}, ""
    for c in stream:  # reassemble tool-call fragments the way client code does
        for ch in c.choices:
            text += ch.delta.content or ""
            for tc in ch.delta.tool_calls or []:
                d = calls.setdefault(tc.index, {"name": "", "arguments": ""})
                d["name"] += tc.function.name or ""
                d["arguments"] += tc.function.arguments or ""
    for d in calls.values():
        json.loads(d["arguments"])
    # the rendered prompt holds the declaration, the call and the response
    ids = requests.post(server.base + "/tokenize", json={"messages": history, "tools": TOOLS}).json()["tokens"]
    prompt = requests.post(server.base + "/detokenize", json={"tokens": ids}).json()["prompt"]
    assert "get_weather" in prompt and "Paris" in prompt and "21" in prompt
    assert "<|tool_call>" in prompt and "<|tool_response>" in prompt


# --- completions ---------------------------------------------------------------------------

def test_completions(client):
    r = client.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=5, temperature=0,
                                  logprobs=2)
    c = r.choices[0]
    assert r.object == "text_completion" and isinstance(c.text, str)
    assert len(c.logprobs.tokens) == r.usage.completion_tokens
    assert c.logprobs.text_offset[0] == 0
    chunks = list(client.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=5, temperature=0,
                                            stream=True, stream_options={"include_usage": True}))
    assert "".join(ch.choices[0].text for ch in chunks if ch.choices) == c.text
    assert chunks[-1].usage.completion_tokens == r.usage.completion_tokens


def test_completions_default_max_tokens_and_token_prompt(client, server):
    r = client.completions.create(model=MODEL, prompt=[2, 818, 5010], extra_body={"ignore_eos": True})
    assert r.usage.completion_tokens == 16 and r.usage.prompt_tokens == 3


def test_tokenize_detokenize(server):
    t = requests.post(server.base + "/tokenize", json={"prompt": "Hello world", "add_special_tokens": False}).json()
    assert t["count"] == len(t["tokens"]) > 0
    d = requests.post(server.base + "/detokenize", json={"tokens": t["tokens"]}).json()
    assert d["prompt"] == "Hello world"


# --- errors --------------------------------------------------------------------------------

@pytest.mark.parametrize("kw,param", [
    (dict(temperature=5), "temperature"),
    (dict(top_p=0), "top_p"),
    (dict(n=0), "n"),
    (dict(max_tokens=0), "max_tokens"),
    (dict(max_tokens=10 ** 6), "max_tokens"),
    (dict(top_logprobs=3), "top_logprobs"),
    (dict(presence_penalty="high"), "presence_penalty"),
    (dict(stop=[1, 2]), "stop"),
    (dict(response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {"not": {}}}}),
     "response_format"),
    (dict(extra_body={"logit_bias": {"5": 1000}}), "logit_bias"),
    (dict(tool_choice="required"), "tool_choice"),
])
def test_bad_request(client, kw, param):
    with pytest.raises(openai.BadRequestError) as ei:
        chat_text(client, **kw)
    err = ei.value.body
    assert ei.value.status_code == 400 and err["param"] == param and err["message"]


def test_structural_tag_not_supported(client):
    with pytest.raises(openai.BadRequestError, match="not supported yet"):
        chat_text(client, response_format={"type": "structural_tag"})


def test_image_part_rejected(client):
    msg = [{"role": "user", "content": [{"type": "text", "text": "what is this"},
                                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}]
    with pytest.raises(openai.BadRequestError, match="image"):
        client.chat.completions.create(model=MODEL, messages=msg, max_tokens=2)


def test_unknown_model_404(client):
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="no-such-model", messages=MSG, max_tokens=2)


def test_malformed_bodies(server):
    u = server.base + "/v1/chat/completions"
    for body in (b"{not json", b"[1,2]", b'{"messages": "hi"}', b'{"messages": []}',
                 b'{"messages": [{"role": "wizard", "content": "x"}]}'):
        r = requests.post(u, data=body, headers={"Content-Type": "application/json"})
        assert r.status_code == 400 and r.json()["error"]["type"] == "BadRequestError", body
    r = requests.post(u, data=b"x" * (65 << 20))
    assert r.status_code == 413


def test_queue_full_429_and_not_ready_503(make_server):
    s = make_server(["--max-num-seqs", "1", "--max-queue", "1", "--debug-ready-delay", "1.5"], ready=False)
    c = openai.OpenAI(base_url=s.base + "/v1", api_key="none", max_retries=0)
    with pytest.raises(openai.APIStatusError) as ei:  # 503 while not ready
        while True:
            c.completions.create(model=MODEL, prompt="x", max_tokens=1)
    assert ei.value.status_code == 503 and isinstance(ei.value, openai.InternalServerError)
    s.wait_ready()
    long = c.completions.create(model=MODEL, prompt="x", max_tokens=2000, stream=True,
                                extra_body={"ignore_eos": True})
    next(iter(long))  # running (the only sequence slot)
    queued = c.completions.create(model=MODEL, prompt="y", max_tokens=5, stream=True)  # waiting (queue of 1)
    with pytest.raises(openai.RateLimitError) as ei:
        c.completions.create(model=MODEL, prompt="z", max_tokens=1)
    assert ei.value.response.headers.get("retry-after")
    long.close()  # hang-up cancels the long one; the queued one then runs to the end
    assert "".join(ch.choices[0].text for ch in queued if ch.choices) is not None


# --- metrics -------------------------------------------------------------------------------

def scrape(server, path="/metrics"):
    r = requests.get(server.base + path)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/plain")
    out = {}
    for fam in text_string_to_metric_families(r.text):
        for s in fam.samples:
            out.setdefault(s.name, []).append(s)
    return out


def total(m, name, **labels):
    return sum(s.value for s in m.get(name, []) if all(s.labels.get(k) == v for k, v in labels.items()))


def test_metrics(client, server):
    before = scrape(server)
    chat_text(client, max_tokens=3, extra_body={"ignore_eos": True})
    after = scrape(server, "/v1/metrics")
    for name in ("vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc",
                 "vllm:gpu_cache_usage_perc", "num_requests_running", "num_requests_waiting", "gpu_cache_usage_perc",
                 "num_request_max", "vllm:prefix_cache_hits_total", "vllm:prefix_cache_queries_total",
                 "g4_kv_blocks_used"):
        assert name in after, name
        assert all(s.labels.get("model_name") == MODEL for s in after[name])
    for p in ("vllm:", ""):
        assert total(after, p + "request_success_total", finished_reason="length") == \
            total(before, p + "request_success_total", finished_reason="length") + 1
        assert total(after, p + "generation_tokens_total") == total(before, p + "generation_tokens_total") + 3
        for h in ("time_to_first_token_seconds", "e2e_request_latency_seconds", "time_per_output_token_seconds",
                  "request_prompt_tokens", "request_generation_tokens"):
            assert total(after, p + h + "_count") == total(before, p + h + "_count") + 1, h
            inf = [s for s in after[p + h + "_bucket"] if s.labels["le"] == "+Inf"]
            assert inf[0].value == total(after, p + h + "_count")


def test_keepalive_while_queued_and_hangup_cancels(make_server):
    s = make_server(["--max-num-seqs", "1", "--keepalive-interval", "0.3"])
    body = {"model": MODEL, "prompt": "x", "max_tokens": 3000, "stream": True, "ignore_eos": True}
    first = requests.post(s.base + "/v1/completions", json=body, stream=True, timeout=30)
    lines = first.iter_lines()
    assert next(l for l in lines if l.startswith(b"data: "))  # running, holds the only slot
    second = requests.post(s.base + "/v1/completions", json=dict(body, max_tokens=2), stream=True, timeout=30)
    it = second.iter_lines(chunk_size=1)
    for raw in it:  # waits in the queue: only keep-alive comments arrive
        if raw.startswith(b": keep-alive"):
            break
        assert not raw.startswith(b"data: "), "the queued request produced data while the slot was taken"
    first.close()  # hang up: the engine cancels it, the queued one runs and finishes
    rest = [raw for raw in it if raw.startswith(b"data: ")]
    assert rest[-1] == b"data: [DONE]"
    assert json.loads(rest[-2][6:])["choices"][0]["finish_reason"] == "length"


def test_stop_reason(client, server):
    """vLLM's stop_reason: the stop string or the stop id that ended a choice; null for the
    tokenizer's eos and for length, streamed (on the finishing chunk) and not."""
    kw = dict(model=MODEL, prompt="Once upon a time", temperature=0, max_tokens=12)
    body = {"ignore_eos": True, "return_token_ids": True}
    first = client.completions.create(**kw, extra_body=body).choices[0]
    eos = requests.get(server.base + "/tokenizer_info").json()["eos_token"]
    eos_id = requests.post(server.base + "/tokenize", json={"prompt": eos, "add_special_tokens": False}).json()["tokens"]
    text_stop = first.text[len(first.text) // 2:][:3]
    cases = [({"stop": [text_stop]}, text_stop), ({"stop_token_ids": [first.token_ids[4]]}, first.token_ids[4]),
             ({}, None), ({"logit_bias": {str(eos_id[0]): 100}}, None),
             # under ignore_eos the eos can only end the output as a stop id: it is named
             ({"logit_bias": {str(eos_id[0]): 100}, "ignore_eos": True, "stop_token_ids": eos_id}, eos_id[0])]
    for extra, want in cases:
        for stream in (False, True):
            b = {**kw, **({} if "logit_bias" in extra else body), **extra, "stream": stream}
            r = requests.post(server.base + "/v1/completions", json=b)
            assert r.status_code == 200, r.text
            if stream:
                chunks = [json.loads(line[6:]) for line in r.text.splitlines()
                          if line.startswith("data: {")]
                last = [c["choices"][0] for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
                assert len(last) == 1 and last[0]["stop_reason"] == want, (extra, last)
            else:
                assert r.json()["choices"][0]["stop_reason"] == want, (extra, r.json()["choices"][0])
