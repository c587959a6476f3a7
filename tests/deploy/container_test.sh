#!/usr/bin/env bash
# container_test.sh — builds the CPU container image (deploy/container/build-cpu-image.sh) and
# runs it the way a runtime would, without one: umoci unpacks the image into a runtime bundle,
# and the process that the bundle's config.json describes (entry point, environment, user
# 1000:0, working directory) is started in a chroot of its root file system inside new PID and
# mount namespaces, on the host's loopback. Then the smoke test (container_smoke.py: openai
# client, health, metrics) runs against it, the image's own health check is run inside the
# chroot (configured port: passes; another port: fails), and the model cache must have been
# written by uid 1000 under /opt/nim/.cache. Finally SIGTERM must stop the server cleanly.
#   bash tests/deploy/container_test.sh G4SERVE_BINARY WORKDIR
# G4SERVE_BINARY: a CPU-only build (-DG4_CUDA=OFF). Exit 0 passed, 77 skipped (the reason on
# stderr: not root, or mmdebstrap/umoci/unshare missing or refused), anything else failed.
# Python: the one on PATH, with openai installed (tests/deploy/requirements.txt).
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 G4SERVE_BINARY WORKDIR" >&2; exit 2; }
root=$(cd "$(dirname "$0")/../.." && pwd)
binary=$1
work=$(mkdir -p "$2" && cd "$2" && pwd)
skip() { echo "container_test: SKIPPED: $*" >&2; exit 77; }

[ "$(id -u)" -eq 0 ] || skip "needs root (mmdebstrap, chroot, namespaces)"
for tool in mmdebstrap umoci unshare chroot; do
  command -v "$tool" >/dev/null 2>&1 || skip "$tool not installed (deploy/setup-debian.sh)"
done
unshare --fork --pid --mount true 2>/dev/null || skip "unshare --pid --mount refused here"

bash "$root/deploy/container/build-cpu-image.sh" "$binary" "$work"

bundle="$work/bundle"
rm -rf "$bundle"
umoci unpack --image "$work/oci:cpu" "$bundle" >/dev/null
rootfs="$bundle/rootfs"
# The process as the runtime spec describes it: uid gid cwd, then env entries, a blank line, args.
spec=$(python3 -c '
import json, sys
p = json.load(open(sys.argv[1]))["process"]
print(p["user"]["uid"], p["user"]["gid"], p["cwd"])
print("\n".join(p["env"])); print(); print("\n".join(p["args"]))' "$bundle/config.json")
read -r uid gid cwd <<<"$(head -n1 <<<"$spec")"
mapfile -t env_list < <(sed -n '2,/^$/p' <<<"$spec" | sed '/^$/d')
mapfile -t args < <(sed -n '/^$/,$p' <<<"$spec" | sed '/^$/d')
[ "$uid" = 1000 ] && [ "$gid" = 0 ] || { echo "container_test: image user $uid:$gid, expected 1000:0" >&2; exit 1; }

ports=$(python3 -c 'import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')
read -r port grpc_port <<<"$ports"
name="google/gemma-4-container-test"
# A command in the image's root file system, as the image's user, environment and directory.
in_image=(unshare --fork --pid --kill-child=KILL --mount-proc="$rootfs/proc"
  chroot --userspec="$uid:$gid" "$rootfs" /usr/bin/env -i -C "$cwd" "${env_list[@]}"
  NIM_SERVER_PORT="$port" NIM_GRPC_API_PORT="$grpc_port" NIM_SERVED_MODEL_NAME="$name")
log="$work/server.log"
"${in_image[@]}" "${args[@]}" --host 127.0.0.1 >"$log" 2>&1 &
server=$! # unshare; its one child is the namespace's PID 1: the entry point, then g4serve
stop() { kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; }
trap stop EXIT

status=0
python3 "$root/tests/deploy/container_smoke.py" "http://127.0.0.1:$port" "$name" "$server" || status=1
if [ $status -eq 0 ]; then
  "${in_image[@]}" /usr/local/bin/g4serve-healthcheck || { echo "container_test: health check failed on port $port" >&2; status=1; }
  if "${in_image[@]}" env NIM_SERVER_PORT=1 /usr/local/bin/g4serve-healthcheck 2>/dev/null; then
    echo "container_test: health check passed on a port nothing listens on" >&2; status=1
  fi
  owner=$(stat -c %u "$rootfs/opt/nim/.cache/tiny-dense/tokenizer.json" 2>/dev/null || echo none)
  [ "$owner" = 1000 ] || { echo "container_test: model cache owner '$owner', expected uid 1000" >&2; status=1; }
fi
# SIGTERM to the namespace's PID 1 (g4serve, which the entry point exec'd) stops it cleanly;
# unshare exits with its status. (Killing unshare itself kills the child: --kill-child.)
trap - EXIT
child=$(cat "/proc/$server/task/$server/children" 2>/dev/null || true)
[ -z "$child" ] || kill -TERM $child
rc=0; wait "$server" || rc=$?
if [ $rc -ne 0 ] && [ $status -eq 0 ]; then
  echo "container_test: server exited $rc after SIGTERM" >&2; status=1
fi
if [ $status -ne 0 ]; then
  echo "--- server log (last 40 lines)" >&2; tail -n 40 "$log" >&2
  exit 1
fi
echo "container_test: passed (image $work/oci:cpu, entry point ${args[*]}, user $uid:$gid)"
