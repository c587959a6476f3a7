"""ctest entry for the Python server tests: exits 77 (skipped) when the Python packages of
tests/integration/requirements.txt are missing, else runs pytest on the given files of this
directory. Usage: run_pytest.py FILE.py [pytest args]"""
import importlib.util
import pathlib
import sys

missing = [m for m in ("openai", "prometheus_client", "pytest", "requests") if importlib.util.find_spec(m) is None]
if missing:
    print("skipped: missing Python packages %s (pip install -r tests/integration/requirements.txt)" % missing)
    sys.exit(77)
import pytest  # noqa: E402

here = pathlib.Path(__file__).resolve().parent
sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", str(here / sys.argv[1])] + sys.argv[2:]))
