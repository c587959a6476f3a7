#!/usr/bin/env bash
# kit_check.sh — CI check of the GPU kit and of tests/gpu/run.sh, on a machine without a GPU
# (ctest label kit). Makes a kit from an already-built tree and checks:
#   1. the kit (what travels to the device machine) is at most 60 MiB;
#   2. a dry run (no GPU: a failing nvidia-smi, CUDA_VISIBLE_DEVICES="") exits 0 and its result
#      JSON is well formed, complete, and reports every step "skipped" with a reason, never
#      "passed"; no kit binary misses a library;
#   3. with a stand-in GPU (nvidia-smi answering, 20000 MiB free) and a stand-in compute-sanitizer,
#      the memcheck verdict comes from the "ERROR SUMMARY" line, not the exit code (3 errors with
#      exit 0 → failed; 0 errors → clean), and 31B is skipped for lack of memory;
#   4. bench/gpu_table.py turns the dry-run JSON into docs/benchmarks.md's table; the shell writer
#      (no python3) also writes well-formed JSON; a budget too small skips the
#      steps with that reason; a run killed part-way leaves a well-formed, incomplete file.
#   usage: tests/gpu/kit_check.sh BUILD_DIR     (a configured CUDA build: the kit rebuilds nothing
#                                                that is up to date)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)
T=$(mktemp -d "${TMPDIR:-/tmp}/g4-kit-check.XXXXXX")
trap 'rm -rf "$T"' EXIT
fails=0
ok() { echo "ok    $*"; }
bad() { echo "FAIL  $*"; fails=$((fails + 1)); }

G4_KIT_BUILD_DIR=$BUILD bash "$ROOT/tests/gpu/kit.sh" "$T/kit" >"$T/kit.log" 2>&1 || { cat "$T/kit.log"; exit 1; }
tail -n2 "$T/kit.log"
size=$(du -sb "$T/kit" | cut -f1)
limit=$((60 * 1024 * 1024))
[ "$size" -le "$limit" ] && ok "kit is $((size / 1024)) KiB (limit 60 MiB)" || bad "kit is $size bytes, over 60 MiB"

# run.sh unpacks into $TMPDIR: keep that inside $T, so a killed run leaves nothing behind
export TMPDIR=$T/tmp
mkdir -p "$TMPDIR"

# stand-ins: a driverless nvidia-smi, a GPU's nvidia-smi, a compute-sanitizer
mkdir -p "$T/nogpu" "$T/gpu"
printf '#!/bin/sh\necho "NVIDIA-SMI has failed because it couldn'"'"'t communicate with the NVIDIA driver."\nexit 9\n' >"$T/nogpu/nvidia-smi"
cat >"$T/gpu/nvidia-smi" <<'EOF'
#!/bin/sh
case "$*" in
  *query-gpu*) echo "NVIDIA Stand-in, 580.00.00, 81559, 20000, 9.0" ;;
  *) echo "| NVIDIA-SMI 580.00.00   Driver Version: 580.00.00   CUDA Version: 13.0 |" ;;
esac
EOF
cat >"$T/gpu/compute-sanitizer" <<'EOF'
#!/bin/sh
echo "========= COMPUTE-SANITIZER"
echo "========= ERROR SUMMARY: ${FAKE_ERRORS:-0} errors"
exit 0
EOF
chmod +x "$T"/nogpu/* "$T"/gpu/*
export CUDA_VISIBLE_DEVICES=""

# json FILE PYTHON-EXPRESSION... — each expression over d (the result) must be true
json() {
  local f=$1
  shift
  python3 - "$f" "$@" <<'EOF'
import json, sys
try:
    d = json.load(open(sys.argv[1]))
except Exception as e:
    print("  not well-formed JSON: %s" % e); sys.exit(1)
rc = 0
for expr in sys.argv[2:]:
    if not eval(expr, {"d": d}):
        print("  false: %s" % expr); rc = 1
sys.exit(rc)
EOF
}
result() { ls "$1"/gpu-suite-*.json 2>/dev/null | head -n1 || true; }

# 2. the dry run
if PATH=$T/nogpu:$PATH bash "$ROOT/tests/gpu/run.sh" "$T/kit" "$T/dry" >"$T/dry.out" 2>&1; then
  ok "dry run exits 0"
else
  bad "dry run exit code"; cat "$T/dry.out"
fi
f=$(result "$T/dry")
if [ -n "$f" ] && json "$f" 'd["complete"] and d["dry_run"]' 'len(d["steps"]) >= 6' \
    'all(s["status"] == "skipped" and s["reason"] for s in d["steps"])' 'd["summary"]["passed"] == 0' \
    'd["missing_libraries"] == []' 'd["memcheck"]["verdict"] == "not run"' \
    'set(d["benchmarks"]) == {"kernels", "model-26b-a4b", "model-31b", "model-26b-a4b-fast"}' \
    'any(s["kind"] == "test" and s["reason"].startswith("exit 77") for s in d["steps"])' \
    'd["device"]["no_gpu_reason"].startswith("no CUDA device")'; then
  ok "dry-run JSON: well formed, every step skipped with a reason ($(basename "$f"))"
else
  bad "dry-run JSON $f"; cat "$T/dry.out"
fi
ls "$T/dry" | grep -qv '^gpu-suite' && bad "dry run left other files in OUTDIR: $(ls "$T/dry")"
# the Markdown table of docs/benchmarks.md from that file
cp "$ROOT/docs/benchmarks.md" "$T/benchmarks.md"
if python3 "$ROOT/bench/gpu_table.py" "$f" --update "$T/benchmarks.md" &&
    python3 "$ROOT/bench/gpu_table.py" "$f" --update "$T/benchmarks.md" &&
    [ "$(grep -c '^| test_gpu_[a-z_]* | test | skipped |' "$T/benchmarks.md")" -ge 5 ] &&
    grep -q '^### GPU suite — no device (dry run' "$T/benchmarks.md" && [ "$(grep -c 'gpu-table' "$T/benchmarks.md")" = 2 ]; then
  ok "bench/gpu_table.py: dry-run table into docs/benchmarks.md's markers (twice)"
else
  bad "bench/gpu_table.py on $f"
fi

# 3. stand-in GPU: memcheck verdicts and the 31B memory gate
for n in 3 0; do
  out=$T/fake$n
  PATH=$T/gpu:$PATH FAKE_ERRORS=$n COMPUTE_SANITIZER=$T/gpu/compute-sanitizer G4_SUITE_STEPS="memcheck model-31b" \
    bash "$ROOT/tests/gpu/run.sh" "$T/kit" "$out" >"$out.out" 2>&1 || true
  if [ "$n" = 3 ]; then want='d["memcheck"]["status"] == "failed" and d["memcheck"]["verdict"] == "errors" and d["memcheck"]["errors"] == 3'
  else want='d["memcheck"]["status"] == "passed" and d["memcheck"]["verdict"] == "clean"'; fi
  if json "$(result "$out")" 'not d["dry_run"]' 'd["device"]["name"] == "NVIDIA Stand-in"' "$want" \
      '"free GPU memory" in d["benchmarks"]["model-31b"]["reason"]' \
      'd["benchmarks"]["kernels"]["reason"].startswith("not selected")'; then
    ok "stand-in GPU, ERROR SUMMARY: $n errors with exit 0 → $([ "$n" = 3 ] && echo failed || echo clean); 31B gated on memory"
  else
    bad "stand-in GPU with $n sanitizer errors"; cat "$out.out"
  fi
done

# 4. shell writer, budget, a run killed part-way
PATH=$T/nogpu:$PATH G4_SUITE_PYTHON="" bash "$ROOT/tests/gpu/run.sh" "$T/kit" "$T/shell" >"$T/shell.out" 2>&1 || true
json "$(result "$T/shell")" 'd["writer"].startswith("shell")' 'd["complete"]' \
  'all(s["status"] == "skipped" for s in d["steps"])' && ok "shell writer: well-formed JSON" || bad "shell writer"
PATH=$T/gpu:$PATH G4_SUITE_BUDGET_S=10 bash "$ROOT/tests/gpu/run.sh" "$T/kit" "$T/budget" >"$T/budget.out" 2>&1 || true
json "$(result "$T/budget")" 'all(s["status"] == "skipped" for s in d["steps"])' \
  'all("budget" in s["reason"] for s in d["steps"] if s["name"] != "model-31b")' &&
  ok "a spent budget skips steps, saying so" || bad "budget"
(PATH=$T/nogpu:$PATH timeout -s KILL 1 bash "$ROOT/tests/gpu/run.sh" "$T/kit" "$T/killed" >/dev/null 2>&1 || true) 2>/dev/null
f=$(result "$T/killed")
if [ -z "$f" ]; then
  ok "killed run: killed before its first write (nothing to check)"
elif json "$f" 'isinstance(d["steps"], list)'; then
  ok "killed run: well-formed JSON ($(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(len(d["steps"]), "steps, complete =", d["complete"])' "$f"))"
else
  bad "killed run left a malformed JSON"
fi

echo "kit_check: $fails failed"
[ "$fails" -eq 0 ]
