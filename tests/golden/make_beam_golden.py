#!/usr/bin/env python3
"""make_beam_golden.py — reference outputs of vLLM 0.33's online beam search (use_beam_search)
on the committed dense golden model, for the engine's beam driver (csrc/engine/beam.h).

What it writes: tests/golden/beam.json
    {"generator", "transformers", "torch", "model": "dense", "end_ids": model eos ids, "algorithm",
     "min_margin_required", "logprobs": how they are computed,
     "cases": [{"prompt_index", "prompt_ids", "width", "max_tokens", "length_penalty",
                "stop_ids" (extra end ids: the request's stop.stop_ids), "steps_run",
                "outputs": [{"tokens" (generated, without a final end id), "cum_logprob",
                             "score" (the ranking score), "finish": "stop"|"length",
                             "stop_token": the end id or -1}],   best first, `width` of them
                "margins": {"keep", "membership", "rank"}, "min_margin"}]}

How: the model is tests/golden/dense (config.json + bf16 model.safetensors, written by
make_golden.py), loaded with transformers' from_pretrained, float32 compute, eager attention
(as check_hf_roundtrip.py). Prompts are golden.safetensors' prompt.<i>.ids. The search is vLLM
0.33's online algorithm (vllm/entrypoints/generate/beam_search/online.py and utils.py),
re-implemented here from its description:
  - W = width; beams = [the prompt], cum 0; completed = [].
  - max_tokens steps; each step, for every live beam in order: next-token logits from a full
    re-forward of prompt + beam tokens (no KV cache); logprobs = log_softmax of the float32
    logits, computed in float64 (vLLM: float32; the difference, ~1e-7, is far below the margins);
    candidates = the beam's 2·W most likely tokens (logprob descending, ties lowest id first).
    Each candidate scores beam.cum + logprob; an end id (model eos ids ∪ the case's stop_ids;
    ignore_eos false) completes the beam (generated = len(beam)+1, finish stop); the others
    compete, and the W best (ties: beam order, then candidate rank) are the next live beams.
    The search ends early when no live beam is left.
  - All = completed (in completion order) + live beams (finish length); ranked by
    cum / max(generated, 1)^length_penalty, generated counting a final end id (stable sort,
    descending); the outputs are the W best.
The model's end ids are config.json's text_config.eos_token_id (csrc/model/config.c reads the
same field; the golden model has no generation_config.json and no tokenizer).

Robustness: the engine computes the same model in float32 from the same weights (logits agree
to ~1e-4), so a case is kept only when every decision wins by ≥ MIN_MARGIN: at every step the
W-th vs (W+1)-th competing candidate score ("keep"); for every beam at every step the 2W-th vs
(2W+1)-th logprob ("membership": which tokens, end ids included, are candidates at all); and the
final ranking scores between consecutive outputs and between the W-th and (W+1)-th ("rank").
A case that fails is reported and dropped; the next one in the wanted list is tried (PLAIN,
WITH_STOP). The cases with stop ids pick, deterministically, an extra end id that makes some beam
complete early (after ≥ 1 token) and still rank among the outputs next to a beam that ran to
max_tokens. As a self-check of the search, width 1 must reproduce the golden greedy tokens.

Rerun (deterministic, byte-identical output; CPU, about ten seconds):
    /work/venv-hf/bin/python tests/golden/make_beam_golden.py     # from the repository root
Needs torch, transformers (models.gemma4), safetensors. The output is committed; C tests read it
without Python. Not HF's generate(num_beams=...): that is a different algorithm.
"""

import json
import math
import os
import re
import sys

import torch
from safetensors.torch import load_file

from transformers.models.gemma4 import Gemma4ForConditionalGeneration

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL_DIR = os.path.join(HERE, "dense")
MIN_MARGIN = 2e-3
MIN_PLAIN = 4           # plain cases (model end ids only) required
# Wanted cases: each group gives at most one, the first of its (width, max_tokens,
# length_penalty) settings that passes on some prompt (prompts not used yet tried first).
PLAIN = [[(2, 6, 1.0)], [(4, 8, 1.0), (4, 7, 1.0), (4, 6, 1.0), (4, 5, 1.0)], [(3, 8, 0.5)],
         [(4, 6, 2.0)], [(2, 8, 0.0)], [(2, 5, 1.0), (3, 4, 1.0), (2, 4, 0.5), (2, 3, 1.0)]]
# Early-completion cases (with an extra end id), same form.
WITH_STOP = [[(3, 8, 1.0), (2, 8, 1.0)], [(2, 6, 0.0), (2, 8, 0.5), (4, 6, 1.0)]]


class Model:
    """Next-token logprobs of a token sequence by a full re-forward (memoised per sequence)."""

    def __init__(self, model):
        self.model = model
        self.memo = {}

    @torch.no_grad()
    def logprobs(self, seq):
        key = tuple(seq)
        if key not in self.memo:
            logits = self.model(input_ids=torch.tensor([seq]), use_cache=False).logits[0, -1].float()
            self.memo[key] = torch.log_softmax(logits.double(), dim=-1)
        return self.memo[key]


def top_candidates(lp, k):
    """The k most likely tokens (logprob desc, ties lowest id first) and the gap between the
    k-th and (k+1)-th logprob."""
    vals = lp.tolist()
    order = sorted(range(len(vals)), key=lambda t: (-vals[t], t))
    gap = vals[order[k - 1]] - vals[order[k]] if len(order) > k else math.inf
    return [(t, vals[t]) for t in order[:k]], gap


def beam_search(m, prompt, width, max_tokens, length_penalty, end_ids):
    """vLLM 0.33 online beam search. Returns (outputs, margins, steps_run, seen): seen lists the
    candidate tokens in the order the search met them (step, beam, rank)."""
    beams = [dict(tokens=[], cum=0.0)]
    seen = []
    completed = []
    keep_gap = member_gap = math.inf
    steps = 0
    for _ in range(max_tokens):
        if not beams:
            break
        steps += 1
        cands = []   # (score, beam index, candidate rank, token)
        for bi, beam in enumerate(beams):
            top, gap = top_candidates(m.logprobs(prompt + beam["tokens"]), 2 * width)
            member_gap = min(member_gap, gap)
            for rank, (tok, lp) in enumerate(top):
                seen.append((steps - 1, tok))
                score = beam["cum"] + lp
                if tok in end_ids:
                    completed.append(dict(tokens=list(beam["tokens"]), cum=score,
                                          generated=len(beam["tokens"]) + 1, stop_token=tok))
                else:
                    cands.append((score, bi, rank, tok))
        cands.sort(key=lambda c: (-c[0], c[1], c[2]))
        if len(cands) > width:
            keep_gap = min(keep_gap, cands[width - 1][0] - cands[width][0])
        beams = [dict(tokens=beams[bi]["tokens"] + [tok], cum=score)
                 for score, bi, _, tok in cands[:width]]
    every = completed + [dict(tokens=b["tokens"], cum=b["cum"], generated=len(b["tokens"]),
                              stop_token=-1) for b in beams]
    for b in every:
        b["score"] = b["cum"] / (max(b["generated"], 1) ** length_penalty)
    ranked = sorted(every, key=lambda b: b["score"], reverse=True)   # stable
    n = min(width + 1, len(ranked))
    rank_gap = min((ranked[i]["score"] - ranked[i + 1]["score"] for i in range(n - 1)),
                   default=math.inf)
    outputs = [dict(tokens=b["tokens"], cum_logprob=round(b["cum"], 6), score=round(b["score"], 6),
                    finish="stop" if b["stop_token"] >= 0 else "length", stop_token=b["stop_token"])
               for b in ranked[:width]]
    margins = dict(keep=keep_gap, membership=member_gap, rank=rank_gap)
    return outputs, margins, steps, seen


def run_case(m, i, prompt, width, max_tokens, lp, eos, stop_ids):
    outputs, margins, steps, seen = beam_search(m, prompt, width, max_tokens, lp, set(eos) | set(stop_ids))
    low = min(margins.values())
    case = dict(prompt_index=i, prompt_ids=prompt, width=width, max_tokens=max_tokens,
                length_penalty=lp, stop_ids=list(stop_ids), steps_run=steps, outputs=outputs,
                margins={k: (round(v, 6) if math.isfinite(v) else None) for k, v in margins.items()},
                min_margin=round(low, 6))
    return case, low >= MIN_MARGIN, seen


def describe(case):
    return (f"prompt {case['prompt_index']} W={case['width']} max_tokens={case['max_tokens']} "
            f"lp={case['length_penalty']} stop_ids={case['stop_ids']}: margins {case['margins']}")


def tries(group, n, used):
    """(setting, prompt index) pairs to try for a group: every setting on the prompts no case
    uses yet first, then on the others."""
    fresh = [i for i in range(n) if i not in used]
    return [(st, i) for st in group for i in fresh] + \
        [(st, i) for st in group for i in range(n) if i in used]


def pick_plain(m, prompts, eos):
    chosen, used = [], set()
    for group in PLAIN:
        for (w, n, lp), i in tries(group, len(prompts), used):
            case, ok, _ = run_case(m, i, prompts[i], w, n, lp, eos, [])
            print(("kept    " if ok else "dropped ") + describe(case))
            if ok:
                chosen.append(case)
                used.add(i)
                break
    return chosen, used


def pick_with_stop(m, prompts, eos, used):
    """Cases where an extra end id completes a beam early (after ≥ 1 token) and that beam is
    among the outputs, next to at least one beam that ran to max_tokens:
    the extra end id is one of the candidates the plain search met at its second step or later
    (in the order met: step, beam, rank); the first that passes the margins is kept."""
    chosen = []
    for group in WITH_STOP:
        found = None
        for (w, n, lp), i in tries(group, len(prompts), used):
            _, _, seen = run_case(m, i, prompts[i], w, n, lp, eos, [])
            tried = set()
            for step, tok in seen:
                if step < 1 or tok in eos or tok in tried:
                    continue
                tried.add(tok)
                case, ok, _ = run_case(m, i, prompts[i], w, n, lp, eos, [tok])
                fin = [o["finish"] for o in case["outputs"]]
                early = all(len(o["tokens"]) >= 1 for o in case["outputs"]) and \
                    "stop" in fin and "length" in fin
                if ok and early:
                    found = case
                    break
            if found:
                break
            print(f"no extra end id fits prompt {i} W={w} max_tokens={n} lp={lp} ({len(tried)} tried)")
        if not found:
            raise SystemExit(f"make_beam_golden: no acceptable case with an extra end id in {group}")
        print("kept    " + describe(found))
        chosen.append(found)
        used.add(found["prompt_index"])
    return chosen


def main():
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    import transformers
    with open(os.path.join(MODEL_DIR, "config.json")) as f:
        eos = json.load(f)["text_config"]["eos_token_id"]
    eos = [eos] if isinstance(eos, int) else list(eos)
    model = Gemma4ForConditionalGeneration.from_pretrained(MODEL_DIR, dtype=torch.float32,
                                                           attn_implementation="eager").eval()
    golden = load_file(os.path.join(MODEL_DIR, "golden.safetensors"))
    prompts = []
    while f"prompt.{len(prompts)}.ids" in golden:
        prompts.append(golden[f"prompt.{len(prompts)}.ids"].tolist())
    # The model must reproduce the committed prefill logits (same model as the golden).
    want = golden["prompt.0.logits"][-1].double()
    m = Model(model)
    got = m.logprobs(prompts[0])
    assert (torch.log_softmax(want, -1) - got).abs().max() < 1e-5, "dense model does not match golden"

    # Self-check of the search: width 1 without end ids is greedy decoding, which the golden
    # holds (prompt.<i>.greedy, made independently by make_golden.py).
    for i, prompt in enumerate(prompts):
        outs, _, _, _ = beam_search(m, prompt, 1, 8, 1.0, set())
        greedy = golden[f"prompt.{i}.greedy"].tolist()[:8]
        assert outs[0]["tokens"] == greedy, f"prompt {i}: width-1 search {outs[0]['tokens']} != greedy {greedy}"

    cases, used = pick_plain(m, prompts, eos)
    if len(cases) < MIN_PLAIN:
        raise SystemExit(f"make_beam_golden: only {len(cases)} plain cases pass the margins")
    cases += pick_with_stop(m, prompts, eos, used)

    out = {"generator": "tests/golden/make_beam_golden.py", "transformers": transformers.__version__,
           "torch": torch.__version__, "model": "dense", "end_ids": eos,
           "algorithm": "vLLM 0.33 online beam search (entrypoints/generate/beam_search/online.py)",
           "logprobs": "log_softmax in float64 of the float32 logits of a full re-forward",
           "min_margin_required": MIN_MARGIN, "cases": cases}
    text = json.dumps(out, indent=1)
    # compact lists of numbers: one line each
    text = compact_lists(text)
    with open(os.path.join(HERE, "beam.json"), "w") as f:
        f.write(text + "\n")
    print(f"wrote {len(cases)} cases to tests/golden/beam.json")
    return 0


def compact_lists(text):
    """json.dumps(indent=1) with lists of numbers, and objects without nested objects, on one
    line each."""
    text = re.sub(r"\[\s*([-\d.,\s]*?)\s*\]",
                  lambda mo: "[" + ", ".join(x.strip() for x in mo.group(1).split(",") if x.strip()) + "]",
                  text)
    return re.sub(r"\{[^{}]*\}", lambda mo: re.sub(r"\s*\n\s*", " ", mo.group(0)), text)


if __name__ == "__main__":
    sys.exit(main())
