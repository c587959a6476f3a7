"""test_bench_spec.py - g4-bench-spec runs end to end on the tiny model and its JSON holds what it
claims: both workloads with speculation off and on, every request's tokens, greedy tokens equal
with and without speculation, the per-request acceptance counts (final events) summing to the
engine's counters, none without speculation, and accepted <= proposed <= k * proposals. A bad
--speculative-config is refused (status 2) naming the field. Plain Python (json, subprocess)."""
import json
import os
import pathlib
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[2]


def find():
    p = os.environ.get("G4_BENCH_SPEC")
    if p:
        return p
    for d in sorted(ROOT.glob("build*")):
        if (d / "bench/engine/g4-bench-spec").exists():
            return str(d / "bench/engine/g4-bench-spec")
    print("skipped: g4-bench-spec not built")
    sys.exit(77)


def main():
    exe = find()
    k, n, out_len = 3, 3, 12
    cfg = {"method": "ngram", "num_speculative_tokens": k, "prompt_lookup_max": 3, "prompt_lookup_min": 1}
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "spec.json")
        subprocess.run([exe, "-n", str(n), "--input", "48", "--output", str(out_len), "--block", "8",
                        "--concurrency", "2", "--speculative-config", json.dumps(cfg), "--result-file", path],
                       check=True, timeout=600)
        r = json.load(open(path))
        bad = subprocess.run([exe, "--speculative-config", '{"method":"medusa","num_speculative_tokens":2}'],
                             capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "method" in bad.stderr, bad.stderr
    assert r["speculative_config"] == cfg, r["speculative_config"]
    assert r["load"]["requests_per_workload"] == n and r["load"]["temperature"] == 0
    assert set(r["workloads"]) == {"repetitive", "random"}
    for name, w in r["workloads"].items():
        assert w["greedy_tokens_identical"] is True, name
        for mode in ("off", "on"):
            m = w[mode]
            assert m["output_tokens"] == n * out_len, (name, mode)
            assert m["per_request_counts_match"] is True, (name, mode)
            assert m["output_tok_s"] > 0 and m["e2e_ms"]["mean"] > 0 and m["steps"] > 0, (name, mode)
            assert m["spec_accepted_tokens"] <= m["spec_draft_tokens"] <= k * m["spec_drafts"], (name, mode)
        assert w["off"]["spec_drafts"] == 0 and w["off"]["spec_draft_tokens"] == 0, name
        assert w["speedup_throughput"] > 0 and w["speedup_latency"] > 0, name
    print("g4-bench-spec: JSON checks passed (engine speculated: %s)" % r["engine_speculated"])


if __name__ == "__main__":
    main()
