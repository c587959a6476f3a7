"""What `import vllm...` (and `import torch`, when torch is not installed) yields inside vLLM's
tests run against g4serve: vLLM itself is never installed (it pulls torch and CUDA), so the
test modules that also hold unit tests of vLLM's Python classes still import, and those unit
tests fail loudly (they are listed in skip.txt as "vLLM internals").

Every name resolves to a class whose construction raises VllmInternal, except the few the
server-facing tests need, which have honest stand-ins:
- vllm.platforms.current_platform: is_rocm(), is_cuda(), ... are False (g4serve is none of them);
- vllm.tokenizers.get_tokenizer: the HF `tokenizers` library over g4serve's own tokenizer.json
  (an independent reference for the ids g4serve returns), whatever model name is asked for;
- vllm.transformers_utils.repo_utils.hf_api().snapshot_download: no download, a path that does
  not exist (LoRA modules are vLLM-only; the shim ignores --lora-modules)."""
import importlib.abc
import importlib.machinery
import importlib.util
import os
import pathlib
import sys
import types


class VllmInternal(RuntimeError):
    pass


class _Internal:
    _name = "vllm"

    def __init__(self, *args, **kwargs):
        raise VllmInternal("%s is vLLM's Python code, not available against g4serve" % self._name)


class _Platform:
    def __getattr__(self, name):
        if name.startswith("is_"):
            return lambda *a, **k: False
        raise VllmInternal("vllm.platforms.current_platform.%s is not available against g4serve" % name)


class _Tokenizer:
    """The subset of a HF tokenizer that the tests call, over g4serve's tokenizer.json."""

    def __init__(self):
        from tokenizers import Tokenizer
        path = pathlib.Path(os.environ["G4_ROOT"]) / "tests" / "text" / "data" / "tokenizer.json"
        self._tok = Tokenizer.from_file(str(path))

    def encode(self, text, add_special_tokens=True, **kwargs):
        return self._tok.encode(text, add_special_tokens=add_special_tokens).ids

    def decode(self, ids, skip_special_tokens=False, **kwargs):
        if isinstance(ids, int):
            ids = [ids]
        return self._tok.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def convert_ids_to_tokens(self, ids):
        return [self._tok.id_to_token(i) for i in ids]

    def get_vocab_size(self):
        return self._tok.get_vocab_size()


class _HfApi:
    def snapshot_download(self, repo_id, **kwargs):
        return "/nonexistent/vllm-only/" + repo_id


STAND_INS = {
    "vllm.platforms": {"current_platform": _Platform()},
    "vllm.tokenizers": {"get_tokenizer": lambda *a, **k: _Tokenizer()},
    "vllm.transformers_utils.repo_utils": {"hf_api": lambda *a, **k: _HfApi()},
}


def _module(fullname):
    m = types.ModuleType(fullname)
    m.__path__ = []  # a package: submodules import too
    stand_ins = STAND_INS.get(fullname, {})
    cache = {}

    def getattr_(name):
        if name.startswith("__"):
            raise AttributeError(name)
        if name in stand_ins:
            return stand_ins[name]
        if name not in cache:
            base = VllmInternal if name.endswith(("Error", "Exception")) else _Internal
            cache[name] = type(name, (base,), {"_name": fullname + "." + name})
        return cache[name]

    m.__getattr__ = getattr_
    return m


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def __init__(self, roots):
        self.roots = roots

    def find_spec(self, fullname, path, target=None):
        if fullname.split(".")[0] in self.roots:
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        return _module(spec.name)

    def exec_module(self, module):
        pass


def install():
    roots = {"vllm"}
    if importlib.util.find_spec("torch") is None:
        roots.add("torch")
    sys.meta_path.insert(0, _Finder(roots))
