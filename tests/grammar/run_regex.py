#!/usr/bin/env python3
"""run_regex.py - regex, JSON Schema pattern, GBNF and choice constraints against Python `re`.

Random regular expressions are drawn from the supported subset over a small alphabet and written
twice: as a regex and as the equivalent GBNF grammar. Random strings (plus strings generated from
the expression, so both outcomes occur) are labelled by re.fullmatch (regex, GBNF) and re.search
(JSON Schema pattern, texts serialised as JSON strings); lang_check must agree on every one.
Choices are checked against plain membership. Unsupported constructs must be refused by name.
Usage: run_regex.py LANG_CHECK_BINARY [N_REGEXES]
"""
import json
import os
import random
import re
import subprocess
import sys
import tempfile

ALPHA = "abcd"


def gen(rng, depth):
    k = rng.random()
    if depth <= 0 or k < 0.3:
        c = rng.random()
        if c < 0.55:
            return ("lit", rng.choice(ALPHA + "-."))
        if c < 0.85:
            chars = "".join(sorted(set(rng.choice(ALPHA) for _ in range(rng.randint(1, 3)))))
            return ("class", chars, rng.random() < 0.25)
        return ("range", rng.choice("ab"), rng.choice("cd"))
    if k < 0.55:
        return ("seq", [gen(rng, depth - 1) for _ in range(rng.randint(2, 3))])
    if k < 0.72:
        return ("alt", [gen(rng, depth - 1) for _ in range(rng.randint(2, 3))])
    q = rng.choice(["*", "+", "?", "rep"])
    if q == "rep":
        m = rng.randint(0, 2)
        n = rng.choice([m, m + 1, m + 2, None])
        return ("rep", gen(rng, depth - 1), m, n)
    return (q, gen(rng, depth - 1))


def to_re(e):
    t = e[0]
    if t == "lit":
        return re.escape(e[1]) if e[1] in ".-" else e[1]
    if t == "class":
        return "[" + ("^" if e[2] else "") + e[1] + "]"
    if t == "range":
        return f"[{e[1]}-{e[2]}]"
    if t == "seq":
        return "".join("(?:" + to_re(x) + ")" for x in e[1])
    if t == "alt":
        return "(?:" + "|".join(to_re(x) for x in e[1]) + ")"
    if t == "rep":
        return "(?:" + to_re(e[1]) + "){" + str(e[2]) + ("," + ("" if e[3] is None else str(e[3])) if e[3] != e[2] else "") + "}"
    return "(?:" + to_re(e[1]) + ")" + t


def to_gbnf(e):
    t = e[0]
    if t == "lit":
        return json.dumps(e[1])
    if t == "class":
        return "[" + ("^" if e[2] else "") + e[1] + "]"
    if t == "range":
        return f"[{e[1]}-{e[2]}]"
    if t == "seq":
        return " ".join("(" + to_gbnf(x) + ")" for x in e[1])
    if t == "alt":
        return "(" + " | ".join(to_gbnf(x) for x in e[1]) + ")"
    if t == "rep":
        return "(" + to_gbnf(e[1]) + "){" + str(e[2]) + ("," + ("" if e[3] is None else str(e[3])) if e[3] != e[2] else "") + "}"
    return "(" + to_gbnf(e[1]) + ")" + t


def sample(rng, e, budget=6):
    t = e[0]
    if t == "lit":
        return e[1]
    if t == "class":
        return rng.choice([c for c in ALPHA + "xyz" if (c in e[1]) != e[2]])
    if t == "range":
        return chr(rng.randint(ord(e[1]), ord(e[2])))
    if t == "seq":
        return "".join(sample(rng, x) for x in e[1])
    if t == "alt":
        return sample(rng, rng.choice(e[1]))
    if t == "rep":
        hi = e[3] if e[3] is not None else e[2] + 2
        return "".join(sample(rng, e[1]) for _ in range(rng.randint(e[2], hi)))
    lo = 1 if t == "+" else 0
    hi = 1 if t == "?" else 3
    return "".join(sample(rng, e[1]) for _ in range(rng.randint(lo, hi)))


REFUSE = [
    ("regex", "(?=a)b", "lookahead"), ("regex", "(?!a)b", "lookahead"), ("regex", "(?<=a)b", "lookbehind"),
    ("regex", "(a)\\1", "backreference"), ("regex", "\\bfoo", "word boundary"), ("regex", "\\p{L}+", "unicode property"),
    ("regex", "a^b", "anchors"), ("regex", "(?i)abc", "group flags"), ("regex", "[a-", "unterminated"),
    ("regex", "a{3,1}", "m < n"), ("regex", "(ab", "missing )"), ("regex", "a)", "unbalanced"),
    ("pattern", "(?=x)", "lookahead"), ("pattern", "\\cJ", "control escapes"),
    ("gbnf", "root ::= a\na ::= a \"x\" | \"y\"", "left recursion"), ("gbnf", "root ::= undefined-rule", "never defined"),
    ("gbnf", "start ::= \"x\"", "no `root` rule"), ("gbnf", "root ::= \"x", "unterminated literal"),
    ("gbnf", "root ::= (\"x\"", "missing )"), ("gbnf", "root ::= x\nx ::= \"a\" x", "no finite string"),
    ("gbnf", "root ::= \"a\"\nroot ::= \"b\"", "defined twice"),
]


def numeric_cases(rng, cases, n):
    """Numbers under random bounds (integer and decimal, inclusive and exclusive), texts in the
    canonical layout (no exponent), labelled by exact decimal comparison."""
    from decimal import Decimal

    def rnd_num(scale):
        ip = rng.randint(-scale, scale)
        nd = rng.choice([0, 0, 1, 2, 3])
        fr = "".join(rng.choice("0123456789") for _ in range(nd))
        txt = str(abs(ip)) + ("." + fr if fr else "")
        if ip < 0 or (ip == 0 and fr.strip("0") and rng.random() < 0.5):
            txt = "-" + txt
        return txt

    for _ in range(n):
        typ = rng.choice(["number", "number", "integer"])
        schema = {"type": typ}
        bounds = []
        for kw in rng.sample(["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"], rng.randint(1, 2)):
            b = rnd_num(20)
            schema[kw] = json.loads(b)
            bounds.append((kw, Decimal(b)))
        texts = [rnd_num(25) for _ in range(20)]
        for kw, b in bounds:  # the bound itself and its neighbours
            for d in ("0", "0.001", "-0.001", "1", "-1"):
                v = b + Decimal(d)
                t = format(v, "f")
                if t.startswith("-") and Decimal(t) == 0:
                    continue
                texts.append(t)
        texts = [t for t in texts if t not in ("-0",) and not (t.startswith("-0") and Decimal(t) == 0)]

        def valid(t):
            v = Decimal(t)
            if typ == "integer" and v != v.to_integral_value():
                return 0
            for kw, b in bounds:
                if (kw == "minimum" and v < b) or (kw == "maximum" and v > b) or \
                   (kw == "exclusiveMinimum" and v <= b) or (kw == "exclusiveMaximum" and v >= b):
                    return 0
            return 1
        if typ == "integer":  # the canonical integer layout: no fraction, or ".0"
            texts = [t for t in texts if "." not in t or t.split(".")[1] == "0"]
        cases.append({"kind": "schema", "source": json.dumps(schema), "texts": texts, "expect": [valid(t) for t in texts]})


def main():
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 300
    rng = random.Random(1234)
    cases = []
    for _ in range(n):
        e = gen(rng, 3)
        rx, gb = to_re(e), to_gbnf(e)
        texts = [sample(rng, e) for _ in range(12)]
        texts += ["".join(rng.choice(ALPHA + "-.x") for _ in range(rng.randint(0, 7))) for _ in range(12)]
        cases.append({"kind": "regex", "source": rx, "texts": texts,
                      "expect": [int(re.fullmatch(rx, t) is not None) for t in texts]})
        cases.append({"kind": "gbnf", "source": "root ::= " + gb, "texts": texts,
                      "expect": [int(re.fullmatch(rx, t) is not None) for t in texts]})
        cases.append({"kind": "pattern", "source": rx, "texts": [json.dumps(t) for t in texts],
                      "expect": [int(re.search(rx, t) is not None) for t in texts]})
    # anchored patterns, escapes and classes with Unicode, JSON escaping inside strings
    for rx, texts in [("^[a-z]+$", ["abc", "", "ab1", "zz"]), ("^\\d{3}-\\d{4}$", ["555-1234", "5555-123", "555-12345"]),
                      ("\\w+@\\w+\\.com", ["x a@b.com y", "a@b.co", "@b.com"]), ("^[^\"\\\\]*$", ["plain", "a\"b", "a\\b"]),
                      ("é+ü", ["éü", "ééü", "eü"]), ("^\\s*$", [" \t", "", " x"]), ("^.{2,3}$", ["ab", "abc", "a", "abcd", "\u00e9\u00e9"]),
                      ("^\\u00e9\\x41$", ["éA", "eA"]), ("^a|b$", ["ax", "xb", "xax"]), ("^\n$", ["\n", ""])]:
        cases.append({"kind": "pattern", "source": rx, "texts": [json.dumps(t, ensure_ascii=False) for t in texts],
                      "expect": [int(re.search(rx, t) is not None) for t in texts]})
    # a realistic grammar: arithmetic over integers with optional spaces
    arith = ('root ::= expr\nexpr ::= term ( ws [-+] ws term )*\nterm ::= factor ( ws [*/] ws factor )*\n'
             'factor ::= [0-9]+ | "(" ws expr ws ")"   # a comment\nws ::= " "?\n')
    arith_re = None
    texts = ["1", "1+2", "(1 + 2) * 3", "((4))", "1+", "(1", "1 +2", "12*(3-4)/5", "", "1  + 2", "a"]
    expect = [1, 1, 1, 1, 0, 0, 1, 1, 0, 0, 0]
    cases.append({"kind": "gbnf", "source": arith, "texts": texts, "expect": expect})
    del arith_re
    for ch in [["yes", "no"], ["positive", "negative", "neutral"], ["a", "ab", "abc"], ["", "x"], ["日本", "中文"]]:
        texts = ch + ["ye", "yess", "abcd", "neutra", "日", "x y", ""]
        cases.append({"kind": "choice", "choices": ch, "texts": texts, "expect": [int(t in ch) for t in texts]})
    numeric_cases(rng, cases, n)
    for lang, src, needle in REFUSE:
        cases.append({"kind": "refuse", "lang": lang, "source": src, "needle": needle})
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "lang.json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump(cases, f, ensure_ascii=False)
        return subprocess.call([sys.argv[1], path])


if __name__ == "__main__":
    sys.exit(main())
