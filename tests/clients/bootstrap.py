"""The client suites' own virtual environments and downloads (tests/clients/): each suite pins
its packages in its own requirements file, installed into a venv under the build tree (never the
main test venv), and re-installed only when that file changes. What needs PyPI and cannot reach
it makes the suite exit 77, so ctest reports "skipped", never "passed".

Not a test: the helpers tests/clients/*/run.py call before they start pytest in that venv."""
import hashlib
import os
import pathlib
import subprocess
import sys
import urllib.request

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "common"))
import built  # noqa: E402  (tests/common/built.py: where the build put a program)

ROOT = pathlib.Path(__file__).resolve().parents[2]
SKIP = 77


def skip(reason):
    print("skipped: " + reason, flush=True)
    sys.exit(SKIP)


def cache_dir():
    """$G4_CLIENTS_DIR (ctest: the build tree's tests/clients), else build/clients."""
    d = pathlib.Path(os.environ.get("G4_CLIENTS_DIR") or ROOT / "build" / "clients")
    d.mkdir(parents=True, exist_ok=True)
    return d


def pypi_reachable(timeout=15):
    """Whether the index pip will use ($PIP_INDEX_URL, else PyPI) answers: a quick check, so that
    an offline machine skips at once instead of waiting out pip's retries."""
    index = os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple").rstrip("/")
    try:
        with urllib.request.urlopen(index + "/pip/", timeout=timeout) as r:
            return r.status == 200
    except OSError:
        return False


def venv(name, requirements, extra_pip_args=()):
    """A venv named NAME under cache_dir() with REQUIREMENTS installed; returns its python."""
    req = pathlib.Path(requirements)
    d = cache_dir() / ("venv-" + name)
    py = d / "bin" / "python"
    stamp = d / "requirements.sha256"
    want = hashlib.sha256(req.read_bytes() + " ".join(extra_pip_args).encode()).hexdigest()
    if py.exists() and stamp.exists() and stamp.read_text() == want:
        return str(py)
    if not pypi_reachable():
        skip("PyPI is unreachable: cannot install %s" % req.relative_to(ROOT))
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(d)], check=True)
    pip = [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    r = subprocess.run(pip + list(extra_pip_args) + ["-r", str(req)])
    if r.returncode != 0:
        skip("pip could not install %s (exit %d)" % (req.relative_to(ROOT), r.returncode))
    stamp.write_text(want)
    return str(py)


def download(url, sha256, name):
    """URL saved as cache_dir()/NAME once, checked against SHA256; returns its path."""
    path = cache_dir() / name
    if path.exists() and hashlib.sha256(path.read_bytes()).hexdigest() == sha256:
        return path
    tmp = path.with_suffix(".part")
    try:
        with urllib.request.urlopen(url, timeout=60) as r, open(tmp, "wb") as f:
            while True:
                block = r.read(1 << 20)
                if not block:
                    break
                f.write(block)
    except OSError as e:
        skip("cannot download %s: %s" % (url, e))
    got = hashlib.sha256(tmp.read_bytes()).hexdigest()
    if got != sha256:
        tmp.unlink()
        sys.exit("%s: sha256 %s, expected %s" % (url, got, sha256))
    tmp.rename(path)
    return path


def g4serve():
    """The binary: $G4SERVE (ctest) or the first build directory that has one."""
    return built.locate("G4SERVE", "csrc/server/g4serve") or skip("g4serve binary not found (build it, or set G4SERVE)")
