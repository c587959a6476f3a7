"""Fixtures for the HTTP integration tests: start a real g4serve on 127.0.0.1 (ephemeral HTTP and
gRPC ports) on the embedded tiny model, wait until /v1/health/ready is 200, stop it afterwards.

The binary comes from $G4SERVE (set by ctest) or the first build directory that has one."""
import os
import pathlib
import signal
import sys
import subprocess
import time

import pytest
import requests

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "common"))
import built  # noqa: E402  (tests/common/built.py: where the build put a program)
from server_metrics import gauges  # noqa: E402,F401  (tests/common; the tests import it from here)

ROOT = pathlib.Path(__file__).resolve().parents[2]


def find_binary():
    return built.locate("G4SERVE", "csrc/server/g4serve") or pytest.skip(
        "g4serve binary not found (build it, or set G4SERVE)")


class Server:
    def __init__(self, args, env_extra, tmp, model_dir):
        env = dict(os.environ)
        env.update(env_extra)
        self.stderr_path = tmp / "stderr.txt"
        self.proc = subprocess.Popen(
            [find_binary(), "--host", "127.0.0.1", "--port", "0", "--grpc-port", "0",
             "--default-model-dir", str(model_dir)] + args,
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=open(self.stderr_path, "w"), text=True)
        line = self.proc.stdout.readline()  # "g4serve: port N", printed once the socket is open
        if not line.startswith("g4serve: port "):
            self.proc.kill()
            raise RuntimeError("g4serve did not start: " + self.stderr())
        self.port = int(line.split()[-1])
        self.base = f"http://127.0.0.1:{self.port}"

    def stderr(self):
        return self.stderr_path.read_text() if self.stderr_path.exists() else ""

    def wait_ready(self, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("g4serve exited: " + self.stderr())
            try:
                if requests.get(self.base + "/v1/health/ready", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.05)
        raise RuntimeError("g4serve not ready after %ds: %s" % (timeout, self.stderr()))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    """Where the servers write (once) and load the embedded tiny-dense model."""
    return tmp_path_factory.mktemp("models") / "tiny-dense"


@pytest.fixture(scope="session")
def server(tmp_path_factory, model_dir):
    s = Server(["--keepalive-interval", "1"], {"NIM_SERVED_MODEL_NAME": "g4serve-tiny,tiny-alias",
                                               "NIM_SOMETHING_UNKNOWN": "1"},
               tmp_path_factory.mktemp("srv"), model_dir)
    s.wait_ready()
    yield s
    assert s.stop() == 0, s.stderr()


@pytest.fixture(scope="session")
def client(server):
    import openai
    return openai.OpenAI(base_url=server.base + "/v1", api_key="none", max_retries=0, timeout=60)


@pytest.fixture()
def make_server(tmp_path, model_dir):
    """Starts extra servers with their own flags/env; stops them at the end of the test."""
    started = []

    def make(args=(), env=None, ready=True):
        d = tmp_path / ("s%d" % len(started))
        d.mkdir(exist_ok=True)
        s = Server(list(args), env or {}, d, model_dir)
        started.append(s)
        if ready:
            s.wait_ready()
        return s

    yield make
    for s in started:
        s.stop()
