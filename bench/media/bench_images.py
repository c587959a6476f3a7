"""bench_images.py - images per second through g4serve's image intake (decode + Gemma 4
preprocessing, csrc/media, one thread) next to transformers' Gemma 4 processor on the same files
(PIL decode + convert_to_rgb, then Gemma4ImageProcessor: the torchvision backend when torchvision
imports, else the PIL one), at every soft-token budget. Writes bench/results/images-DATE.json.

Usage: python bench/media/bench_images.py BUILD_DIR [REPEAT]
(python with transformers, torch, pillow; torchvision optional)"""
import datetime
import io
import json
import os
import platform
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GOLDEN = os.path.join(ROOT, "tests", "media", "golden")
FILES = ["photo_511x383.jpg", "square_512.png", "lossy_333x222.webp", "palette_260x180.gif", "small_50x37.jpg"]
BUDGETS = (70, 140, 280, 560, 1120)


def best(fn, repeat):
    t = 1e30
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        t = min(t, time.perf_counter() - t0)
    return t


def main():
    build = sys.argv[1]
    repeat = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    exe = os.path.join(build, "bench", "media", "g4_bench_images")
    paths = [os.path.join(GOLDEN, f) for f in FILES]
    c = json.loads(subprocess.run([exe, str(repeat)] + paths, check=True, capture_output=True, text=True).stdout)
    from PIL import Image
    from transformers.image_transforms import convert_to_rgb
    try:
        import torchvision  # noqa: F401
        from transformers.models.gemma4.image_processing_gemma4 import Gemma4ImageProcessor as Proc
        backend = "torchvision"
    except ImportError:
        from transformers.models.gemma4.image_processing_pil_gemma4 import Gemma4ImageProcessorPil as Proc
        backend = "pil"
    import torch
    torch.set_num_threads(1)
    proc = Proc()
    out = {"date": datetime.date.today().isoformat(), "cpu": platform.processor() or platform.machine(),
           "cores": os.cpu_count(), "threads": 1, "repeat": repeat, "transformers_backend": backend, "files": []}
    for fc, path in zip(c["files"], paths):
        raw = open(path, "rb").read()

        def decode():
            im = Image.open(io.BytesIO(raw))
            im.load()
            return convert_to_rgb(im, return_numpy=True)
        dec_hf = best(decode, repeat)
        img = Image.open(io.BytesIO(raw))
        img.load()
        row = {"file": fc["file"], "bytes": fc["bytes"], "size": [fc["width"], fc["height"]], "budgets": []}
        for b, bc in zip(BUDGETS, fc["budgets"]):
            pre_hf = best(lambda: proc(images=[img], max_soft_tokens=b, return_tensors="pt"), repeat)
            hf_ips = 1.0 / (dec_hf + pre_hf)
            row["budgets"].append({"budget": b, "soft_tokens": bc["soft_tokens"],
                                   "g4_images_per_s": bc["images_per_s"], "transformers_images_per_s": hf_ips,
                                   "ratio": bc["images_per_s"] / hf_ips})
        out["files"].append(row)
    dest = os.path.join(ROOT, "bench", "results", "images-%s.json" % out["date"])
    with open(dest, "w") as f:
        json.dump(out, f, indent=1)
    print(dest)


if __name__ == "__main__":
    main()
