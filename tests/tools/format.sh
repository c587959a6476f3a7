#!/usr/bin/env bash
# format.sh — the source format (.clang-format at the root, clang-format-16) over every tracked
# C / C++ / CUDA file in csrc/ cuda/ bench/ tests/.
#   format.sh check   list the files that are not formatted and how many lines would change;
#                     exit 1 if there is any (tests/run.sh, the format-check target)
#   format.sh fix     reformat them in place (the format target)
# Not here: what the style is (.clang-format says it, tuned to the code as written).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
mode=${1:-check}
cf=${CLANG_FORMAT:-clang-format-16}
command -v "$cf" >/dev/null 2>&1 || { echo "format.sh: $cf not found (deploy/setup-debian.sh installs it)" >&2; exit 2; }
cd "$root"
mapfile -t files < <(git ls-files -- csrc cuda bench tests | grep -E '\.(c|h|cu|cuh|cc)$')
case $mode in
  fix)
    "$cf" -i --style=file "${files[@]}"
    ;;
  check)
    bad=0 lines=0
    for f in "${files[@]}"; do
      n=$("$cf" --style=file "$f" | diff "$f" - | grep -c '^<' || true)
      if [ "$n" -gt 0 ]; then
        echo "format.sh: $f: $n lines differ from clang-format"
        bad=$((bad + 1)) lines=$((lines + n))
      fi
    done
    if [ "$bad" -gt 0 ]; then
      echo "format.sh: $bad of ${#files[@]} files not formatted ($lines lines); run: bash tests/tools/format.sh fix" >&2
      exit 1
    fi
    echo "format.sh: ${#files[@]} files formatted"
    ;;
  *) echo "usage: format.sh check|fix" >&2; exit 2 ;;
esac
