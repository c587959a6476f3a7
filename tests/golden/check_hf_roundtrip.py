#!/usr/bin/env python3
"""check_hf_roundtrip.py — proves the committed golden files are self-consistent: reloads every
tests/golden/<case>/ checkpoint (config.json + BF16 model.safetensors) with transformers'
from_pretrained, runs it in float32 (eager attention) and reproduces golden.safetensors: the
prefill logits (bar: max|Δ| / max|logit| <= 1e-6) and the greedy continuations (identical).

Not part of ctest (CI has no Python); run by hand after make_golden.py:
    python3 tests/golden/check_hf_roundtrip.py        # from the repository root
Exit 0 when every case reproduces, 1 otherwise.
"""

import json
import os
import sys

import torch
from safetensors.torch import load_file

from transformers.models.gemma4 import Gemma4ForCausalLM, Gemma4ForConditionalGeneration

HERE = os.path.dirname(os.path.abspath(__file__))
BAR = 1e-6


@torch.no_grad()
def check_case(case_dir):
    with open(os.path.join(case_dir, "config.json")) as f:
        arch = json.load(f)["architectures"][0]
    cls = {"Gemma4ForConditionalGeneration": Gemma4ForConditionalGeneration,
           "Gemma4ForCausalLM": Gemma4ForCausalLM}[arch]
    model = cls.from_pretrained(case_dir, dtype=torch.float32, attn_implementation="eager")
    if getattr(model.config.get_text_config(), "enable_moe_block", False):
        model.set_experts_implementation("eager")
    model.eval()
    # Every stored weight must have loaded (nothing left at its random init).
    stored = load_file(os.path.join(case_dir, "model.safetensors"))
    sd = model.state_dict()
    for name, t in stored.items():
        if name not in sd or not torch.equal(sd[name], t.float()):
            print(f"  {name}: not loaded as stored")
            return False
    tied = torch.equal(model.lm_head.weight, model.get_input_embeddings().weight)
    if not tied:
        print("  lm_head is not the embedding")
        return False

    golden = load_file(os.path.join(case_dir, "golden.safetensors"))
    ok = True
    i = 0
    while f"prompt.{i}.ids" in golden:
        ids = golden[f"prompt.{i}.ids"].long().tolist()
        want = golden[f"prompt.{i}.logits"]
        got = model(input_ids=torch.tensor([ids]), use_cache=False).logits[0].float()
        ratio = ((got - want).abs().max() / want.abs().max()).item()
        seq = list(ids)
        for _ in range(golden[f"prompt.{i}.greedy"].numel()):
            seq.append(int(torch.argmax(model(input_ids=torch.tensor([seq]), use_cache=False).logits[0, -1])))
        greedy_ok = seq[len(ids):] == golden[f"prompt.{i}.greedy"].tolist()
        print(f"  prompt {i}: n={len(ids)} max|Δlogit|/max|logit| = {ratio:.3g}  greedy "
              f"{'identical' if greedy_ok else 'DIFFERENT'}")
        ok = ok and ratio <= BAR and greedy_ok
        i += 1
    return ok and i > 0


def main():
    torch.set_num_threads(1)   # as make_golden.py: same matmul blocking, bit-identical results
    cases = sorted(d for d in os.listdir(HERE) if os.path.isfile(os.path.join(HERE, d, "golden.safetensors")))
    all_ok = bool(cases)
    for c in cases:
        print(f"{c}:")
        ok = check_case(os.path.join(HERE, c))
        print(f"  {'OK' if ok else 'FAILED'}")
        all_ok = all_ok and ok
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
