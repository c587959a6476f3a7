"""test_video.py - video input as frames on the OpenAI chat API, with the official `openai` client.

A video_url part carries a list of frame image URLs (data:, allowed http(s), file: as image_url)
and an optional fps (default 1). Over the mock model (http_faults_server --vision) the prompt must
hold, per frame, "mm:ss " + <|image> + N × <|video|> + <image|> with N = transformers' soft-token
count for that file at the video budget of 70 (tests/media/golden/vision.json: the video processor
uses the image processor's resize rule) and mm:ss = frame index / fps; usage.prompt_tokens counts
the frames. The exact ids against transformers' processor are checked in tests/text/test_prompt.c
(video_golden.json). Refused with 400 naming the part: a video file URL (no video decoder), more
than 32 frames, a broken frame (naming the frame), a bad fps."""
import base64
import json

import openai
import pytest

from conftest import ROOT
from test_images import GOLDEN, SPECIAL, TOKENIZER, chat, data_url, image_part, n_soft, prompt_ids, tiny_tokenizer
from test_images import vision  # noqa: F401  (the fixture)

BOI, EOI, VID, IMG = SPECIAL["<|image>"], SPECIAL["<image|>"], SPECIAL["<|video|>"], SPECIAL["<|image|>"]
PIECE = {i: p for p, i in TOKENIZER["model"]["vocab"].items()}


def video_part(urls, **kw):
    return {"type": "video_url", "video_url": dict(url=urls, **kw)}


def frames(ids):
    """[(text before the frame since the last run, placeholder count)] for each <|video|> run."""
    out, text, i = [], "", 0
    while i < len(ids):
        if ids[i] == BOI and i + 1 < len(ids) and ids[i + 1] == VID:
            j = i + 1
            while ids[j] == VID:
                j += 1
            assert ids[j] == EOI, "a frame run without <image|>"
            out.append((text, j - i - 1))
            text, i = "", j + 1
            continue
        assert ids[i] != VID, "a <|video|> outside a frame run"
        text += PIECE.get(ids[i], "?").replace("\u2581", " ")
        i += 1
    return out


def test_frames_make_timestamped_runs(vision):
    names = ["small_50x37.jpg", "wide_640x240.jpg", "grey16_70x40.png"]
    urls = [data_url(n) for n in names]
    want = [n_soft(n, 70) for n in names]
    for fps, stamps in ((None, ["00:00 ", " 00:01 ", " 00:02 "]), (0.05, ["00:00 ", " 00:20 ", " 00:40 "]),
                        (0.01, ["00:00 ", " 01:40 ", " 03:20 "])):
        kw = {} if fps is None else {"fps": fps}
        r = chat(vision, [{"type": "text", "text": "What happens?"}, video_part(urls, **kw)])
        ids = prompt_ids(r)
        got = frames(ids)
        assert [n for _, n in got] == want, got
        assert [t[-len(s):] for (t, _), s in zip(got, stamps)] == stamps, (fps, [t for t, _ in got])
        assert [t for t, _ in got][1:] == stamps[1:]  # frames joined by exactly " "
        assert IMG not in ids
        assert r.usage.prompt_tokens == len(ids)
    # an image and a video in one message: the image keeps its budget and its <|image|> run
    r = chat(vision, [image_part(data_url("exact_384.png")), video_part(urls[:2])],
             mm_processor_kwargs={"max_soft_tokens": 140})
    ids = prompt_ids(r)
    assert ids.count(IMG) == n_soft("exact_384.png", 140) and [n for _, n in frames(ids)] == want[:2]
    chunks = chat(vision, [video_part(urls)], stream=True)
    usage = [c.usage for c in chunks if c.usage]
    assert usage and usage[-1].prompt_tokens > sum(want)


def test_file_frames(vision):
    r = chat(vision, [video_part(["file://" + str(GOLDEN / "exact_384.png")] * 2)])
    assert [n for _, n in frames(prompt_ids(r))] == [n_soft("exact_384.png", 70)] * 2


@pytest.mark.parametrize("stream", [False, True])
def test_refusals_name_the_part(vision, stream):
    ok = data_url("small_50x37.jpg")
    png = (GOLDEN / "grey_90x200.png").read_bytes()
    broken = "data:image/png;base64," + base64.b64encode(png[: len(png) // 2]).decode()
    cases = [
        ({"type": "video_url", "video_url": {"url": "https://example.com/clip.mp4"}}, "list of frame image URLs"),
        ({"type": "video_url", "video_url": "data:video/mp4;base64,AAAA"}, "no video decoder"),
        (video_part([ok] * 33), "33 video frames, more than the 32"),
        (video_part([ok, broken]), "video frame 1: truncated PNG"),
        (video_part([ok], fps=0), "fps"),
        (video_part([]), "frame image URL"),
        (video_part([ok, 7]), "video_url.url[1]"),
    ]
    for part, needle in cases:
        with pytest.raises(openai.BadRequestError) as e:
            chat(vision, [{"type": "text", "text": "look"}, part], stream=stream)
        msg = str(e.value)
        assert "messages[0].content[1]" in msg and needle in msg, (needle, msg)


def test_video_on_vision_checkpoint(make_server, tmp_path):
    """g4serve on the tiny multimodal checkpoint (tests/golden/vision): a 2-frame video and an
    image go through the real engine and vision tower: the frames' runs use the checkpoint's own
    video_token_id (not the 31B's 258884), the image keeps image_token_id, usage counts every
    frame, and the greedy answer streamed equals the one not streamed (the runs are computed
    whole, with the same soft tokens, on both paths)."""
    ckpt = ROOT / "tests" / "golden" / "vision"
    if not (ckpt / "model.safetensors").exists():
        pytest.skip("tests/golden/vision/ lacks the tiny multimodal checkpoint")
    cfg = json.loads((ckpt / "config.json").read_text())
    s = make_server(["--model", str(ckpt), "--tokenizer", str(tiny_tokenizer(tmp_path / "tokenizer.json")),
                     "--max-model-len", "512", "--served-model-name", "g4serve-tiny"])
    c = openai.OpenAI(base_url=s.base + "/v1", api_key="none", max_retries=0, timeout=120)
    parts = [image_part(data_url("grey_120x80.jpg")), {"type": "text", "text": "What moves?"},
             video_part([data_url("small_50x37.jpg"), data_url("wide_640x240.jpg")], fps=2)]
    a = chat(c, parts, mm_processor_kwargs={"max_soft_tokens": 70})
    ids = prompt_ids(a)
    vid, img = cfg["video_token_id"], cfg["image_token_id"]
    assert ids.count(img) == n_soft("grey_120x80.jpg", 70)
    assert ids.count(vid) == n_soft("small_50x37.jpg", 70) + n_soft("wide_640x240.jpg", 70)
    assert ids.count(cfg["boi_token_id"]) == 3 and ids.count(cfg["eoi_token_id"]) == 3
    assert a.usage.prompt_tokens == len(ids)
    b = chat(c, parts, stream=True, mm_processor_kwargs={"max_soft_tokens": 70})
    text = "".join(ch.choices[0].delta.content or "" for ch in b if ch.choices)
    assert text == (a.choices[0].message.content or "")
    assert [u.usage.prompt_tokens for u in b if u.usage][-1] == len(ids)


def test_text_only_model_refuses_video(client):
    with pytest.raises(openai.BadRequestError) as e:
        chat(client, [{"type": "text", "text": "hi"}, video_part([data_url("small_50x37.jpg")])])
    assert "messages[0].content[1]: video input is not supported" in str(e.value) and "vision" in str(e.value)
