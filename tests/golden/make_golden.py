#!/usr/bin/env python3
"""make_golden.py — golden reference data for the Gemma 4 forward pass, made with Hugging Face
transformers (its own Gemma 4 text decoder) and torch.

What it writes, for each case in CASES (tests/golden/<case>/):
  config.json          a real Hugging Face config (dense: the multimodal Google form with
                       `text_config`, `global_head_dim`, `num_global_key_value_heads`;
                       moe: the text-only form exactly as transformers' own to_dict() writes it,
                       i.e. with `per_layer_config` instead of `global_head_dim`)
  model.safetensors    the weights in BF16 (tied LM head: no lm_head.weight); tensor names under
                       `model.language_model.` (dense) or `model.` (moe)
  golden.safetensors   for prompt i: prompt.<i>.ids I32 [n], prompt.<i>.logits F32 [n, V] (full
                       prefill logits after the final soft-cap), prompt.<i>.greedy I32 [32]
                       (greedy continuation, each token from a full re-forward of prompt + the
                       tokens so far; no KV cache)
and tests/golden/golden.json, a human summary (configs, prompts, margins, sizes).

How the reference is computed: every weight is drawn in float32 from a seeded generator,
rounded to bf16, and the model is run in float32 with exactly those (bf16-representable) values,
attn_implementation="eager". Hidden sizes are 64 and 256, so √H is exact in bf16 and the engine's
bf16-rounded embedding scale equals transformers' float32 one.

The script refuses data that would make a comparison flaky: every greedy step must win by a
logit margin ≥ MIN_ARGMAX_GAP, and every MoE routing decision made while computing the golden
data must separate the k-th and (k+1)-th router logit by ≥ MIN_ROUTER_GAP; it also checks that the
continuations are not one repeated token and that the soft-cap bites. It also checks that
transformers' KV-cache path (use_cache) gives the same greedy tokens as the full re-forward.

Rerun (deterministic, fixed seeds; CPU, a few seconds):
    python3 tests/golden/make_golden.py            # from the repository root
Needs: torch, transformers 5.23 (models.gemma4), safetensors. The outputs are committed; the C
test (test_golden.c) reads them without Python. check_hf_roundtrip.py reloads the written
checkpoints with transformers and reproduces the logits.
"""

import copy
import json
import os
import re
import sys

import torch
from safetensors.torch import save_file

from transformers.models.gemma4 import (
    Gemma4Config,
    Gemma4ForCausalLM,
    Gemma4ForConditionalGeneration,
    Gemma4TextConfig,
)

HERE = os.path.dirname(os.path.abspath(__file__))
N_GREEDY = 32
MIN_ARGMAX_GAP = 2e-3    # greedy winner vs runner-up (logits after soft-cap), every step
MIN_ROUTER_GAP = 1e-3    # k-th vs (k+1)-th router logit, every token, every layer
MIN_DISTINCT = 6         # distinct tokens in a 32-token greedy continuation
MAX_ATTEMPTS = 200
PROMPT_LENGTHS = [20, 27, 34, 40]

LAYER_TYPES = ["sliding_attention", "sliding_attention", "full_attention",
               "sliding_attention", "sliding_attention", "full_attention"]
ROPE = {
    "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
    "full_attention": {"rope_type": "proportional", "partial_rotary_factor": 0.25, "rope_theta": 1000000.0},
}

# Text-decoder settings shared by both cases (the values Google's checkpoints use where they
# matter for the forward pass, shrunk sizes elsewhere).
COMMON = dict(
    vocab_size=512,
    num_hidden_layers=6,
    layer_types=LAYER_TYPES,
    num_attention_heads=4,
    num_key_value_heads=2,          # sliding layers: GQA group 2
    num_global_key_value_heads=1,   # global layers: GQA group 4
    head_dim=32,                    # 16 pairs, all rotate
    global_head_dim=64,             # proportional RoPE: int(0.25*64//2) = 8 of 32 pairs rotate
    sliding_window=8,               # 8 keys including the current token; prompts are 20..40
    attention_k_eq_v=True,
    hidden_activation="gelu_pytorch_tanh",
    rms_norm_eps=1e-6,
    max_position_embeddings=512,
    rope_parameters=ROPE,
    final_logit_softcapping=5.0,
    hidden_size_per_layer_input=0,
    num_kv_shared_layers=0,
    use_double_wide_mlp=False,
    use_bidirectional_attention="vision",
    attention_bias=False,
    tie_word_embeddings=True,
    pad_token_id=0,
    eos_token_id=[1, 106],
    bos_token_id=2,
)

CASES = {
    # Dense, multimodal config form, tensors under model.language_model.
    "dense": dict(
        seed=1001,
        multimodal=True,
        text=dict(COMMON, hidden_size=64, intermediate_size=128, enable_moe_block=False),
        embed_std=0.07,
        final_norm=(3.0, 5.0),
        qk_norm=(0.4, 0.8),
    ),
    # MoE (dense MLP + 8 experts top-2 in every layer), text-only form, tensors under model.
    "moe": dict(
        seed=2002,
        multimodal=False,
        text=dict(COMMON, hidden_size=256, intermediate_size=32, enable_moe_block=True,
                  num_experts=8, top_k_experts=2, moe_intermediate_size=16),
        embed_std=0.035,
        final_norm=(3.0, 5.0),
        qk_norm=(0.4, 0.8),
        router_std=5.0,
    ),
}


# ---------------------------------------------------------------------------------------------
# weights

def bf16_exact(t):
    """Round float32 values to the nearest bf16 and back: exactly representable in bf16."""
    return t.to(torch.bfloat16).to(torch.float32)


def draw(name, shape, g, case):
    """The value of one parameter, by its role (name suffix). float32, bf16-representable."""
    def normal(std):
        return torch.randn(shape, generator=g, dtype=torch.float32) * std

    def uniform(lo, hi):
        return lo + (hi - lo) * torch.rand(shape, generator=g, dtype=torch.float32)

    if name.endswith("embed_tokens.weight"):
        v = normal(case["embed_std"])
    elif name.endswith("layer_scalar"):
        v = uniform(0.5, 1.5)
    elif name.endswith("router.scale"):
        v = uniform(0.5, 1.5)
    elif name.endswith("router.per_expert_scale"):
        v = uniform(0.5, 1.5)
    elif name.endswith("router.proj.weight"):
        # router input is RMSNorm∅(h)·scale·H^-½ (RMS ≈ H^-½), so logits have std ≈ this std:
        # large enough that top-k is rarely a near tie (checked below, MIN_ROUTER_GAP).
        v = normal(case["router_std"])
    elif name.endswith("experts.gate_up_proj"):
        v = normal(shape[-1] ** -0.5)
    elif name.endswith("experts.down_proj"):
        v = normal(shape[-1] ** -0.5)
    elif name.endswith("_proj.weight"):
        v = normal(shape[-1] ** -0.5)    # Linear [out, in]: outputs O(1)
    elif name.endswith(".norm.weight") and ".layers." not in name:
        # final norm: larger, so the logits reach past the soft-cap while the embedding
        # (which also feeds the residual stream, ×√H) stays small enough not to dominate it
        v = uniform(*case["final_norm"])
    elif name.endswith(("q_norm.weight", "k_norm.weight")):
        # q/k norms set the attention logit scale (attention scale is 1.0): keep the softmax
        # informative but not so peaked that float32 rounding is amplified
        v = uniform(*case["qk_norm"])
    elif re.search(r"norm(_[12])?\.weight$", name):
        v = uniform(0.6, 1.4)             # every other RMSNorm weight (layer norms, _1/_2)
    else:
        raise SystemExit(f"make_golden: no rule for parameter {name} {tuple(shape)}")
    return bf16_exact(v)


def build_model(case):
    tc = dict(case["text"])
    if case["multimodal"]:
        cfg = Gemma4Config(text_config=tc, vision_config=None, audio_config=None)
        cfg._attn_implementation = "eager"
        model = Gemma4ForConditionalGeneration(cfg)
    else:
        cfg = Gemma4TextConfig(**tc)
        cfg._attn_implementation = "eager"
        model = Gemma4ForCausalLM(cfg)
    model.set_attn_implementation("eager")
    if case["text"].get("enable_moe_block"):
        model.set_experts_implementation("eager")   # the plain per-expert loop of modeling_gemma4
    model = model.float().eval()

    g = torch.Generator().manual_seed(case["seed"])
    sd = model.state_dict()
    new = {}
    for name in sorted(sd):
        if name == "lm_head.weight":
            continue
        new[name] = draw(name, tuple(sd[name].shape), g, case)
    emb = [n for n in new if n.endswith("embed_tokens.weight")][0]
    new["lm_head.weight"] = new[emb]
    model.load_state_dict(new, strict=True)
    # The LM head must be the embedding (tied).
    assert model.lm_head.weight.data_ptr() == model.get_input_embeddings().weight.data_ptr() or \
        torch.equal(model.lm_head.weight, model.get_input_embeddings().weight)
    for n, t in model.state_dict().items():
        assert torch.equal(t, new[n]), f"{n} did not load"
    return model, {n: t for n, t in new.items() if n != "lm_head.weight"}


# ---------------------------------------------------------------------------------------------
# reference runs

class RouterWatch:
    """Records the smallest gap between the k-th and (k+1)-th router logit of every token."""

    def __init__(self, model, k):
        self.k = k
        self.min_gap = float("inf")
        self.handles = []
        for mod in model.modules():
            if type(mod).__name__ == "Gemma4TextRouter":
                self.handles.append(mod.proj.register_forward_hook(self.hook))

    def hook(self, mod, inp, out):
        top = torch.topk(out.reshape(-1, out.shape[-1]), self.k + 1, dim=-1).values
        gap = (top[:, self.k - 1] - top[:, self.k]).min().item()
        self.min_gap = min(self.min_gap, gap)


@torch.no_grad()
def logits_of(model, ids):
    out = model(input_ids=torch.tensor([ids], dtype=torch.long), use_cache=False)
    return out.logits[0].float()


@torch.no_grad()
def greedy_full(model, ids, n):
    """n greedy tokens, each from a full re-forward (no cache). Returns tokens and min margin."""
    seq = list(ids)
    toks, min_gap = [], float("inf")
    for _ in range(n):
        last = logits_of(model, seq)[-1]
        top2 = torch.topk(last, 2).values
        min_gap = min(min_gap, (top2[0] - top2[1]).item())
        t = int(torch.argmax(last))
        toks.append(t)
        seq.append(t)
    return toks, min_gap


@torch.no_grad()
def greedy_cached(model, ids, n):
    """The same continuation through transformers' KV cache (a cross-check only)."""
    out = model.generate(input_ids=torch.tensor([ids], dtype=torch.long), max_new_tokens=n,
                         min_new_tokens=n, do_sample=False, use_cache=True, eos_token_id=None,
                         pad_token_id=0)
    return out[0, len(ids):].tolist()


# ---------------------------------------------------------------------------------------------
# files

def config_json(case, model):
    """The config.json the engine will read."""
    tc = dict(case["text"])
    if case["multimodal"]:
        # Google's form: text_config holds global_head_dim / num_global_key_value_heads.
        text = dict(tc)
        text.update(model_type="gemma4_text", dtype="bfloat16",
                    vocab_size_per_layer_input=tc["vocab_size"], initializer_range=0.02,
                    attention_dropout=0.0, use_cache=True,
                    num_experts=None, top_k_experts=None, moe_intermediate_size=None)
        return {
            "architectures": ["Gemma4ForConditionalGeneration"],
            "model_type": "gemma4",
            "dtype": "bfloat16",
            "text_config": text,
            "vision_config": None,
            "audio_config": None,
            "boi_token_id": 255999, "eoi_token_id": 258882, "image_token_id": 258880,
            "video_token_id": 258884, "audio_token_id": 258881,
            "tie_word_embeddings": True,
            "initializer_range": 0.02,
            "transformers_version": "5.23.0",
        }
    # transformers' own serialisation of the text config (per_layer_config form).
    d = model.config.to_dict()
    d["architectures"] = ["Gemma4ForCausalLM"]
    d["dtype"] = "bfloat16"
    d.pop("_attn_implementation_autoset", None)
    d.pop("_name_or_path", None)
    return d


def write_case(name, case, summary):
    torch.manual_seed(case["seed"])
    model, weights = build_model(case)
    tc = case["text"]
    V = tc["vocab_size"]
    outdir = os.path.join(HERE, name)
    os.makedirs(outdir, exist_ok=True)

    model64 = copy.deepcopy(model).double()
    watch = RouterWatch(model, tc.get("top_k_experts") or 0) if tc.get("enable_moe_block") else None

    golden, prompts = {}, []
    router_gap = float("inf")
    for i, n in enumerate(PROMPT_LENGTHS):
        # Prompt i is drawn from seed (case seed, i, attempt); attempts go on until the prompt's
        # greedy steps and routing decisions all have comfortable margins (deterministic).
        for attempt in range(MAX_ATTEMPTS):
            g = torch.Generator().manual_seed(case["seed"] * 1000 + i * 100 + attempt)
            ids = torch.randint(3, V, (n,), generator=g).tolist()
            if watch is not None:
                watch.min_gap = float("inf")
            logits = logits_of(model, ids)
            greedy, gap = greedy_full(model, ids, N_GREEDY)
            rgap = watch.min_gap if watch is not None else float("inf")
            distinct = len(set(greedy))
            why = []
            if gap < MIN_ARGMAX_GAP:
                why.append(f"greedy margin {gap:.2g}")
            if rgap < MIN_ROUTER_GAP:
                why.append(f"router gap {rgap:.2g}")
            if distinct < MIN_DISTINCT:
                why.append(f"{distinct} distinct tokens")
            if not why:
                break
            print(f"{name} prompt {i} attempt {attempt} rejected: {', '.join(why)}")
        else:
            raise SystemExit(f"{name} prompt {i}: no acceptable prompt in {MAX_ATTEMPTS} attempts")
        router_gap = min(router_gap, rgap)
        cached = greedy_cached(model, ids, N_GREEDY)
        if cached != greedy:
            raise SystemExit(f"{name} prompt {i}: transformers' cached greedy {cached} differs from "
                             f"full re-forward {greedy}")
        # Causality: the prefill rows must not change when later tokens are appended.
        full = logits_of(model, ids + greedy[:-1])
        assert (full[:n] - logits).abs().max() <= 2e-5 * logits.abs().max(), \
            f"{name} prompt {i}: prefill logits depend on later tokens (mask broken?)"
        cap = tc["final_logit_softcapping"]
        raw = torch.atanh((logits / cap).clamp(-1 + 1e-7, 1 - 1e-7)) * cap   # pre-cap logits
        if raw.abs().max() <= cap:
            raise SystemExit(f"{name} prompt {i}: the soft-cap does not bite (max pre-cap {raw.abs().max():.2f})")
        # How far the float32 reference itself is from a float64 run of the same weights: the
        # floor under any float32 engine's agreement with it (see golden.json).
        with torch.no_grad():
            l64 = model64(input_ids=torch.tensor([ids], dtype=torch.long), use_cache=False).logits[0]
        noise = ((logits.double() - l64).abs().max() / l64.abs().max()).item()
        golden[f"prompt.{i}.ids"] = torch.tensor(ids, dtype=torch.int32)
        golden[f"prompt.{i}.logits"] = logits.contiguous()
        golden[f"prompt.{i}.greedy"] = torch.tensor(greedy, dtype=torch.int32)
        prompts.append(dict(index=i, length=n, attempt=attempt, ids=ids, greedy=greedy,
                            distinct_greedy=distinct, min_greedy_margin=round(gap, 5),
                            min_router_topk_gap=None if watch is None else round(rgap, 5),
                            max_abs_logit=round(logits.abs().max().item(), 5),
                            max_abs_precap_logit=round(raw.abs().max().item(), 3),
                            logits_std=round(logits.std().item(), 4),
                            f32_vs_f64_rel_err=float(f"{noise:.3g}")))
        print(f"{name} prompt {i}: n={n} attempt={attempt} margin={gap:.4f} router_gap={rgap:.4f} "
              f"distinct={distinct} max|logit|={logits.abs().max():.3f} precap={raw.abs().max():.2f} "
              f"f32-vs-f64={noise:.2g}")
        print(f"   greedy={greedy}")

    if watch is None:
        router_gap = None

    save_file({k: v.to(torch.bfloat16).contiguous() for k, v in weights.items()},
              os.path.join(outdir, "model.safetensors"), metadata={"format": "pt"})
    save_file(golden, os.path.join(outdir, "golden.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(outdir, "config.json"), "w") as f:
        json.dump(config_json(case, model), f, indent=2, sort_keys=True)
        f.write("\n")

    for f in ("model.safetensors", "golden.safetensors", "config.json"):
        os.chmod(os.path.join(outdir, f), 0o644)

    n_params = sum(v.numel() for v in weights.values())
    summary[name] = dict(
        seed=case["seed"],
        config_form="multimodal (text_config, global_head_dim)" if case["multimodal"]
        else "text-only (transformers to_dict, per_layer_config)",
        tensor_prefix="model.language_model." if case["multimodal"] else "model.",
        text_config={k: v for k, v in tc.items()},
        embed_std=case["embed_std"],
        parameters=n_params,
        tensors=len(weights),
        layer_scalars=[round(weights[k].item(), 6) for k in sorted(weights) if k.endswith("layer_scalar")],
        min_router_topk_gap=None if router_gap is None else round(router_gap, 5),
        prompts=prompts,
        files={f: os.path.getsize(os.path.join(outdir, f))
               for f in ("config.json", "model.safetensors", "golden.safetensors")},
    )


def main():
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    import transformers
    summary = {"generator": "tests/golden/make_golden.py", "transformers": transformers.__version__,
               "torch": torch.__version__, "n_greedy": N_GREEDY,
               "reference": "float32 run of bf16-representable weights, attn_implementation=eager; "
                            "logits after final soft-cap; greedy by full re-forward",
               "cases": {}}
    for name, case in CASES.items():
        write_case(name, case, summary["cases"])
    with open(os.path.join(HERE, "golden.json"), "w") as f:
        json.dump(summary, f, indent=1)
        f.write("\n")
    total = sum(sum(c["files"].values()) for c in summary["cases"].values())
    print(f"wrote {len(CASES)} cases, {total} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
