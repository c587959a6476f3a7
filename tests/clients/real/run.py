"""ctest entry (clients_langchain, clients_litellm, clients_lm_eval): one real client's tests
against g4serve, in that client's own venv under the build tree (bootstrap.py) installed from
requirements-CLIENT.txt (pinned; lm-eval's is installed with --no-deps: the harness itself and
only the modules its local-completions model imports, not datasets/torch). Exit 77 (skipped)
when the packages cannot be installed. Usage: run.py CLIENT [pytest args]"""
import os
import pathlib
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
import bootstrap  # noqa: E402

NO_DEPS = {"lm_eval"}
# Loopback only: litellm would fetch its model price list from GitHub at import.
OFFLINE_ENV = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "HF_HUB_OFFLINE": "1"}


CLIENTS = ("langchain", "litellm", "lm_eval")


def prepare(client):
    """CLIENT's venv, installed if missing or stale (also called by ../prefetch.py); its python."""
    return bootstrap.venv(client, HERE / ("requirements-%s.txt" % client), ("--no-deps",) if client in NO_DEPS else ())


def main():
    client = sys.argv[1]
    g4serve = bootstrap.g4serve()
    py = prepare(client)
    env = dict(os.environ, G4SERVE=g4serve, G4_CLIENTS_DIR=str(bootstrap.cache_dir()), PYTHONDONTWRITEBYTECODE="1", **OFFLINE_ENV)
    cmd = [py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfEs", str(HERE / ("test_%s.py" % client))]
    return subprocess.run(cmd + sys.argv[2:], cwd=HERE, env=env).returncode


if __name__ == "__main__":
    sys.exit(main())
