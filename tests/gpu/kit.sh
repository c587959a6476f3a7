#!/usr/bin/env bash
# kit.sh — prepares the GPU kit on a machine without a GPU: everything tests/gpu/run.sh needs on
# the device machine, prebuilt, in one git-ignored folder that travels with the device call.
#
#   usage: tests/gpu/kit.sh [KITDIR]          (default: gpu-kit/ at the repository root)
#
# KITDIR/kit.tar.gz    bin/  the gpu-labelled test executables (ctest -L gpu), g4-bench-kernels,
#                            g4-bench-model, debug info stripped (symbols kept for backtraces)
#                      lib/  the shared libraries they need that a bare CUDA image may lack
#                            (libcjson, libgomp, libcudart, ...); not glibc, libstdc++, libgcc_s,
#                            cuBLAS / cuBLASLt / NCCL (hundreds of MB; the toolkit there has them)
#                      cjson/ header + library: a prefix for run.sh's fallback build on the device
# KITDIR/manifest.json what the kit is: commit, dirty tree, nvcc, gencode, files, sizes, timings
# KITDIR/manifest.env  the same for run.sh (shell-sourceable)
#
# The CUDA backend is compiled for sm_89, sm_90a and compute_90 PTX (cuda/CMakeLists.txt). Why
# prebuilt rather than built there: docs/operations.md, "GPU run". Needs nvcc and the Debian -dev
# packages (deploy/setup-debian.sh); builds only the kit's targets.
# Env: G4_KIT_BUILD_DIR (default build-kit), JOBS (default nproc).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
KIT=${1:-$ROOT/gpu-kit}
BUILD=${G4_KIT_BUILD_DIR:-$ROOT/build-kit}
JOBS=${JOBS:-$(nproc)}
t0=$(date +%s.%N)
secs() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf("%.1f", b - a) }'; }

command -v nvcc >/dev/null || [ -x /usr/local/cuda/bin/nvcc ] || { echo "kit: no nvcc: the kit needs the CUDA toolkit" >&2; exit 1; }
export PATH=$PATH:/usr/local/cuda/bin

# 1. configure (once) and build only what the GPU run needs
if [ ! -f "$BUILD/CMakeCache.txt" ]; then
  log=$(mktemp)
  cmake -S "$ROOT" -B "$BUILD" -G Ninja -DG4_CUDA=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$log" 2>&1 ||
    { cat "$log" >&2; rm -f "$log"; exit 1; }
  rm -f "$log"
fi
# regenerate first if a CMakeLists changed, so the test list below is the tree's
cmake --build "$BUILD" --target build.ninja >/dev/null 2>&1 || cmake "$BUILD" >/dev/null
if grep -q '^G4_CUDA:STRING=\(EMU\|OFF\)$' "$BUILD/CMakeCache.txt"; then
  echo "kit: $BUILD is not a real CUDA build ($(grep '^G4_CUDA:' "$BUILD/CMakeCache.txt")); use another G4_KIT_BUILD_DIR" >&2
  exit 1
fi
mapfile -t TESTS < <(cd "$BUILD" && ctest -N -L '^gpu$' | sed -n 's/^ *Test *#[0-9]*: *//p')
[ ${#TESTS[@]} -gt 0 ] || { echo "kit: no gpu-labelled tests in $BUILD (CUDA backend off?)" >&2; exit 1; }
BENCH=(g4-bench-kernels g4-bench-model)
cmake --build "$BUILD" -j "$JOBS" --target "${TESTS[@]}" "${BENCH[@]}"
build_s=$(secs "$t0")

# 2. stage bin/ and lib/
STAGE=$(mktemp -d "${TMPDIR:-/tmp}/g4-kit.XXXXXX")
trap 'rm -rf "$STAGE"' EXIT
mkdir -p "$STAGE/bin" "$STAGE/lib"
for t in "${TESTS[@]}"; do cp "$BUILD/tests/gpu/$t" "$STAGE/bin/"; done
cp "$BUILD/bench/kernels/g4-bench-kernels" "$BUILD/bench/kernels/g4-bench-model" "$STAGE/bin/"
strip --strip-debug "$STAGE"/bin/*
# libraries: every resolved dependency except the ones any CUDA image has or that are too big
skip='^(linux-vdso|ld-linux|libc|libm|libdl|libpthread|librt|libstdc\+\+|libgcc_s|libcuda|libcublas|libcublasLt|libnccl)\.so'
missing=$(ldd "$STAGE"/bin/* | awk '/not found/ { print $1 }' | sort -u)
[ -z "$missing" ] || { echo "kit: unresolved here: $missing" >&2; exit 1; }
ldd "$STAGE"/bin/* | awk '/=> \// { print $1, $3 }' | sort -u | while read -r name path; do
  [[ $name =~ $skip ]] || cp -L "$path" "$STAGE/lib/$name"
done

# cJSON prefix (header + library): run.sh's fallback, a GPU-targets-only build there, needs it
# because the device image has no Debian -dev packages
mkdir -p "$STAGE/cjson/include/cjson" "$STAGE/cjson/lib"
cp "$(sed -n 's/^CJSON_INCLUDE_DIR:PATH=//p' "$BUILD/CMakeCache.txt")/cjson/cJSON.h" "$STAGE/cjson/include/cjson/"
cp -L "$(sed -n 's/^CJSON_LIBRARY:FILEPATH=//p' "$BUILD/CMakeCache.txt")" "$STAGE/cjson/lib/libcjson.so"

# 3. manifest and archive
commit=$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)
dirty=$( (git -C "$ROOT" status --porcelain --untracked-files=no -- CMakeLists.txt csrc cuda tests bench 2>/dev/null || true) | wc -l)
nvcc_v=$(nvcc --version | sed -n 's/.*release \([0-9.]*\), V\([0-9.]*\).*/\2/p')
gencode=$(sed -n '/^set(G4_CUDA_GENCODE/,/)/p' "$ROOT/cuda/CMakeLists.txt" | grep -o 'arch=[a-z_0-9]*,code=[a-z_0-9]*' | paste -sd' ' -)
unpacked=$(du -sb "$STAGE" | cut -f1)
mkdir -p "$KIT.new"
tar -czf "$KIT.new/kit.tar.gz" -C "$STAGE" bin lib cjson
packed=$(stat -c %s "$KIT.new/kit.tar.gz")
prep_s=$(secs "$t0")
files=$(cd "$STAGE" && find bin lib cjson -type f -printf '%p %s\n' | sort | awk '{ printf("%s    {\"path\": \"%s\", \"bytes\": %s}", n++ ? ",\n" : "", $1, $2) }')
tests_list=$(printf '%s\n' "${TESTS[@]}" | paste -sd' ' -)
cat >"$KIT.new/manifest.json" <<JSON
{
  "commit": "$commit",
  "dirty_files": $dirty,
  "made": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
  "made_on": "$(uname -m) $(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME")",
  "nvcc": "$nvcc_v",
  "gencode": "$gencode",
  "tests": "$tests_list",
  "archive_bytes": $packed,
  "unpacked_bytes": $unpacked,
  "build_seconds": $build_s,
  "prep_seconds": $prep_s,
  "files": [
$files
  ]
}
JSON
cat >"$KIT.new/manifest.env" <<ENV
KIT_COMMIT=$commit
KIT_DIRTY_FILES=$dirty
KIT_NVCC=$nvcc_v
KIT_TESTS="$tests_list"
ENV
rm -rf "$KIT"
mv "$KIT.new" "$KIT"
echo "kit: $KIT  archive $((packed / 1024)) KiB (unpacked $((unpacked / 1024)) KiB), ${#TESTS[@]} tests + ${#BENCH[@]} benchmarks, $(ls "$STAGE/lib" | paste -sd' ' -)"
echo "kit: commit ${commit:0:12}$([ "$dirty" -gt 0 ] && echo " + $dirty dirty files"), build ${build_s}s, total ${prep_s}s"
