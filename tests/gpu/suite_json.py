#!/usr/bin/env python3
"""suite_json.py — writes the GPU suite's result JSON from run.sh's state folder.

    suite_json.py STATE_DIR OUT_JSON

run.sh calls it after every step, so a run cut short still leaves a well-formed file: the JSON
is written to OUT_JSON.tmp and renamed over OUT_JSON. Standard library only (the device image's
python3 or any other). The state folder holds:
    meta.tsv     key<TAB>value lines (a later line overrides an earlier one)
    steps.tsv    name, kind, status, seconds, rc, reason, output file, extras (k=v;k=v)
    kit.json     the kit's manifest (tests/gpu/kit.sh), if any
A benchmark's output file is parsed as JSON; output that is not JSON (a program killed while
printing, a message with a stray quote) is kept as text under "unparsed". Not here: running
anything (run.sh), Markdown tables (bench/gpu_table.py)."""
import json
import os
import sys
import time

STATUSES = ("passed", "failed", "timeout", "skipped")


def read_tsv(path):
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8", errors="replace") as f:
        return [line.rstrip("\n").split("\t") for line in f if line.strip()]


def number(s):
    try:
        return float(s) if "." in s else int(s)
    except (TypeError, ValueError):
        return None


def bench_output(path):
    if not path or not os.path.exists(path):
        return None
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    try:
        return json.loads(text)
    except ValueError:
        return {"unparsed": text[-4000:]}


def main():
    state, out = sys.argv[1], sys.argv[2]
    meta = {}
    for row in read_tsv(os.path.join(state, "meta.tsv")):
        if len(row) >= 2:
            meta[row[0]] = row[1]
    kit = None
    if os.path.exists(os.path.join(state, "kit.json")):
        try:
            with open(os.path.join(state, "kit.json")) as f:
                kit = json.load(f)
        except ValueError as e:
            kit = {"unparsed": str(e)}

    steps, benchmarks, memcheck = [], {}, None
    counts = {s: 0 for s in STATUSES}
    for row in read_tsv(os.path.join(state, "steps.tsv")):
        row += [""] * (8 - len(row))
        name, kind, status, secs, rc, reason, outfile, extras = row[:8]
        step = {"name": name, "kind": kind, "status": status, "seconds": number(secs),
                "rc": number(rc), "reason": reason}
        for kv in filter(None, extras.split(";")):
            k, _, v = kv.partition("=")
            n = number(v)
            step[k] = v if n is None else n
        counts[status] = counts.get(status, 0) + 1
        if kind == "benchmark":
            result = bench_output(outfile)
            benchmarks[name] = {"status": status, "reason": reason, "seconds": step["seconds"],
                                "command": step.get("command", ""), "result": result}
        if kind == "memcheck":
            memcheck = step
        steps.append(step)

    doc = {
        "suite": "g4serve gpu",
        "schema": 1,
        "complete": meta.get("complete") == "1",
        "dry_run": meta.get("gpu") != "1",
        "commit": meta.get("commit", "unknown"),
        "kit_dirty_files": number(meta.get("kit_dirty_files")),
        "started": meta.get("started"),
        "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "elapsed_seconds": number(meta.get("elapsed")),
        "budget_seconds": number(meta.get("budget")),
        "device": {
            "name": meta.get("device_name"),
            "driver": meta.get("driver"),
            "cuda_driver_api": meta.get("cuda_version"),
            "memory_total_mib": number(meta.get("memory_total_mib")),
            "memory_free_mib": number(meta.get("memory_free_mib")),
            "compute_capability": meta.get("compute_cap"),
            "no_gpu_reason": meta.get("no_gpu_reason") or None,
        },
        "host": meta.get("host"),
        "binaries": meta.get("binaries"),
        "cuda_toolkit_build": meta.get("kit_nvcc"),
        "compute_sanitizer": meta.get("sanitizer") or None,
        "missing_libraries": [s for s in meta.get("missing_libs", "").split(" ") if s],
        "summary": counts,
        "steps": steps,
        "memcheck": memcheck,
        "benchmarks": benchmarks,
        "kit": kit,
    }
    tmp = out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1, ensure_ascii=False)
        f.write("\n")
    os.replace(tmp, out)


if __name__ == "__main__":
    main()
