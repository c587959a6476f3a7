#!/bin/sh
# healthcheck.sh — the container health check of both flavours: exit 0 when g4serve reports
# ready (model loaded and warmed) on its configured port (NIM_SERVER_PORT, default 8000), 1
# otherwise. A port given as a --port flag instead of NIM_SERVER_PORT is not seen here: set the
# port with the variable in a container.
exec curl -fsS -o /dev/null --max-time 3 "http://127.0.0.1:${NIM_SERVER_PORT:-8000}/v1/health/ready"
