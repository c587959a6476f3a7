"""Where a Python test or runner finds a program the build made: $VAR when set (ctest sets it to
the target's file), else the first build*/ directory of the checkout that holds it. Each caller
decides what a missing program means (pytest.skip, exit 77); this only looks."""
import os
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]


def locate(var, rel):
    """$VAR if set and present, else ROOT/build*/REL that exists; None when neither."""
    p = os.environ.get(var)
    if p:
        return p if os.path.exists(p) else None
    for d in sorted(ROOT.glob("build*")):
        if (d / rel).exists():
            return str(d / rel)
    return None
