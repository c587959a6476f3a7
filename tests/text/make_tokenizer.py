#!/usr/bin/env python3
"""make_tokenizer.py - builds the Gemma-shaped test tokenizer and its golden encodings.

Writes (deterministically; run from anywhere):
  tests/text/data/tokenizer.json   a Gemma 4 shaped HF tokenizer (BPE + byte fallback, the
                                   Replace(" ", "\u2581") normalizer, the Gemma decoder), id space
                                   exactly 262,144, structural tokens and <0x00>..<0xFF> at their
                                   real Gemma 4 ids, a trained vocab of a few thousand, the rest
                                   of the ids filled with placeholder tokens "<uN>".
                                   This is also the tokenizer shipped with the embedded tiny model.
  tests/text/data/tok_corpus.json  the corpus (>= 300 strings) with the ids `tokenizers` produces
                                   (special-token splitting on and off) and decode results, plus
                                   decode-only cases over random id sequences.

Python is only needed to regenerate this data; the C tests read the JSON files.
Not here: the chat-template goldens (make_chat_cases.py).
"""
import json
import os
import random
import sys

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data")
VOCAB_SIZE = 262144
N_TRAINED = 5000  # target size of the trained part (alphabet + merges)
SP = "\u2581"

# Added tokens at their real Gemma 4 ids (docs/model-spec.md §5).
SPECIALS = [
    (0, "<pad>"), (1, "<eos>"), (2, "<bos>"), (3, "<unk>"), (4, "<mask>"),
    (46, "<|tool>"), (47, "<tool|>"), (48, "<|tool_call>"), (49, "<tool_call|>"),
    (50, "<|tool_response>"), (51, "<tool_response|>"), (52, '<|"|>'),
    (98, "<|think|>"), (100, "<|channel>"), (101, "<channel|>"),
    (105, "<|turn>"), (106, "<turn|>"),
    (255999, "<|image>"), (256000, "<|audio>"),
    (258880, "<|image|>"), (258881, "<|audio|>"), (258882, "<image|>"), (258883, "<audio|>"),
    (258884, "<|video|>"),
]
BYTE_BASE = 238  # <0x00> .. <0xFF> at 238..493
# Ordinary tokens whose real ids are known; the first four must be learned by training.
PINNED_REQUIRED = {"\n": 107, "\n\n": 108, "\n\n\n": 109, "thought": 45518, SP: 236743}
PINNED_OPTIONAL = {"Hello": 9259, SP + "world": 1902, "!": 236888, "1": 236770, "2": 236778,
                   "3": 236800}
CHAR_BASE = 236744  # other single characters go here (Gemma keeps its characters near 236k)

TRAIN_TEXT = """
The quick brown fox jumps over the lazy dog. Hello world! Hello, World. hello again.
A serving backend takes text and chat messages, not token ids. The tokenizer turns text into
tokens; the model predicts the next token; the detokenizer turns tokens back into text.
It is 18C and clear in Paris. What is the weather in London today? It is 15 and sunny.
Please summarize the following document in three sentences, then list the key points.
You are a helpful assistant. Answer briefly and precisely. Think step by step.
thought thought thought The user asks about the weather. I should call the tool.
def encode(self, text: str) -> list[int]:
    ids = []
    for piece in text.split("\\n"):
        if not piece:
            continue
        ids.extend(self.model.tokenize(piece))
    return ids

int main(int argc, char **argv) {
    for (int i = 0; i < argc; i++) printf("%s\\n", argv[i]);
    return 0;
}
{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}
SELECT id, name FROM users WHERE created_at > '2024-01-01' ORDER BY id DESC LIMIT 10;
1 2 3 4 5 6 7 8 9 10 100 1000 3.14159 2.71828 42 1e-05 0.5 -7 +3 12:30 2026-07-09
Numbers: 1, 2, 3; fractions 1/2, 3/4; percent 50%; money $19.99 and EUR 5,00.
Caf\u00e9, d\u00e9j\u00e0 vu, na\u00efve, r\u00e9sum\u00e9, se\u00f1or, \u00fcber, stra\u00dfe, \u00e7a va, S\u00e3o Paulo.
\u4eca\u5929\u5929\u6c14\u5f88\u597d\u3002\u6211\u4eec\u53bb\u516c\u56ed\u6563\u6b65\u5427\u3002\u4e2d\u6587\u5206\u8bcd\u662f\u4e00\u4e2a\u6709\u8da3\u7684\u95ee\u9898\u3002
\u4eca\u65e5\u306f\u3044\u3044\u5929\u6c17\u3067\u3059\u306d\u3002\u6771\u4eac\u3078\u884c\u304d\u307e\u3059\u3002\u3053\u3093\u306b\u3061\u306f\u4e16\u754c\u3002
\uc548\ub155\ud558\uc138\uc694 \uc138\uacc4. \uc624\ub298 \ub0a0\uc528\uac00 \uc88b\uc544\uc694.
\u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440! \u041a\u0430\u043a \u0434\u0435\u043b\u0430?
\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645
\U0001f60a \U0001f44d \U0001f680 \u2764\ufe0f \U0001f600 \U0001f389
"""

WORDS = ("the of and to in is you that it he was for on are as with his they I at be this have "
         "from or one had by word but not what all were we when your can said there use an each "
         "which she do how their if will up other about out many then them these so some her "
         "would make like him into time has look two more write go see number no way could "
         "people my than first water been call who oil its now find long down day did get come "
         "made may part model token tokenizer server request response stream reasoning content "
         "tool call weather city Paris London Tokyo Berlin thought channel turn system user "
         "assistant function arguments value string number object array boolean null true false "
         "encode decode merge rank byte fallback vocabulary sequence generate prompt template").split()


def training_corpus():
    rng = random.Random(1234)
    lines = TRAIN_TEXT.strip("\n").split("\n")
    out = []
    for _ in range(8):
        out.extend(lines)
    for _ in range(6000):
        n = rng.randint(3, 14)
        s = " ".join(rng.choice(WORDS) for _ in range(n))
        if rng.random() < 0.3:
            s = s.capitalize() + rng.choice([".", "?", "!", ",", ":"])
        if rng.random() < 0.15:
            s = "    " * rng.randint(1, 3) + s
        if rng.random() < 0.2:
            s += "\n" * rng.randint(1, 3)
        out.append(s)
    # Pseudo-words from syllables and CJK/kana runs give the trainer more to merge.
    syl = [a + b for a in "bcdfghklmnprstvz" for b in "aeiou"] + ["ch", "sh", "th", "ng", "qu"]
    cjk = [chr(c) for c in range(0x4e00, 0x4e00 + 120)] + [chr(c) for c in range(0x3041, 0x3097)]
    for _ in range(4000):
        n = rng.randint(3, 10)
        out.append(" ".join("".join(rng.choice(syl) for _ in range(rng.randint(1, 3)))
                            for _ in range(n)))
        out.append("".join(rng.choice(cjk[:rng.randint(20, len(cjk))]) for _ in range(n * 2)))
    # Join into documents so that newline runs appear inside training words.
    docs = []
    for i in range(0, len(out), 7):
        docs.append("\n".join(out[i:i + 7]) + "\n\n")
    return docs


def train():
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Replace(" ", SP)
    # Training only: split into Gemma-like pieces (newline runs, space runs, "\u2581word").
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("\n+|" + SP + "*[^" + SP + "\n]+|" + SP + "+"),
                                             "isolated")
    trainer = trainers.BpeTrainer(vocab_size=N_TRAINED, min_frequency=2, show_progress=False,
                                  special_tokens=[])
    tok.train_from_iterator(training_corpus(), trainer=trainer)
    m = json.loads(tok.to_str())["model"]
    return m["vocab"], [tuple(x) if isinstance(x, list) else tuple(x.split(" ")) for x in m["merges"]]


def build():
    tvocab, merges = train()
    for s in PINNED_REQUIRED:
        if s not in tvocab:
            sys.exit("trained vocab lacks required token %r" % s)
    id_of = {}
    taken = {}

    def put(s, i):
        assert s not in id_of and i not in taken, (s, i)
        id_of[s] = i
        taken[i] = s

    for i, s in SPECIALS:
        put(s, i)
    for b in range(256):
        put("<0x%02X>" % b, BYTE_BASE + b)
    for s, i in PINNED_REQUIRED.items():
        put(s, i)
    for s, i in PINNED_OPTIONAL.items():
        if s in tvocab:
            put(s, i)
    # Trained tokens in trained-id order: characters from CHAR_BASE, merged tokens from 494.
    nxt_char, nxt_merged = CHAR_BASE, BYTE_BASE + 256
    for s, _ in sorted(tvocab.items(), key=lambda kv: kv[1]):
        if s in id_of:
            continue
        if len(s) == 1:
            while nxt_char in taken:
                nxt_char += 1
            put(s, nxt_char)
        else:
            while nxt_merged in taken:
                nxt_merged += 1
            put(s, nxt_merged)
    n_real = len(id_of)
    for i in range(VOCAB_SIZE):
        if i not in taken:
            put("<u%d>" % i, i)
    assert len(id_of) == VOCAB_SIZE and max(taken) == VOCAB_SIZE - 1
    vocab = {taken[i]: i for i in range(VOCAB_SIZE)}
    added = [{"id": i, "content": s, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for i, s in SPECIALS]
    tj = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": {"type": "Replace", "pattern": {"String": " "}, "content": SP},
        "pre_tokenizer": {"type": "Split", "pattern": {"String": " "},
                          "behavior": "MergedWithPrevious", "invert": False},
        "post_processor": None,
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": SP}, "content": " "},
            {"type": "ByteFallback"},
            {"type": "Fuse"}]},
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>",
                  "continuing_subword_prefix": None, "end_of_word_suffix": None,
                  "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
                  "vocab": vocab, "merges": [list(m) for m in merges]},
    }
    text = json.dumps(tj, ensure_ascii=False, separators=(",", ":"))
    # Round-trip through tokenizers: it must accept the file as is.
    tok = Tokenizer.from_str(text)
    assert tok.get_vocab_size() == VOCAB_SIZE, tok.get_vocab_size()
    print("tokenizer: %d ids, %d trained/structural, %d merges, %d bytes"
          % (VOCAB_SIZE, n_real, len(merges), len(text.encode())))
    return text, tok


# ---------------------------------------------------------------------------------------------
# Corpus

def corpus():
    c = []
    c += ["", " ", "  ", "   ", "\t", "\n", "\n\n", "\n\n\n", "\n\n\n\n", "\n\n\n\n\n\n\n", "\r\n",
          "\r\n\r\n", " \n", "\n ", " \n \n ", "\t\t\t", "\t \t", "a", "A", "!", "?", "1", "12",
          "123", "1234567890", "Hello", "Hello world", "Hello world!", " Hello", "  Hello  ",
          "Hello\nworld", "Hello\n\nworld", "Hello\n\n\nworld", "hello\tworld", "x\r\ny",
          "The quick brown fox jumps over the lazy dog.", "THE QUICK BROWN FOX",
          "    indented line", "        return x;", "trailing spaces   ", "   leading spaces",
          "double  space", "a b c d e f g", "a  b   c    d", " Caf\u00e9", " d\u00e9j\u00e0",
          "Caf\u00e9 au lait", "na\u00efve r\u00e9sum\u00e9", "\u00fcber Stra\u00dfe",
          "thought", "thought\n", "<|channel>thought\nI need to think.<channel|>The answer is 4.",
          "It is 18C and clear in Paris.", "What is 2+2?", "3.14159", "-42", "1e-05", "$19.99",
          "user@example.com", "https://example.com/path?q=1&r=2#frag", "C:\\Windows\\System32",
          "snake_case_name", "camelCaseName", "kebab-case-name", "SCREAMING_CASE",
          "\u4eca\u5929\u5929\u6c14\u5f88\u597d\u3002", "\u6211\u4eec\u53bb\u516c\u56ed\u6563\u6b65\u5427",
          "\u4e2d\u6587", "\u4eca\u65e5\u306f\u3044\u3044\u5929\u6c17\u3067\u3059\u306d\u3002",
          "\u3053\u3093\u306b\u3061\u306f\u4e16\u754c", "\u30ab\u30bf\u30ab\u30ca", "\uc548\ub155\ud558\uc138\uc694 \uc138\uacc4",
          "\u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440!", "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645",
          "\u05e9\u05dc\u05d5\u05dd \u05e2\u05d5\u05dc\u05dd", "\u0928\u092e\u0938\u094d\u0924\u0947 \u0926\u0941\u0928\u093f\u092f\u093e",
          "\u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35\u0e0a\u0e32\u0e27\u0e42\u0e25\u0e01", "\u1f08\u03b8\u03ae\u03bd\u03b1\u03b9",
          "\u9f98\u9f98\u9f98", "\U00020000\U0002a6d6", "\U0001f60a", " \U0001f60a", "\U0001f44d\U0001f3fd",
          "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466", "\U0001f3f3\ufe0f\u200d\U0001f308",
          "\U0001f1eb\U0001f1f7\U0001f1ef\U0001f1f5", "\u2764\ufe0f", "\U0001f9d1\u200d\U0001f4bb coding",
          "\U0001f469\U0001f3fe\u200d\U0001f91d\u200d\U0001f468\U0001f3fb", "emoji \U0001f680 in \U0001f389 text",
          "e\u0301", "n\u0303", "a\u0308o\u0308u\u0308", "Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u034f\u0334\u0319\u0324\u031e\u0349\u035a\u032f\u031e\u0320\u034dA\u036b\u0357\u0334\u0362\u0335\u031c\u0330\u0354L\u0368\u0367\u0369\u0358\u0320G\u0311\u0357\u030e\u0305\u035b\u0341\u0334\u033b\u0348\u034d\u0354\u0339O\u0342\u030c\u030c\u0358\u0328\u0335\u0339\u033b\u031d\u0333",
          "\u0915\u094d\u0937", "\u1100\u1161\u11a8", "\ufeffBOM", "zero\u200bwidth", "nbsp\u00a0here",
          "\u2028line sep", "\x00", "a\x00b", "\x01\x02\x03\x1f\x7f", "\u0080\u00ff", "\uffff", "\U0010ffff",
          "\ufffd", "<0x41>", "<0x41><0xFF>", "<u12345>", "<unk>", "<pad>", "<mask>",
          "<bos>", "<eos>", "<bos>Hello", "Hello<eos>", "<bos><bos>", "<|turn>user\nHi<turn|>\n",
          "<|turn>model\n<|channel>thought\n<channel|>", '<|"|>quoted<|"|>', "<|tool>declaration:f{}<tool|>",
          "<|tool_call>call:get_weather{city:<|\"|>Paris<|\"|>}<tool_call|><|tool_response>",
          "<|tool_response>response:f{value:1}<tool_response|>", "<|think|>\n", "<|image|>", "<|image><|image|><|image|><image|>",
          "<|audio><|audio|><audio|>", "<|video|>", "<|tur", "<turn|", "<|turn", "turn|>", "<||>", "<<|turn>>",
          "<|turn><|turn>", "text<|turn>text", " <|turn> ", "<|channel><|channel>", "<|\"|", "<start_of_turn>user",
          "<|TURN>", "< |turn>"]
    # Code and prose blocks.
    c += [
        "def f(x):\n    return x * 2\n",
        "int main(void) {\n\treturn 0;\n}\n",
        "for i in range(10):\n    if i % 2 == 0:\n        print(i)\n",
        '{"name": "get_weather", "arguments": {"city": "Paris"}}',
        "SELECT * FROM t WHERE a = 1;",
        "<html><body><p>Hello</p></body></html>",
        "| a | b |\n|---|---|\n| 1 | 2 |",
        "# Title\n\n## Section\n\n- item one\n- item two\n",
        "    \n    \n",
        "line1\r\nline2\r\n\r\nline3",
    ]
    rng = random.Random(20260709)
    pools = {
        "ascii": [chr(i) for i in range(32, 127)],
        "ws": [" ", "\n", "\t", "\r", "  ", "\n\n"],
        "latin": list("\u00e0\u00e1\u00e2\u00e4\u00e7\u00e8\u00e9\u00ea\u00eb\u00ee\u00ef\u00f4\u00f6\u00f9\u00fb\u00fc\u00ff\u00f1\u00df\u0153\u00e6"),
        "cjk": [chr(c) for c in range(0x4e00, 0x4e00 + 400)] + list("\u4eca\u5929\u6c14\u5f88\u597d\u6211\u4eec\u53bb"),
        "kana": [chr(c) for c in range(0x3041, 0x3097)] + [chr(c) for c in range(0x30a1, 0x30fb)],
        "emoji": ["\U0001f60a", "\U0001f44d", "\U0001f680", "\u2764\ufe0f", "\U0001f600", "\U0001f389",
                  "\U0001f468\u200d\U0001f469\u200d\U0001f467", "\U0001f3fd", "\u200d", "\ufe0f"],
        "comb": ["\u0301", "\u0300", "\u0308", "\u0303", "\u0327", "\u20dd"],
        "rare": [chr(c) for c in (0x0b95, 0x0bbe, 0x10da, 0x13a0, 0x1e9e, 0x2603, 0x2f00, 0xa000,
                                  0x1d11e, 0x1f9ff, 0xe000, 0x0600, 0x0e01)],
        "special": ["<|turn>", "<turn|>", "<bos>", "<|channel>", "<channel|>", '<|"|>', "<|tool_call>",
                    "<|image|>", "<eos>", "<|tur", "<0x0A>"],
        "words": [w for w in WORDS] + [" " + w for w in WORDS] + ["Hello", " world", "thought"],
    }
    names = sorted(pools)
    while len(c) < 340:
        n = rng.randint(1, 24)
        mix = rng.sample(names, rng.randint(1, 3))
        s = "".join(rng.choice(pools[rng.choice(mix)]) for _ in range(n))
        c.append(s)
    # A few long strings (BPE over long words).
    c.append(" ".join(rng.choice(WORDS) for _ in range(400)))
    c.append("".join(rng.choice(pools["cjk"]) for _ in range(300)))
    c.append("\n".join("    " * rng.randint(0, 3) + " ".join(rng.choice(WORDS) for _ in range(8))
                       for _ in range(40)))
    # Long mixed documents: exercise the encoder's chunking of long pieces (> 512 symbols).
    for k in range(4):
        parts = []
        while sum(len(x) for x in parts) < 3000 + 2000 * k:
            r = rng.random()
            if r < 0.5:
                parts.append(" ".join(rng.choice(pools["words"]).strip() for _ in range(12)) + ".\n")
            elif r < 0.65:
                parts.append("    " * rng.randint(0, 3) + "x = f(y, %d)\n" % rng.randint(0, 99))
            elif r < 0.8:
                parts.append("".join(rng.choice(pools["cjk"]) for _ in range(20)) + "\n\n")
            else:
                parts.append("".join(rng.choice(pools[n]) for n in ("emoji", "latin", "comb", "rare",
                                                                     "ascii", "ws")) * 3)
        c.append("".join(parts))
    c.append(" " * 200)
    c.append("\n" * 50)
    c.append("ab" * 300)
    return c


def invalid_corpus():
    """Byte strings that are not valid UTF-8 (the C encoder maps each invalid byte to <0xXX>)."""
    return [b"\xff", b"\xfe\xff", b"abc\xffdef", b"\xc3", b"\xc3(", b"caf\xc3", b"\xe2\x82",
            b"\xe2\x82 x", b"\xf0\x9f\x98", b"\xf0\x9f\x98\x8a\xf0\x9f", b"\xed\xa0\x80",
            b"\xc0\xaf", b"\xf8\x88\x80\x80\x80", b"\x80\x80\x80", b"Hello \x80 world",
            b"<|turn>\xff<turn|>", b"\xf4\x90\x80\x80", b"\xe0\x80\xaf", b" \xff \xfe ",
            b"\n\xff\n\n"]


def enc_pieces(tok, data):
    """Reference ids for possibly invalid UTF-8: valid runs via tokenizers, invalid bytes as
    byte tokens. Valid runs are encoded separately because no merge involves a byte token."""
    s = data.decode("utf-8", "surrogateescape")
    ids, ids_plain, run = [], [], ""

    def flush():
        nonlocal run
        if run:
            ids.extend(tok.encode(run).ids)
            tok.encode_special_tokens = True
            ids_plain.extend(tok.encode(run).ids)
            tok.encode_special_tokens = False
            run = ""

    for ch in s:
        if 0xdc80 <= ord(ch) <= 0xdcff:
            flush()
            ids.append(BYTE_BASE + ord(ch) - 0xdc00)
            ids_plain.append(BYTE_BASE + ord(ch) - 0xdc00)
        else:
            run += ch
    flush()
    return ids, ids_plain


def make_cases(tok):
    cases = []
    for s in corpus():
        data = s.encode("utf-8")
        ids = tok.encode(s).ids
        tok.encode_special_tokens = True
        ids_plain = tok.encode(s).ids
        tok.encode_special_tokens = False
        dec = tok.decode(ids, skip_special_tokens=False)
        dec_skip = tok.decode(ids, skip_special_tokens=True)
        cases.append({"text": data.hex(), "ids": ids, "ids_plain": ids_plain,
                      "decoded": dec.encode().hex(), "decoded_skip": dec_skip.encode().hex()})
    for data in invalid_corpus():
        ids, ids_plain = enc_pieces(tok, data)
        cases.append({"text": data.hex(), "ids": ids, "ids_plain": ids_plain, "invalid_utf8": True,
                      "decoded": tok.decode(ids, skip_special_tokens=False).encode().hex(),
                      "decoded_skip": tok.decode(ids, skip_special_tokens=True).encode().hex()})
    # Decode-only cases: random id sequences mixing bytes (often invalid runs), specials,
    # trained tokens and placeholders.
    rng = random.Random(7)
    vocab = tok.get_vocab()
    trained = sorted(i for s, i in vocab.items() if not s.startswith("<u"))
    byte_ids = list(range(BYTE_BASE, BYTE_BASE + 256))
    utf8_bytes = [BYTE_BASE + b for b in "\u00e9\u4e2d\U0001f60a".encode()]
    decode_cases = []
    for k in range(120):
        n = rng.randint(0, 20)
        ids = []
        for _ in range(n):
            r = rng.random()
            if r < 0.3:
                ids.append(rng.choice(byte_ids))
            elif r < 0.45:
                ids.extend(utf8_bytes[rng.choice([0, 2, 5])::][:rng.randint(1, 4)])
            elif r < 0.55:
                ids.append(rng.choice([i for i, _ in SPECIALS]))
            elif r < 0.6:
                ids.append(rng.randrange(VOCAB_SIZE))
            else:
                ids.append(rng.choice(trained))
        decode_cases.append({"ids": ids,
                             "decoded": tok.decode(ids, skip_special_tokens=False).encode().hex(),
                             "decoded_skip": tok.decode(ids, skip_special_tokens=True).encode().hex()})
    return cases, decode_cases


def main():
    os.makedirs(DATA, exist_ok=True)
    text, tok = build()
    with open(os.path.join(DATA, "tokenizer.json"), "w", encoding="utf-8") as f:
        f.write(text)
    cases, decode_cases = make_cases(tok)
    out = {"generator": "tests/text/make_tokenizer.py", "tokenizers_version": __import__("tokenizers").__version__,
           "vocab_size": VOCAB_SIZE, "cases": cases, "decode_cases": decode_cases}
    with open(os.path.join(DATA, "tok_corpus.json"), "w", encoding="utf-8") as f:
        json.dump(out, f, separators=(",", ":"))
        f.write("\n")
    print("corpus: %d encode cases (%d invalid UTF-8), %d decode cases"
          % (len(cases), len(invalid_corpus()), len(decode_cases)))


if __name__ == "__main__":
    main()
