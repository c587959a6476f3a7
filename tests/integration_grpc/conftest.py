"""conftest.py - fixtures for the gRPC integration tests.

`server` starts the real g4serve (path in $G4SERVE, else the first build*/ that has one) with its gRPC and HTTP
ports on ephemeral loopback ports, on the embedded tiny-dense model (which brings its test
tokenizer), waits for /v1/health/ready (bounded), and stops it with SIGINT at the end, checking
that it shut down cleanly. `pb`
generates Python stubs from proto/g4serve.proto and proto/health.proto with grpcio-tools.
Every wait in these tests is bounded."""
import importlib
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "common"))
import built  # noqa: E402  (tests/common/built.py: where the build put a program)

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
    def __init__(self, proc, http_port, port, log_path):
        self.proc, self.http_port, self.port, self.log_path = proc, http_port, port, log_path
        self.addr = f"127.0.0.1:{port}"

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()


def binary():
    """$G4SERVE (set by ctest), else the first build directory that has one."""
    return built.locate("G4SERVE", "csrc/server/g4serve") or pytest.skip(
        "g4serve binary not found (build it, or set G4SERVE)")


def _port_line(proc, prefix, log_path):
    line = proc.stdout.readline()
    if not line.startswith(prefix):
        proc.kill()
        proc.wait(10)
        with open(log_path, errors="replace") as f:
            raise AssertionError(f"g4serve did not print '{prefix}N' (got {line!r}):\n" + f.read())
    return int(line.split()[-1])


def launch(args, log_path):
    """Starts g4serve with HTTP and gRPC on ephemeral loopback ports; returns (proc, http, grpc)
    once both ports are open (not yet ready)."""
    cmd = [binary(), "--host", "127.0.0.1", "--port", "0", "--grpc-port", "0", *args]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=open(log_path, "w"), text=True)
    http = _port_line(proc, "g4serve: port ", log_path)
    grpc_port = _port_line(proc, "g4serve: grpc port ", log_path)
    return proc, http, grpc_port


def wait_ready(proc, http_port, log_path, timeout=120):
    """Bounded wait for /v1/health/ready = 200 (the gRPC side is attached and SERVING then too)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            break
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/v1/health/ready", timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.05)
    if proc.poll() is None:
        proc.kill()
        proc.wait(10)
    with open(log_path, errors="replace") as f:
        raise AssertionError("g4serve did not become ready:\n" + f.read())


def start_server(extra=(), model_args=None):
    """The real g4serve on the embedded tiny-dense model (written once under the test folder with
    its test tokenizer), served as SERVED; model_args replaces the model choice."""
    base = _tmp_base()
    work = tempfile.mkdtemp(prefix="srv-", dir=base)
    log_path = os.path.join(work, "server.log")
    if model_args is None:
        model_args = ["--default-model-dir", os.path.join(base, "tiny-dense")]
    proc, http, port = launch([*model_args, "--served-model-name", SERVED, *extra], log_path)
    wait_ready(proc, http, log_path)
    return Server(proc, http, port, log_path)


def stop_server(srv, timeout=60):
    srv.proc.send_signal(signal.SIGINT)
    try:
        rc = srv.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        srv.proc.kill()
        srv.proc.wait(10)
        raise AssertionError("g4serve did not stop within %ds:\n%s" % (timeout, srv.log()))
    assert rc == 0, f"g4serve exited with {rc}:\n{srv.log()}"


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
