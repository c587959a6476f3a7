"""Beam search over HTTP (vLLM's use_beam_search; engine/beam.h), driven by the official `openai`
client on the embedded tiny checkpoint. The reference is vLLM's algorithm written again here in
Python over the same server's own one-token requests (token ids in, the 2·n most likely next tokens
with their logprobs out: the primitive vLLM's search is built on), so the test checks the driver,
its wiring into HTTP and the texts, not the model. The C test test_beam checks the driver against
transformers' logits."""
import openai
import pytest
import requests

MODEL = "g4serve-tiny"


def next_tokens(client, ids, k):
    """The k most likely next tokens after ids: [(token id, logprob)], best first."""
    r = client.completions.create(model=MODEL, prompt=ids, max_tokens=1, temperature=0, logprobs=k,
                                  extra_body={"return_tokens_as_token_ids": True, "ignore_eos": True})
    top = r.choices[0].logprobs.top_logprobs[0]
    out = [(int(name.split(":")[1]), lp) for name, lp in top.items()]
    return sorted(out, key=lambda t: (-t[1], t[0]))


def reference(client, prompt_ids, width, max_tokens, length_penalty, end_ids):
    """vLLM 0.33's online beam search: [(generated ids without the end id, finish, cum logprob)]."""
    beams = [([], 0.0)]
    done = []
    for _ in range(max_tokens):
        cands = []
        for b, (toks, cum) in enumerate(beams):
            for rank, (t, lp) in enumerate(next_tokens(client, prompt_ids + toks, 2 * width)):
                if t in end_ids:
                    done.append((toks + [t], cum + lp, "stop"))
                else:
                    cands.append((cum + lp, b, rank, toks + [t]))
        cands.sort(key=lambda c: (-c[0], c[1], c[2]))
        beams = [(c[3], c[0]) for c in cands[:width]]
        if not beams:
            break
    every = done + [(toks, cum, "length") for toks, cum in beams]
    every.sort(key=lambda x: -x[1] / max(len(x[0]), 1) ** length_penalty)  # stable: completed first
    return [(toks[:-1] if fin == "stop" else toks, fin, cum) for toks, cum, fin in every[:width]]


@pytest.mark.parametrize("width,max_tokens,lp,stop_rank", [(2, 5, 1.0, None), (3, 6, 0.5, None), (2, 6, 0.0, 1)])
def test_completions_equal_the_reference(client, server, width, max_tokens, lp, stop_rank):
    """ignore_eos: the model's eos ids end no beam, so the reference needs only the request's stop
    ids; with stop_rank, a stop id taken from the second step's candidates completes a beam early."""
    prompt = requests.post(server.base + "/tokenize", json={"prompt": "The quick brown fox"}).json()["tokens"]
    stop = []
    if stop_rank is not None:
        first = next_tokens(client, prompt, 2 * width)[0][0]
        stop = [next_tokens(client, prompt + [first], 2 * width)[stop_rank][0]]
    r = client.completions.create(model=MODEL, prompt=prompt, n=width, max_tokens=max_tokens, temperature=0,
                                  extra_body={"use_beam_search": True, "length_penalty": lp, "ignore_eos": True,
                                              "stop_token_ids": stop, "return_token_ids": True})
    want = reference(client, prompt, width, max_tokens, lp, set(stop))
    if stop:
        assert any(fin == "stop" for _, fin, _ in want)  # the case does test an early completion
        for c, (_, fin, _) in zip(r.choices, want):  # vLLM names a beam's end id
            assert c.model_extra["stop_reason"] == (stop[0] if fin == "stop" else None)
    assert [c.index for c in r.choices] == list(range(width))
    for c, (toks, fin, _) in zip(r.choices, want):
        assert c.token_ids == toks
        assert c.finish_reason == fin
        text = requests.post(server.base + "/detokenize", json={"tokens": toks}).json()["prompt"]
        assert c.text == text
    assert len({tuple(c.token_ids) for c in r.choices}) == width  # distinct beams
    assert r.usage.prompt_tokens == len(prompt)
    assert r.usage.completion_tokens == sum(len(c.token_ids) for c in r.choices)


def test_two_prompts_and_chat(client):
    r = client.completions.create(model=MODEL, prompt=["Hello, my name is"] * 2, n=2, max_tokens=5, temperature=0,
                                  extra_body={"use_beam_search": True})
    texts = [c.text for c in r.choices]
    assert len(texts) == 4 and texts[0] == texts[2] and texts[1] == texts[3] and texts[0] != texts[1]
    chat = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Say hello."}], n=3,
                                          max_tokens=6, extra_body={"use_beam_search": True, "ignore_eos": True})
    assert len(chat.choices) == 3 and all(c.message.role == "assistant" for c in chat.choices)
    assert chat.usage.completion_tokens == 18


def test_chat_streams_the_beams_at_the_end(client):
    kw = dict(model=MODEL, messages=[{"role": "user", "content": "Say hello."}], n=2, max_tokens=6,
              extra_body={"use_beam_search": True, "ignore_eos": True})
    whole = client.chat.completions.create(**kw)
    texts = ["", ""]
    for chunk in client.chat.completions.create(**kw, stream=True):
        for c in chunk.choices:
            texts[c.index] += c.delta.content or ""
    assert texts == [c.message.content for c in whole.choices]


def test_default_penalties_do_not_apply(server, make_server, model_dir, tmp_path):
    """A checkpoint whose generation_config.json sets a repetition penalty still serves beam
    search (vLLM's beam parameters have no penalties); a penalty in the body is refused."""
    import json
    import shutil
    ck = tmp_path / "ck"
    shutil.copytree(model_dir, ck)
    (ck / "generation_config.json").write_text(json.dumps({"repetition_penalty": 1.3}))
    srv = make_server(["--model", str(ck)])
    body = {"prompt": "Hello", "max_tokens": 3, "n": 2, "use_beam_search": True}  # no "model": this server serves its own name
    r = requests.post(srv.base + "/v1/completions", json=body)
    assert r.status_code == 200, r.text
    assert len(r.json()["choices"]) == 2
    r = requests.post(srv.base + "/v1/completions", json={**body, "repetition_penalty": 1.3})
    assert r.status_code == 400 and r.json()["error"]["param"] == "repetition_penalty"


@pytest.mark.parametrize("extra,param", [
    ({"stream": True}, "stream"),
    ({"n": 11}, "n"),
    ({"logprobs": 1}, None),
    ({"stop": ["x"]}, None),
    ({"presence_penalty": 0.5}, "presence_penalty"),
    ({"logprobs": 1, "echo": True}, "echo"),
    ({"response_format": {"type": "json_object"}}, "use_beam_search"),
])
def test_refusals(server, extra, param):
    body = {"model": MODEL, "prompt": "Hi", "max_tokens": 4, "n": 2, "use_beam_search": True, **extra}
    r = requests.post(server.base + "/v1/completions", json=body)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    if param:
        assert err["param"] == param
    else:
        assert "beam search" in err["message"]
    assert requests.get(server.base + "/health").status_code == 200


def test_openai_client_error_type(client):
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model=MODEL, prompt="Hi", n=2, max_tokens=4, stream=True,
                                  extra_body={"use_beam_search": True})
