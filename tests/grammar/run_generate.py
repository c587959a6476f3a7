#!/usr/bin/env python3
"""run_generate.py - random masked generation, validated by `jsonschema`.

Runs gen_check (the C side: masks checked against the uncached walk and byte-by-byte) over the
schema corpus of bench/grammar/schemas/, with the test tokenizer (Gemma 4 shaped, 262,144 ids) and
with the synthetic 262,144-token vocabulary (g4_token_trie_synthetic: realistic multi-byte and
JSON-fragment tokens), then checks every finished text: json.loads parses it
and jsonschema (Draft 2020-12, with format checking) validates it. Any failure fails the test.
Usage: run_generate.py GEN_CHECK_BINARY [N_SEEDS]. Exit 77 (skip) without jsonschema.
"""
import glob
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))


def standard_nullable(s):
    """OpenAPI's `nullable: true` (honoured by the engine) as the JSON Schema form jsonschema knows."""
    if isinstance(s, list):
        return [standard_nullable(x) for x in s]
    if not isinstance(s, dict):
        return s
    s = {k: standard_nullable(v) for k, v in s.items()}
    if s.pop("nullable", False) is True:
        return {"anyOf": [s, {"type": "null"}]}
    return s


def main():
    try:
        import jsonschema
    except ImportError:
        print("jsonschema not installed: skipped")
        return 77
    seeds = sys.argv[2] if len(sys.argv) > 2 else "12"
    schemas = sorted(glob.glob(os.path.join(ROOT, "bench", "grammar", "schemas", "*.json")))
    tok = os.path.join(ROOT, "tests", "text", "data", "tokenizer.json")
    results = []
    with tempfile.TemporaryDirectory() as d:
        for vocab in (tok, "synthetic"):  # the Gemma-shaped test tokenizer; a realistic synthetic one
            out = os.path.join(d, "gen.json")
            print("vocabulary:", vocab)
            sys.stdout.flush()
            rc = subprocess.call([sys.argv[1], vocab, out, seeds] + schemas)
            if rc != 0:
                print("gen_check failed:", rc)
                return 1
            with open(out, encoding="utf-8") as f:
                results += json.load(f)
    bad = finished = 0
    for r in results:
        if not r["finished"]:
            continue
        finished += 1
        with open(r["schema"], encoding="utf-8") as f:
            schema = standard_nullable(json.load(f))
        try:
            inst = json.loads(r["text"])
            jsonschema.validate(inst, schema, cls=jsonschema.Draft202012Validator,
                                format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
        except Exception as e:  # noqa: BLE001 - any failure is reported
            bad += 1
            print("INVALID:", os.path.basename(r["schema"]), "seed", r["seed"], repr(r["text"])[:300], "->", str(e)[:200])
    print(f"{len(results)} generations, {finished} finished (EOS), {bad} invalid")
    if finished < len(results) // 2:
        print("too few generations finished")
        return 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
