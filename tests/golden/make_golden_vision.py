#!/usr/bin/env python3
"""make_golden_vision.py — golden reference data for the Gemma 4 vision tower and the multimodal
forward pass, made with Hugging Face transformers (its own Gemma 4 vision tower, image processor and
Gemma4ForConditionalGeneration) and torch.

What it writes (tests/golden/vision/):
  config.json          a tiny random Gemma 4 multimodal config (Gemma4ForConditionalGeneration):
                       the text part is the dense golden's (tests/golden/make_golden.py), the
                       vision_config has the real structure (head_dim 72 → 2-D RoPE over 2 × 36
                       channels, q/k/v norms, GeGLU, pooling 3, standardize) with small widths,
                       3 layers and a small position table. The special token ids (boi, image,
                       eoi, ...) are moved inside the 512-token vocabulary (see SPECIAL).
  model.safetensors    BF16 weights, Hugging Face names: model.language_model.*,
                       model.vision_tower.*, model.embed_vision.* (tied LM head: no lm_head.weight)
  image0.png, image1.png  two RGB images of different aspect ratios drawn by this script
  golden.safetensors   for image i:
                         image.<i>.patches F32 [n_patches, 768]  what the tower's input_proj sees:
                                                2 · (pixel_values − 0.5) in float32, in [−1, 1], where
                                                pixel_values (in [0, 1]) is the image processor's output
                                                without its padding rows
                                                (the g4_vision_encode input, media/vision_preprocess.h)
                         image.<i>.grid I32 [2]  (ph, pw): patch rows, patch columns
                         image.<i>.soft F32 [n_soft, H]  soft tokens after embed_vision (what
                                                replaces the image's placeholders)
                       prompt.ids I32 [n]       text + image 0 + text + image 1 + text, each image as
                                                boi + n_soft × image + eoi (the processor's expansion)
                       prompt.mm_token_type_ids I32 [n]  1 on image placeholders, else 0
                       prompt.logits F32 [n, V] transformers' full multimodal forward (pixel_values,
                                                bidirectional image blocks on sliding layers)
                       prompt.greedy I32 [16]   greedy continuation, each token from a full re-forward
                       prompt.causal_logits F32 [n, V]  the same forward with the plain causal mask
                                                (no mm_token_type_ids): what a forward that forgets the
                                                bidirectional image mask gives (tests must be far from it)
and golden.json, a human summary (configs, sizes, margins, f32-vs-f64 noise).

How the reference is computed: the same way as make_golden.py (its helpers are imported): weights
drawn in float32 from a seeded generator, rounded to bf16, the model run in float32 with
attn_implementation="eager". Images are preprocessed by transformers' Gemma 4 image processor (PIL
backend) at a budget of BUDGET soft tokens.

Checks that refuse flaky or vacuous data: every greedy step wins by ≥ MIN_ARGMAX_GAP; the greedy
continuation has ≥ MIN_DISTINCT tokens; the two images have different grids and soft-token counts;
the bidirectional mask changes the logits (else the test could not see a missing mask); replacing an
image changes the logits; the checkpoint written reloads with from_pretrained and gives the same
logits; the soft tokens' float32 rounding noise (vs a float64 run) is far below the 1e-4 tolerance.

Rerun (deterministic; CPU, about a minute):
    /work/venv-hf/bin/python tests/golden/make_golden_vision.py     # from the repository root
Needs: torch, transformers ≥ 5.23 (models.gemma4), safetensors, pillow, numpy. The outputs are
committed; the C tests read them without Python.
"""

import copy
import json
import os
import sys

import numpy as np
import torch
from PIL import Image, ImageDraw
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_golden as mg  # noqa: E402  (bf16_exact, the dense text config)

from transformers.models.gemma4 import Gemma4Config, Gemma4ForConditionalGeneration  # noqa: E402
from transformers.models.gemma4.image_processing_pil_gemma4 import Gemma4ImageProcessorPil  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "vision")
SEED = 3003
BUDGET = 70
N_GREEDY = 16
MIN_ARGMAX_GAP = 2e-3
MIN_DISTINCT = 5
MIN_MASK_EFFECT = 1e-2     # max |logit change| the bidirectional mask must cause
MAX_SOFT_NOISE = 1e-5      # f32-vs-f64 relative error allowed in the soft tokens (tolerance is 1e-4)

# Special tokens inside the tiny vocabulary (the real ids 255999, 258880, ... are past V = 512).
SPECIAL = dict(boi_token_id=505, eoi_token_id=506, image_token_id=507, video_token_id=508,
               audio_token_id=509, boa_token_id=510, eoa_token_index=511)
TEXT_TOKENS = (3, 500)     # ordinary text ids are drawn from [3, 500)

TEXT = dict(mg.CASES["dense"]["text"])

VISION = dict(
    hidden_size=144,               # 2 heads × 72: the real head dim, so the real 2-D RoPE split
    intermediate_size=200,
    num_hidden_layers=3,
    num_attention_heads=2,
    num_key_value_heads=2,
    head_dim=72,
    hidden_activation="gelu_pytorch_tanh",
    rms_norm_eps=1e-6,
    max_position_embeddings=131072,
    attention_bias=False,
    attention_dropout=0.0,
    rope_parameters={"rope_type": "axial", "rope_theta": 100.0},
    pooling_kernel_size=3,
    patch_size=16,
    position_embedding_size=48,    # ≥ the longest patch side of both images
    use_clipped_linears=False,
    standardize=True,
    initializer_range=0.02,
)

# Image sizes (width, height): one wide, one tall; the processor upscales both to the budget.
IMAGES = [(200, 120), (90, 170)]


def draw_vision(name, shape, g):
    """Vision-side and projector parameters (float32, bf16-representable)."""
    def normal(std):
        return torch.randn(shape, generator=g, dtype=torch.float32) * std

    def uniform(lo, hi):
        return lo + (hi - lo) * torch.rand(shape, generator=g, dtype=torch.float32)

    if name.endswith("position_embedding_table"):
        v = normal(0.5)
    elif name.endswith(("linear.weight", "input_proj.weight", "embedding_projection.weight")):
        v = normal(shape[-1] ** -0.5)
    elif name.endswith(("q_norm.weight", "k_norm.weight")):
        v = uniform(0.4, 0.8)
    elif name.endswith("layernorm.weight"):
        v = uniform(0.6, 1.4)
    elif name.endswith("std_bias"):
        v = normal(1.0)
    elif name.endswith("std_scale"):
        v = uniform(0.3, 0.9)
    else:
        raise SystemExit(f"make_golden_vision: no rule for parameter {name} {tuple(shape)}")
    return mg.bf16_exact(v)


def build_model():
    cfg = Gemma4Config(text_config=dict(TEXT), vision_config=dict(VISION), audio_config=None, **SPECIAL)
    cfg._attn_implementation = "eager"
    model = Gemma4ForConditionalGeneration(cfg)
    model.set_attn_implementation("eager")
    model = model.float().eval()
    g = torch.Generator().manual_seed(SEED)
    sd = model.state_dict()
    case = mg.CASES["dense"]
    new = {}
    for name in sorted(sd):
        if name == "lm_head.weight":
            continue
        if name.startswith(("model.vision_tower.", "model.embed_vision.")):
            new[name] = draw_vision(name, tuple(sd[name].shape), g)
        else:
            new[name] = mg.draw(name, tuple(sd[name].shape), g, case)
    emb = "model.language_model.embed_tokens.weight"
    new["lm_head.weight"] = new[emb]
    model.load_state_dict(new, strict=True)
    for n, t in model.state_dict().items():
        assert torch.equal(t, new[n]), f"{n} did not load"
    return model, {n: t for n, t in new.items() if n != "lm_head.weight"}


def make_image(i, size):
    """A deterministic RGB image with gradients, shapes and noise (every patch differs)."""
    w, h = size
    rng = np.random.default_rng(SEED + i)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    base = np.stack([255 * xx / (w - 1), 255 * yy / (h - 1), 127 + 120 * np.sin((xx + 2 * yy) / 9.0)], -1)
    base += rng.normal(0, 18, base.shape)
    img = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8), "RGB")
    d = ImageDraw.Draw(img)
    for k in range(6):
        x0, y0 = int(rng.integers(0, w - 20)), int(rng.integers(0, h - 20))
        col = tuple(int(c) for c in rng.integers(0, 256, 3))
        if k % 2:
            d.ellipse([x0, y0, x0 + 10 + int(rng.integers(0, 30)), y0 + 10 + int(rng.integers(0, 30))], fill=col)
        else:
            d.rectangle([x0, y0, x0 + 8 + int(rng.integers(0, 40)), y0 + 8 + int(rng.integers(0, 25))], fill=col)
    return img


def preprocess(proc, img):
    out = proc(images=[img], max_soft_tokens=BUDGET, return_tensors="pt")
    pv = out["pixel_values"][0].float()
    pos = out["image_position_ids"][0]
    n_soft = int(out["num_soft_tokens_per_image"][0])
    valid = (pos != -1).all(-1)
    n = int(valid.sum())
    assert bool(valid[:n].all()) and not bool(valid[n:].any()), "padding is not a suffix"
    pw = int(pos[:n, 0].max()) + 1
    ph = int(pos[:n, 1].max()) + 1
    assert ph * pw == n and ph % 3 == 0 and pw % 3 == 0 and n_soft == n // 9
    # Row-major grid: patch r·pw + c has position (x = c, y = r).
    want = torch.stack(torch.meshgrid(torch.arange(pw), torch.arange(ph), indexing="xy"), -1).reshape(n, 2)
    assert torch.equal(pos[:n], want), "patch order is not row-major"
    return dict(pixel_values=out["pixel_values"], position_ids=pos.unsqueeze(0), pv=pv[:n].contiguous(),
                ph=ph, pw=pw, n_soft=n_soft)


@torch.no_grad()
def soft_tokens(model, im):
    feats = model.model.get_image_features(im["pixel_values"], im["position_ids"], return_dict=True)
    (soft,) = feats.pooler_output
    return soft.float()


@torch.no_grad()
def forward(model, ids, tt, images, bidir=True):
    kw = dict(input_ids=torch.tensor([ids], dtype=torch.long), use_cache=False,
              pixel_values=torch.cat([im["pixel_values"] for im in images]),
              image_position_ids=torch.cat([im["position_ids"] for im in images]))
    if bidir:
        kw["mm_token_type_ids"] = torch.tensor([tt], dtype=torch.long)
    return model(**kw).logits[0].float()


def build_prompt(images, g):
    def text(n):
        return torch.randint(*TEXT_TOKENS, (n,), generator=g).tolist()
    ids = [TEXT["bos_token_id"]] + text(6)
    for k, im in enumerate(images):
        ids += [SPECIAL["boi_token_id"]] + [SPECIAL["image_token_id"]] * im["n_soft"] + [SPECIAL["eoi_token_id"]]
        ids += text(5 if k == 0 else 4)
    tt = [1 if t == SPECIAL["image_token_id"] else 0 for t in ids]
    return ids, tt


def config_json(model):
    d = model.config.to_dict()
    d["architectures"] = ["Gemma4ForConditionalGeneration"]
    d["dtype"] = "bfloat16"
    for k in ("_attn_implementation_autoset", "_name_or_path"):
        d.pop(k, None)
    # Google's form of the text part: global_head_dim / num_global_key_value_heads, as the dense golden.
    tc = dict(TEXT)
    tc.update(model_type="gemma4_text", dtype="bfloat16", vocab_size_per_layer_input=TEXT["vocab_size"],
              initializer_range=0.02, attention_dropout=0.0, use_cache=True,
              num_experts=None, top_k_experts=None, moe_intermediate_size=None)
    d["text_config"] = tc
    vc = dict(VISION)
    vc.update(model_type="gemma4_vision", dtype="bfloat16")
    d["vision_config"] = vc
    d["audio_config"] = None
    return d


def main():
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    import transformers
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(SEED)
    model, weights = build_model()
    model64 = copy.deepcopy(model).double()
    proc = Gemma4ImageProcessorPil()

    golden, images, img_summary = {}, [], []
    for i, size in enumerate(IMAGES):
        img = make_image(i, size)
        path = os.path.join(OUT, f"image{i}.png")
        img.save(path, optimize=True)
        img = Image.open(path).convert("RGB")      # what the committed file decodes to
        im = preprocess(proc, img)
        soft = soft_tokens(model, im)
        assert soft.shape == (im["n_soft"], TEXT["hidden_size"]), soft.shape
        with torch.no_grad():
            feats64 = model64.model.get_image_features(im["pixel_values"].double(), im["position_ids"],
                                                       return_dict=True)
        s64 = feats64.pooler_output[0]
        noise = ((soft.double() - s64).abs().max() / s64.abs().max()).item()
        if noise > MAX_SOFT_NOISE:
            raise SystemExit(f"image {i}: soft tokens f32 vs f64 rel err {noise:.3g} > {MAX_SOFT_NOISE}")
        patches = (2 * (im["pv"] - 0.5)).float()
        golden[f"image.{i}.patches"] = patches.contiguous()
        golden[f"image.{i}.grid"] = torch.tensor([im["ph"], im["pw"]], dtype=torch.int32)
        golden[f"image.{i}.soft"] = soft.contiguous()
        images.append(im)
        img_summary.append(dict(file=f"image{i}.png", width=size[0], height=size[1], budget=BUDGET,
                                grid=[im["ph"], im["pw"]], n_patches=im["ph"] * im["pw"], n_soft=im["n_soft"],
                                soft_rms=round(soft.pow(2).mean().sqrt().item(), 4),
                                soft_f32_vs_f64_rel_err=float(f"{noise:.3g}")))
        print(f"image {i}: {size[0]}x{size[1]} -> grid {im['ph']}x{im['pw']} n_soft={im['n_soft']} "
              f"rms={soft.pow(2).mean().sqrt():.3f} f32-vs-f64={noise:.2g}")
    assert images[0]["n_soft"] != images[1]["n_soft"] and \
        (images[0]["ph"], images[0]["pw"]) != (images[1]["ph"], images[1]["pw"]), "images too alike"

    V = TEXT["vocab_size"]
    for attempt in range(mg.MAX_ATTEMPTS):
        g = torch.Generator().manual_seed(SEED * 1000 + attempt)
        ids, tt = build_prompt(images, g)
        logits = forward(model, ids, tt, images)
        seq, stt, greedy, gap = list(ids), list(tt), [], float("inf")
        for _ in range(N_GREEDY):
            last = forward(model, seq, stt, images)[-1]
            top2 = torch.topk(last, 2).values
            gap = min(gap, (top2[0] - top2[1]).item())
            t = int(torch.argmax(last))
            greedy.append(t)
            seq.append(t)
            stt.append(0)
        why = []
        if gap < MIN_ARGMAX_GAP:
            why.append(f"greedy margin {gap:.2g}")
        if len(set(greedy)) < MIN_DISTINCT:
            why.append(f"{len(set(greedy))} distinct tokens")
        if SPECIAL["image_token_id"] in greedy:
            why.append("greedy emits the image placeholder")
        if not why:
            break
        print(f"prompt attempt {attempt} rejected: {', '.join(why)}")
    else:
        raise SystemExit("no acceptable prompt")

    causal = forward(model, ids, tt, images, bidir=False)
    mask_effect = (causal - logits).abs().max().item()
    if mask_effect < MIN_MASK_EFFECT:
        raise SystemExit(f"the bidirectional image mask changes the logits by only {mask_effect:.3g}")
    swapped = forward(model, ids, tt, images[::-1] if images[0]["n_soft"] == images[1]["n_soft"] else
                      [dict(images[0], pixel_values=images[0]["pixel_values"].flip(-1)), images[1]])
    image_effect = (swapped - logits).abs().max().item()
    if image_effect < MIN_MASK_EFFECT:
        raise SystemExit(f"changing image 0 changes the logits by only {image_effect:.3g}")
    with torch.no_grad():
        l64 = model64(input_ids=torch.tensor([ids]), use_cache=False, mm_token_type_ids=torch.tensor([tt]),
                      pixel_values=torch.cat([im["pixel_values"] for im in images]).double(),
                      image_position_ids=torch.cat([im["position_ids"] for im in images])).logits[0]
    noise = ((logits.double() - l64).abs().max() / l64.abs().max()).item()
    print(f"prompt: n={len(ids)} attempt={attempt} margin={gap:.4f} distinct={len(set(greedy))} "
          f"mask effect={mask_effect:.3f} image effect={image_effect:.3f} f32-vs-f64={noise:.2g}")
    print(f"   greedy={greedy}")

    golden["prompt.ids"] = torch.tensor(ids, dtype=torch.int32)
    golden["prompt.mm_token_type_ids"] = torch.tensor(tt, dtype=torch.int32)
    golden["prompt.logits"] = logits.contiguous()
    golden["prompt.causal_logits"] = causal.contiguous()
    golden["prompt.greedy"] = torch.tensor(greedy, dtype=torch.int32)

    save_file({k: v.to(torch.bfloat16).contiguous() for k, v in weights.items()},
              os.path.join(OUT, "model.safetensors"), metadata={"format": "pt"})
    save_file(golden, os.path.join(OUT, "golden.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(OUT, "config.json"), "w") as f:
        json.dump(config_json(model), f, indent=2, sort_keys=True)
        f.write("\n")

    # The files written must reload in transformers and give the same logits.
    re = Gemma4ForConditionalGeneration.from_pretrained(OUT, dtype=torch.float32,
                                                        attn_implementation="eager").eval()
    again = forward(re, ids, tt, images)
    if not torch.equal(again, logits):
        raise SystemExit(f"reloaded checkpoint differs: {(again - logits).abs().max():.3g}")

    files = ["config.json", "model.safetensors", "golden.safetensors", "image0.png", "image1.png"]
    for f in files:
        os.chmod(os.path.join(OUT, f), 0o644)
    summary = {
        "generator": "tests/golden/make_golden_vision.py", "transformers": transformers.__version__,
        "torch": torch.__version__, "seed": SEED, "budget": BUDGET, "n_greedy": N_GREEDY,
        "reference": "float32 run of bf16-representable weights, attn_implementation=eager, "
                     "Gemma4ImageProcessorPil; logits after final soft-cap; greedy by full re-forward",
        "special_token_ids": SPECIAL, "text_config": TEXT, "vision_config": VISION,
        "parameters": sum(v.numel() for v in weights.values()),
        "vision_parameters": sum(v.numel() for k, v in weights.items() if "vision" in k),
        "tensors": len(weights),
        "images": img_summary,
        "prompt": dict(length=len(ids), attempt=attempt, ids=ids, greedy=greedy,
                       min_greedy_margin=round(gap, 5), distinct_greedy=len(set(greedy)),
                       bidirectional_mask_max_logit_change=round(mask_effect, 4),
                       image_change_max_logit_change=round(image_effect, 4),
                       max_abs_logit=round(logits.abs().max().item(), 5),
                       f32_vs_f64_rel_err=float(f"{noise:.3g}")),
        "files": {f: os.path.getsize(os.path.join(OUT, f)) for f in files},
    }
    with open(os.path.join(OUT, "golden.json"), "w") as f:
        json.dump(summary, f, indent=1)
        f.write("\n")
    print(f"wrote {OUT}: {sum(summary['files'].values())} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
