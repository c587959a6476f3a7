"""lm-evaluation-harness's `local-completions` model (LocalCompletionsAPI) against g4serve on a
tiny multiple-choice task (mc_task.json): the log-likelihood requests lm-eval sends (token-id
prompts, echo, logprobs 1, max_tokens 1, tokenized through g4serve's /tokenizer_info and
/tokenize, which lm-eval detects) and generate_until. The harness's task loader needs
`datasets` (pyarrow, pandas: hundreds of MB), so the instances are built here the way a
multiple-choice task builds them (context, " choice") and lm-eval's model scores them.

The reference for each score: vLLM's `prompt_logprobs` for the same token ids, summed over the
continuation — a different field of the response, computed from the raw log-softmax — and its
rank-1 alternatives for lm-eval's is_greedy. The accuracy itself is not asserted (token soup)."""
import json
import math
import pathlib

import pytest
import requests
from lm_eval.api.instance import Instance
from lm_eval.models.openai_completions import LocalCompletionsAPI

from conftest import MODEL

TASK = json.loads((pathlib.Path(__file__).parent / "mc_task.json").read_text())


@pytest.fixture(scope="module")
def lm(server):
    return LocalCompletionsAPI(base_url=server.base + "/v1/completions", model=MODEL, tokenizer_backend="auto",
                               num_concurrent=1, max_retries=1, batch_size=4, max_length=1024)


def tokenize(server, text):
    r = requests.post(server.base + "/tokenize", json={"model": MODEL, "prompt": text, "add_special_tokens": False},
                      timeout=60)
    r.raise_for_status()
    return r.json()["tokens"]


def reference(server, context, continuation):
    """(sum of the continuation's prompt logprobs, whether each was the top-ranked token)."""
    ctx = tokenize(server, context)
    whole = tokenize(server, context + continuation)
    assert whole[:len(ctx)] == ctx
    n = len(whole) - len(ctx)
    r = requests.post(server.base + "/v1/completions", timeout=60,
                      json={"model": MODEL, "prompt": whole, "max_tokens": 1, "prompt_logprobs": 1})
    r.raise_for_status()
    plp = r.json()["choices"][0]["prompt_logprobs"]
    total, greedy = 0.0, True
    for pos in range(len(plp) - n, len(plp)):
        entry = plp[pos]
        tok = entry[str(whole[pos - (len(plp) - len(whole))])]
        total += tok["logprob"]
        greedy = greedy and tok["rank"] == 1
    return total, greedy


def test_remote_tokenizer_detected(lm):
    assert lm.tokenizer_backend == "remote"


def test_multiple_choice_loglikelihoods_match_prompt_logprobs(lm, server):
    instances = [Instance(request_type="loglikelihood", doc=doc, arguments=(doc["question"], choice), idx=i)
                 for doc in TASK for i, choice in enumerate(doc["choices"])]
    scores = lm.loglikelihood(instances)
    assert len(scores) == len(instances)
    for inst, (logprob, is_greedy) in zip(instances, scores):
        ref, ref_greedy = reference(server, *inst.arguments)
        assert math.isfinite(logprob) and logprob < 0
        assert logprob == pytest.approx(ref, abs=1e-3), inst.arguments
        assert is_greedy == ref_greedy, inst.arguments


def test_generate_until_matches_completions(lm, server):
    ctx = TASK[0]["question"]
    out = lm.generate_until([Instance(request_type="generate_until", doc={}, idx=0,
                                      arguments=(ctx, {"until": ["\n\n"], "max_gen_toks": 8}))])
    ids = tokenize(server, ctx)  # lm-eval sends the context's ids (its remote tokenizer)
    r = requests.post(server.base + "/v1/completions", timeout=60,
                      json={"model": MODEL, "prompt": ids, "max_tokens": 8, "temperature": 0, "stop": ["\n\n"]})
    r.raise_for_status()
    assert out == [r.json()["choices"][0]["text"]]
