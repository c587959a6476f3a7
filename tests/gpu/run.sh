#!/usr/bin/env bash
# run.sh — the GPU suite, run from a prebuilt kit (tests/gpu/kit.sh) inside one device window.
#
#   usage: tests/gpu/run.sh KITDIR OUTDIR
#
# Nothing is built here (unless the kit's binaries cannot load: then one GPU-targets-only build
# from the tree, with the kit's cJSON prefix). At most G4_SUITE_BUDGET_S (400) seconds of command
# time; every step runs under its own `timeout`, cut to what the budget has left; in order of value:
#   tests           each gpu-labelled test executable of the kit (90 s each, 180 s together)
#   memcheck        compute-sanitizer memcheck on test_gpu_model (tiny dense + MoE forward, with
#                   G4_DEBUG_SYNC=1 so a fault names its op and layer); the verdict is its
#                   "ERROR SUMMARY" line, never its exit code (120 s)
#   kernels         g4-bench-kernels: op timings with the ceilings (copy GB/s, cuBLAS bf16
#                   TFLOP/s) measured in the same run (90 s)
#   model-26b-a4b   g4-bench-model: decode at batch 1, 8, 32 (context 1024), prefill 4096 (90 s)
#   model-31b       the same at batch 1, when ≥ G4_SUITE_31B_MIN_FREE_MIB (68000) MiB of GPU
#                   memory is free: 31B's weights alone are ~62 GB (75 s)
#   model-26b-a4b-fast  26B-A4B again with G4_MOE_PATH=fast G4_ATTN_PATH=auto (75 s)
# OUTDIR receives two files: gpu-suite-<commit>.json, rewritten after every step (a run cut short
# still returns a well-formed file; the one to commit as bench/results/), and gpu-suite.log
# (every step's output, capped). The JSON is written by suite_json.py (python3), or by a minimal
# shell writer (statuses only) where there is no python3.
# Without a GPU (the dry run) every GPU step is "skipped" with its reason; the test executables
# still run and exit 77, which shows the kit's binaries load. Exit 0 unless a step failed or
# timed out. The exact device call: docs/operations.md, "GPU run".
# Env: G4_SUITE_BUDGET_S (400), G4_SUITE_STEPS (default: all six names above, space-separated),
#      G4_SUITE_REBUILD=1 (build there even if the kit's binaries load), G4_SUITE_31B_MIN_FREE_MIB,
#      COMPUTE_SANITIZER (path of compute-sanitizer), G4_SUITE_PYTHON (the JSON writer's python3;
#      empty: the shell writer), G4_SUITE_KEEP_WORK=1 (keep the unpacked kit and step logs in
#      /tmp/g4-gpu-suite.*; by default removed at exit: the logs are in gpu-suite.log).
set -u
if [ $# -ne 2 ]; then
  echo "usage: $0 KITDIR OUTDIR   (make KITDIR with tests/gpu/kit.sh)" >&2
  exit 2
fi
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
KIT=$(cd "$1" 2>/dev/null && pwd) || { echo "run.sh: no kit at $1 (tests/gpu/kit.sh makes it)" >&2; exit 2; }
[ -f "$KIT/kit.tar.gz" ] && [ -f "$KIT/manifest.env" ] || { echo "run.sh: $KIT is not a kit" >&2; exit 2; }
mkdir -p "$2" && OUTD=$(cd "$2" && pwd) || exit 2
BUDGET=${G4_SUITE_BUDGET_S:-400}
ALL_STEPS="tests memcheck kernels model-26b-a4b model-31b model-26b-a4b-fast"
STEPS=" ${G4_SUITE_STEPS:-$ALL_STEPS} "
MIN_FREE_31B=${G4_SUITE_31B_MIN_FREE_MIB:-68000}
T0=$(date +%s)
T0N=$(date +%s.%N)
DEADLINE=$((T0 + BUDGET))
WORK=$(mktemp -d "${TMPDIR:-/tmp}/g4-gpu-suite.XXXXXX")
STATE=$WORK/state
mkdir -p "$STATE" "$WORK/logs" "$WORK/kit" "$WORK/run"
LOG=$OUTD/gpu-suite.log
: >"$LOG"
# shellcheck disable=SC1091
. "$KIT/manifest.env"
COMMIT=${KIT_COMMIT:0:12}
[ "${KIT_DIRTY_FILES:-0}" -gt 0 ] && COMMIT=$COMMIT-dirty
RESULT=$OUTD/gpu-suite-$COMMIT.json
cp "$KIT/manifest.json" "$STATE/kit.json"
PY=${G4_SUITE_PYTHON-$(command -v python3 || true)}

# --- state and the result file -------------------------------------------------------------------
clean() { tr '\t\n\r' '   ' <<<"$1" | sed 's/ *$//'; }
meta() { printf '%s\t%s\n' "$1" "$(clean "$2")" >>"$STATE/meta.tsv"; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf("%.1f", b - a) }'; }

write_json() {
  meta elapsed "$(since "$T0N")"
  if [ -n "$PY" ] && "$PY" "$ROOT/tests/gpu/suite_json.py" "$STATE" "$RESULT" 2>>"$LOG"; then return; fi
  # minimal writer: statuses and reasons only (benchmark outputs stay in gpu-suite.log)
  awk -F'\t' -v commit="$COMMIT" -v complete="$(grep -c '^complete	1' "$STATE/meta.tsv")" '
    function q(s) { gsub(/[\\"]/, "\x27", s); gsub(/[\001-\037]/, " ", s); return "\"" s "\"" }
    BEGIN { printf("{\"suite\": \"g4serve gpu\", \"schema\": 1, \"writer\": \"shell (no python3): benchmark outputs are in gpu-suite.log\",\n \"commit\": %s, \"complete\": %s,\n \"steps\": [", q(commit), complete > 0 ? "true" : "false") }
    { printf("%s\n  {\"name\": %s, \"kind\": %s, \"status\": %s, \"seconds\": %s, \"reason\": %s}", NR > 1 ? "," : "", q($1), q($2), q($3), $4 ~ /^[0-9.]+$/ ? $4 : "null", q($6)) }
    END { printf("]}\n") }' "$STATE/steps.tsv" >"$RESULT.tmp" 2>/dev/null && mv "$RESULT.tmp" "$RESULT"
}

# record NAME KIND STATUS SECONDS RC REASON [OUTFILE] [EXTRAS k=v;k=v] — one step's row, then the JSON
record() {
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" "$(clean "${6:0:400}")" "${7:-}" \
    "$(clean "${8:-}")" >>"$STATE/steps.tsv"
  printf '%-22s %-9s %6ss  %s\n' "$1" "$3" "$4" "${6:0:100}"
  write_json
}

# run_cmd NAME TIMEOUT OUTFILE CMD... — runs CMD in $WORK/run under `timeout`, cut to the budget.
# OUTFILE "" = stdout into the step's log. Sets RC, SECS, STATUS, REASON; returns 1 when the
# budget has no room for the step (STATUS=skipped).
run_cmd() {
  local name=$1 limit=$2 out=$3 log=$WORK/logs/$1.log left
  shift 3
  left=$((DEADLINE - $(date +%s) - 5))
  if [ "$left" -lt 15 ]; then
    STATUS=skipped RC="" SECS=0 REASON="suite budget of ${BUDGET}s spent"
    return 1
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  local t=$(now)
  if [ -n "$out" ]; then
    (cd "$WORK/run" && timeout -k 5 "$limit" "$@") >"$out" 2>"$log"
  else
    (cd "$WORK/run" && timeout -k 5 "$limit" "$@") >"$log" 2>&1
  fi
  RC=$?
  SECS=$(since "$t")
  case $RC in
    0) STATUS=passed REASON="" ;;
    77) STATUS=skipped
        REASON=$(cat "$log" ${out:+"$out"} 2>/dev/null | sed -n 's/^SKIPPED: //p; s/.*"skipped": *"\([^"]*\)".*/\1/p' | head -n1)
        REASON="exit 77: ${REASON:-skipped by the program}" ;;
    124|137) STATUS=timeout REASON="killed after ${limit}s" ;;
    *) STATUS=failed REASON="exit $RC: $(grep -v '^ *$' "$log" | tail -n1)" ;;
  esac
  # gpu-suite.log comes back only under 16 MiB: 500 kB per stream, 12 MB in all
  if [ "$(stat -c %s "$LOG")" -lt 12000000 ]; then
    { echo "=== $name: $STATUS (${SECS}s, rc $RC): $*"; head -c 500000 "$log"
      [ -n "$out" ] && { echo "--- stdout:"; head -c 500000 "$out"; }; echo; } >>"$LOG"
  else
    echo "=== $name: $STATUS (${SECS}s, rc $RC): output dropped, gpu-suite.log is full" >>"$LOG"
  fi
  return 0
}

selected() { [[ $STEPS == *" $1 "* ]]; }
trap 'meta interrupted 1; write_json; exit 143' TERM INT
[ "${G4_SUITE_KEEP_WORK:-0}" = 1 ] || trap 'rm -rf "$WORK"' EXIT

# --- preflight: kit, device, libraries ---------------------------------------------------------
meta started "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
meta commit "$COMMIT"
meta kit_dirty_files "${KIT_DIRTY_FILES:-0}"
meta kit_nvcc "${KIT_NVCC:-}"
meta budget "$BUDGET"
meta host "$(uname -m) $(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME"), $(nproc) cores"
tar -xzf "$KIT/kit.tar.gz" -C "$WORK/kit" || { echo "run.sh: cannot unpack $KIT/kit.tar.gz" >&2; exit 2; }
BIN=$WORK/kit/bin
meta binaries kit

GPU=0
if ! command -v nvidia-smi >/dev/null; then
  meta no_gpu_reason "no CUDA device: nvidia-smi not found"
else
  q=$(timeout 30 nvidia-smi --query-gpu=name,driver_version,memory.total,memory.free,compute_cap \
      --format=csv,noheader,nounits 2>&1 | head -n1) ||
    q=$(timeout 30 nvidia-smi --query-gpu=name,driver_version,memory.total,memory.free \
      --format=csv,noheader,nounits 2>&1 | head -n1)
  IFS=',' read -r g_name g_driver g_total g_free g_cc <<<"$q"
  if [[ ${g_total// /} =~ ^[0-9]+$ ]]; then
    GPU=1
    meta device_name "${g_name# }"; meta driver "${g_driver# }"
    meta memory_total_mib "${g_total// /}"; meta memory_free_mib "${g_free// /}"; meta compute_cap "${g_cc# }"
    meta cuda_version "$(timeout 30 nvidia-smi 2>/dev/null | sed -n 's/.*CUDA Version: *\([0-9.]*\).*/\1/p' | head -n1)"
  else
    meta no_gpu_reason "no CUDA device: nvidia-smi: ${q:-no output}"
  fi
fi
meta gpu "$GPU"
NO_GPU=$(awk -F'\t' '$1 == "no_gpu_reason" { r = $2 } END { print r }' "$STATE/meta.tsv")

# libraries: the kit's, then the toolkit's, then the Python image's CUDA wheels (cuBLAS, NCCL)
LIBS=$WORK/kit/lib
for d in /usr/local/cuda/lib64 /usr/local/cuda/lib /usr/local/cuda/targets/x86_64-linux/lib; do
  [ -d "$d" ] && LIBS=$LIBS:$d
done
if [ -n "$PY" ]; then
  for d in $("$PY" -c 'import glob, site
print(" ".join(sorted({d for p in site.getsitepackages() for d in glob.glob(p + "/nvidia/*/lib")})))' 2>/dev/null); do
    LIBS=$LIBS:$d
  done
fi
export LD_LIBRARY_PATH=$LIBS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
missing() { ldd "$1"/* 2>&1 | sed -n 's/^[[:space:]]*\([^ ]*\) => not found.*/\1/p; s/.*\(version `[^'"'"']*'"'"' not found\).*/\1/p' | sort -u | paste -sd' ' -; }
MISSING=$(missing "$BIN")
meta missing_libs "$MISSING"
echo "run.sh: kit ${COMMIT}, $( [ $GPU = 1 ] && echo "GPU: ${g_name# }, ${g_free// /} MiB free" || echo "$NO_GPU"), budget ${BUDGET}s"
[ -n "$MISSING" ] && echo "run.sh: the kit's binaries miss: $MISSING"
write_json

# fallback: one GPU-targets-only build from the tree, with the kit's cJSON prefix
if [ -n "$MISSING" ] || [ "${G4_SUITE_REBUILD:-0}" = 1 ]; then
  gen=(); command -v ninja >/dev/null && gen=(-G Ninja)
  targets=($KIT_TESTS g4-bench-kernels g4-bench-model)
  if ! command -v cmake >/dev/null; then
    record rebuild build failed 0 "" "no cmake for the fallback build"
  elif run_cmd rebuild 240 "" bash -c "cmake -S '$ROOT' -B '$WORK/build' ${gen[*]} -DG4_CUDA=ON \
        -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_PREFIX_PATH='$WORK/kit/cjson' >/dev/null &&
        cmake --build '$WORK/build' -j $(nproc) --target ${targets[*]}"; then
    if [ "$STATUS" = passed ]; then
      mkdir -p "$WORK/rebuilt"
      for t in $KIT_TESTS; do cp "$WORK/build/tests/gpu/$t" "$WORK/rebuilt/"; done
      cp "$WORK/build/bench/kernels/g4-bench-kernels" "$WORK/build/bench/kernels/g4-bench-model" "$WORK/rebuilt/"
      BIN=$WORK/rebuilt
      meta binaries "built on the device from the tree (kit binaries: ${MISSING:-G4_SUITE_REBUILD=1})"
      meta missing_libs "$(missing "$BIN")"
    fi
    record rebuild build "$STATUS" "$SECS" "$RC" "$REASON"
  else
    record rebuild build skipped 0 "" "$REASON"
  fi
fi

# --- 1. gpu tests --------------------------------------------------------------------------------
tests_end=$(($(date +%s) + 180))
for t in $KIT_TESTS; do
  if ! selected tests; then
    record "$t" test skipped 0 "" "not selected (G4_SUITE_STEPS)"
  elif [ "$(date +%s)" -ge "$tests_end" ]; then
    record "$t" test skipped 0 "" "the tests' 180 s were spent"
  elif run_cmd "$t" 90 "" "$BIN/$t"; then
    record "$t" test "$STATUS" "$SECS" "$RC" "$REASON"
  else
    record "$t" test skipped 0 "" "$REASON"
  fi
done

# --- 2. compute-sanitizer memcheck on one small forward -------------------------------------------
SAN=${COMPUTE_SANITIZER:-$(command -v compute-sanitizer || true)}
for c in /usr/local/cuda/bin/compute-sanitizer /usr/local/cuda/compute-sanitizer/compute-sanitizer; do
  [ -z "$SAN" ] && [ -x "$c" ] && SAN=$c
done
meta sanitizer "$SAN"
mc_extra="target=test_gpu_model"
if ! selected memcheck; then
  record memcheck memcheck skipped 0 "" "not selected (G4_SUITE_STEPS)" "" "$mc_extra;verdict=not run"
elif [ $GPU = 0 ]; then
  record memcheck memcheck skipped 0 "" "$NO_GPU" "" "$mc_extra;verdict=not run"
elif [ -z "$SAN" ]; then
  record memcheck memcheck skipped 0 "" "compute-sanitizer not found" "" "$mc_extra;verdict=not run"
elif ! run_cmd memcheck 120 "" env G4_DEBUG_SYNC=1 "$SAN" --tool memcheck --print-limit 50 "$BIN/test_gpu_model"; then
  record memcheck memcheck skipped 0 "" "$REASON" "" "$mc_extra;verdict=not run"
else
  mlog=$WORK/logs/memcheck.log
  n=$(sed -n 's/.*ERROR SUMMARY: \([0-9][0-9]*\) error.*/\1/p' "$mlog" | tail -n1)
  api=$(grep -c 'Program hit' "$mlog")
  if [ -n "$n" ] && [ "$n" = 0 ]; then
    st=passed verdict=clean why="ERROR SUMMARY: 0 errors (program exit $RC)"
    [ "$RC" = 0 ] || { st=failed; why="ERROR SUMMARY: 0 errors, but the program itself exited $RC"; }
    [ "$RC" = 77 ] && { st=skipped; verdict="not run"; why="$REASON"; }
  elif [ -n "$n" ]; then
    st=failed verdict=errors why="ERROR SUMMARY: $n errors ($api CUDA API errors among them)"
  elif [ "$STATUS" = timeout ]; then
    st=timeout verdict=incomplete why="no ERROR SUMMARY: $REASON"
  else
    st=failed verdict=incomplete why="no ERROR SUMMARY line (exit $RC): $(grep -v '^ *$' "$mlog" | tail -n1)"
  fi
  record memcheck memcheck "$st" "$SECS" "$RC" "$why" "" "$mc_extra;verdict=$verdict;errors=${n:-};api_errors=$api;program_rc=$RC"
fi

# --- 3-6. benchmarks ----------------------------------------------------------------------------
# bench NAME TIMEOUT GATE-REASON ENV... -- CMD...   (GATE-REASON non-empty: skipped for that reason)
bench() {
  local name=$1 limit=$2 gate=$3 envs=() out=$WORK/bench-$1.json
  shift 3
  while [ "$1" != -- ]; do envs+=("$1"); shift; done
  shift
  local extra="command=${envs[*]}${envs:+ }$(basename "$1") ${*:2}"
  if ! selected "$name"; then
    record "$name" benchmark skipped 0 "" "not selected (G4_SUITE_STEPS)" "" "$extra"
  elif [ $GPU = 0 ]; then
    record "$name" benchmark skipped 0 "" "$NO_GPU" "" "$extra"
  elif [ -n "$gate" ]; then
    record "$name" benchmark skipped 0 "" "$gate" "" "$extra"
  elif run_cmd "$name" "$limit" "$out" env "${envs[@]}" "$@"; then
    record "$name" benchmark "$STATUS" "$SECS" "$RC" "$REASON" "$out" "$extra"
  else
    record "$name" benchmark skipped 0 "" "$REASON" "" "$extra"
  fi
}
free_mib=$(awk -F'\t' '$1 == "memory_free_mib" { r = $2 } END { print r + 0 }' "$STATE/meta.tsv")
gate31=""
[ $GPU = 1 ] && [ "$free_mib" -lt "$MIN_FREE_31B" ] &&
  gate31="31B needs ≥ $MIN_FREE_31B MiB of free GPU memory (~62 GB of weights); $free_mib MiB free"
bench kernels 90 "" -- "$BIN/g4-bench-kernels"
bench model-26b-a4b 90 "" -- "$BIN/g4-bench-model" --model 26b-a4b --batches 1,8,32 --ctx 1024 --prefill 4096
bench model-31b 75 "$gate31" -- "$BIN/g4-bench-model" --model 31b --batches 1 --ctx 1024 --prefill 4096
bench model-26b-a4b-fast 75 "" G4_MOE_PATH=fast G4_ATTN_PATH=auto -- \
  "$BIN/g4-bench-model" --model 26b-a4b --batches 1,8,32 --ctx 1024 --prefill 4096

# --- summary --------------------------------------------------------------------------------------
meta complete 1
write_json
bad=$(awk -F'\t' '$3 == "failed" || $3 == "timeout"' "$STATE/steps.tsv" | wc -l)
echo "run.sh: $(awk -F'\t' '{ n[$3]++ } END { for (s in n) printf("%s %d  ", s, n[s]) }' "$STATE/steps.tsv")in $(since "$T0N")s"
echo "run.sh: wrote $RESULT"
[ "$bad" -eq 0 ]
