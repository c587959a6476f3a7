#!/usr/bin/env bash
# setup-debian.sh — installs the Debian packages g4serve needs to build and test, when missing.
# Idempotent; needs root (or sudo) only when something is missing. Nothing is downloaded at
# run time by g4serve itself. clang-16 compiles the emulated CUDA target's kernels with the
# instrumentation its shared-memory race check needs (docs/gpu-emulation.md); clang-format-16
# checks the source format (tests/tools/format.sh); mmdebstrap and umoci build the CPU container
# image from Debian packages (deploy/container/build-cpu-image.sh); libclang-rt-16-dev holds
# libFuzzer for the fuzz targets (tests/fuzz/); libpng, libjpeg-turbo, libwebp and giflib decode
# images (csrc/media).
set -euo pipefail

packages=(cmake ninja-build gcc g++ make pkg-config libcjson-dev libmicrohttpd-dev libgrpc-dev protobuf-c-compiler libprotobuf-c-dev protobuf-compiler libcurl4-openssl-dev libpng-dev libjpeg62-turbo-dev libwebp-dev libgif-dev python3 python3-venv clang-16 libclang-rt-16-dev clang-format-16 mmdebstrap umoci)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
