"""make_metrics_ref.py — writes tests/bench/data/metrics_ref.json: random recorded timestamps for a
few benchmark runs and the metrics vLLM's `bench serve` would report for them, computed here in
numpy the way vLLM's calculate_metrics does (np.mean / np.median / np.std / np.percentile over
TTFT, TPOT, pooled ITL, E2EL; goodput; 1-second peak buckets). test_bench_metrics.c reads the
file and checks bench/serve/metrics.c against it. Run from the repository root:

    python3 tests/bench/make_metrics_ref.py

Not a benchmark; only the reference numbers for the unit test."""
import json
import math
import pathlib
import random

import numpy as np

OUT = pathlib.Path(__file__).resolve().parent / "data" / "metrics_ref.json"
PCTS = [50.0, 90.0, 99.0, 99.9]


def make_case(rng, n, fail_rate, multi_tok):
    recs = []
    t = 0.0
    for _ in range(n):
        t += rng.expovariate(4.0)
        send = round(t, 9)
        if rng.random() < fail_rate:
            recs.append({"ok": False, "prompt_len": rng.randint(1, 300), "output_tokens": 0,
                         "t_send": send, "t_end": send, "chunks": []})
            continue
        n_chunks = rng.choice([1, 1, 2, 3, 7, 16, 40])
        first = send + rng.uniform(0.02, 1.5)
        chunks = [first]
        for _ in range(n_chunks - 1):
            gap = rng.uniform(0.005, 0.05) if rng.random() > 0.05 else rng.uniform(0.2, 0.9)
            chunks.append(chunks[-1] + gap)
        chunks = [round(c, 9) for c in chunks]
        out = n_chunks * (rng.choice([1, 2, 3]) if multi_tok else 1)
        recs.append({"ok": True, "prompt_len": rng.randint(1, 300), "output_tokens": out,
                     "t_send": send, "t_end": chunks[-1], "chunks": chunks})
    return recs


def stat(x):
    # vLLM: np.mean(x or 0) etc. — an empty list reports 0.
    a = np.array(x if x else [0.0], dtype=np.float64)
    return {"n": len(x), "mean": float(np.mean(a) * 1000), "median": float(np.median(a) * 1000),
            "std": float(np.std(a) * 1000),
            "pct": [float(np.percentile(a, p) * 1000) for p in PCTS]}


def reference(recs, duration, slo):
    ttfts, tpots, all_tpots, itls, e2els, outs = [], [], [], [], [], []
    total_in = completed = failed = good = 0
    for r in recs:
        if not r["ok"]:
            failed += 1
            outs.append(0)
            continue
        ttft = r["chunks"][0] - r["t_send"]
        lat = r["t_end"] - r["t_send"]
        itl = [b - a for a, b in zip(r["chunks"], r["chunks"][1:])]
        o = r["output_tokens"]
        outs.append(o)
        total_in += r["prompt_len"]
        tp = 0.0
        if o > 1:
            tp = (lat - ttft) / (o - 1)
            tpots.append(tp)
        all_tpots.append(tp)
        itls += itl
        ttfts.append(ttft)
        e2els.append(lat)
        completed += 1
        r["_ttft"], r["_itl"], r["_lat"] = ttft, itl, lat
    if slo:
        metric_lists, slos = [], []
        for key, lst in (("ttft", ttfts), ("tpot", all_tpots), ("e2el", e2els)):
            if key in slo:
                metric_lists.append(lst)
                slos.append(slo[key] / 1000.0)
        for vals in zip(*metric_lists):
            good += all(s >= v for s, v in zip(slos, vals))
    ok = [r for r in recs if r["ok"]]
    peak_tok, peak_conc = 0.0, 0
    if ok:
        t0 = min(r["t_send"] for r in ok)
        t1 = max(r["t_send"] + r["_lat"] for r in ok)
        nb = int(np.ceil(t1 - t0)) + 1
        tok = np.zeros(nb)
        conc = np.zeros(nb)
        for r in ok:
            times = [r["t_send"] + r["_ttft"]]
            cur = times[0]
            for g in r["_itl"]:
                cur += g
                times.append(cur)
            for tt in times:
                b = int(tt - t0)
                if 0 <= b < nb:
                    tok[b] += 1
            for s in range(int(r["t_send"] - t0), int(r["t_send"] + r["_lat"] - t0) + 1):
                conc[s] += 1
        peak_tok, peak_conc = float(np.max(tok)), int(np.max(conc))
    for r in recs:
        for k in ("_ttft", "_itl", "_lat"):
            r.pop(k, None)
    total_out = sum(outs)
    return {"completed": completed, "failed": failed, "total_input": total_in, "total_output": total_out,
            "request_throughput": completed / duration, "request_goodput": good / duration if slo else 0.0,
            "good_completed": good, "output_throughput": total_out / duration,
            "total_token_throughput": (total_in + total_out) / duration,
            "max_output_tokens_per_s": peak_tok, "max_concurrent_requests": peak_conc,
            "ttft": stat(ttfts), "tpot": stat(tpots), "itl": stat(itls), "e2el": stat(e2els)}


def main():
    rng = random.Random(20261124)
    cases = []
    for i, (n, fail, multi, slo) in enumerate([
            (1, 0.0, False, None),
            (25, 0.1, False, {"ttft": 800.0}),
            (120, 0.05, True, {"ttft": 1000.0, "tpot": 30.0}),
            (150, 0.02, False, {"ttft": 1200.0, "tpot": 40.0, "e2el": 2500.0}),
            (60, 1.0, False, {"e2el": 100.0})]):
        recs = make_case(rng, n, fail, multi)
        last = max([r["t_end"] for r in recs] + [r["t_send"] for r in recs])
        duration = round(last + rng.uniform(0.0, 0.5) + 0.01, 9)
        cases.append({"name": "case%d" % i, "duration": duration, "slo": slo, "pcts": PCTS,
                      "records": recs, "expected": reference(recs, duration, slo)})
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"generator": "tests/bench/make_metrics_ref.py", "cases": cases}, indent=None) + "\n")
    print("wrote", OUT, sum(len(c["records"]) for c in cases), "records")


if __name__ == "__main__":
    main()
