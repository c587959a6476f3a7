#!/usr/bin/env bash
# fuzz.sh — a fuzzing campaign: every fuzz target of tests/fuzz/ under libFuzzer, one after the
# other, each until G4_FUZZ_RUNS executions (default 1,000,000, issue 20's goal; 0 = no count
# limit) or SECONDS (default 60, the time cap) whichever comes first, and a JSON report on stdout:
# per target the executions, executions per second, coverage (libFuzzer's final cov = edges,
# ft = features), corpus size, peak RSS, wall seconds, what stopped it (runs or time), the load
# average around it, and whether it crashed (the crash input is kept under the build tree, path in
# the report). Exit 1 when any target crashed. The fuzzers run under `nice -n ${G4_FUZZ_NICE:-10}`
# so that other work on the machine keeps priority (exec/s are then lower bounds). An input that
# runs longer than G4_FUZZ_TIMEOUT seconds (default 10, wall time) is a finding; raise it when the
# fuzzers share a loaded machine at a high nice level, where starvation alone can pass 10 s
# (a regex input that replays in 0.24 s timed out at nice 19 beside a CI run). A fuzzer stopped
# with SIGINT (pkill -INT -f fuzz_<target>) is reported as stopped_by "interrupted", not a crash.
#
#   bash bench/fuzz.sh [SECONDS] [TARGET...] > REPORT.json   (committed reports: bench/results/)
#   G4_FUZZ_RUNS=1000000 bash bench/fuzz.sh 1800 > REPORT.json   (bench/results/fuzz-1m-2026-11-30.json)
#
# Builds the libFuzzer targets first (clang-16, ASan + UBSan, G4_FUZZ=ON) in $G4_FUZZ_BUILD_DIR
# (default build-fuzz). New inputs go to a scratch corpus in the build tree; the committed seed
# corpus (tests/fuzz/corpus/) is read, never written. The issue-20 goal is 1M executions per
# target without a crash: pass a SECONDS cap the slowest target can reach 1M in (see exec_per_s).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
seconds="${1:-60}"
shift || true
build="${G4_FUZZ_BUILD_DIR:-$root/build-fuzz}"
runs="${G4_FUZZ_RUNS:-1000000}"
nice_n="${G4_FUZZ_NICE:-10}"
timeout_s="${G4_FUZZ_TIMEOUT:-10}"

cmake -S "$root" -B "$build" -G Ninja -DCMAKE_C_COMPILER=clang-16 -DG4_CUDA=OFF -DG4_SANITIZE=ON -DG4_FUZZ=ON \
  -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS_DEBUG="-O1 -g" >/dev/null
nice -n "$nice_n" cmake --build "$build" -j"${G4_JOBS:-2}" --target fuzz-targets >/dev/null

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for d in "$root"/tests/fuzz/corpus/*/; do
    t=$(basename "$d")
    [ -x "$build/tests/fuzz/fuzz_$t" ] && targets+=("$t")
  done
fi

export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1" UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
logs="$build/tests/fuzz/campaign"
mkdir -p "$logs"
rows=()
failed=0
for t in "${targets[@]}"; do
  scratch="$build/tests/fuzz/scratch/$t"
  mkdir -p "$scratch" "$logs/$t"
  rc=0
  load0=$(cut -d' ' -f1-3 /proc/loadavg)
  t0=$(date +%s.%N)
  nice -n "$nice_n" "$build/tests/fuzz/fuzz_$t" -runs="$((runs > 0 ? runs : -1))" -max_total_time="$seconds" \
    -rss_limit_mb=2048 -timeout="$timeout_s" -print_final_stats=1 -artifact_prefix="$logs/$t/" \
    "$scratch" "$root/tests/fuzz/corpus/$t" >"$logs/$t.log" 2>&1 || rc=$?
  t1=$(date +%s.%N)
  load1=$(cut -d' ' -f1-3 /proc/loadavg)
  [ "$rc" -eq 0 ] || grep -q "libFuzzer: run interrupted" "$logs/$t.log" || failed=1
  rows+=("$(python3 - "$t" "$rc" "$logs/$t.log" "$logs/$t" "$t0" "$t1" "$load0" "$load1" "$runs" <<'PY'
import json, os, re, sys
name, rc, log, art = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
wall = float(sys.argv[6]) - float(sys.argv[5])
runs = int(sys.argv[9])
text = open(log, errors="replace").read()
if "libFuzzer: run interrupted" in text:  # SIGINT to the fuzzer: stopped by hand, not a finding
    rc = -2
stat = dict(re.findall(r"^stat::(\w+):\s+(\d+)", text, re.M))
last = re.findall(r"^#(\d+)\s+\w+\s+cov: (\d+) ft: (\d+) corp: (\d+)/", text, re.M)
row = {"target": name, "seconds": round(wall, 1),
       "executions": int(stat.get("number_of_executed_units", last[-1][0] if last else 0)),
       "exec_per_s": int(stat.get("average_exec_per_sec", 0)),  # libFuzzer's: whole seconds
       "cov": int(last[-1][1]) if last else None, "ft": int(last[-1][2]) if last else None,
       "corpus": int(last[-1][3]) if last else None,
       "peak_rss_mb": int(stat["peak_rss_mb"]) if "peak_rss_mb" in stat else None,
       "crashed": rc > 0,
       "load_avg_before_after": [sys.argv[7], sys.argv[8]]}
if not row["exec_per_s"] and wall > 0:
    row["exec_per_s"] = int(row["executions"] / wall)  # under a second: libFuzzer reports 0
row["stopped_by"] = ("crash" if rc > 0 else "interrupted" if rc == -2 else
                     "runs" if runs > 0 and row["executions"] >= runs else "time")
if rc > 0:
    row["artifacts"] = sorted(os.path.join(art, f) for f in os.listdir(art))
    m = re.search(r"^SUMMARY: .*$", text, re.M)
    row["summary"] = m.group(0) if m else "exit %d" % rc
print(json.dumps(row))
PY
)")
done

python3 - "$seconds" "$runs" "$nice_n" "${rows[@]}" <<'PY'
import json, subprocess, sys, datetime
seconds, runs, nice_n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
rows = [json.loads(r) for r in sys.argv[4:]]
cc = subprocess.run(["clang-16", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
print(json.dumps({
    "what": "libFuzzer campaign over the tests/fuzz targets (bench/fuzz.sh), ASan + UBSan, seeds tests/fuzz/corpus",
    "date": datetime.datetime.utcnow().strftime("%Y-%m-%dT%H:%MZ"),
    "seconds_per_target": seconds, "runs_per_target": runs or None, "nice": nice_n, "compiler": cc, "cpus": len(__import__("os").sched_getaffinity(0)),
    "million_exec_goal_met": all(r["executions"] >= 1_000_000 and not r["crashed"] for r in rows),
    "targets": rows}, indent=2))
PY
exit "$failed"
