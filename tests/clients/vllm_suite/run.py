"""ctest entry (clients_vllm_suite): vLLM's own OpenAI-server tests, fetched from vLLM's sdist
on PyPI at test time (pinned version and sha256 below; nothing of vLLM is kept in this repository),
run against g4serve. Steps: a venv with requirements.txt (bootstrap.py), the sdist cached under
the build tree, the test files suite.txt marks "run" extracted beside this directory's shim
(tests_utils.py as tests/utils.py, vllm_stub.py, conftest.py, skip.txt), then pytest.
Exit 77 (skipped) when PyPI cannot be reached and nothing is cached. Usage: run.py [pytest args]"""
import os
import pathlib
import shutil
import subprocess
import sys
import tarfile

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
import bootstrap  # noqa: E402

VLLM = "0.33.0"
SDIST_URL = ("https://files.pythonhosted.org/packages/f7/25/aa5684e9c59d6fc75f78926b7f15e8d9adc7de2d9e6e7575b80776"
             "ad8169/vllm-0.33.0.tar.gz")
SDIST_SHA256 = "f4c33c2503d52bb411146afa9618a4f48bed68912f617e6803ac8d76e4c74112"
TESTS = "vllm-%s/tests/entrypoints/openai/" % VLLM
SHIM = {"tests_utils.py": "tests/utils.py", "vllm_stub.py": "vllm_stub.py", "conftest.py": "conftest.py",
        "skip.txt": "skip.txt", "gaps.txt": "gaps.txt"}
FIXTURES = "vllm-%s/tests/entrypoints/conftest.py" % VLLM  # sample schemas/regexes, LoRA paths (stubbed)


def suite():
    """{file under tests/entrypoints/openai: "run" or the reason it is left out}."""
    out = {}
    for line in (HERE / "suite.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, what = line.split(None, 1)
            out[name] = what
    return out


def extract(sdist, dest):
    wanted = suite()
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    with tarfile.open(sdist) as tar:
        members = [m for m in tar.getmembers() if m.name.startswith(TESTS) and m.isfile()]
        files = {m.name[len(TESTS):]: m for m in members}
        tests = {n for n in files if pathlib.PurePath(n).name.startswith("test_")}
        unlisted = sorted(tests - set(wanted))
        missing = sorted(set(wanted) - tests)
        if unlisted or missing:
            sys.exit("suite.txt is out of date with vllm %s: not listed %s, not in the sdist %s"
                     % (VLLM, unlisted, missing))
        keep = {n for n, what in wanted.items() if what == "run"}
        for name, m in files.items():
            if name in keep or pathlib.PurePath(name).name == "__init__.py":
                m.name = "tests/entrypoints/openai/" + name
                tar.extract(m, dest, filter="data")
        fixtures = tar.getmember(FIXTURES)
        fixtures.name = "tests/entrypoints/conftest.py"
        tar.extract(fixtures, dest, filter="data")
    for d in ("tests", "tests/entrypoints"):
        (dest / d / "__init__.py").touch()
    for src, to in SHIM.items():
        shutil.copy(HERE / src, dest / to)
    (dest / "pytest.ini").write_text("[pytest]\nasyncio_default_fixture_loop_scope = function\n"
                                     "markers =\n    skip_global_cleanup\n    slow_test\n")
    return sorted(keep)


def prepare():
    """The suite's venv and vLLM's sdist, fetched if missing (also called by ../prefetch.py)."""
    py = bootstrap.venv("vllm-suite", HERE / "requirements.txt")
    return py, bootstrap.download(SDIST_URL, SDIST_SHA256, "vllm-%s.tar.gz" % VLLM)


def main():
    g4serve = bootstrap.g4serve()
    py, sdist = prepare()
    dest = bootstrap.cache_dir() / "vllm-suite"
    files = extract(sdist, dest)
    print("vLLM %s: %d test files run against g4serve (suite.txt), per-test skips in skip.txt" % (VLLM, len(files)),
          flush=True)
    env = dict(os.environ, G4SERVE=g4serve, G4_ROOT=str(bootstrap.ROOT), G4_CLIENTS_DIR=str(bootstrap.cache_dir()),
               PYTHONDONTWRITEBYTECODE="1")
    cmd = [py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfE", "--rootdir", str(dest)]
    cmd += ["tests/entrypoints/openai/" + f for f in files] + sys.argv[1:]
    return subprocess.run(cmd, cwd=dest, env=env).returncode


if __name__ == "__main__":
    sys.exit(main())
