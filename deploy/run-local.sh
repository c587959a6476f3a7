#!/usr/bin/env bash
# run-local.sh — the main job on a fresh Debian 12 machine: install what is missing, build, and
# start g4serve (OpenAI API on port 8000, gRPC on 8001) on the embedded default model (a
# deterministic tiny random Gemma 4 checkpoint written to models/tiny-dense on first use).
# Extra arguments go to g4serve (e.g. --port 9000, --model DIR --backend cuda; --help lists all).
# It listens on loopback only (--host 127.0.0.1, HTTP and gRPC): pass --host 0.0.0.0 to expose it,
# and then set an API key (VLLM_API_KEY or --api-key; docs/operations.md). The container image
# keeps g4serve's default, 0.0.0.0.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/deploy/env.sh"
bash "$root/deploy/setup-debian.sh"
build="${G4_BUILD_DIR:-$root/build}"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build "$build" -j"$(g4_jobs)"
cd "$root"
exec "$build/csrc/server/g4serve" --host 127.0.0.1 "$@"
