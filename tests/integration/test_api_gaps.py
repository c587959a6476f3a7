"""Issue 21: the API behaviours vLLM / OpenAI clients rely on, driven by the official `openai`
client (and `requests` for the plain endpoints): continuous usage, completions logprobs with
logprobs=0, reasoning_tokens, tool_choice forcing, several prompts, echo, logit_bias,
allowed_token_ids, return_token_ids, /version, /tokenizer_info, /invocations.
The model is the embedded tiny random checkpoint: outputs are token soup, so every check compares
the server with itself through another route (a single-prompt request, /tokenize, the token ids)
or with a rule computed here, never with meaning."""
import json

import openai
import pytest
import requests

MODEL = "g4serve-tiny"
MSG = [{"role": "user", "content": "Say hello."}]
TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]


def tokenize(server, text):
    return requests.post(server.base + "/tokenize", json={"prompt": text, "add_special_tokens": False}).json()["tokens"]


# --- wrong behaviour -------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["chat", "completions"])
def test_continuous_usage_counts_tokens_so_far(client, kind):
    def stream(**so):
        kw = dict(model=MODEL, max_tokens=6, temperature=0, stream=True, stream_options=so,
                  extra_body={"ignore_eos": True})
        if kind == "chat":
            return list(client.chat.completions.create(messages=MSG, **kw))
        return list(client.completions.create(prompt="Once upon a time", **kw))

    chunks = stream(include_usage=True, continuous_usage_stats=True)
    final = chunks[-1]
    assert final.choices == [] and final.usage.completion_tokens == 6
    body = chunks[:-1]
    assert all(c.usage is not None for c in body)
    counts = [c.usage.completion_tokens for c in body]
    assert counts == sorted(counts) and counts[-1] == 6  # grows with the tokens, not 0 until the end
    for c in body:
        assert c.usage.prompt_tokens == final.usage.prompt_tokens
        assert c.usage.total_tokens == c.usage.prompt_tokens + c.usage.completion_tokens
    text_chunks = [c for c in body if (c.choices[0].delta.content if kind == "chat" else c.choices[0].text)]
    assert text_chunks and all(c.usage.completion_tokens >= 1 for c in text_chunks)
    # continuous_usage_stats without include_usage: no usage at all (vLLM)
    assert all(c.usage is None for c in stream(continuous_usage_stats=True))


def test_completion_logprobs_zero_has_the_sampled_token(client):
    r = client.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=4, temperature=0, logprobs=0,
                                  extra_body={"ignore_eos": True})
    lp = r.choices[0].logprobs
    assert len(lp.top_logprobs) == 4
    for tok, val, top in zip(lp.tokens, lp.token_logprobs, lp.top_logprobs):
        assert top == {tok: val}
    # logprobs=n: the sampled token plus the top n (up to n + 1 entries), sampled included
    r = client.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=6, temperature=1.5, seed=3,
                                  logprobs=2, extra_body={"ignore_eos": True})
    lp = r.choices[0].logprobs
    for tok, val, top in zip(lp.tokens, lp.token_logprobs, lp.top_logprobs):
        assert 2 <= len(top) <= 3 and top[tok] == pytest.approx(val)


def count_reasoning(ids, start, end, depth):
    """vLLM's count_reasoning_tokens: tokens inside <|channel> ... <channel|>, markers excluded."""
    n = 0
    for t in ids:
        if t == start:
            depth += 1
        elif t == end:
            depth = max(depth - 1, 0)
        elif depth > 0:
            n += 1
    return n


def test_reasoning_tokens_in_usage(client, server):
    (start,), (end,) = tokenize(server, "<|channel>"), tokenize(server, "<channel|>")
    # after a tool response with thinking on, the template opens the thought channel itself
    history = MSG + [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": '{"temp_c": 3}'}]
    for msgs, kwargs, depth in ((history, {"enable_thinking": True}, 1), (MSG, {}, 0)):
        r = client.chat.completions.create(model=MODEL, messages=msgs, tools=TOOLS, max_tokens=12, temperature=0,
                                           extra_body={"chat_template_kwargs": kwargs, "return_token_ids": True,
                                                       "ignore_eos": True})
        ids = r.choices[0].token_ids
        want = count_reasoning(ids, start, end, depth)
        assert r.usage.completion_tokens_details.reasoning_tokens == want
        if depth:
            assert want > 0 and r.choices[0].message.reasoning
        # the streamed usage chunk says the same
        chunks = list(client.chat.completions.create(
            model=MODEL, messages=msgs, tools=TOOLS, max_tokens=12, temperature=0, stream=True,
            stream_options={"include_usage": True},
            extra_body={"chat_template_kwargs": kwargs, "ignore_eos": True}))
        assert chunks[-1].usage.completion_tokens_details.reasoning_tokens == want


# --- tool_choice forcing gives a call, never silently "auto" ------------------------------------

@pytest.mark.parametrize("choice", ["required", {"type": "function", "function": {"name": "get_weather"}}])
def test_tool_choice_forcing_gives_a_call(client, choice):
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string", "maxLength": 6}}, "required": ["city"],
        "additionalProperties": False}}}]
    r = client.chat.completions.create(model=MODEL, messages=MSG, tools=tools, tool_choice=choice, max_tokens=64,
                                       temperature=1, seed=3)
    c = r.choices[0]
    assert c.finish_reason == "tool_calls" and c.message.tool_calls[0].function.name == "get_weather"
    assert set(json.loads(c.message.tool_calls[0].function.arguments)) == {"city"}
    with pytest.raises(openai.BadRequestError) as ei:
        client.chat.completions.create(model=MODEL, messages=MSG, tools=TOOLS, max_tokens=2,
                                       tool_choice={"type": "function", "function": {"name": "nope"}})
    assert ei.value.body["param"] == "tool_choice" and "nope" in ei.value.body["message"]


def test_tool_choice_none_and_auto_work(client, server):
    r = client.chat.completions.create(model=MODEL, messages=MSG, tools=TOOLS, tool_choice="none", max_tokens=2,
                                       extra_body={"return_token_ids": True})
    bare = requests.post(server.base + "/tokenize", json={"messages": MSG}).json()["tokens"]
    assert r.prompt_token_ids == bare  # "none": the tools stay out of the prompt
    r = client.chat.completions.create(model=MODEL, messages=MSG, tools=TOOLS, tool_choice="auto", max_tokens=2,
                                       extra_body={"return_token_ids": True})
    assert len(r.prompt_token_ids) > len(bare)


# --- several prompts, echo --------------------------------------------------------------------

def test_several_prompts(client, server):
    prompts = ["Once upon a time", "The weather today"]
    one = [client.completions.create(model=MODEL, prompt=p, max_tokens=4, temperature=0) for p in prompts]
    r = client.completions.create(model=MODEL, prompt=prompts, max_tokens=4, temperature=0, n=2)
    assert [c.index for c in r.choices] == [0, 1, 2, 3]
    assert [c.text for c in r.choices] == [one[0].choices[0].text] * 2 + [one[1].choices[0].text] * 2
    assert r.usage.prompt_tokens == one[0].usage.prompt_tokens + one[1].usage.prompt_tokens
    assert r.usage.completion_tokens == sum(o.usage.completion_tokens for o in one) * 2
    # lists of id lists, streamed
    ids = [tokenize(server, p) for p in prompts]
    per = {}
    for ch in client.completions.create(model=MODEL, prompt=ids, max_tokens=4, temperature=0, stream=True):
        for c in ch.choices:
            per[c.index] = per.get(c.index, "") + c.text
    direct = [client.completions.create(model=MODEL, prompt=i, max_tokens=4, temperature=0).choices[0].text
              for i in ids]
    assert per == {0: direct[0], 1: direct[1]}
    with pytest.raises(openai.BadRequestError) as ei:
        client.completions.create(model=MODEL, prompt=["ok", []], max_tokens=1)
    assert ei.value.body["param"] == "prompt" and "prompt[1]" in ei.value.body["message"]


def test_echo(client, server):
    p = "Once upon a time"
    plain = client.completions.create(model=MODEL, prompt=p, max_tokens=5, temperature=0)
    r = client.completions.create(model=MODEL, prompt=p, max_tokens=5, temperature=0, echo=True)
    assert r.choices[0].text == p + plain.choices[0].text
    streamed = "".join(c.choices[0].text for c in client.completions.create(
        model=MODEL, prompt=p, max_tokens=5, temperature=0, echo=True, stream=True) if c.choices)
    assert streamed == r.choices[0].text
    ids = tokenize(server, p)  # an id prompt echoes its decoded text
    r = client.completions.create(model=MODEL, prompt=ids, max_tokens=2, temperature=0, echo=True)
    assert r.choices[0].text.startswith(p)


def test_prompt_logprobs_match_generation(client, server):
    """lm-eval's log-likelihood request (token-id prompts, echo, logprobs=1, max_tokens=1) and vLLM's
    prompt_logprobs, checked against what the model gives when generating from each prefix."""
    ids = tokenize(server, "The quick brown fox jumps over")
    assert len(ids) >= 4
    r = client.completions.create(model=MODEL, prompt=[ids, ids[:3]], max_tokens=1, temperature=0, echo=True,
                                  logprobs=1, extra_body={"prompt_logprobs": 2})
    c = r.choices[0]
    lp = c.logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(ids) + 1  # the prompt's, then the generated one
    assert lp.token_logprobs[0] is None and lp.top_logprobs[0] is None
    assert len(r.choices[1].logprobs.tokens) == 4  # the second prompt's own
    plp = c.model_extra["prompt_logprobs"]
    assert plp[0] is None and len(plp) == len(ids)
    for i in range(1, len(ids)):
        entry = plp[i][str(ids[i])]
        assert lp.token_logprobs[i] == pytest.approx(entry["logprob"], abs=1e-6)
        assert entry["logprob"] <= 0 and entry["rank"] >= 1
        assert {v["rank"] for v in plp[i].values()} >= {1, 2}  # the top 2, whatever the prompt token's rank
        # the same distribution as greedy generation from the prefix (raw logits either way)
        g = client.completions.create(model=MODEL, prompt=ids[:i], max_tokens=1, temperature=0, logprobs=2,
                                      extra_body={"return_token_ids": True})
        top = max(plp[i].values(), key=lambda v: v["logprob"])
        assert top["rank"] == 1
        assert g.choices[0].token_ids[0] == int(max(plp[i], key=lambda k: plp[i][k]["logprob"]))
        assert g.choices[0].logprobs.token_logprobs[0] == pytest.approx(top["logprob"], abs=1e-3)
        assert (entry["rank"] == 1) == (g.choices[0].token_ids[0] == ids[i])
    # streamed: the echo chunk carries the prompt's logprobs, then the generated token's
    chunks = [ch for ch in client.completions.create(model=MODEL, prompt=ids, max_tokens=1, temperature=0, echo=True,
                                                     logprobs=1, stream=True) if ch.choices]
    toks = [t for ch in chunks if ch.choices[0].logprobs for t in ch.choices[0].logprobs.token_logprobs]
    assert toks[0] is None and toks[1:] == pytest.approx(lp.token_logprobs[1:], abs=1e-6)
    # chat (vLLM: a top-level list for the rendered prompt; not when streamed)
    chat = client.chat.completions.create(model=MODEL, messages=MSG, max_tokens=1,
                                          extra_body={"prompt_logprobs": 0, "return_token_ids": True})
    cp = chat.model_extra["prompt_logprobs"]
    assert cp[0] is None and len(cp) == len(chat.prompt_token_ids)
    assert all(list(e) == [str(t)] for e, t in zip(cp[1:], chat.prompt_token_ids[1:]))
    with pytest.raises(openai.BadRequestError) as ei:
        client.chat.completions.create(model=MODEL, messages=MSG, max_tokens=1, stream=True,
                                       extra_body={"prompt_logprobs": 1})
    assert ei.value.body["param"] == "prompt_logprobs"
    with pytest.raises(openai.BadRequestError) as ei:
        client.completions.create(model=MODEL, prompt="x", max_tokens=1, extra_body={"prompt_logprobs": -1})
    assert ei.value.body["param"] == "prompt_logprobs"
    # bounded: 64 prompts × 2,000 tokens × 21 entries is refused before any work, not a 5xx or a huge body
    with pytest.raises(openai.BadRequestError) as ei:
        client.completions.create(model=MODEL, prompt=[[5] * 2000] * 64, max_tokens=1, echo=True, logprobs=20)
    assert ei.value.body["param"] == "echo"


# --- logit processors, token ids ------------------------------------------------------------------

def test_logit_bias_and_allowed_token_ids(client, server):
    p = "Once upon a time"
    base = client.completions.create(model=MODEL, prompt=p, max_tokens=4, temperature=0,
                                     extra_body={"return_token_ids": True, "ignore_eos": True}).choices[0].token_ids
    forced = tokenize(server, " castle")[0]
    r = client.completions.create(model=MODEL, prompt=p, max_tokens=4, temperature=0, logit_bias={str(forced): 100},
                                  extra_body={"return_token_ids": True, "ignore_eos": True})
    assert r.choices[0].token_ids == [forced] * 4
    r = client.completions.create(model=MODEL, prompt=p, max_tokens=1, temperature=0, logit_bias={str(base[0]): -100},
                                  extra_body={"return_token_ids": True, "ignore_eos": True})
    assert r.choices[0].token_ids[0] != base[0]
    allowed = tokenize(server, " red green blue")
    r = client.completions.create(model=MODEL, prompt=p, max_tokens=8, temperature=1.0, seed=5, n=2,
                                  extra_body={"allowed_token_ids": allowed, "return_token_ids": True,
                                              "ignore_eos": True})
    for c in r.choices:
        assert len(c.token_ids) == 8 and set(c.token_ids) <= set(allowed)
    # alternatives beyond the allowed ids (logprob −inf) are left out, never sent as null
    r = client.completions.create(model=MODEL, prompt=p, max_tokens=3, temperature=0, logprobs=5,
                                  extra_body={"allowed_token_ids": allowed[:2], "ignore_eos": True})
    for top in r.choices[0].logprobs.top_logprobs:
        assert 1 <= len(top) <= 2 and all(isinstance(v, float) and v <= 0 for v in top.values())
    r = client.chat.completions.create(model=MODEL, messages=MSG, max_tokens=3, temperature=0,
                                       logit_bias={str(forced): 100}, extra_body={"return_token_ids": True})
    assert r.choices[0].token_ids == [forced] * 3
    for bad in ({"logit_bias": {"abc": 1}}, {"logit_bias": {"5": 500}}, {"logit_bias": {"-1": 1}},
                {"logit_bias": {"10000000": 1}}, {"logit_bias": [1]}, {"allowed_token_ids": []},
                {"allowed_token_ids": [-1]}, {"allowed_token_ids": ["a"]}):
        st = requests.post(server.base + "/v1/completions", json=dict(model=MODEL, prompt=p, max_tokens=1, **bad))
        assert st.status_code == 400 and st.json()["error"]["param"] == list(bad)[0], (bad, st.text)
    # every key that is not an id is named, as vLLM does (its test_chat_logit_bias_validation.py)
    st = requests.post(server.base + "/v1/completions",
                       json=dict(model=MODEL, prompt=p, max_tokens=1, logit_bias={"bad1": 1, "7": 2, "bad2": 3}))
    assert st.status_code == 400 and "'bad1'" in st.text and "'bad2'" in st.text and "'7'" not in st.text, st.text


def test_return_token_ids(client, server):
    p = "Once upon a time"
    r = client.completions.create(model=MODEL, prompt=p, max_tokens=6, temperature=0,
                                  extra_body={"return_token_ids": True, "ignore_eos": True})
    c = r.choices[0]
    assert c.prompt_token_ids == requests.post(server.base + "/tokenize", json={"prompt": p}).json()["tokens"]
    assert len(c.token_ids) == r.usage.completion_tokens == 6
    text = requests.post(server.base + "/detokenize", json={"tokens": c.token_ids}).json()["prompt"]
    assert text == c.text or not requests.post(server.base + "/tokenize", json={"prompt": text}).ok
    chunks = list(client.completions.create(model=MODEL, prompt=p, max_tokens=6, temperature=0, stream=True,
                                            extra_body={"return_token_ids": True, "ignore_eos": True}))
    ids = [t for ch in chunks for t in (ch.choices[0].token_ids or [])]
    assert ids == c.token_ids
    assert chunks[0].choices[0].prompt_token_ids == c.prompt_token_ids
    r = client.chat.completions.create(model=MODEL, messages=MSG, max_tokens=3,
                                       extra_body={"return_token_ids": True})
    assert r.prompt_token_ids == requests.post(server.base + "/tokenize", json={"messages": MSG}).json()["tokens"]
    assert len(r.choices[0].token_ids) >= 1


# --- endpoints ---------------------------------------------------------------------------------

def test_version_and_tokenizer_info(server):
    v = requests.get(server.base + "/version")
    assert v.status_code == 200 and v.json()["version"]
    info = requests.get(server.base + "/tokenizer_info").json()
    assert info["vocab_size"] > 0 and info["model_max_length"] > 0 and info["tokenizer_class"]
    assert tokenize(server, info["eos_token"]) == [requests.post(server.base + "/tokenize", json={
        "prompt": info["eos_token"], "add_special_tokens": False}).json()["tokens"][0]]
    assert len(tokenize(server, info["bos_token"])) == 1


def test_invocations(server, client):
    chat = dict(model=MODEL, messages=MSG, max_tokens=4, temperature=0)
    cmpl = dict(model=MODEL, prompt="Once upon a time", max_tokens=4, temperature=0)
    a = requests.post(server.base + "/invocations", json=chat).json()
    assert a["object"] == "chat.completion"
    assert a["choices"][0]["message"]["content"] == client.chat.completions.create(**chat).choices[0].message.content
    b = requests.post(server.base + "/invocations", json=cmpl).json()
    assert b["object"] == "text_completion"
    assert b["choices"][0]["text"] == client.completions.create(**cmpl).choices[0].text
    for body in ({"model": MODEL}, dict(cmpl, messages=MSG)):
        r = requests.post(server.base + "/invocations", json=body)
        assert r.status_code == 400 and r.json()["error"]["param"] in ("prompt", "messages")
    r = requests.post(server.base + "/invocations", data=b"{nope")
    assert r.status_code == 400


# --- dashboard metric names ------------------------------------------------------------------------

def scrape(server):
    from prometheus_client.parser import text_string_to_metric_families
    out = {}
    for fam in text_string_to_metric_families(requests.get(server.base + "/metrics").text):
        for s in fam.samples:
            out.setdefault(s.name, []).append(s)
    return out


def value(m, name):
    return sum(s.value for s in m.get(name, []))


def test_dashboard_metric_names(client, server):
    """The names vLLM's Grafana dashboard queries, parsed by prometheus_client, moved by one request."""
    before = scrape(server)
    client.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=5, n=2, temperature=1.0, seed=1,
                              extra_body={"ignore_eos": True})
    after = scrape(server)
    per_choice = ("request_time_per_output_token_seconds", "request_prefill_time_seconds",
                  "request_decode_time_seconds", "request_inference_time_seconds", "request_queue_time_seconds")
    per_request = ("request_max_num_generation_tokens", "request_params_n", "request_params_max_tokens")
    for h in per_choice + per_request + ("iteration_tokens_total",):
        for suffix in ("_bucket", "_count", "_sum"):
            assert "vllm:" + h + suffix in after, h + suffix
        inf = [s for s in after["vllm:" + h + "_bucket"] if s.labels["le"] == "+Inf"]
        assert inf[0].value == value(after, "vllm:" + h + "_count"), h
    d = {k: value(after, k) - value(before, k) for k in after}
    for h in per_choice:
        assert d["vllm:" + h + "_count"] == 2, h  # one per engine request (choice)
    assert d["vllm:request_params_n_count"] == 1 and d["vllm:request_params_n_sum"] == 2
    assert d["vllm:request_params_max_tokens_sum"] == 5 and d["vllm:request_max_num_generation_tokens_sum"] == 5
    assert d["vllm:request_inference_time_seconds_sum"] >= d["vllm:request_decode_time_seconds_sum"] > 0
    # every step is counted: at least one per generated token, and the tokens add up (the engine
    # publishes its step counters when it goes idle, just after the answer: wait for that)
    import time
    deadline = time.time() + 5
    while value(scrape(server), "vllm:iteration_tokens_total_count") - value(before, "vllm:iteration_tokens_total_count") < 5 \
            and time.time() < deadline:
        time.sleep(0.05)
    after = scrape(server)
    d = {k: value(after, k) - value(before, k) for k in after}
    assert d["vllm:iteration_tokens_total_count"] >= 5
    assert d["vllm:iteration_tokens_total_sum"] >= 2 * 5
    info = after["vllm:cache_config_info"][0]
    assert info.value == 1 and int(info.labels["block_size"]) > 0 and int(info.labels["num_gpu_blocks"]) > 0
    assert info.labels["enable_prefix_caching"] in ("True", "False") and info.labels["model_name"] == MODEL


def test_non_streaming_hangup_cancels_while_waiting(make_server):
    """docs/api-http.md: a non-streaming client that disconnects is cancelled within the ticker's
    250 ms, not when its answer would have been written."""
    import socket
    import time
    s = make_server(["--max-num-seqs", "1"])
    body = {"model": MODEL, "prompt": "x", "max_tokens": 3000, "stream": True, "ignore_eos": True}
    first = requests.post(s.base + "/v1/completions", json=body, stream=True, timeout=30)
    lines = first.iter_lines()
    assert next(l for l in lines if l.startswith(b"data: "))  # running: holds the only slot
    aborts = lambda: value(scrape(s), 'vllm:request_success_total') - sum(  # noqa: E731
        x.value for x in scrape(s)["vllm:request_success_total"] if x.labels["finished_reason"] != "abort")
    before = aborts()
    payload = json.dumps(dict(body, stream=False, max_tokens=5)).encode()
    sock = socket.create_connection(("127.0.0.1", s.port))
    sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n" % len(payload) + payload)
    time.sleep(0.5)  # queued behind the running stream
    sock.close()
    deadline = time.time() + 5
    while aborts() == before and time.time() < deadline:
        time.sleep(0.1)
    assert aborts() == before + 1  # cancelled while the first stream still holds the slot
    assert value(scrape(s), "vllm:num_requests_running") == 1
    first.close()
