"""run_tests.py - ctest entry for the gRPC integration tests: exits 77 (skipped) when the Python
client packages are missing, otherwise runs pytest on the given test file(s) in this directory."""
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

if __name__ == "__main__":
    files = [os.path.join(HERE, f) for f in sys.argv[1:]] or [HERE]
    sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", "-x", *files]))
