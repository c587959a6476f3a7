"""pytest's root conftest for vLLM's OpenAI-server tests run against g4serve (run.py copies it
to the root of the extracted tree): imports of vLLM resolve to vllm_stub, the tests named in
skip.txt are skipped with their reason, those in gaps.txt (g4serve's known gaps) run as strict
expected failures, an entry of either file that matches no test is an error (the lists cannot
go stale), and the counts are printed at the end."""
import pathlib

import pytest

import vllm_stub

vllm_stub.install()

HERE = pathlib.Path(__file__).resolve().parent
PREFIX = "tests/entrypoints/openai/"


def _read(name):
    out = {}
    for line in (HERE / name).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        test, _, reason = line.partition(" ")
        out[test] = reason.strip()
    return out


SKIPS = _read("skip.txt")
GAPS = _read("gaps.txt")
_used = set()


def _key(nodeid):
    rel = nodeid[len(PREFIX):] if nodeid.startswith(PREFIX) else nodeid
    return rel.split("[")[0], rel


def pytest_collection_modifyitems(config, items):
    for item in items:
        base, full = _key(item.nodeid)
        for k in (full, base):
            if k in SKIPS:
                _used.add(k)
                item.add_marker(pytest.mark.skip(reason="skip.txt: " + SKIPS[k]))
                break
            if k in GAPS:
                _used.add(k)
                item.add_marker(pytest.mark.xfail(reason="gaps.txt: " + GAPS[k], strict=True))
                break
    stale = sorted((set(SKIPS) | set(GAPS)) - _used)
    if stale:
        raise pytest.UsageError("skip.txt / gaps.txt name tests that do not exist: %s" % stale)


def pytest_terminal_summary(terminalreporter):
    counts = {k: len(terminalreporter.stats.get(k, []))
              for k in ("passed", "failed", "error", "skipped", "xfailed", "xpassed")}
    terminalreporter.write_line("vLLM OpenAI-server suite against g4serve: %(passed)d passed, %(skipped)d skipped "
                                "(skip.txt), %(xfailed)d known gaps (gaps.txt), %(failed)d failed, "
                                "%(error)d errors" % counts)
