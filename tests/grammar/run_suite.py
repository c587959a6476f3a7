#!/usr/bin/env python3
"""run_suite.py - the JSON-Schema-Test-Suite (draft 2020-12) against the grammar engine.

Reads every top-level file of ../shared/data/json-schema-test-suite/draft2020-12/, checks each
test's expected validity with the `jsonschema` library (the independent reference: a case where
the suite and jsonschema disagree is reported and left out), writes every instance as compact JSON
(ensure_ascii=False, object keys in every order up to a cap) and runs suite_check, which compiles
each schema (a refusal is counted, not an error) and matches the serialisations.
Usage: run_suite.py SUITE_CHECK_BINARY [-v]. Exit 77 (skip) without jsonschema or the suite data.
"""
import itertools
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SUITE = os.path.join(HERE, "..", "..", "..", "shared", "data", "json-schema-test-suite", "draft2020-12")
MAX_ORDERS = 120


def orders(v, budget):
    """Compact serialisations of v with object keys in every order (at most budget of them)."""
    if isinstance(v, dict):
        keys = list(v)
        out = []
        perms = itertools.permutations(keys) if len(keys) <= 5 else [keys, keys[::-1]]
        for perm in perms:
            parts = [[json.dumps(k, ensure_ascii=False) + ":" + s for s in orders(v[k], 4)] for k in perm]
            for combo in itertools.product(*parts):
                out.append("{" + ",".join(combo) + "}")
                if len(out) >= budget:
                    return out
        return out or ["{}"]
    if isinstance(v, list):
        parts = [orders(x, 4) for x in v]
        out = []
        for combo in itertools.product(*parts):
            out.append("[" + ",".join(combo) + "]")
            if len(out) >= budget:
                break
        return out or ["[]"]
    return [json.dumps(v, ensure_ascii=False, separators=(",", ":"))]


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    try:
        import jsonschema
    except ImportError:
        print("jsonschema not installed: skipped (pip install -r tests/grammar/requirements.txt)")
        return 77
    suite = os.path.normpath(SUITE)
    if not os.path.isdir(suite):
        print("no test suite at", suite, ": skipped")
        return 77
    cases, disagree, unencodable, format_only = [], 0, 0, 0
    for name in sorted(os.listdir(suite)):
        if not name.endswith(".json"):
            continue
        with open(os.path.join(suite, name), encoding="utf-8") as f:
            groups = json.load(f)
        for grp in groups:
            schema = grp["schema"]
            try:
                validator = jsonschema.Draft202012Validator(schema)
                asserting = jsonschema.Draft202012Validator(
                    schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
            except Exception:
                validator = asserting = None
            tests = []
            for t in grp["tests"]:
                if validator is not None:
                    try:
                        ref = validator.is_valid(t["data"])
                        if ref != t["valid"]:
                            disagree += 1
                            continue
                    except Exception:
                        pass  # remote references etc.: the suite's label stands
                if asserting is not None and t["valid"]:
                    try:
                        if not asserting.is_valid(t["data"]):
                            # valid only because 2020-12 treats format as an annotation; the
                            # engine asserts the formats it supports (docs/structured-output.md)
                            format_only += 1
                            continue
                    except Exception:
                        pass
                texts = orders(t["data"], MAX_ORDERS)
                try:
                    for s in texts:
                        s.encode("utf-8")
                except UnicodeEncodeError:
                    unencodable += 1
                    continue
                tests.append({"description": t["description"], "valid": t["valid"], "texts": texts})
            cases.append({"file": name, "description": grp["description"],
                          "schema": json.dumps(schema, ensure_ascii=False), "tests": tests})
    print(f"{len(cases)} cases; {disagree} tests left out where the suite and jsonschema disagree; "
          f"{unencodable} instances not encodable as UTF-8 (lone surrogates) left out; "
          f"{format_only} valid instances left out that fail their format (asserted here, an annotation in 2020-12)")
    sys.stdout.flush()
    keep = os.environ.get("G4_KEEP_CASES")  # debugging: write the cases there and keep them
    with (open(keep, "w", encoding="utf-8") if keep else
          tempfile.NamedTemporaryFile("w", suffix=".json", delete=False, encoding="utf-8")) as f:
        json.dump(cases, f, ensure_ascii=False)
        path = f.name
    try:
        return subprocess.call([sys.argv[1], path] + sys.argv[2:])
    finally:
        if not keep:
            os.unlink(path)


if __name__ == "__main__":
    sys.exit(main())
