"""Issue 21, the gaps vLLM's own tests found (tests/clients/vllm_suite/gaps.txt): a tool whose
parameters hold OpenAI's "strict" flag, return_tokens_as_token_ids, truncate_prompt_tokens /
truncation_side, echo / continue_final_message and the response role on chat, and
logprob_token_ids. Driven by the official `openai`
client on the embedded tiny random checkpoint: every check compares the server with itself through
another route (the token ids, /tokenize, the untruncated request) or with the official chat
template rendered by jinja2, never with meaning."""
import json

import jsonschema
import openai
import pytest
import requests

MODEL = "g4serve-tiny"
MSG = [{"role": "user", "content": "Say hello."}]


def tokenize(server, text, special=False):
    return requests.post(server.base + "/tokenize", json={"prompt": text, "add_special_tokens": special}).json()["tokens"]


# --- "strict" inside a tool's parameters -------------------------------------------------------

STRICT_TOOL = {"type": "function", "function": {
    "name": "get_weather", "strict": True,
    "parameters": {"type": "object", "strict": True, "additionalProperties": False, "required": ["city", "unit"],
                   "properties": {"city": {"type": "string", "maxLength": 12},
                                  "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}}}}


@pytest.mark.parametrize("choice", ["required", {"type": "function", "function": {"name": "get_weather"}}])
def test_strict_in_tool_parameters_is_an_annotation(client, choice):
    schema = {k: v for k, v in STRICT_TOOL["function"]["parameters"].items() if k != "strict"}
    for seed in range(4):
        r = client.chat.completions.create(model=MODEL, messages=MSG, tools=[STRICT_TOOL], tool_choice=choice,
                                           max_tokens=120, temperature=1, seed=seed)
        calls = r.choices[0].message.tool_calls
        assert calls and calls[0].function.name == "get_weather"
        jsonschema.validate(json.loads(calls[0].function.arguments), schema)  # still constrained by the rest


def test_strict_in_response_format_schema(client):
    schema = {"type": "object", "strict": True, "properties": {"n": {"type": "integer"}}, "required": ["n"],
              "additionalProperties": False}
    r = client.chat.completions.create(model=MODEL, messages=MSG, max_tokens=40, temperature=1, seed=1,
                                       response_format={"type": "json_schema",
                                                        "json_schema": {"name": "n", "schema": schema}})
    jsonschema.validate(json.loads(r.choices[0].message.content), {k: v for k, v in schema.items() if k != "strict"})


# --- return_tokens_as_token_ids ----------------------------------------------------------------

def names(ids):
    return ["token_id:%d" % i for i in ids]


def test_tokens_as_ids_completions(client):
    kw = dict(model=MODEL, prompt="Once upon a time", max_tokens=6, temperature=0, echo=True, logprobs=2)
    plain = client.completions.create(**kw, extra_body={"ignore_eos": True})
    r = client.completions.create(**kw, extra_body={"return_tokens_as_token_ids": True, "return_token_ids": True,
                                                    "ignore_eos": True})
    c = r.choices[0]
    assert c.text == plain.choices[0].text  # only the names change
    lp = c.logprobs
    assert lp.tokens == names(c.prompt_token_ids + c.token_ids)  # echoed prompt first, then the completion
    assert lp.token_logprobs == plain.choices[0].logprobs.token_logprobs
    assert lp.text_offset == plain.choices[0].logprobs.text_offset  # offsets still count the text
    assert lp.top_logprobs[0] is None
    for tok, top, ptop in zip(lp.tokens[1:], lp.top_logprobs[1:], plain.choices[0].logprobs.top_logprobs[1:]):
        assert next(iter(top)) == tok  # the token itself first (vLLM's test reads it so)
        assert all(k.startswith("token_id:") for k in top)
        assert sorted(top.values()) == sorted(ptop.values())
    # streamed: the same names, chunk by chunk
    chunks = list(client.completions.create(
        model=MODEL, prompt="Once upon a time", max_tokens=6, temperature=0, logprobs=1, stream=True,
        extra_body={"return_tokens_as_token_ids": True, "ignore_eos": True}))
    streamed = [t for ch in chunks if ch.choices and ch.choices[0].logprobs for t in ch.choices[0].logprobs.tokens]
    assert streamed == names(c.token_ids)


@pytest.mark.parametrize("stream", [False, True])
def test_tokens_as_ids_chat(client, stream):
    kw = dict(model=MODEL, messages=MSG, max_tokens=6, temperature=0, logprobs=True, top_logprobs=3)
    ids = client.chat.completions.create(**kw, extra_body={"return_token_ids": True, "ignore_eos": True}
                                         ).choices[0].token_ids
    r = client.chat.completions.create(**kw, stream=stream, extra_body={"return_tokens_as_token_ids": True,
                                                                        "ignore_eos": True})
    if stream:
        content = [e for ch in r if ch.choices and ch.choices[0].logprobs for e in ch.choices[0].logprobs.content]
    else:
        content = r.choices[0].logprobs.content
    assert [e.token for e in content] == names(ids)
    for e in content:
        assert e.bytes == list(e.token.encode())
        assert e.top_logprobs and all(t.token.startswith("token_id:") for t in e.top_logprobs)
        assert e.top_logprobs[0].logprob == pytest.approx(max(t.logprob for t in e.top_logprobs))


# --- truncate_prompt_tokens --------------------------------------------------------------------

def ids_of(r):
    return r.choices[0].prompt_token_ids


def test_truncate_prompt_tokens_completions(client, server):
    ids = list(range(10, 18))

    def run(prompt, **extra):
        return client.completions.create(model=MODEL, prompt=prompt, max_tokens=1, temperature=0,
                                         extra_body={"return_token_ids": True, **extra})

    assert ids_of(run(ids, truncate_prompt_tokens=4)) == ids[-4:]  # vLLM's default side: left
    assert ids_of(run(ids, truncate_prompt_tokens=4, truncation_side="left")) == ids[-4:]
    assert ids_of(run(ids, truncate_prompt_tokens=4, truncation_side="right")) == ids[:4]
    assert ids_of(run(ids, truncate_prompt_tokens=20)) == ids  # shorter than N: untouched
    assert ids_of(run(ids, truncate_prompt_tokens=-1)) == ids
    text = "Once upon a time there was a cat"
    full = tokenize(server, text, special=True)
    r = run(text, truncate_prompt_tokens=3, echo=True)
    assert ids_of(r) == full[-3:] and r.usage.prompt_tokens == 3
    assert r.choices[0].text.startswith(requests.post(server.base + "/detokenize",
                                                      json={"tokens": full[-3:]}).json()["prompt"])


def test_truncate_prompt_tokens_chat(client):
    def run(**extra):
        return client.chat.completions.create(model=MODEL, messages=MSG, max_tokens=1, temperature=0,
                                              extra_body={"return_token_ids": True, **extra})

    full = run().prompt_token_ids  # chat: on the response (vLLM)
    assert run(truncate_prompt_tokens=5).prompt_token_ids == full[-5:]
    assert run(truncate_prompt_tokens=5, truncation_side="right").prompt_token_ids == full[:5]


def test_truncate_prompt_tokens_refusals(client, server):
    max_len = requests.get(server.base + "/v1/models").json()["data"][0]["max_model_len"]
    for extra, param in [({"truncate_prompt_tokens": max_len + 1}, "truncate_prompt_tokens"),
                         ({"truncate_prompt_tokens": 0}, "truncate_prompt_tokens"),
                         ({"truncate_prompt_tokens": -2}, "truncate_prompt_tokens"),
                         ({"truncate_prompt_tokens": "4"}, "truncate_prompt_tokens"),
                         ({"truncate_prompt_tokens": 4, "truncation_side": "middle"}, "truncation_side")]:
        with pytest.raises(openai.BadRequestError) as ei:
            client.completions.create(model=MODEL, prompt="Hello", max_tokens=1, extra_body=extra)
        assert ei.value.body["param"] == param, extra


# --- continue_final_message and echo on chat ---------------------------------------------------

SAYING = "Here is a common saying about apple. An apple a day, keeps"
OPEN = [{"role": "user", "content": "tell me a common saying"}, {"role": "assistant", "content": SAYING}]


def chat(client, messages, **extra):
    return client.chat.completions.create(model=MODEL, messages=messages, max_tokens=6, temperature=0,
                                          extra_body={"ignore_eos": True, **extra})


def test_continue_final_message_leaves_the_last_message_open(client, server):
    r = chat(client, OPEN, continue_final_message=True, add_generation_prompt=False, return_token_ids=True)
    # the same chat rendered closed (/tokenize, no generation prompt) ends "<turn|>" "\n": open, it stops before
    closed = requests.post(server.base + "/tokenize", json={"messages": OPEN, "add_generation_prompt": False}).json()
    assert closed["tokens"][-2:] == tokenize(server, "<turn|>\n")
    assert r.prompt_token_ids == closed["tokens"][:-2]
    assert r.usage.prompt_tokens == len(closed["tokens"]) - 2
    # a list content continues its last text part (the renderer's exact bytes: tests/text chat_cases.json)
    parts = [OPEN[0], {"role": "assistant", "content": [{"type": "text", "text": SAYING}]}]
    assert chat(client, parts, continue_final_message=True, add_generation_prompt=False,
                return_token_ids=True).prompt_token_ids == r.prompt_token_ids


def test_continue_final_message_refusals(client):
    for extra in ({"continue_final_message": True},  # add_generation_prompt defaults to true (vLLM: 400)
                  {"continue_final_message": True, "add_generation_prompt": True}):
        with pytest.raises(openai.BadRequestError) as ei:
            chat(client, OPEN, **extra)
        assert ei.value.body["param"] == "continue_final_message"
        assert "add_generation_prompt" in ei.value.body["message"]
    with pytest.raises(openai.BadRequestError) as ei:  # nothing to continue
        chat(client, [OPEN[0], {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}],
             continue_final_message=True, add_generation_prompt=False)
    assert ei.value.body["param"] == "messages"


def test_chat_echo(client):
    base = dict(continue_final_message=True, add_generation_prompt=False)
    plain = chat(client, OPEN, **base).choices[0].message.content
    echoed = chat(client, OPEN, echo=True, **base).choices[0].message.content
    assert echoed == SAYING + plain  # the last message's content, then the completion
    stream = client.chat.completions.create(model=MODEL, messages=OPEN, max_tokens=6, temperature=0, stream=True,
                                            extra_body={"ignore_eos": True, "echo": True, **base})
    deltas = [c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content]
    assert deltas[0] == SAYING and "".join(deltas) == echoed  # streamed: a chunk of its own first
    # vLLM's rule: echoed when the last message's role is the response's (assistant, or the last
    # message's own role without a generation prompt)
    user_last = [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]
    assert chat(client, user_last, echo=True).choices[0].message.content == \
        chat(client, user_last).choices[0].message.content
    no_gen = chat(client, user_last, add_generation_prompt=False).choices[0].message.content
    assert chat(client, user_last, echo=True, add_generation_prompt=False).choices[0].message.content == \
        "a\nb" + no_gen


# --- the response role (vLLM: the last message's without a generation prompt) ------------------

def test_response_role_follows_the_last_message_without_generation_prompt(client):
    assert chat(client, MSG).choices[0].message.role == "assistant"
    assert chat(client, MSG, add_generation_prompt=False).choices[0].message.role == "user"
    assert chat(client, OPEN, continue_final_message=True,
                add_generation_prompt=False).choices[0].message.role == "assistant"
    stream = client.chat.completions.create(model=MODEL, messages=MSG, max_tokens=3, temperature=0, stream=True,
                                            extra_body={"add_generation_prompt": False})
    roles = [c.choices[0].delta.role for c in stream if c.choices and c.choices[0].delta.role]
    assert roles == ["user"]


# --- logprob_token_ids -------------------------------------------------------------------------

def lp_chat(client, ids, stream=False, **kw):
    args = dict(model=MODEL, messages=MSG, max_tokens=4, logprobs=True, stream=stream)
    args.update(kw)
    extra = {"ignore_eos": True, "return_tokens_as_token_ids": True, **args.pop("extra_body", {})}
    if ids is not None:
        extra["logprob_token_ids"] = ids
    r = client.chat.completions.create(**args, extra_body=extra)
    if not stream:
        return r.choices[0].logprobs.content
    return [e for c in r if c.choices and c.choices[0].logprobs for e in c.choices[0].logprobs.content]


def as_dict(entry):
    return {int(t.token.removeprefix("token_id:")): t.logprob for t in entry.top_logprobs}


def tid(name):
    return int(name.removeprefix("token_id:"))


def filled(ids, n=128):
    """ids, then distinct others up to n (vLLM's limit is 128, beyond the 20 top alternatives)."""
    return (ids + [i for i in range(100, 100 + 37 * 2 * n, 37) if i not in ids])[:n]


def test_logprob_token_ids_match_prompt_logprobs(client, server):
    """Greedy logprobs are the raw log_softmax, so the logprob of id at output position k equals
    the prompt logprob of a prompt that ends in id after the same k tokens (the prefill path): one
    completions request per position with a prompt for each of the 128 ids. A one-token prompt and
    two positions: each prompt position costs a log_softmax over the vocabulary, 128 prompts take
    seconds on CI's CPU; the sampling test below covers every position."""
    prompt = tokenize(server, "Weather")
    assert len(prompt) == 1
    base = dict(model=MODEL, prompt=prompt, max_tokens=2, temperature=0, logprobs=0)
    free = client.completions.create(**base, extra_body={"ignore_eos": True, "return_token_ids": True})
    gen = free.choices[0].token_ids
    ids = filled([gen[0], 7, 4242])
    assert len(set(ids)) == 128
    r = client.completions.create(**base, extra_body={"ignore_eos": True, "return_token_ids": True,
                                                      "return_tokens_as_token_ids": True,
                                                      "logprob_token_ids": ids})
    c = r.choices[0]
    assert c.token_ids == gen  # reporting changes no token
    for k, top in enumerate(c.logprobs.top_logprobs):
        assert list(top)[0] == "token_id:%d" % gen[k]  # the sampled token first, then the ids
        assert {tid(t) for t in top} == set(ids) | {gen[k]}
        assert top["token_id:%d" % gen[k]] == c.logprobs.token_logprobs[k]
        ref = client.completions.create(model=MODEL, prompt=[prompt + gen[:k] + [i] for i in ids], max_tokens=1,
                                        extra_body={"prompt_logprobs": 0})
        assert sorted(ch.index for ch in ref.choices) == list(range(len(ids)))
        for ch in ref.choices:
            i = ids[ch.index]
            want = ch.model_extra["prompt_logprobs"][-1][str(i)]["logprob"]
            assert top["token_id:%d" % i] == pytest.approx(want, abs=2e-3), (k, i)


def test_logprob_token_ids_match_top_logprobs_when_sampling(client):
    """Sampled with temperature and a penalty: the same seed gives the same tokens, and an id's
    value equals the one the natural top-20 reports for it (the same processed distribution). The
    128 ids hold the first position's whole top 20."""
    kw = dict(temperature=0.7, seed=11, frequency_penalty=0.5)
    natural = lp_chat(client, None, top_logprobs=20, **kw)
    ids = filled(sorted({tid(t.token) for t in natural[0].top_logprobs} | {5, 999}))
    for stream in (False, True):
        got = lp_chat(client, ids, stream=stream, top_logprobs=3, **kw)
        assert [e.token for e in got] == [e.token for e in natural]
        for g, n in zip(got, natural):
            assert g.logprob == pytest.approx(n.logprob, abs=1e-6)
            d, nd = as_dict(g), as_dict(n)
            assert set(d) == set(ids) | {tid(g.token)}
            assert g.top_logprobs[0].token == g.token and d[tid(g.token)] == g.logprob
            for i in ids:
                assert d[i] <= 0
                if i in nd:
                    assert d[i] == pytest.approx(nd[i], abs=1e-5)
                else:  # outside the natural top 20: below its last entry
                    assert d[i] <= n.top_logprobs[-1].logprob + 1e-6
        assert set(as_dict(natural[0])) <= set(as_dict(got[0]))  # every natural entry compared
    assert lp_chat(client, ids, **kw) == lp_chat(client, ids, stream=True, **kw)  # streamed = non-streamed


def test_logprob_token_ids_under_a_mask(client):
    """allowed_token_ids leaves only one token: it has logprob 0 and every other id is reported
    with vLLM's clamp of −inf, −9999."""
    got = lp_chat(client, [5, 42, 700], max_tokens=2, temperature=0, extra_body={"allowed_token_ids": [42]})
    for e in got:
        assert e.token == "token_id:42" and e.logprob == 0
        assert as_dict(e) == {42: 0, 5: -9999, 700: -9999}


def test_logprob_token_ids_refusals(client):
    cases = [({"logprob_token_ids": list(range(129))}, dict(logprobs=True)),  # the cap: 128 ids
             ({"logprob_token_ids": [5] * 129}, dict(logprobs=True)),  # counted with duplicates (vLLM)
             ({"logprob_token_ids": [10 ** 7]}, dict(logprobs=True)),  # outside the vocabulary
             ({"logprob_token_ids": [-1]}, dict(logprobs=True)),
             ({"logprob_token_ids": ["5"]}, dict(logprobs=True)),
             ({"logprob_token_ids": 5}, dict(logprobs=True)),
             ({"logprob_token_ids": [5]}, dict())]  # logprobs not asked
    for extra, kw in cases:
        with pytest.raises(openai.BadRequestError) as ei:
            client.chat.completions.create(model=MODEL, messages=MSG, max_tokens=2, extra_body=extra, **kw)
        assert ei.value.body["param"] == "logprob_token_ids", extra
        if isinstance(extra["logprob_token_ids"], list) and len(extra["logprob_token_ids"]) == 129:  # vLLM's text
            assert ei.value.body["message"] == ("Requested logprob_token_ids of length 129, which is greater than "
                                                "max allowed: 128")
    with pytest.raises(openai.BadRequestError) as ei:
        client.completions.create(model=MODEL, prompt="hi", max_tokens=2, extra_body={"logprob_token_ids": [5]})
    assert ei.value.body["param"] == "logprob_token_ids"
    # an empty list is no list (vLLM)
    r = client.chat.completions.create(model=MODEL, messages=MSG, max_tokens=2, logprobs=True, top_logprobs=2,
                                       extra_body={"logprob_token_ids": []})
    assert len(r.choices[0].logprobs.content[0].top_logprobs) == 2
