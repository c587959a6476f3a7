#!/usr/bin/env bash
# run.sh — the whole test suite: install what is missing, build everything (the CUDA backend
# too when nvcc is present) and run ctest (GPU tests report "skipped" without a GPU); build the
# CPU container image and run it with the smoke test (the container stage); build the
# emulated CUDA target (docs/gpu-emulation.md) and run every GPU test on it (label emu); then
# rebuild with AddressSanitizer + UndefinedBehaviorSanitizer, the emulated target included, and
# run ctest again; then run the libFuzzer targets briefly (tests/fuzz/); then build the engine, tensor-parallel and server tests with ThreadSanitizer
# and run them (label tsan, tests/CMakeLists.txt). Every build has -Werror; the
# source format is checked first (tests/tools/format.sh).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/deploy/env.sh"
bash "$root/deploy/setup-debian.sh"
jobs=$(g4_jobs)

# ctest in two passes: the self-contained tests (units, kernels on the emulated target, engine,
# model) $jobs at a time, then the tests that start servers, share ports or measure latencies
# (these labels) one at a time, so a neighbour's load never stretches a latency they assert.
serial_labels='^(integration|integration_grpc|server|deploy|bench|clients)$'
run_ctest() { # DIR [ctest args...]
  local dir=$1
  shift
  (cd "$dir" && ctest -j"$jobs" -LE "$serial_labels" --output-on-failure "$@" &&
    ctest -L "$serial_labels" --output-on-failure "$@")
}

# The source format (.clang-format): fails fast, before any build.
bash "$root/tests/tools/format.sh" check

# Python clients for the integration tests (openai, grpcio, tritonclient, prometheus_client, ...)
# in a virtual environment of the build tree; ctest's Python is the venv's.
venv="${G4_VENV:-$root/build/venv}"
[ -x "$venv/bin/python3" ] || python3 -m venv "$venv"
# shellcheck disable=SC1091
source "$venv/bin/activate"
for req in "$root"/tests/*/requirements.txt; do
  python3 -m pip install -q --disable-pip-version-check -r "$req"
done

build="${G4_BUILD_DIR:-$root/build}"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DG4_WERROR=ON
# The client suites' venvs and vLLM's sdist (tests/clients/prefetch.py) install while the build
# compiles: pip waits on the network and unpacks, the build uses the CPUs. Waited for before
# ctest, so no test shares a venv with a running pip.
mkdir -p "$build/tests/clients"
G4_CLIENTS_DIR="$build/tests/clients" python3 "$root/tests/clients/prefetch.py" >"$build/clients-prefetch.log" 2>&1 &
prefetch=$!
cmake --build "$build" -j"$jobs"
wait "$prefetch" || true
cat "$build/clients-prefetch.log"
run_ctest "$build" --timeout 900

# ---- Container stage -----------------------------------------------------------------------
# The CPU container image built from Debian packages (deploy/container/build-cpu-image.sh) around
# a CPU-only g4serve, unpacked and run as the image says (entry point, user 1000:0, NIM_* env) in
# a chroot + PID namespace on loopback, with the smoke test (tests/deploy/container_test.sh).
# 2 min 15 s from cold on the 2-core machine, g4serve's build included (the Debian base layer
# is then cached under the build dir). Without root or the tools it prints SKIPPED with the
# reason and the run goes on; any other failure fails it.
# Its g4serve is a CPU-only RelWithDebInfo build (stripped in the image); with -Werror, Release
# (-O3) still trips -Wmaybe-uninitialized in csrc/model/config.c.
container="${G4_CONTAINER_BUILD_DIR:-$root/build-container}"
echo "=== container stage: begin"
cmake -S "$root" -B "$container" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DG4_CUDA=OFF -DG4_WERROR=ON
cmake --build "$container" -j"$jobs" --target g4serve
container_rc=0
bash "$root/tests/deploy/container_test.sh" "$container/csrc/server/g4serve" "$container/image" || container_rc=$?
case $container_rc in
  0) echo "=== container stage: passed" ;;
  77) echo "=== container stage: SKIPPED (reason above): the container image was NOT tested" ;;
  *) echo "=== container stage: FAILED ($container_rc)"; exit "$container_rc" ;;
esac
# ---- end of container stage ----------------------------------------------------------------

# The kernels on the emulated CUDA target: clang-16 instruments them for the race check.
emu="${G4_EMU_BUILD_DIR:-$root/build-emu}"
emu_cxx=()
command -v clang++-16 >/dev/null 2>&1 && emu_cxx=(-DCMAKE_CXX_COMPILER=clang++-16)
cmake -S "$root" -B "$emu" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DG4_CUDA=EMU -DG4_WERROR=ON "${emu_cxx[@]}"
cmake --build "$emu" -j"$jobs" --target emu-tests
(cd "$emu" && ctest -j"$jobs" -L emu --output-on-failure --timeout 900)

asan="${G4_ASAN_BUILD_DIR:-$root/build-asan}"
cmake -S "$root" -B "$asan" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DG4_CUDA=EMU -DG4_SANITIZE=ON -DG4_WERROR=ON \
  -DCMAKE_C_FLAGS_DEBUG="-O1 -g" -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g"
cmake --build "$asan" -j"$jobs"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1" UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
run_ctest "$asan" --timeout 1800

# --- fuzz stage (tests/fuzz/, docs/contributing.md "Fuzzing") ---------------------------------
# The libFuzzer targets (clang-16, ASan + UBSan, G4_FUZZ=ON) replay their seed corpora (label
# fuzz) and then fuzz G4_FUZZ_SECONDS = 10 s each (label fuzz_run; 11 targets, about 2 minutes).
# The replays alone also ran in both builds above, through the plain-C driver.
if command -v clang-16 >/dev/null 2>&1; then
  fuzz="${G4_FUZZ_BUILD_DIR:-$root/build-fuzz}"
  cmake -S "$root" -B "$fuzz" -G Ninja -DCMAKE_C_COMPILER=clang-16 -DG4_CUDA=OFF -DG4_SANITIZE=ON -DG4_FUZZ=ON \
    -DG4_WERROR=ON -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS_DEBUG="-O1 -g" -DG4_FUZZ_SECONDS=10
  cmake --build "$fuzz" -j"$jobs" --target fuzz-targets
  (cd "$fuzz" && ctest -L '^fuzz' --output-on-failure --timeout 300)
fi
# --- end of the fuzz stage ---------------------------------------------------------------------

# ThreadSanitizer (host code only: the emulated target's fiber switches are invisible to it).
# The engine thread, TP workers, libmicrohttpd and completion-queue threads share state; a
# report makes the process exit 66, which fails its test (servers too: the tests check their
# exit status). Suppressions, each argued: tests/tsan.supp.
tsan="${G4_TSAN_BUILD_DIR:-$root/build-tsan}"
cmake -S "$root" -B "$tsan" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DG4_CUDA=OFF -DG4_TSAN=ON -DG4_WERROR=ON
cmake --build "$tsan" -j"$jobs" --target tsan-tests
unset ASAN_OPTIONS UBSAN_OPTIONS
export TSAN_OPTIONS="suppressions=$root/tests/tsan.supp second_deadlock_stack=1"
run_ctest "$tsan" -L '^tsan$' --timeout 900
