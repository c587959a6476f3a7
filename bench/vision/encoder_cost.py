#!/usr/bin/env python3
"""encoder_cost.py — FLOPs and bytes of the Gemma 4 vision encoder per image, at each
soft-token budget, for the GPU roofline (docs/benchmarks.md, "Vision encoder").

Counts the work of model/vision.c's op sequence (csrc/model/vision.c) for one image of N = 9 × B
patches (the most a budget B admits; an image whose aspect ratio does not fit the 48-pixel grid
exactly has a few fewer), with the tower's geometry from a config.json (default: the real
31B / 26B-A4B tower, 1152 wide, 27 layers, 16 heads × 72, MLP 4304, position table 10240):

  FLOPs (a multiply-add = 2): patch embedding 2·N·768·D; per layer the q, k, v, o projections
  2·N·D·(heads·d) each, the GeGLU MLP 3 · 2·N·D·I, the attention 4·N²·(heads·d) (QKᵀ and P·V over
  all N patches: no mask); the embed_vision projection 2·B·D·H. Norms, RoPE, softmax, GeGLU and
  pooling are elementwise (≤ 1 % here) and not counted.
  Bytes (bf16): the weights once (the position table: only the rows the image uses), plus every
  activation each op of vision.c reads and writes (unfused: the norms, RoPE and residual adds each
  make a round trip; the attention counted as a flash kernel would move it, q, k, v in and the
  output out once).
  Time floors on an H100 SXM (989 TFLOP/s bf16 dense, 3.35 TB/s): compute = FLOPs / peak,
  memory = bytes / bandwidth; the larger is the floor.

Usage: python3 bench/vision/encoder_cost.py [config.json] [--text-hidden H]   (markdown on stdout)
"""

import json
import sys

BUDGETS = [70, 140, 280, 560, 1120]
PEAK_FLOPS = 989e12
PEAK_BYTES = 3.35e12
PATCH_DIM = 768


def geometry(path):
    g = dict(D=1152, L=27, heads=16, d=72, I=4304, P=10240, H=5376)
    if path:
        with open(path) as f:
            cfg = json.load(f)
        vc = cfg.get("vision_config") or {}
        g.update(D=vc.get("hidden_size", 768), L=vc.get("num_hidden_layers", 16),
                 heads=vc.get("num_attention_heads", 12), d=vc.get("head_dim", 64),
                 I=vc.get("intermediate_size", 3072), P=vc.get("position_embedding_size", 10240),
                 H=(cfg.get("text_config") or cfg).get("hidden_size", g["H"]))
    return g


def cost(g, B):
    N, D, I, L, A = 9 * B, g["D"], g["I"], g["L"], g["heads"] * g["d"]
    side = int(N ** 0.5)                     # a square-ish grid: ph + pw ≈ 2·√N table rows read
    flops = 2 * N * PATCH_DIM * D
    flops += L * (2 * N * D * A * 4 + 3 * 2 * N * D * I + 4 * N * N * A)
    flops += 2 * B * D * g["H"]
    weights = (PATCH_DIM * D + L * (4 * D * A + 3 * D * I + 4 * D + 2 * g["d"]) + 2 * D + g["H"] * D) * 2
    weights += 2 * side * D * 2
    # activation elements each op reads + writes, per layer (vision.c's order)
    nd = N * D
    per_layer = (2 * nd                      # input_norm
                 + 3 * nd + 3 * N * A        # q, k, v projections (x read once per projection)
                 + 2 * 3 * N * A             # q / k / v norms in place
                 + 2 * 2 * N * A             # rope_2d on q and k
                 + 3 * N * A + N * A         # attention (flash-like: q, k, v in, out once)
                 + N * A + nd                # o_proj
                 + 3 * nd                    # add_rmsnorm post_attn (h, o in; h out)
                 + 2 * nd                    # pre_ffn_norm
                 + 2 * nd + 2 * N * I        # gate, up
                 + 3 * N * I                 # geglu
                 + N * I + nd                # down
                 + 3 * nd)                   # add_rmsnorm post_ffn
    acts = N * PATCH_DIM + nd + 6 * nd + L * per_layer + nd + B * D * 2 + B * D + B * g["H"]
    bytes_ = weights + acts * 2
    attn = L * 4 * N * N * A
    return dict(B=B, N=N, flops=flops, attn_share=attn / flops, bytes=bytes_, weights=weights,
                t_compute=flops / PEAK_FLOPS, t_memory=bytes_ / PEAK_BYTES)


def main(argv):
    path = None
    args = list(argv)
    g = geometry(None)
    if "--text-hidden" in args:
        i = args.index("--text-hidden")
        H = int(args[i + 1])
        del args[i:i + 2]
    else:
        H = None
    if args:
        path = args[0]
        g = geometry(path)
    if H:
        g["H"] = H
    print(f"Vision encoder per image: D={g['D']}, {g['L']} layers, {g['heads']}x{g['d']} heads, MLP {g['I']}, "
          f"projection to H={g['H']}; N = 9 x budget patches; H100 SXM floors (989 TFLOP/s, 3.35 TB/s)\n")
    print("| budget | patches | GFLOP | attention share | MB moved (weights) | intensity FLOP/B "
          "| compute floor ms | memory floor ms | images/s at the floor |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for B in BUDGETS:
        c = cost(g, B)
        floor = max(c["t_compute"], c["t_memory"])
        print(f"| {B} | {c['N']} | {c['flops'] / 1e9:,.0f} | {100 * c['attn_share']:.0f} % "
              f"| {c['bytes'] / 1e6:,.0f} ({c['weights'] / 1e6:,.0f}) | {c['flops'] / c['bytes']:,.0f} "
              f"| {1e3 * c['t_compute']:.2f} | {1e3 * c['t_memory']:.2f} | {1 / floor:,.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
