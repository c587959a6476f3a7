"""Fixtures for the real-client tests (tests/clients/real/): one g4serve per session on
127.0.0.1, started by tests/integration/conftest.py's Server (loaded by path: it is that
suite's conftest), on the embedded tiny model, served as "g4serve-tiny"."""
import importlib.util
import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[3]
_spec = importlib.util.spec_from_file_location("g4_integration_conftest", ROOT / "tests" / "integration" / "conftest.py")
launcher = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(launcher)

MODEL = "g4serve-tiny"


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    model_dir = pathlib.Path(os.environ.get("G4_CLIENTS_DIR", tmp_path_factory.mktemp("m"))) / "models" / "tiny-dense"
    s = launcher.Server(["--max-model-len", "1024"], {}, tmp_path_factory.mktemp("srv"), model_dir)
    s.wait_ready()
    yield s
    assert s.stop() == 0, s.stderr()


@pytest.fixture(scope="session")
def base_v1(server):
    return server.base + "/v1"
