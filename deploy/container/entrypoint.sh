#!/bin/sh
# entrypoint.sh — the entry point of both container flavours (deploy/Dockerfile, CUDA; and the
# CPU image that deploy/container/build-cpu-image.sh makes from Debian packages). NIM
# conventions: the cache folder is NIM_CACHE_PATH (default /opt/nim/.cache, writable by uid 1000
# and group 0); without NIM_MODEL_PATH / --model, g4serve writes and serves the embedded tiny
# model there (cache/tiny-dense, with its test tokenizer). Every other NIM_* variable
# (NIM_SERVER_PORT, NIM_SERVED_MODEL_NAME, NIM_MODEL_PATH, NIM_TENSOR_PARALLEL_SIZE, ...) is read
# by g4serve itself; arguments given to the container go to g4serve unchanged (flags win over
# NIM_* variables). Not a supervisor: g4serve replaces this shell, so SIGTERM reaches it directly.
set -eu
cache="${NIM_CACHE_PATH:-/opt/nim/.cache}"
unset NIM_CACHE_PATH # consumed here; g4serve would log it as having no effect
exec g4serve --default-model-dir "$cache/tiny-dense" "$@"
