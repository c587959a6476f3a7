"""Stands in for vLLM's tests/utils.py when vLLM's OpenAI-server tests run against g4serve
(run.py copies this file to tests/utils.py beside the tests it extracts from vLLM's sdist).

RemoteOpenAIServer here starts g4serve (tests/integration/conftest.py's Server: 127.0.0.1,
ephemeral port, the embedded tiny model) instead of `vllm serve`. The model name the test asks
for becomes a served name, so the test's `model=MODEL_NAME` is accepted. vLLM flags that have a
g4serve equivalent are mapped (SERVE_FLAGS); every other flag is ignored and named on stdout —
a test that depends on one belongs in skip.txt with the reason. Not a vLLM server: no LoRA,
no GPU memory checks, no hf downloads."""
import importlib.util
import os
import pathlib
import sys
import tempfile

import openai

# The integration suite's launcher, loaded by path (its file is a pytest conftest).
_ROOT = pathlib.Path(os.environ["G4_ROOT"])
_spec = importlib.util.spec_from_file_location("g4_integration_conftest",
                                               _ROOT / "tests" / "integration" / "conftest.py")
_launcher = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_launcher)

ROCM_EXTRA_ARGS = []
# The tiny model's output is token soup that seldom ends: a request without max_tokens runs to
# max_model_len. The servers therefore run with at most MAX_MODEL_LEN (the test's own value when
# smaller); a test that needs a longer context is in skip.txt.
MAX_MODEL_LEN = 256

# vLLM serve flag -> g4serve flag, for flags taking one value (--max-model-len: MAX_MODEL_LEN above).
SERVE_FLAGS = {"--max-num-seqs": "--max-num-seqs",
               "--max-num-batched-tokens": "--max-num-batched-tokens", "--api-key": "--api-key"}
SERVE_SWITCHES = {"--no-enable-prefix-caching": "--no-enable-prefix-caching"}


def _translate(model, vllm_args):
    """(g4serve args, served names, ignored vLLM args)."""
    args, names, ignored, max_len = [], [model], [], MAX_MODEL_LEN
    i = 0
    while i < len(vllm_args):
        a = vllm_args[i]
        value = vllm_args[i + 1] if i + 1 < len(vllm_args) and not vllm_args[i + 1].startswith("--") else None
        if a == "--max-model-len" and value is not None:
            max_len = min(max_len, int(value))
        elif a in SERVE_FLAGS and value is not None:
            args += [SERVE_FLAGS[a], value]
        elif a in SERVE_SWITCHES:
            args.append(SERVE_SWITCHES[a])
        elif a == "--served-model-name":
            names = []
            while i + 1 < len(vllm_args) and not vllm_args[i + 1].startswith("--"):
                names.append(vllm_args[i + 1])
                i += 1
            i += 1
            continue
        else:
            ignored.append(a if value is None else a + " " + value)
        i += 1 if value is None else 2
    return args + ["--max-model-len", str(max_len)], names, ignored


class RemoteOpenAIServer:
    DUMMY_API_KEY = "token-abc123"  # as vLLM's: sent, not checked unless --api-key is given

    def __init__(self, model, vllm_serve_args, *, env_dict=None, seed=0, auto_port=True,
                 max_wait_seconds=None, override_hf_configs=None):
        args, names, ignored = _translate(model, list(vllm_serve_args))
        if ignored:
            print("[g4serve shim] vLLM flags without a g4serve equivalent, ignored: %s" % ignored)
        env = dict(env_dict or {})
        env["NIM_SERVED_MODEL_NAME"] = ",".join(names)
        self._tmp = tempfile.TemporaryDirectory(prefix="g4-vllm-suite-")
        model_dir = pathlib.Path(os.environ["G4_CLIENTS_DIR"]) / "models" / "tiny-dense"
        self._server = _launcher.Server(args, env, pathlib.Path(self._tmp.name), model_dir)
        self._server.wait_ready(timeout=max_wait_seconds or 120)
        self.host, self.port, self.uds = "127.0.0.1", self._server.port, None
        self.show_hidden_metrics = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        rc = self._server.stop()
        self._tmp.cleanup()
        if rc != 0:
            print("[g4serve shim] g4serve exited %s" % rc, file=sys.stderr)

    @property
    def url_root(self):
        return "http://%s:%d" % (self.host, self.port)

    def url_for(self, *parts):
        return "/".join([self.url_root] + [p.strip("/") for p in parts if p])

    def get_client(self, **kwargs):
        kwargs.setdefault("timeout", 600)
        return openai.OpenAI(base_url=self.url_for("v1"), api_key=self.DUMMY_API_KEY, max_retries=0, **kwargs)

    def get_async_client(self, **kwargs):
        kwargs.setdefault("timeout", 600)
        return openai.AsyncOpenAI(base_url=self.url_for("v1"), api_key=self.DUMMY_API_KEY, max_retries=0,
                                  **kwargs)
