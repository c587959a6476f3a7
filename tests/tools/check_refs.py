#!/usr/bin/env python3
"""check_refs.py — every file a source comment names exists, and no comment cites a document
outside the repository.

Reads the comments of the tracked sources (C / C++ / CUDA: /* */ and //; Python, shell, CMake:
#). A name with a folder (csrc/engine/engine.c, docs/model-spec.md) must be a file of the
repository, looked up from the root, from the commenting file's folder and from the include
roots; a bare file name with a source or document extension (runner.c, engine.md) must be the
name of some tracked file. A path that leaves the repository (../shared/..., /work/...) fails.
Public upstream files cited as sources (transformers' modeling_gemma4.py, ...) are told apart
by the repository they are cited with: see UPSTREAM. Exit 1 with one line per bad reference.
Usage: check_refs.py [repository root] (default: this file's repository).
Not here: links in the Markdown docs, #include lines (the compiler checks those)."""
import os
import re
import subprocess
import sys

ROOT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", ".."))
INCLUDE_ROOTS = ["csrc", "cuda", "cuda/emu/include", "tests/common", "bench"]
C_LIKE = (".c", ".h", ".cu", ".cuh", ".cc")
HASH_LIKE = (".py", ".sh", ".cmake", "CMakeLists.txt", ".proto")
# Extensions whose bare names must be repository files; data names (config.json, tokenizer.json)
# mostly mean files of a checkpoint or of the build tree and are checked only with a folder.
NAMED_EXT = r"(?:c|h|cu|cuh|cc|py|sh|md|proto)"
PATH_RE = re.compile(r"(?<![\w.$/{-])((?:\.\.?/)*(?:[\w.+-]+/)*[\w+-][\w.+-]*\.(?:%s|json|txt|yml|yaml|toml))(?![\w/])" % NAMED_EXT)
# Files named in comments that are generated at build time, not tracked.
GENERATED = re.compile(r"\.pb-c\.[ch]$|_pb2(_grpc)?\.py$")
# Upstream projects whose files comments cite as public sources ("transformers' masking_utils.py").
UPSTREAM = re.compile(r"transformers|vllm|vLLM|llama\.cpp|sglang|SGLang|gemma|jax|JAX|HF|grpc/grpc|"
                      r"openai|tokenizers|upstream|protobuf|triton|Triton|ggml|ollama|Ollama|NCCL|CUTLASS|cutlass|"
                      r"flash|Flash|sqlite|SQLite|redis|Redis|nginx|linux|Linux|PyTorch|torch|github", re.I)


def tracked():
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [f for f in out.splitlines() if os.path.exists(os.path.join(ROOT, f))]


def comments(path, text):
    """(line number, comment text) for each comment line of the file."""
    if path.endswith(C_LIKE):
        # strings first, so "//" or "/*" inside a literal is not taken for a comment
        pat = re.compile(r'"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'|/\*.*?\*/|//[^\n]*', re.S)
        for m in pat.finditer(text):
            s = m.group(0)
            if s[0] in "\"'":
                continue
            line = text.count("\n", 0, m.start()) + 1
            for i, part in enumerate(s.split("\n")):
                yield line + i, part
    elif path.endswith(HASH_LIKE):
        for i, l in enumerate(text.split("\n")):
            j = l.find("#")
            if j >= 0 and not l.lstrip().startswith("#include") and not l.lstrip().startswith("#!"):
                yield i + 1, l[j:]


def system_headers():
    """Names of the installed system headers (grpc.h, microhttpd.h): a comment may name those."""
    found = set()
    for d in ("/usr/include", "/usr/local/include"):
        for _, _, fs in os.walk(d):
            found.update(f for f in fs if f.endswith(".h"))
    return found


def main():
    files = tracked()
    names = {os.path.basename(f) for f in files} | system_headers()
    fileset = set(files)
    bad = []
    for f in files:
        if not (f.endswith(C_LIKE) or f.endswith(HASH_LIKE)):
            continue
        try:
            text = open(os.path.join(ROOT, f), encoding="utf-8").read()
        except UnicodeDecodeError:
            continue
        here = os.path.dirname(f)
        for ln, c in comments(f, text):
            for m in PATH_RE.finditer(c):
                ref = m.group(1).rstrip(".")
                if GENERATED.search(ref):
                    continue
                before = c[max(0, m.start() - 60):m.start()]
                if ref.startswith("../") or "shared/docs" in ref or ref.startswith("/work"):
                    bad.append(f"{f}:{ln}: names '{ref}', outside the repository")
                    continue
                if "/" in ref:
                    cands = [os.path.normpath(os.path.join(d, ref)) for d in [""] + [here] + INCLUDE_ROOTS]
                    if any(c2 in fileset or os.path.isdir(os.path.join(ROOT, c2)) for c2 in cands):
                        continue
                    top = ref.split("/")[0]
                    if not os.path.exists(os.path.join(ROOT, top)) and top not in ("docs", "proto"):
                        continue  # a path of another project or of the system (grpc/grpc.h, ...)
                    if UPSTREAM.search(before):
                        continue
                    bad.append(f"{f}:{ln}: names '{ref}', no such file in the repository")
                elif re.search(r"\.%s$" % NAMED_EXT, ref) and ref not in names:
                    if UPSTREAM.search(before):
                        continue
                    bad.append(f"{f}:{ln}: names '{ref}', no such file in the repository")
    for b in bad:
        print(b)
    if bad:
        print(f"check_refs: {len(bad)} bad reference(s)", file=sys.stderr)
        return 1
    print(f"check_refs: every file named in the comments of {len(files)} tracked files exists")
    return 0


if __name__ == "__main__":
    sys.exit(main())
