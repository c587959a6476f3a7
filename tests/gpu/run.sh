#!/usr/bin/env bash
# run.sh — the GPU suite: configure + build with the CUDA backend, run the gpu-labelled tests,
# compute-sanitizer memcheck on the tiny full-model test, the kernel benchmarks, and write
# <outdir>/gpu-suite-<commit>.json (device, commit, pass/fail/skip counts, per-test seconds,
# memcheck verdict, benchmark numbers). Needs only the CUDA toolkit and cJSON; cJSON may come
# from a prefix: CJSON_PREFIX=/path/to/prefix tests/gpu/run.sh out/
# Env: BUILD_DIR (default build-gpu-suite), JOBS (default nproc).
set -u
if [ $# -ne 1 ]; then
  echo "usage: $0 <outdir>" >&2
  exit 2
fi
OUT=$1
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD_DIR:-$ROOT/build-gpu-suite}
JOBS=${JOBS:-$(nproc)}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
LOG=$OUT/gpu-suite.log
: > "$LOG"

COMMIT=$(git -C "$ROOT" rev-parse --short=12 HEAD 2>/dev/null || echo nocommit)
if [ "$COMMIT" != nocommit ] && [ -n "$(git -C "$ROOT" status --porcelain 2>/dev/null)" ]; then COMMIT=$COMMIT-dirty; fi
DEVICE=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n1)
DEVICE=${DEVICE:-unknown}
DRIVER=$(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -n1)

CMAKE_ARGS=(-S "$ROOT" -B "$BUILD" -DG4_CUDA=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo)
if [ -n "${CJSON_PREFIX:-}" ]; then CMAKE_ARGS+=(-DCMAKE_PREFIX_PATH="$CJSON_PREFIX"); fi
if command -v ninja >/dev/null; then CMAKE_ARGS+=(-G Ninja); fi

t0=$(date +%s)
build_ok=true
{ cmake "${CMAKE_ARGS[@]}" && cmake --build "$BUILD" -j "$JOBS"; } >>"$LOG" 2>&1 || build_ok=false
build_s=$(( $(date +%s) - t0 ))
echo "build: $build_ok (${build_s}s)"

tests_json="[]"
passed=0 failed=0 skipped=0
if $build_ok; then
  (cd "$BUILD" && ctest -L gpu --output-on-failure) > "$OUT/ctest.log" 2>&1
  cat "$OUT/ctest.log" >> "$LOG"
  # lines like: " 1/6 Test  #9: test_gpu_ops .......   Passed    1.23 sec"
  tests_json=$(awk '
    /Test +#[0-9]+:/ {
      name = ""; status = ""; secs = "";
      for (i = 1; i <= NF; i++) {
        if ($i ~ /^#[0-9]+:$/) name = $(i + 1);
        if ($i == "sec") secs = $(i - 1);
      }
      if ($0 ~ /Passed/) status = "passed";
      else if ($0 ~ /Not Run|Skipped/) status = "skipped";
      else status = "failed";
      printf("%s{\"name\": \"%s\", \"status\": \"%s\", \"seconds\": %s}", n++ ? ", " : "", name, status, secs == "" ? "null" : secs);
    }
    BEGIN { printf("[") } END { printf("]") }' "$OUT/ctest.log")
  passed=$(grep -o '"status": "passed"' <<<"$tests_json" | wc -l)
  failed=$(grep -o '"status": "failed"' <<<"$tests_json" | wc -l)
  skipped=$(grep -o '"status": "skipped"' <<<"$tests_json" | wc -l)
fi
echo "tests: $passed passed, $failed failed, $skipped skipped"

memcheck="not run"
SANITIZER=$(command -v compute-sanitizer || true)
for c in "${CUDA_HOME:-/usr/local/cuda}/bin/compute-sanitizer" /usr/local/cuda/compute-sanitizer/compute-sanitizer; do
  if [ -z "$SANITIZER" ] && [ -x "$c" ]; then SANITIZER=$c; fi
done
if $build_ok && [ -n "$SANITIZER" ]; then
  if (cd "$ROOT" && "$SANITIZER" --tool memcheck --error-exitcode 3 "$BUILD/tests/gpu/test_gpu_model") \
      > "$OUT/memcheck.log" 2>&1; then
    memcheck="clean"
  else
    rc=$?
    if [ $rc -eq 77 ]; then memcheck="skipped (no GPU)"; else memcheck="errors (rc $rc)"; fi
  fi
  cat "$OUT/memcheck.log" >> "$LOG"
elif $build_ok; then
  memcheck="compute-sanitizer not found"
fi
echo "memcheck: $memcheck"

bench="null"
if $build_ok && "$BUILD/bench/kernels/g4-bench-kernels" > "$OUT/bench-kernels.json" 2>>"$LOG"; then
  bench=$(cat "$OUT/bench-kernels.json")
fi

# Whole-model throughput at full size (dummy weights), each vs its roofline.
model_bench="null"
if $build_ok; then
  parts=""
  # default (simple, verified-first) kernels for both models; the fast MoE/attention paths too
  # for 26B-A4B (G4_MOE_PATH / G4_ATTN_PATH, docs/operations.md)
  for run in "26b-a4b simple" "31b simple" "26b-a4b fast"; do
    set -- $run
    envs=()
    [ "$2" = fast ] && envs=(G4_MOE_PATH=fast G4_ATTN_PATH=auto)
    if env "${envs[@]}" "$BUILD/bench/kernels/g4-bench-model" --model "$1" > "$OUT/bench-model-$1-$2.json" 2>>"$LOG"; then
      parts="$parts${parts:+,} \"$1-$2\": $(cat "$OUT/bench-model-$1-$2.json")"
    fi
  done
  [ -n "$parts" ] && model_bench="{$parts}"
fi

RESULT=$OUT/gpu-suite-$COMMIT.json
cat > "$RESULT" <<JSON
{
  "suite": "g4serve gpu",
  "device": "$DEVICE",
  "driver": "${DRIVER:-unknown}",
  "commit": "$COMMIT",
  "date": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
  "build_ok": $build_ok,
  "build_seconds": $build_s,
  "passed": $passed,
  "failed": $failed,
  "skipped": $skipped,
  "tests": $tests_json,
  "memcheck": "$memcheck",
  "benchmarks": $bench,
  "model_benchmarks": $model_bench
}
JSON
echo "wrote $RESULT"
if ! $build_ok || [ "$failed" -ne 0 ] || [ "$memcheck" != clean ]; then exit 1; fi
exit 0
