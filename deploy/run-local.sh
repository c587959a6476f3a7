#!/usr/bin/env bash
# run-local.sh — the main job on a fresh Debian 12 machine: install what is missing, build,
# write the embedded default model (a deterministic tiny random Gemma 4 checkpoint) and run
# offline greedy generation on it. Extra arguments go to g4-generate (e.g. --max-tokens 64).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/deploy/env.sh"
bash "$root/deploy/setup-debian.sh"
build="${G4_BUILD_DIR:-$root/build}"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build "$build" -j"$(g4_jobs)"
model="${G4_MODEL_DIR:-$root/models/tiny-dense}"
[ -f "$model/config.json" ] || "$build/csrc/tools/g4-make-tiny" --config tiny-dense --seed 1 --out "$model"
exec "$build/csrc/tools/g4-generate" --model "$model" "$@"
