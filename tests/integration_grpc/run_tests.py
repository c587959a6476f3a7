"""run_tests.py - ctest entry for the gRPC integration tests: exits 77 (skipped) when the Python
client packages are missing, otherwise runs pytest on the given test file(s) in this directory;
a run whose every test skipped also exits 77, so ctest reports it skipped, not passed."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

try:
    import grpc  # noqa: F401
    import grpc_tools  # noqa: F401
    import pytest
    import tritonclient.grpc  # noqa: F401
except ImportError as e:  # the packages are optional for the C build
    print(f"skipped: {e} (pip install -r tests/integration_grpc/requirements.txt)")
    sys.exit(77)

class Outcomes:
    """Counts the tests that passed and those that skipped."""

    def __init__(self):
        self.passed = self.skipped = 0

    def pytest_runtest_logreport(self, report):
        if report.skipped:
            self.skipped += 1
        elif report.when == "call" and report.passed:
            self.passed += 1


if __name__ == "__main__":
    files = [os.path.join(HERE, f) for f in sys.argv[1:]] or [HERE]
    seen = Outcomes()
    rc = pytest.main(["-q", "-p", "no:cacheprovider", "-x", "-rs", *files], plugins=[seen])
    sys.exit(77 if rc == 0 and seen.skipped and not seen.passed else rc)
