#!/usr/bin/env bash
# build-cpu-image.sh — builds the CPU flavour of the g4serve container image from Debian 12
# packages, without a registry or a Docker daemon, as an OCI image layout (umoci), tag "cpu":
#   bash deploy/container/build-cpu-image.sh G4SERVE_BINARY OUTDIR
# Layer 1 is a Debian 12 root file system made by mmdebstrap (variant essential) with exactly the
# packages that own the shared libraries the binary links (read from ldd + dpkg -S on this
# machine, so the list follows the build), plus curl for the health check. It is cached as
# OUTDIR/base-<hash of the package list>.tar. Layer 2 is g4serve, the shared entry point and
# health check (deploy/container/*.sh, also used by the CUDA flavour, deploy/Dockerfile) and
# /opt/nim/.cache owned by uid 1000, group 0. The image config carries the NIM conventions:
# user 1000:0, port 8000 (and gRPC 8001), NIM_CACHE_PATH, entrypoint g4serve-entrypoint.
# Result: OUTDIR/oci (the layout; `skopeo copy oci:OUTDIR/oci:cpu docker-daemon:g4serve:cpu`
# or `podman pull oci:OUTDIR/oci:cpu` loads it where a runtime exists). Needs root (mmdebstrap
# and the layer's owners), mmdebstrap, umoci and a Debian mirror (deploy/setup-debian.sh).
# It does not run the image: tests/deploy/container_test.sh does.
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 G4SERVE_BINARY OUTDIR" >&2; exit 2; }
binary=$(readlink -f "$1")
out=$(mkdir -p "$2" && cd "$2" && pwd)
here=$(cd "$(dirname "$0")" && pwd)

# The Debian packages that own the binary's shared libraries (merged /usr: try both paths).
packages=(curl)
while read -r lib; do
  owner=""
  for p in "$lib" "/usr$lib" "$(readlink -f "$lib")"; do
    owner=$(dpkg-query -S "$p" 2>/dev/null | head -n1 | cut -d: -f1) && [ -n "$owner" ] && break
  done
  if [ -z "$owner" ]; then
    echo "build-cpu-image: $lib (linked by $binary) belongs to no Debian package;" \
      "the CPU image needs a CPU-only build (-DG4_CUDA=OFF)" >&2
    exit 1
  fi
  packages+=("$owner")
done < <(ldd "$binary" | awk '$2 == "=>" && $3 ~ /^\// {print $3}')
mapfile -t packages < <(printf '%s\n' "${packages[@]}" | sort -u)
echo "build-cpu-image: packages: ${packages[*]}"

# Layer 1: the Debian root file system, cached by its package list.
key=$(printf 'bookworm essential %s\n' "${packages[@]}" | sha256sum | cut -c1-16)
base="$out/base-$key.tar"
if [ ! -f "$base" ]; then
  rm -rf "$out"/base-*.tar "$out/partial.tar"
  mmdebstrap --quiet --variant=essential --include="$(IFS=,; echo "${packages[*]}")" \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' bookworm "$out/partial.tar" # the suffix picks the tar format
  mv "$out/partial.tar" "$base"
else
  echo "build-cpu-image: base layer cached: $base"
fi

# Layer 2: g4serve and the NIM layout.
stage="$out/layer2"
rm -rf "$stage" "$out/layer2.tar"
install -D -m 0755 --strip "$binary" "$stage/usr/local/bin/g4serve" # no debug info in the image
install -D -m 0755 "$here/entrypoint.sh" "$stage/usr/local/bin/g4serve-entrypoint"
install -D -m 0755 "$here/healthcheck.sh" "$stage/usr/local/bin/g4serve-healthcheck"
mkdir -p "$stage/opt/nim/.cache"
chown -R 1000:0 "$stage/opt/nim"
chmod -R u+rwX,g+rwX "$stage/opt/nim"
tar --numeric-owner -C "$stage" -cf "$out/layer2.tar" usr opt

# The image: an OCI layout with both layers and the NIM configuration.
img="$out/oci"
rm -rf "$img"
umoci init --layout "$img"
umoci new --image "$img:cpu"
umoci raw add-layer --image "$img:cpu" --history.comment "Debian 12: ${packages[*]}" "$base"
umoci raw add-layer --image "$img:cpu" --history.comment "g4serve, entry point, /opt/nim" "$out/layer2.tar"
umoci config --image "$img:cpu" --config.user 1000:0 --config.workingdir /opt/nim \
  --config.entrypoint /usr/local/bin/g4serve-entrypoint \
  --config.env PATH=/usr/local/bin:/usr/bin:/bin --config.env NIM_CACHE_PATH=/opt/nim/.cache \
  --config.env NIM_SERVER_PORT=8000 --config.env NIM_GRPC_API_PORT=8001 \
  --config.exposedports 8000/tcp --config.exposedports 8001/tcp \
  --config.label org.opencontainers.image.title=g4serve-cpu
umoci gc --layout "$img"
rm -rf "$stage" "$out/layer2.tar"
echo "build-cpu-image: $img:cpu ($(du -sh "$img" | cut -f1))"
