"""Installs every client suite's venv and downloads vLLM's sdist ahead of the tests, through the
suites' own prepare() (so what is fetched is defined once, in each run.py). tests/run.sh starts
it in the background while the plain build compiles (pip is network and unpacking, the build is
CPU) and waits for it before ctest, so the clients tests find their venvs ready. Suites are
prepared one after another: two pip runs never share a venv. Exit 0 even when a suite cannot be
prepared: its test then reports why (77 = skipped). Usage: prefetch.py (G4_CLIENTS_DIR = the
build tree's tests/clients)."""
import importlib.util
import pathlib
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent


def load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def attempt(what, fn, *args):
    t = time.time()
    try:
        fn(*args)
        print("prefetch: %s ready (%.0f s)" % (what, time.time() - t), flush=True)
    except SystemExit as e:  # bootstrap.skip (77) or a sha256 mismatch: the test will say so
        print("prefetch: %s not prepared (exit %s)" % (what, e.code), flush=True)


def main():
    suite = load(HERE / "vllm_suite" / "run.py", "g4_vllm_suite_run")
    real = load(HERE / "real" / "run.py", "g4_real_clients_run")
    attempt("vllm suite", suite.prepare)
    for client in real.CLIENTS:
        attempt(client, real.prepare, client)
    return 0


if __name__ == "__main__":
    sys.exit(main())
