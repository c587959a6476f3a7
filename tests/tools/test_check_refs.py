#!/usr/bin/env python3
"""test_check_refs.py — check_refs.py on a throw-away git repository: it passes a tree whose
comments name existing files, and fails, naming the line, for each kind of bad reference (a
missing repository file, a bare name that is no tracked file, a document outside the
repository); a cited upstream source file and a file named inside a string do not count."""
import os
import shutil
import subprocess
import sys
import tempfile

TOOL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "check_refs.py")


def run(root):
    p = subprocess.run([sys.executable, TOOL, root], capture_output=True, text=True)
    shutil.rmtree(root)
    return p.returncode, p.stdout


def make(files):
    d = tempfile.mkdtemp(prefix="g4-check-refs-")
    for path, text in files.items():
        os.makedirs(os.path.join(d, os.path.dirname(path)), exist_ok=True)
        with open(os.path.join(d, path), "w") as f:
            f.write(text)
    subprocess.run(["git", "init", "-q", d], check=True)
    subprocess.run(["git", "-C", d, "add", "-A"], check=True)
    return d


GOOD = {
    "csrc/engine/engine.h": "/* engine.h — see engine.c and docs/engine.md, csrc/engine/engine.c */\n",
    "csrc/engine/engine.c": "// the loop; HF's modeling_gemma4.py (transformers) defines it\n"
                            "const char *s = \"missing.c\"; /* runner.c */\n",
    "csrc/engine/runner.c": "\x23 not a comment in C\n",
    "docs/engine.md": "x\n",
    "tests/run.sh": "\x23 runs tests/run.sh and csrc/engine/runner.c\n",  # \x23: "#", kept out of this comment scan
}

failures = 0


def expect(cond, what):
    global failures
    print(("ok   " if cond else "FAIL ") + what)
    failures += not cond


rc, out = run(make(GOOD))
expect(rc == 0, "a tree with only existing references passes: " + out.strip())

for name, line, needle in [
    ("missing path", "/* see csrc/engine/sched.c */\n", "csrc/engine/sched.c"),
    ("missing bare name", "/* see chat_prompt.c */\n", "chat_prompt.c"),
    ("outside document", "/* (../shared/docs/spec.md §2) */\n", "../shared/docs/spec.md"),
    ("outside design note", "// the design (design.md §5)\n", "design.md"),
    ("missing doc", "\x23 facts: docs/model-spec.md\n", "docs/model-spec.md"),
]:
    files = dict(GOOD)
    target = "tests/run.sh" if line.startswith("\x23") else "csrc/engine/engine.c"
    files[target] = files[target] + line
    rc, out = run(make(files))
    expect(rc == 1 and needle in out and target in out, f"{name} fails naming {needle}: {out.strip()}")

sys.exit(1 if failures else 0)
