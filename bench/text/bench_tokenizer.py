#!/usr/bin/env python3
"""bench_tokenizer.py - C tokenizer (g4_bench_tokenizer) vs the `tokenizers` library.

Same machine, same files, same text, single thread, one run:
  1. the committed test tokenizer (tests/text/data/tokenizer.json): encode/decode throughput
     on a ~1 MB deterministic mixed text (prose, code, CJK, emoji, whitespace runs), as one
     document and line by line;
  2. a synthetic tokenizer of the real Gemma 4 size (262,144 tokens, ~515k merges, written to
     a temporary directory, deterministic): load time, and the same throughput test.
Prints both engines' figures and the ratios; with --out writes them as JSON.

Usage: python3 bench/text/bench_tokenizer.py [--bin build/bench/text/g4_bench_tokenizer]
                                             [--out bench/results/tokenizer-DATE.json]
"""
import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time

os.environ["RAYON_NUM_THREADS"] = "1"          # before importing tokenizers
os.environ["TOKENIZERS_PARALLELISM"] = "false"
import tokenizers  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SP = "\u2581"


def bench_text(size=1 << 20):
    rng = random.Random(42)
    words = ("the of and to in is you that it was for on are as with they at be this have from or "
             "one had by word but not what all were we when your can said there use each which do "
             "how their if will up other about out many then them these so some would make like "
             "model token server request stream reasoning content tool call weather city Paris "
             "encode decode merge rank byte fallback vocabulary sequence generate prompt").split()
    parts, n = [], 0
    while n < size:
        r = rng.random()
        if r < 0.6:
            s = " ".join(rng.choice(words) for _ in range(rng.randint(5, 25)))
            s = s.capitalize() + rng.choice([".", "?", "!", ","]) + "\n"
        elif r < 0.75:
            s = "    " * rng.randint(0, 3) + "if (x == %d) { return f(y, \"%s\"); }\n" % (
                rng.randint(0, 999), rng.choice(words))
        elif r < 0.9:
            s = "".join(chr(rng.randint(0x4e00, 0x4e00 + 300)) for _ in range(rng.randint(5, 40))) + "\u3002\n"
        else:
            s = " ".join(rng.choice(["\U0001f60a", "caf\u00e9", "na\u00efve", "\U0001f44d\U0001f3fd",
                                     "\u00fcber", "\n\n", "\t", "  "]) for _ in range(8)) + "\n"
        parts.append(s)
        n += len(s.encode())
    return "".join(parts)


def synthetic_tokenizer(path, n_vocab=262144, n_merges=515000):
    """Gemma-sized BPE built in levels so that, as in the real file, most tokens can be
    merged in more than one way: 256 byte tokens, ~1,800 characters, 64 two-character
    syllables, all 4,096 syllable pairs, then syllable triples (each reachable as s1|s2s3 and
    s1s2|s3) up to 262,144 ids; merges are capped at 515,000."""
    rng = random.Random(262144)
    vocab, merges = {}, []
    for b in range(256):
        vocab["<0x%02X>" % b] = len(vocab)
    alpha = ([SP] + [chr(c) for c in range(0x61, 0x7b)] + [chr(c) for c in range(0x41, 0x5b)] +
             [chr(c) for c in range(0x30, 0x3a)] + list(".,!?;:'\"()-{}=_\n\t") +
             [chr(c) for c in range(0xe0, 0x17f)] + [chr(c) for c in range(0x4e00, 0x4e00 + 1600)])
    for ch in alpha:
        vocab.setdefault(ch, len(vocab))
    letters = "etaoinshrdlucmfwypvbgk"
    pool = sorted({x + y for x in letters for y in letters} | {SP + x for x in letters})
    syl = sorted(rng.sample(pool, 64))
    for t in syl:
        vocab[t] = len(vocab)
        merges.append((t[0], t[1]))
    for x in syl:
        for y in syl:
            vocab[x + y] = len(vocab)
            merges.append((x, y))
    specials = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "<|turn>", "<turn|>"]
    n_tri = n_vocab - len(vocab) - len(specials)
    triples = rng.sample([(x, y, z) for x in syl for y in syl for z in syl], n_tri)
    for x, y, z in triples:
        vocab[x + y + z] = len(vocab)
    for x, y, z in triples:
        for pair in ((x, y + z), (x + y, z)):
            if len(merges) < n_merges:
                merges.append(pair)
    specials = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "<|turn>", "<turn|>"]
    base = len(vocab)
    added = []
    for i, s in enumerate(specials):
        vocab[s] = base + i
        added.append({"id": base + i, "content": s, "single_word": False, "lstrip": False,
                      "rstrip": False, "normalized": False, "special": True})
    tj = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
          "normalizer": {"type": "Replace", "pattern": {"String": " "}, "content": SP},
          "pre_tokenizer": {"type": "Split", "pattern": {"String": " "},
                            "behavior": "MergedWithPrevious", "invert": False},
          "post_processor": None,
          "decoder": {"type": "Sequence", "decoders": [
              {"type": "Replace", "pattern": {"String": SP}, "content": " "},
              {"type": "ByteFallback"}, {"type": "Fuse"}]},
          "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>",
                    "continuing_subword_prefix": None, "end_of_word_suffix": None, "fuse_unk": True,
                    "byte_fallback": True, "ignore_merges": False, "vocab": vocab,
                    "merges": [list(m) for m in merges]}}
    with open(path, "w", encoding="utf-8") as f:
        json.dump(tj, f, ensure_ascii=False, separators=(",", ":"))
    return len(vocab), len(merges)


def best(fn, repeat):
    t = 1e30
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        t = min(t, time.perf_counter() - t0)
    return t


def run_hf(tok_path, text, repeat):
    t0 = time.perf_counter()
    tok = Tokenizer.from_file(tok_path)
    load_s = time.perf_counter() - t0
    ids = tok.encode(text).ids
    assert tok.decode(ids) == text, "tokenizers round trip failed"
    enc = best(lambda: tok.encode(text), repeat)
    dec = best(lambda: tok.decode(ids), repeat)
    lines = text.splitlines(keepends=True)
    line_ids = [e.ids for e in tok.encode_batch(lines)]
    enc_l = best(lambda: [tok.encode(l) for l in lines], repeat)
    dec_l = best(lambda: [tok.decode(i) for i in line_ids], repeat)
    return {"engine": "tokenizers %s" % tokenizers.__version__, "load_s": load_s,
            "bytes": len(text.encode()), "lines": len(lines),
            "doc": {"tokens": len(ids), "encode_s": enc, "decode_s": dec},
            "lines_mode": {"tokens": sum(len(i) for i in line_ids), "encode_s": enc_l,
                           "decode_s": dec_l}}


def run_c(binary, tok_path, text_path, repeat):
    out = subprocess.run([binary, tok_path, text_path, str(repeat)], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


def rates(r, mode):
    m = r[mode]
    mb = r["bytes"] / 1e6
    return {"encode_MBps": mb / m["encode_s"], "encode_tok_per_s": m["tokens"] / m["encode_s"],
            "decode_MBps": mb / m["decode_s"], "decode_tok_per_s": m["tokens"] / m["decode_s"]}


def compare(name, c, h):
    print("== %s: %d bytes, %d lines" % (name, c["bytes"], c["lines"]))
    print("   load: g4text %.3f s, tokenizers %.3f s (x%.1f)" % (c["load_s"], h["load_s"],
                                                               h["load_s"] / c["load_s"]))
    res = {"load_s": {"g4text": c["load_s"], "tokenizers": h["load_s"]}}
    for mode in ("doc", "lines_mode"):
        if c[mode]["tokens"] != h[mode]["tokens"]:
            sys.exit("token counts differ (%s): %d vs %d" % (mode, c[mode]["tokens"], h[mode]["tokens"]))
        rc, rh = rates(c, mode), rates(h, mode)
        res[mode] = {"tokens": c[mode]["tokens"], "g4text": rc, "tokenizers": rh,
                     "encode_ratio": rc["encode_MBps"] / rh["encode_MBps"],
                     "decode_ratio": rc["decode_MBps"] / rh["decode_MBps"]}
        print("   %-10s encode: g4text %7.2f MB/s %10.0f tok/s | tokenizers %7.2f MB/s %10.0f tok/s"
              " | x%.2f" % (mode, rc["encode_MBps"], rc["encode_tok_per_s"], rh["encode_MBps"],
                           rh["encode_tok_per_s"], res[mode]["encode_ratio"]))
        print("   %-10s decode: g4text %7.2f MB/s %10.0f tok/s | tokenizers %7.2f MB/s %10.0f tok/s"
              " | x%.2f" % (mode, rc["decode_MBps"], rc["decode_tok_per_s"], rh["decode_MBps"],
                           rh["decode_tok_per_s"], res[mode]["decode_ratio"]))
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "build-text/bench/text/g4_bench_tokenizer"))
    ap.add_argument("--out")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    text = bench_text()
    cpu = platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    results = {"date": time.strftime("%Y-%m-%d"), "cpu": cpu, "cores": os.cpu_count(),
               "c_build": "CMake RelWithDebInfo (gcc -O2 -g)",
               "python": platform.python_version(), "tokenizers": tokenizers.__version__,
               "threads": 1}
    with tempfile.TemporaryDirectory() as tmp:
        text_path = os.path.join(tmp, "bench.txt")
        with open(text_path, "w", encoding="utf-8") as f:
            f.write(text)
        small = os.path.join(ROOT, "tests/text/data/tokenizer.json")
        results["test_tokenizer"] = compare("test tokenizer (tests/text/data/tokenizer.json)",
                                            run_c(args.bin, small, text_path, args.repeat),
                                            run_hf(small, text, args.repeat))
        big = os.path.join(tmp, "synthetic.json")
        t0 = time.perf_counter()
        nv, nm = synthetic_tokenizer(big)
        print("(synthetic tokenizer: %d tokens, %d merges, %.1f MB, built in %.1f s)"
              % (nv, nm, os.path.getsize(big) / 1e6, time.perf_counter() - t0))
        results["synthetic_262k"] = compare("synthetic %d tokens / %d merges" % (nv, nm),
                                            run_c(args.bin, big, text_path, args.repeat),
                                            run_hf(big, text, args.repeat))
        results["synthetic_262k"]["n_vocab"] = nv
        results["synthetic_262k"]["n_merges"] = nm
        results["synthetic_262k"]["file_bytes"] = os.path.getsize(big)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)
            f.write("\n")
        print("wrote", args.out)


if __name__ == "__main__":
    main()
