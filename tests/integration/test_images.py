"""test_images.py - image input on the OpenAI chat API, with the official `openai` client.

Intake (image_url parts → bytes → decode → Gemma 4 preprocessing → the prompt's image runs) is
checked on the HTTP API over the mock model (http_faults_server --vision: a server that serves
image parts; the mock model ignores the soft tokens), against transformers: each image's run in
prompt_token_ids is <|image> + N × <|image|> + <image|> with N = transformers' num_soft_tokens for
that file and budget (tests/media/golden/vision.json), and usage.prompt_tokens counts it. URLs:
data: always; http(s) only for hosts in --allowed-media-domains (a loopback server this test
starts); file: only below --allowed-local-media-path. Broken images and forbidden URLs are 400s
naming the message and the part, streamed or not. The real g4serve on the text-only tiny model
refuses image parts with 400.

The whole multimodal forward (soft tokens through a vision tower) needs a checkpoint with one:
test_vision_checkpoint_end_to_end runs once tests/golden/vision/ holds the tower's tiny
multimodal checkpoint (the vision tower's branch; a 512-token tokenizer matching its ids is made
here), and is skipped before."""
import base64
import http.server
import json
import os
import pathlib
import signal
import subprocess
import sys
import threading

import openai
import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "tests" / "golden"))
from vision_tokenizer import tiny_tokenizer  # noqa: E402  (test_video.py imports it from here)

GOLDEN = ROOT / "tests" / "media" / "golden"
CASES = json.loads((GOLDEN / "vision.json").read_text())["cases"]
TOKENIZER = json.loads((ROOT / "tests" / "text" / "data" / "tokenizer.json").read_text())
SPECIAL = {t["content"]: t["id"] for t in TOKENIZER["added_tokens"]}
BOI, IMG, EOI = SPECIAL["<|image>"], SPECIAL["<|image|>"], SPECIAL["<image|>"]


def n_soft(name, budget):
    return next(c["num_soft_tokens"] for c in CASES if c["file"] == name and c["budget"] == budget)


def data_url(name, mime=None):
    raw = (GOLDEN / name).read_bytes()
    mime = mime or {"png": "image/png", "jpg": "image/jpeg", "webp": "image/webp", "gif": "image/gif"}[name.rsplit(".", 1)[1]]
    return "data:%s;base64,%s" % (mime, base64.b64encode(raw).decode())


def image_part(url):
    return {"type": "image_url", "image_url": {"url": url}}


def runs(ids):
    """The image runs in a prompt: [placeholder count per run], checking their brackets."""
    out, i = [], 0
    while i < len(ids):
        if ids[i] == BOI:
            j = i + 1
            while j < len(ids) and ids[j] == IMG:
                j += 1
            assert j < len(ids) and ids[j] == EOI, "an image run without <image|>"
            out.append(j - i - 1)
            i = j
        else:
            assert ids[i] not in (IMG, EOI), "a placeholder outside a run"
        i += 1
    return out


class Files(http.server.SimpleHTTPRequestHandler):
    def __init__(self, *a, **kw):
        super().__init__(*a, directory=str(GOLDEN), **kw)

    def log_message(self, *a):
        pass


@pytest.fixture(scope="module")
def files_url():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Files)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield "http://127.0.0.1:%d/" % srv.server_address[1]
    srv.shutdown()


def start(tmp_path, args):
    binary = os.environ.get("G4_HTTP_FAULTS_SERVER")
    if not binary or not os.path.exists(binary):
        pytest.skip("http_faults_server is not built (set G4_HTTP_FAULTS_SERVER)")
    err = open(tmp_path / ("stderr%d.txt" % len(list(tmp_path.iterdir()))), "w")
    proc = subprocess.Popen([binary, str(ROOT / "tests" / "text" / "data" / "tokenizer.json"), "--vision", *args],
                            stdout=subprocess.PIPE, stderr=err, text=True)
    line = proc.stdout.readline()
    if not line.startswith("g4serve: port "):
        proc.kill()
        raise AssertionError("http_faults_server did not start")
    client = openai.OpenAI(base_url="http://127.0.0.1:%d/v1" % int(line.split()[-1]), api_key="none",
                           max_retries=0, timeout=60)
    return proc, client


@pytest.fixture()
def vision(tmp_path):
    proc, client = start(tmp_path, ["--allowed-media-domains", "127.0.0.1",
                                    "--allowed-local-media-path", str(GOLDEN), "--max-image-bytes", "400000"])
    yield client
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0


@pytest.fixture()
def closed(tmp_path):
    """No domains and no local path allowed: data: URLs only."""
    proc, client = start(tmp_path, [])
    yield client
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0


def chat(client, parts, stream=False, **extra):
    body = dict(model="g4serve-tiny", messages=[{"role": "user", "content": parts}], max_tokens=2,
                temperature=0, extra_body=dict(return_token_ids=True, **extra))
    if not stream:
        return client.chat.completions.create(**body)
    chunks = list(client.chat.completions.create(stream=True, stream_options={"include_usage": True}, **body))
    return chunks


def prompt_ids(resp):
    ids = getattr(resp, "prompt_token_ids", None)
    if ids is None:
        ids = resp.model_extra.get("prompt_token_ids")
    return ids


def test_data_urls_make_transformers_runs(vision):
    parts = [image_part(data_url("small_50x37.jpg")), {"type": "text", "text": "Compare"},
             image_part(data_url("wide_640x240.jpg")), image_part(data_url("palette_260x180.gif"))]
    for budget in (70, 140, 280):
        r = chat(vision, parts, mm_processor_kwargs={"max_soft_tokens": budget})
        ids = prompt_ids(r)
        want = [n_soft(f, budget) for f in ("small_50x37.jpg", "wide_640x240.jpg", "palette_260x180.gif")]
        assert runs(ids) == want, (budget, runs(ids), want)
        assert r.usage.prompt_tokens == len(ids)
    # the default budget is 280
    r = chat(vision, parts)
    assert runs(prompt_ids(r)) == [n_soft(f, 280) for f in ("small_50x37.jpg", "wide_640x240.jpg",
                                                            "palette_260x180.gif")]


def test_every_format_and_streaming_usage(vision):
    names = ["exact_384.png", "lossy_333x222.webp", "alpha_160x120.png", "grey_120x80.jpg", "strip_1200x30.png"]
    parts = [image_part(data_url(n)) for n in names] + [{"type": "text", "text": "What are these?"}]
    r = chat(vision, parts, mm_processor_kwargs={"max_soft_tokens": 70})
    assert runs(prompt_ids(r)) == [n_soft(n, 70) for n in names]
    chunks = chat(vision, parts, stream=True, mm_processor_kwargs={"max_soft_tokens": 70})
    usage = [c.usage for c in chunks if c.usage]
    assert usage and usage[-1].prompt_tokens == r.usage.prompt_tokens


def test_http_urls_only_for_allowed_hosts(vision, closed, files_url):
    r = chat(vision, [image_part(files_url + "tall_200x700.png")], mm_processor_kwargs={"max_soft_tokens": 140})
    assert runs(prompt_ids(r)) == [n_soft("tall_200x700.png", 140)]
    # same server, a host not in the list (the same loopback server under another name)
    other = files_url.replace("127.0.0.1", "localhost")
    with pytest.raises(openai.BadRequestError) as e:
        chat(vision, [{"type": "text", "text": "x"}, image_part(other + "tall_200x700.png")])
    assert "messages[0].content[1]" in str(e.value) and "localhost" in str(e.value)
    for stream in (False, True):
        with pytest.raises(openai.BadRequestError) as e:
            chat(closed, [image_part(files_url + "tall_200x700.png")], stream=stream)
        assert "messages[0].content[0]" in str(e.value) and "allowed-media-domains" in str(e.value)
    # a missing file on an allowed host, and a download over the byte limit
    with pytest.raises(openai.BadRequestError) as e:
        chat(vision, [image_part(files_url + "no_such.png")])
    assert "404" in str(e.value)
    assert (GOLDEN / "square_512.png").stat().st_size > 400000
    with pytest.raises(openai.BadRequestError) as e:
        chat(vision, [image_part(files_url + "square_512.png")])
    assert "too large" in str(e.value)


def test_file_urls_only_below_the_allowed_path(vision, closed):
    r = chat(vision, [image_part("file://" + str(GOLDEN / "exact_384.png"))], mm_processor_kwargs={"max_soft_tokens": 70})
    assert runs(prompt_ids(r)) == [n_soft("exact_384.png", 70)]
    for url in ("file:///etc/passwd", "file://" + str(GOLDEN) + "/../../../README.md"):
        with pytest.raises(openai.BadRequestError) as e:
            chat(vision, [image_part(url)])
        assert "not below the allowed media path" in str(e.value)
    with pytest.raises(openai.BadRequestError) as e:
        chat(closed, [image_part("file://" + str(GOLDEN / "exact_384.png"))])
    assert "allowed-local-media-path" in str(e.value)


@pytest.mark.parametrize("stream", [False, True])
def test_broken_images_are_400_naming_the_part(vision, stream):
    png = (GOLDEN / "grey_90x200.png").read_bytes()
    cases = [
        ("data:image/png;base64," + base64.b64encode(png[: len(png) // 2]).decode(), "truncated PNG"),
        ("data:image/png;base64," + base64.b64encode(png[:40] + bytes(200) + png[240:]).decode(), "corrupt PNG"),
        ("data:image/bmp;base64," + base64.b64encode(b"BM" + bytes(60)).decode(), "unsupported image format"),
        ("data:image/png;base64,@@@@", "not base64"),
        ("data:image/png," + "abc", "base64"),
        (data_url("square_512.png"), "too large"),  # 501601 bytes, over --max-image-bytes 400000
        ("ftp://example.com/x.png", "unsupported URL scheme"),
    ]
    for url, needle in cases:
        with pytest.raises(openai.BadRequestError) as e:
            chat(vision, [{"type": "text", "text": "look"}, image_part(url)], stream=stream)
        msg = str(e.value)
        assert "messages[0].content[1]" in msg and needle in msg, (needle, msg)


def test_pixel_limit_and_budget_validation(tmp_path, vision):
    proc, client = start(tmp_path, ["--max-image-pixels", "10000"])
    try:
        with pytest.raises(openai.BadRequestError) as e:
            chat(client, [image_part(data_url("grey_90x200.png"))])
        assert "messages[0].content[0]" in str(e.value) and "pixels" in str(e.value)
        r = chat(client, [image_part(data_url("small_50x37.jpg"))], mm_processor_kwargs={"max_soft_tokens": 70})
        assert runs(prompt_ids(r)) == [n_soft("small_50x37.jpg", 70)]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    for bad in (0, 100, 2240, "280"):
        with pytest.raises(openai.BadRequestError) as e:
            chat(vision, [image_part(data_url("small_50x37.jpg"))], mm_processor_kwargs={"max_soft_tokens": bad})
        assert "max_soft_tokens" in str(e.value)
    with pytest.raises(openai.BadRequestError) as e:
        chat(vision, [{"type": "image_url", "image_url": {}}])
    assert "messages[0].content[0]" in str(e.value)


def test_images_past_the_context_are_refused_before_preprocessing(vision):
    """The mock server's context is 1024 tokens: three 256-token images fit, the fourth does not."""
    assert n_soft("exact_384.png", 280) == 256
    url = data_url("exact_384.png")
    r = chat(vision, [image_part(url)] * 3)
    assert runs(prompt_ids(r)) == [256] * 3
    with pytest.raises(openai.BadRequestError) as e:
        chat(vision, [image_part(url)] * 4)
    assert "messages[0].content[3]" in str(e.value) and "context length of 1024" in str(e.value)


def test_text_only_model_refuses_images(client):
    for stream in (False, True):
        with pytest.raises(openai.BadRequestError) as e:
            chat(client, [{"type": "text", "text": "hi"}, image_part(data_url("small_50x37.jpg"))], stream=stream)
        assert "messages[0].content[1]" in str(e.value) and "vision" in str(e.value)


def checkpoint_runs(ids, cfg):
    """The image runs in a prompt of the tiny checkpoint's ids (cfg: its config.json)."""
    got, i = [], 0
    while i < len(ids):
        if ids[i] == cfg["boi_token_id"]:
            j = i + 1
            while ids[j] == cfg["image_token_id"]:
                j += 1
            assert ids[j] == cfg["eoi_token_id"]
            got.append(j - i - 1)
            i = j
        i += 1
    return got


def test_vision_checkpoint_end_to_end(make_server, tmp_path):
    """Runs once the vision tower's tiny multimodal checkpoint is in tests/golden/vision/ (both
    branches merged): g4serve on it reads images, each run has transformers' count, and the
    greedy answer streamed equals the one not streamed."""
    ckpt = ROOT / "tests" / "golden" / "vision"
    missing = [f for f in ("config.json", "model.safetensors") if not (ckpt / f).exists()]
    if missing:
        pytest.skip("tests/golden/vision/ lacks %s (the vision tower's tiny multimodal checkpoint)" % ", ".join(missing))
    tok_path = tiny_tokenizer(tmp_path / "tokenizer.json")
    s = make_server(["--model", str(ckpt), "--tokenizer", str(tok_path), "--max-model-len", "512",
                     "--served-model-name", "g4serve-tiny"])
    c = openai.OpenAI(base_url=s.base + "/v1", api_key="none", max_retries=0, timeout=120)
    cfg = json.loads((ckpt / "config.json").read_text())
    parts = [image_part(data_url("small_50x37.jpg")), {"type": "text", "text": "Describe."},
             image_part(data_url("wide_640x240.jpg"))]
    a = chat(c, parts, mm_processor_kwargs={"max_soft_tokens": 70})
    ids = prompt_ids(a)
    assert checkpoint_runs(ids, cfg) == [n_soft("small_50x37.jpg", 70), n_soft("wide_640x240.jpg", 70)]
    assert a.usage.prompt_tokens == len(ids)
    b = chat(c, parts, stream=True, mm_processor_kwargs={"max_soft_tokens": 70})
    text = "".join(ch.choices[0].delta.content or "" for ch in b if ch.choices)
    assert text == (a.choices[0].message.content or "")  # greedy: streamed == not streamed
    assert [u.usage.prompt_tokens for u in b if u.usage][-1] == len(ids)
    # the tiny tower's position tables have 48 rows: a wide image at 140 is wider than that
    with pytest.raises(openai.BadRequestError) as e:
        chat(c, [image_part(data_url("wide_640x240.jpg"))], mm_processor_kwargs={"max_soft_tokens": 140})
    assert "messages[0].content[0]: the image's patch grid" in e.value.response.json()["error"]["message"]
    assert chat(c, parts, mm_processor_kwargs={"max_soft_tokens": 70}).usage.prompt_tokens == len(ids)


def test_vision_checkpoint_tensor_parallel(make_server, tmp_path):
    """The same checkpoint served with --tensor-parallel-size 2 (two CPU ranks, the tower encoded
    by rank 0, its soft tokens in every rank's steps) reads the same images into the same prompt
    and answers as one rank: identical greedy tokens, chosen-token logprobs within 1e-3 (fp32
    sums in another order), streamed and not."""
    ckpt = ROOT / "tests" / "golden" / "vision"
    if not (ckpt / "model.safetensors").exists():
        pytest.skip("tests/golden/vision/ lacks model.safetensors (the tiny multimodal checkpoint)")
    tok_path = tiny_tokenizer(tmp_path / "tokenizer.json")
    parts = [image_part(data_url("small_50x37.jpg")), {"type": "text", "text": "Describe."},
             image_part(data_url("wide_640x240.jpg"))]
    answers = []
    for tp in ("1", "2"):
        s = make_server(["--model", str(ckpt), "--tokenizer", str(tok_path), "--max-model-len", "512",
                         "--served-model-name", "g4serve-tiny", "--tensor-parallel-size", tp])
        c = openai.OpenAI(base_url=s.base + "/v1", api_key="none", max_retries=0, timeout=120)
        body = dict(model="g4serve-tiny", messages=[{"role": "user", "content": parts}], max_tokens=8,
                    temperature=0, logprobs=True,
                    extra_body=dict(return_token_ids=True, ignore_eos=True, mm_processor_kwargs={"max_soft_tokens": 70}))
        r = c.chat.completions.create(**body)
        chunks = list(c.chat.completions.create(stream=True, **body))
        streamed = [t.token for ch in chunks if ch.choices and ch.choices[0].logprobs
                    for t in ch.choices[0].logprobs.content]
        tokens = [t.token for t in r.choices[0].logprobs.content]
        assert streamed == tokens, "tp=%s: streamed tokens differ from the non-streamed answer" % tp
        answers.append((prompt_ids(r), tokens, [t.logprob for t in r.choices[0].logprobs.content], r.usage))
        s.stop()
    (ids1, tok1, lp1, u1), (ids2, tok2, lp2, u2) = answers
    cfg = json.loads((ckpt / "config.json").read_text())
    assert checkpoint_runs(ids1, cfg) == [n_soft("small_50x37.jpg", 70), n_soft("wide_640x240.jpg", 70)]
    assert ids2 == ids1 and u2.prompt_tokens == u1.prompt_tokens == len(ids1)
    assert u1.completion_tokens == u2.completion_tokens == 8
    assert tok2 == tok1, "tensor parallel greedy tokens differ from one rank"
    assert max(abs(a - b) for a, b in zip(lp1, lp2)) < 1e-3


def test_beam_search_with_an_image(vision):
    """Every step of a search resubmits the prompt with its image (engine/beam.c keeps a copy of
    the patches): the prompt is the plain request's, the beams are distinct and complete."""
    parts = [image_part(data_url("small_50x37.jpg")), {"type": "text", "text": "Describe it."}]
    plain = chat(vision, parts)
    r = vision.chat.completions.create(model="g4serve-tiny", messages=[{"role": "user", "content": parts}], n=2,
                                       max_tokens=3, extra_body={"use_beam_search": True, "ignore_eos": True,
                                                                 "return_token_ids": True})
    assert len(r.choices) == 2 and r.usage.prompt_tokens == plain.usage.prompt_tokens
    assert prompt_ids(r) == prompt_ids(plain)
    assert r.usage.completion_tokens == 6
    assert r.choices[0].model_extra["token_ids"] != r.choices[1].model_extra["token_ids"]
