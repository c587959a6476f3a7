#!/usr/bin/env python3
"""check_includes.py — the include graph of csrc/ and cuda/ between folders, checked against the
layer order written below.

Reads every `#include "..."` of the C / C++ / CUDA sources under csrc/ and cuda/ (angle-bracket
includes are system or library headers and are not followed), resolves it the way the build does
(the including file's folder, then csrc/, then cuda/) and draws an edge from the including file's
folder to the included file's folder. Fails (exit 1) on:
  - a folder cycle (two folders that reach each other through includes);
  - an include that points up: from a folder to one on a higher layer of LAYERS, or to another
    folder of the same layer (folders of one layer are independent of each other);
  - a folder that LAYERS does not place (a new folder is given its layer here, on purpose).
Prints the derived graph: each folder's layer (longest include chain down to the ground floor)
and the folders it includes. Includes that resolve to no file (generated protobuf headers) are
listed, not checked.

  python3 tests/tools/check_includes.py [--root DIR] [--quiet]
  python3 tests/tools/check_includes.py --self-test     plants an upward include and a cycle in a
                                                        copy and checks that both are caught
"""
import argparse
import os
import re
import shutil
import sys
import tempfile

# Bottom first. A folder may include its own headers and those of folders on lower layers only.
LAYERS = [
    ["csrc/base"],                                   # ground floor: errors, dtype, weight, rope, strbuf, comm
    ["csrc/backend"],                                # the op table, backend options, the registry's interface
    ["csrc/backend/cpu", "cuda"],                    # the backends (each defines its registry kind)
    ["csrc/model", "csrc/text", "csrc/media"],       # the forward pass and checkpoints; tokenizer and chat text; images
    ["csrc/grammar"],                                # structured output: grammars, matcher, token masks
    ["csrc/engine"],                                 # the serving engine over the executor seam
    ["csrc/parallel"],                               # the tensor-parallel group and its executor
    ["csrc/server/metrics", "csrc/server/structured"],  # what both protocols share: metrics, compiled constraints
    ["csrc/server/http", "csrc/server/grpc"],        # protocols over the engine
    ["csrc/server"],                                 # the g4serve process (composition root)
    ["csrc/tools"],                                  # tools over the composition root
]
# The emulated CUDA target (cuda/emu and its include/ tree, one unit) is the CUDA toolkit's
# stand-in: the backend reaches it with angle brackets only, so it is not placed among the layers.
UNPLACED_OK = ("cuda/emu",)
SCAN = ("csrc", "cuda")
# Includes that break the rule for a reason written here, each to be removed with its reason.
# An entry that no longer matches an include fails the check (so none outlives its reason).
ALLOWED = {}
SUFFIXES = (".c", ".h", ".cu", ".cuh", ".cc", ".cpp", ".hpp")
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def sources(root):
    for top in SCAN:
        for d, dirs, files in os.walk(os.path.join(root, top)):
            dirs.sort()
            for f in sorted(files):
                if f.endswith(SUFFIXES):
                    yield os.path.join(d, f)


def resolve(root, src, inc):
    bases = [os.path.dirname(src), os.path.join(root, "csrc"), os.path.join(root, "cuda")]
    if "cuda/emu" in src.replace(os.sep, "/"):
        bases.append(os.path.join(root, "cuda/emu/include"))  # the emulated toolkit's headers
    for base in bases:
        p = os.path.normpath(os.path.join(base, inc))
        if os.path.isfile(p):
            return p
    return None


def folder(root, path):
    f = os.path.relpath(os.path.dirname(path), root).replace(os.sep, "/")
    return "cuda/emu" if f.startswith("cuda/emu/") else f  # the emulated toolkit is one unit


def graph(root, allowed_seen):
    edges, unresolved = {}, []
    for src in sources(root):
        a = folder(root, src)
        edges.setdefault(a, {})
        with open(src, encoding="utf-8", errors="replace") as f:
            text = f.read()
        for m in INCLUDE.finditer(text):
            p = resolve(root, src, m.group(1))
            if p is None:
                unresolved.append((os.path.relpath(src, root), m.group(1)))
                continue
            b = folder(root, p)
            edges.setdefault(b, {})
            rel = os.path.relpath(src, root).replace(os.sep, "/")
            if (rel, m.group(1)) in ALLOWED:
                allowed_seen.add((rel, m.group(1)))
            elif a != b:
                edges[a].setdefault(b, []).append((rel, m.group(1)))
    return edges, unresolved


def cycles(edges):
    """Strongly connected components with more than one folder (Tarjan)."""
    index, low, stack, on, out, n = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = n[0]
        n[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def derived_layers(edges):
    """Longest include chain from each folder down to one that includes no other (cycles cut)."""
    depth, busy = {}, set()

    def d(v):
        if v in depth:
            return depth[v]
        if v in busy:
            return 0
        busy.add(v)
        depth[v] = max([d(w) + 1 for w in edges[v]], default=0)
        busy.discard(v)
        return depth[v]

    for v in edges:
        d(v)
    return depth


def check(root, quiet=False, silent=False):
    allowed_seen = set()
    edges, unresolved = graph(root, allowed_seen)
    declared = {f: i for i, layer in enumerate(LAYERS) for f in layer}
    problems = []
    for (src, inc), why in sorted(ALLOWED.items()):
        if (src, inc) not in allowed_seen:
            problems.append(f"stale ALLOWED entry: {src} no longer includes \"{inc}\": remove it")
    for comp in cycles(edges):
        problems.append("folder cycle: " + " <-> ".join(comp))
    for a in sorted(edges):
        if a not in declared:
            if not a.startswith(UNPLACED_OK):
                problems.append(f"folder {a} has no layer in LAYERS ({os.path.relpath(__file__, root)})")
            continue
        for b, where in sorted(edges[a].items()):
            if b not in declared:
                continue
            if declared[b] >= declared[a]:
                kind = "up" if declared[b] > declared[a] else "sideways (same layer)"
                for src, inc in where:
                    problems.append(f"include points {kind}: {src} includes \"{inc}\" "
                                    f"({a} is layer {declared[a]}, {b} is layer {declared[b]})")
    if not quiet:
        depth = derived_layers(edges)
        print("include graph of csrc/ and cuda/ folders (derived layer: longest chain down):")
        for a in sorted(edges, key=lambda v: (depth[v], v)):
            tag = f"L{declared[a]}" if a in declared else "--"
            print(f"  [{depth[a]}] {a:<20} (declared {tag}) -> {', '.join(sorted(edges[a])) or '(nothing)'}")
        for (src, inc), why in sorted(ALLOWED.items()):
            print(f"allowed, not drawn: {src} includes \"{inc}\": {why}")
        if unresolved:
            print("not followed (no such file in the tree: generated or external):")
            for src, inc in sorted(set(unresolved)):
                print(f"  {src}: \"{inc}\"")
    for p in problems:
        if not silent:
            print("FAIL " + p)
    if not problems and not quiet:
        print("ok: no folder cycle, no include pointing up or sideways")
    return 1 if problems else 0


def self_test(root):
    """Plants an upward include, then a cycle, in a copy of the tree: each must fail."""
    ok = check(root, quiet=True) == 0  # the tree's own problems are printed
    print(f"self-test: the tree itself {'passes' if ok else 'FAILS'}")
    with tempfile.TemporaryDirectory() as tmp:
        for top in SCAN:
            shutil.copytree(os.path.join(root, top), os.path.join(tmp, top))
        # 1. base/ includes the op table: points up.
        with open(os.path.join(tmp, "csrc/base/error.h"), "a") as f:
            f.write('\n#include "backend/backend.h"\n')
        up = check(tmp, quiet=True, silent=True) != 0
        print(f"self-test: planted upward include {'caught' if up else 'MISSED'}")
        # 2. undo it; model/ and text/ (one layer) and a cycle engine -> parallel -> engine.
        shutil.copyfile(os.path.join(root, "csrc/base/error.h"), os.path.join(tmp, "csrc/base/error.h"))
        with open(os.path.join(tmp, "csrc/engine/engine.h"), "a") as f:
            f.write('\n#include "parallel/tp.h"\n')
        cyc = check(tmp, quiet=True, silent=True) != 0
        print(f"self-test: planted folder cycle {'caught' if cyc else 'MISSED'}")
    return 0 if ok and up and cyc else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--root", default=os.path.normpath(os.path.join(here, "..", "..")))
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--self-test", action="store_true")
    a = ap.parse_args()
    sys.exit(self_test(a.root) if a.self_test else check(a.root, a.quiet))


if __name__ == "__main__":
    main()
