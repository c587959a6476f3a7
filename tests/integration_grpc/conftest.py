"""conftest.py - fixtures for the gRPC integration tests.

`server` starts g4serve-grpc (path in $G4SERVE_GRPC_BIN, else build-grpc's) on an ephemeral
loopback port with the tiny-dense test model and the test tokenizer, waits for it to be ready
(bounded), and stops it with SIGTERM at the end, checking that it shut down cleanly. `pb`
generates Python stubs from proto/g4serve.proto and proto/health.proto with grpcio-tools.
Every wait in these tests is bounded."""
import importlib
import os
import signal
import subprocess
import sys
import tempfile
import time

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SERVED = "g4-tiny"


def _tmp_base():
    base = os.environ.get("G4_GRPC_TEST_TMP") or tempfile.gettempdir()
    os.makedirs(base, exist_ok=True)
    return base


@pytest.fixture(scope="session")
def pb():
    """Generated modules: g4serve_pb2(_grpc), health_pb2(_grpc)."""
    from grpc_tools import protoc

    out = tempfile.mkdtemp(prefix="pb-", dir=_tmp_base())
    proto_dir = os.path.join(ROOT, "proto")
    for name in ("g4serve.proto", "health.proto"):
        rc = protoc.main(["protoc", f"-I{proto_dir}", f"--python_out={out}", f"--grpc_python_out={out}",
                          os.path.join(proto_dir, name)])
        assert rc == 0, f"grpc_tools.protoc failed on {name}"
    sys.path.insert(0, out)
    mods = {m: importlib.import_module(m) for m in ("g4serve_pb2", "g4serve_pb2_grpc", "health_pb2", "health_pb2_grpc")}
    return type("PB", (), mods)


class Server:
    def __init__(self, proc, port, log_path):
        self.proc, self.port, self.log_path = proc, port, log_path
        self.addr = f"127.0.0.1:{port}"

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()


def start_server(extra=()):
    binary = os.environ.get("G4SERVE_GRPC_BIN") or os.path.join(ROOT, "build-grpc", "csrc", "server", "grpc",
                                                                "g4serve-grpc")
    if not os.path.exists(binary):
        pytest.skip(f"{binary} is not built")
    base = _tmp_base()
    work = tempfile.mkdtemp(prefix="srv-", dir=base)
    port_file = os.path.join(work, "port")
    log_path = os.path.join(work, "server.log")
    cmd = [binary, "--model", os.path.join(base, "tiny-dense"), "--tokenizer",
           os.path.join(ROOT, "tests", "text", "data", "tokenizer.json"), "--host", "127.0.0.1", "--port", "0",
           "--port-file", port_file, "--served-name", SERVED, *extra]
    log = open(log_path, "w")
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 120
    while time.time() < deadline:
        if os.path.exists(port_file):
            with open(port_file) as f:
                return Server(proc, int(f.read().strip()), log_path)
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    proc.wait(10)
    with open(log_path) as f:
        raise AssertionError("g4serve-grpc did not become ready:\n" + f.read())


def stop_server(srv, timeout=60):
    srv.proc.send_signal(signal.SIGINT)
    try:
        rc = srv.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        srv.proc.kill()
        srv.proc.wait(10)
        raise AssertionError("g4serve-grpc did not stop within %ds:\n%s" % (timeout, srv.log()))
    assert rc == 0, f"g4serve-grpc exited with {rc}:\n{srv.log()}"


@pytest.fixture(scope="module")
def server():
    srv = start_server()
    yield srv
    stop_server(srv)


@pytest.fixture(scope="module")
def channel(server):
    import grpc

    ch = grpc.insecure_channel(server.addr)
    grpc.channel_ready_future(ch).result(timeout=30)
    yield ch
    ch.close()
