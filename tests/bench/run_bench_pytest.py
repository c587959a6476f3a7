"""ctest entry for the serving-benchmark integration test: exits 77 (skipped) when the Python
packages it needs are missing (pip install -r tests/integration/requirements.txt), else runs
pytest on tests/bench/test_bench_serve.py."""
import importlib.util
import pathlib
import sys

missing = [m for m in ("openai", "pytest", "numpy") if importlib.util.find_spec(m) is None]
if missing:
    print("skipped: missing Python packages %s (pip install -r tests/integration/requirements.txt)" % missing)
    sys.exit(77)
import pytest  # noqa: E402

here = pathlib.Path(__file__).resolve().parent
sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", str(here / "test_bench_serve.py")] + sys.argv[1:]))
