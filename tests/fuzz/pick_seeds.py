#!/usr/bin/env python3
"""pick_seeds.py - chooses the few inputs of a campaign's scratch corpus worth committing as seeds:
greedily, the input that adds the most libFuzzer features (ft) to what the committed seeds of
tests/fuzz/corpus/<target>/ and the inputs already picked reach, the smaller on a tie, until N are
picked or nothing adds a feature. Copies them as corpus/<target>/cov_<sha1 prefix>.

    python3 tests/fuzz/pick_seeds.py BUILD_DIR TARGET SCRATCH_DIR [N=20]

Runs the libFuzzer binary BUILD_DIR/tests/fuzz/fuzz_TARGET once in -merge=1 mode to learn every
input's features (its merge control file); not the set-cover libFuzzer itself would choose, which
keeps hundreds of inputs. The committed corpus must stay small (docs/contributing.md, Fuzzing)."""
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def features(binary, seeds, scratch):
    """{path: set of features} from a merge control file (lines "FT <file index> <features...>")."""
    with tempfile.TemporaryDirectory() as tmp:
        ctl, out = os.path.join(tmp, "control"), os.path.join(tmp, "out")
        os.mkdir(out)
        subprocess.run([binary, "-merge=1", "-merge_control_file=" + ctl, "-rss_limit_mb=2048", "-timeout=10", out,
                        seeds, scratch], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True,
                       env=dict(os.environ, ASAN_OPTIONS="detect_leaks=0"))
        lines = open(ctl, errors="replace").read().splitlines()
    n = int(lines[0])
    files = lines[2:2 + n]
    ft = {f: set() for f in files}
    for line in lines[2 + n:]:
        if line.startswith("FT "):
            parts = line.split()
            ft[files[int(parts[1])]] = set(parts[2:])
    return ft


def main():
    build, target, scratch = sys.argv[1:4]
    want = int(sys.argv[4]) if len(sys.argv) > 4 else 20
    seeds = os.path.join(HERE, "corpus", target)
    ft = features(os.path.join(build, "tests", "fuzz", "fuzz_" + target), seeds, scratch)
    have = set().union(*(v for f, v in ft.items() if os.path.dirname(os.path.abspath(f)) == os.path.abspath(seeds)))
    pool = {f: v for f, v in ft.items() if os.path.dirname(os.path.abspath(f)) != os.path.abspath(seeds)}
    picked = []
    while len(picked) < want and pool:
        best = max(pool, key=lambda f: (len(pool[f] - have), -os.path.getsize(f)))
        if not pool[best] - have:
            break
        have |= pool.pop(best)
        picked.append(best)
    for f in picked:
        data = open(f, "rb").read()
        shutil.copyfile(f, os.path.join(seeds, "cov_" + hashlib.sha1(data).hexdigest()[:12]))
    reach = len(set().union(*ft.values()))
    print("%s: %d seeds added; the seeds now reach %d of the %d features of seeds and scratch together"
          % (target, len(picked), len(have), reach))


if __name__ == "__main__":
    main()
