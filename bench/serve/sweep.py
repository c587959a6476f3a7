#!/usr/bin/env python3
"""sweep.py — concurrency sweep with g4-bench-serve: one run per max-concurrency level (1 → 256 by
default), a Markdown table of throughput and latency per level, the raw result JSONs, and a PNG
plot of throughput against latency (output tok/s vs median TPOT, and per-user tok/s vs total).

    python3 bench/serve/sweep.py --bench build/bench/serve/g4-bench-serve --out bench/results/sweep-X \\
        -- --base-url http://127.0.0.1:8000 --random-input-len 1024 --random-output-len 512

Everything after `--` goes to every g4-bench-serve run (target, dataset, --offline, ...). Each level
sends max(--prompts-per-level × c, --min-prompts) requests at request rate inf. The plot needs
matplotlib; when it is missing the script runs `pip install matplotlib` (into the current Python,
`--user` when not in a virtual environment) unless --no-install is given, in which case only the
table is written. Not a benchmark itself: all numbers come from g4-bench-serve's result JSON."""
import argparse
import json
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
COLS = [("c", "max_concurrency", "%d"), ("req/s", "request_throughput", "%.2f"),
        ("out tok/s", "output_throughput", "%.1f"), ("total tok/s", "total_token_throughput", "%.1f"),
        ("TTFT med ms", "median_ttft_ms", "%.1f"), ("TTFT p99 ms", "p99_ttft_ms", "%.1f"),
        ("TPOT med ms", "median_tpot_ms", "%.2f"), ("ITL p99 ms", "p99_itl_ms", "%.2f"),
        ("E2EL med ms", "median_e2el_ms", "%.1f"), ("failed", "failed", "%d")]


def find_bench():
    for d in sorted(ROOT.glob("build*")):
        p = d / "bench" / "serve" / "g4-bench-serve"
        if p.exists():
            return str(p)
    sys.exit("sweep: g4-bench-serve not found; build it or pass --bench")


def table(rows):
    head = "| " + " | ".join(c[0] for c in COLS) + " |"
    sep = "|" + "|".join("---:" for _ in COLS) + "|"
    lines = [head, sep]
    for r in rows:
        lines.append("| " + " | ".join(fmt % (r.get(key) or 0) for _, key, fmt in COLS) + " |")
    return "\n".join(lines) + "\n"


def ensure_matplotlib(no_install):
    try:
        import matplotlib  # noqa: F401
        return True
    except ImportError:
        if no_install:
            return False
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "matplotlib"]
    if sys.prefix == sys.base_prefix:
        cmd.insert(4, "--user")
    print("sweep: installing matplotlib for the plot:", " ".join(cmd), file=sys.stderr)
    if subprocess.run(cmd).returncode != 0:
        return False
    import importlib
    import site
    site.addsitedir(site.getusersitepackages())  # a fresh --user install is not on sys.path yet
    importlib.invalidate_caches()
    try:
        import matplotlib  # noqa: F401
        return True
    except ImportError:
        return False


def plot(rows, path, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.8))
    tpot = [r["median_tpot_ms"] for r in rows]
    thr = [r["output_throughput"] for r in rows]
    a.plot(tpot, thr, "o-")
    for r, x, y in zip(rows, tpot, thr):
        a.annotate("c=%d" % r["max_concurrency"], (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    a.set_xlabel("median TPOT (ms)  [latency]")
    a.set_ylabel("output tokens/s  [throughput]")
    a.set_title("throughput vs latency")
    a.grid(True, alpha=0.3)
    per_user = [1000.0 / t if t > 0 else 0 for t in tpot]
    b.plot(per_user, thr, "s-", color="tab:orange")
    for r, x, y in zip(rows, per_user, thr):
        b.annotate("c=%d" % r["max_concurrency"], (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    b.set_xlabel("tokens/s per user (1 / median TPOT)")
    b.set_ylabel("output tokens/s (all users)")
    b.set_title("per-user speed vs total throughput")
    b.grid(True, alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main():
    argv = sys.argv[1:]
    passthrough = []
    if "--" in argv:
        k = argv.index("--")
        argv, passthrough = argv[:k], argv[k + 1:]
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bench", help="g4-bench-serve binary (default: first build*/ that has one)")
    ap.add_argument("--out", required=True, help="output directory (results, sweep.md, sweep.png)")
    ap.add_argument("--concurrency", default="1,2,4,8,16,32,64,128,256")
    ap.add_argument("--prompts-per-level", type=int, default=4, help="requests per level = this × c ...")
    ap.add_argument("--min-prompts", type=int, default=16, help="... but at least this many")
    ap.add_argument("--no-install", action="store_true", help="never pip-install matplotlib")
    a = ap.parse_args(argv)
    bench = a.bench or find_bench()
    out = pathlib.Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for c in [int(x) for x in a.concurrency.split(",")]:
        n = max(a.prompts_per_level * c, a.min_prompts)
        res = out / ("c%03d.json" % c)
        cmd = [bench, "--max-concurrency", str(c), "--num-prompts", str(n), "--result-file", str(res)] + passthrough
        print("sweep:", " ".join(cmd), file=sys.stderr)
        p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        (out / ("c%03d.txt" % c)).write_text(p.stdout + p.stderr)
        if p.returncode != 0 or not res.exists():
            print("sweep: level c=%d failed (see %s)" % (c, out / ("c%03d.txt" % c)), file=sys.stderr)
            continue
        r = json.loads(res.read_text())
        r.pop("timestamps", None)
        rows.append(r)
    if not rows:
        sys.exit("sweep: no level completed")
    first = rows[0]
    title = "g4-bench-serve sweep: %s %s, dataset %s, %s" % (first.get("backend"), first.get("model_id", ""),
                                                             first.get("dataset"), " ".join(passthrough))
    md = "# %s\n\n%s" % (title, table(rows))
    (out / "sweep.md").write_text(md)
    (out / "sweep.json").write_text(json.dumps(
        [{k: r.get(k) for _, k, _ in COLS} for r in rows], indent=1) + "\n")
    print(md)
    if ensure_matplotlib(a.no_install):
        plot(rows, out / "sweep.png", title)
        print("sweep: wrote", out / "sweep.png")
    else:
        print("sweep: matplotlib unavailable: no plot (table in %s)" % (out / "sweep.md"))


if __name__ == "__main__":
    main()
