"""make_vision_golden.py — reference data for test_vision_preprocess.c: real PNG / JPEG / WebP /
GIF files of several sizes and aspect ratios, and what transformers' default Gemma 4 image
processor (Gemma4ImageProcessor, torchvision backend: what AutoProcessor picks when torchvision
is installed, and what vLLM runs) makes of them at every soft-token budget.

Run (writes tests/media/golden/; the outputs are committed, CI never runs this):
    PYTHONPATH=<dir with torchvision> /work/venv-hf/bin/python tests/media/make_vision_golden.py

transformers' pixel_values are k / 255 for uint8 k (checked here), so they are kept as those
bytes: per case golden/vision.json holds file, size, budget, ph, pw, num_soft_tokens and the
weighted sum (weighted_sum64) of the bytes in pixel_values order ([ph * pw, 768], padding rows dropped); for the
budget-70 case of the smaller files the bytes themselves are committed (golden/<name>.70.u8).
"value_table" is what the patch embedder feeds input_proj for each byte k, computed by torch
exactly as the processor and the model do: 2 * (uint8 k * (1/255) - 0.5) in f32. Also
"decoded_rgb_sum64": per file, the weighted sum of PIL's decoded RGB bytes as transformers'
convert_to_rgb makes them (transparency composited on white), to check the decoders alone.
"""
import io
import json
import os
import sys

import numpy as np
import torch
from PIL import Image

from transformers.models.gemma4.image_processing_gemma4 import Gemma4ImageProcessor
from transformers.models.gemma4.image_processing_pil_gemma4 import Gemma4ImageProcessorPil
from transformers.image_transforms import convert_to_rgb

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "golden")
BUDGETS = (70, 140, 280, 560, 1120)


def photo(w, h, seed):
    """A smooth image with edges and noise, so resampling has something to get wrong."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 127 + 120 * np.sin(x / (3 + seed) + y / 17.0)
    g = 127 + 120 * np.cos((x - y) / 11.0)
    b = ((x // 7 + y // 5) % 2) * 200 + 20
    img = np.stack([r, g, b], -1) + rng.normal(0, 4, (h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def weighted_sum64(data):
    """sum_i byte_i * (i + 1) * 0x9e3779b97f4a7c15 mod 2^64: one changed byte always changes it."""
    a = np.frombuffer(data, np.uint8).astype(np.uint64)
    m = (np.arange(1, a.size + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15))
    with np.errstate(over="ignore"):
        return int(np.sum(a * m, dtype=np.uint64))


def save_interlaced_png(name, arr):
    """An 8-bit RGB PNG with Adam7 interlacing (filter type 0 on every row)."""
    import struct
    import zlib
    h, w, _ = arr.shape
    raw = b""
    for x0, y0, dx, dy in ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
                           (0, 1, 1, 2)):
        sub = arr[y0::dy, x0::dx]
        if sub.shape[0] == 0 or sub.shape[1] == 0:
            continue
        for row in sub:
            raw += b"\0" + row.tobytes()

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 1))
    png += chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(png)


def save(name, pil, fmt, **kw):
    buf = io.BytesIO()
    pil.save(buf, format=fmt, **kw)
    data = buf.getvalue()
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)
    return data


def main():
    os.makedirs(OUT, exist_ok=True)
    files = []
    # (name, w, h, format, extra): sizes cover up- and down-scaling, both aspect extremes,
    # an image already at its target size, and sizes that hit the processor's edge cases.
    specs = [
        ("square_512.png", 512, 512, "PNG", {}),
        ("wide_640x240.jpg", 640, 240, "JPEG", {"quality": 90}),
        ("tall_200x700.png", 200, 700, "PNG", {}),
        ("small_50x37.jpg", 50, 37, "JPEG", {"quality": 85, "subsampling": 2}),
        ("exact_384.png", 384, 384, "PNG", {}),  # budget 70: already 384 x 384, no resize
        ("strip_1200x30.png", 1200, 30, "PNG", {}),
        ("photo_511x383.jpg", 511, 383, "JPEG", {"quality": 92, "subsampling": 0}),
        ("lossless_300x200.webp", 300, 200, "WEBP", {"lossless": True}),
        ("lossy_333x222.webp", 333, 222, "WEBP", {"quality": 80}),
        ("palette_260x180.gif", 260, 180, "GIF", {}),
        ("alpha_160x120.png", 160, 120, "PNG", {"alpha": True}),
        ("grey_90x200.png", 90, 200, "PNG", {"grey": True}),
        ("grey_120x80.jpg", 120, 80, "JPEG", {"grey": True, "quality": 90}),
        ("alpha_200x150.webp", 200, 150, "WEBP", {"alpha": True, "lossless": True}),
        ("progressive_150x100.jpg", 150, 100, "JPEG", {"progressive": True, "quality": 88}),
        ("interlaced_130x90.png", 130, 90, "PNG", {"interlace": True}),
        ("transparent_interlaced_120x70.gif", 120, 70, "GIF", {"transparency": 3, "interlace": True}),
        ("palette_trns_100x60.png", 100, 60, "PNG", {"palette": True, "transparency": 5}),
        ("anim_90x60.webp", 90, 60, "WEBP", {"anim": True, "lossless": True}),
        ("anim_80x50.gif", 80, 50, "GIF", {"anim": True}),
        ("grey16_70x40.png", 70, 40, "PNG", {"grey16": True}),
    ]
    for i, (name, w, h, fmt, extra) in enumerate(specs):
        arr = photo(w, h, i + 1)
        alpha = extra.pop("alpha", False)
        grey = extra.pop("grey", False)
        anim = extra.pop("anim", False)
        if extra.pop("grey16", False):  # PIL mode I;16: values above 255 clip in convert("RGB")
            pil = Image.fromarray((arr[..., 0].astype(np.uint16) * 3).astype(np.uint16))
            save(name, pil, fmt)
            files.append(name)
            continue
        palette = extra.pop("palette", False)
        if extra.pop("interlace", False) and fmt == "PNG":
            # PIL writes no interlaced PNG: build one with Adam7 through zlib/struct below
            save_interlaced_png(name, arr)
            files.append(name)
            continue
        if alpha:
            a = np.clip(np.arange(w)[None, :] * 255 // max(w - 1, 1) + np.zeros((h, 1)), 0, 255).astype(np.uint8)
            a[: h // 4] = 0
            pil = Image.fromarray(np.concatenate([arr, a[..., None]], -1), "RGBA")
        elif grey:
            pil = Image.fromarray(arr[..., 1], "L")
        elif fmt == "GIF" or palette:
            pil = Image.fromarray(arr).quantize(64)
        else:
            pil = Image.fromarray(arr)
        if anim:
            second = Image.fromarray(255 - arr)
            frames = [pil, second.quantize(64) if fmt == "GIF" else second]
            save(name, frames[0], fmt, save_all=True, append_images=frames[1:], **extra)
        else:
            save(name, pil, fmt, **extra)
        files.append(name)

    tv = Gemma4ImageProcessor()
    pl = Gemma4ImageProcessorPil()
    index = []
    pil_diff = {}
    decoded = {}
    for name in files:
        img = Image.open(os.path.join(OUT, name))
        img.load()
        rgb = convert_to_rgb(img, return_numpy=True)
        decoded[name] = "%016x" % weighted_sum64(np.ascontiguousarray(rgb, np.uint8).tobytes())
        for budget in BUDGETS:
            out = tv(images=[img], max_soft_tokens=budget, return_tensors="pt")
            n_soft = int(out["num_soft_tokens_per_image"][0])
            pos = out["image_position_ids"][0]
            real = pos[:, 0] >= 0
            pw = int(pos[real, 0].max()) + 1
            ph = int(pos[real, 1].max()) + 1
            pv = out["pixel_values"][0][real].to(torch.float32)
            assert pv.shape[0] == ph * pw and n_soft == (ph // 3) * (pw // 3)
            u8 = torch.round(pv * 255).to(torch.uint8)
            assert torch.equal(u8.to(torch.float32) * (1 / 255), pv), "pixel_values are not k/255"
            raw = u8.numpy().tobytes()
            case = {"file": name, "width": img.width, "height": img.height, "budget": budget,
                    "ph": ph, "pw": pw, "num_soft_tokens": n_soft, "sum64": "%016x" % weighted_sum64(raw)}
            if budget == 70 and name in ("small_50x37.jpg", "palette_260x180.gif"):
                case["bytes"] = f"{name}.70.u8"
                with open(os.path.join(OUT, case["bytes"]), "wb") as f:
                    f.write(raw)
            index.append(case)
            # how far the PIL backend is from it (documentation only)
            o2 = pl(images=[img], max_soft_tokens=budget, return_tensors="np")
            d = np.abs(o2["pixel_values"][0][: ph * pw] - out["pixel_values"][0][: ph * pw].numpy()).max()
            pil_diff[f"{name}.{budget}"] = round(float(d) * 255)
    with open(os.path.join(OUT, "vision.json"), "w") as f:
        json.dump({"generator": "tests/media/make_vision_golden.py",
                   "processor": "transformers Gemma4ImageProcessor (torchvision backend)",
                   "value_table": [float(v) for v in (2 * (torch.arange(256, dtype=torch.uint8) * (1 / 255) - 0.5)).tolist()],
                   "pil_backend_max_diff_in_uint8_steps": pil_diff,
                   "decoded_rgb_sum64": decoded,
                   "cases": index}, f, indent=1)
    print(f"{len(index)} cases, {len(files)} files", file=sys.stderr)


if __name__ == "__main__":
    main()
