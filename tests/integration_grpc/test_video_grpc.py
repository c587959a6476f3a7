"""test_video_grpc.py - video as frames in g4serve.v1 chat messages (ChatMessage.videos: frame image
bytes + fps) through a real grpcio client, against the same frames sent to the same server's HTTP
API as a video_url part (tests/integration/test_video.py checks that side against transformers).

On the tiny multimodal checkpoint (tests/golden/vision, served with its 512-token tokenizer): a
chat of an image, text and a 2-frame video at fps 2 gives, over gRPC, the prompt ids HTTP's
prompt_token_ids shows (Tokenize), the same usage.prompt_tokens, and the same greedy token ids and
text (Generate); fps 0 means 1, as HTTP's default. Refusals are INVALID_ARGUMENT naming the part:
more than 32 frames, no frames, a bad fps, a broken frame (naming the frame); the text-only tiny
model refuses a video naming the vision tower."""
import base64
import json
import os
import pathlib
import sys
import tempfile
import urllib.request

import grpc
import pytest

from conftest import ROOT, _tmp_base, start_server, stop_server

sys.path.insert(0, os.path.join(ROOT, "tests", "golden"))
from vision_tokenizer import tiny_tokenizer  # noqa: E402

GOLDEN = os.path.join(ROOT, "tests", "media", "golden")
CKPT = os.path.join(ROOT, "tests", "golden", "vision")
SERVED = "g4-tiny"  # conftest.start_server's name


def raw(name):
    with open(os.path.join(GOLDEN, name), "rb") as f:
        return f.read()


def data_url(name):
    mime = "image/png" if name.endswith(".png") else "image/jpeg"
    return "data:%s;base64,%s" % (mime, base64.b64encode(raw(name)).decode())


FRAMES = ["small_50x37.jpg", "wide_640x240.jpg"]
IMAGE = "grey_120x80.jpg"


@pytest.fixture(scope="module")
def vision_server():
    if not os.path.exists(os.path.join(CKPT, "model.safetensors")):
        pytest.skip("tests/golden/vision/ lacks the tiny multimodal checkpoint")
    tok = tiny_tokenizer(pathlib.Path(tempfile.mkdtemp(prefix="tok-", dir=_tmp_base())) / "tok.json")
    srv = start_server(model_args=["--model", CKPT, "--tokenizer", str(tok), "--max-model-len", "512"])
    yield srv
    stop_server(srv)


@pytest.fixture(scope="module")
def vstub(pb, vision_server):
    ch = grpc.insecure_channel(vision_server.addr)
    grpc.channel_ready_future(ch).result(timeout=30)
    yield pb.g4serve_pb2_grpc.G4ServeStub(ch)
    ch.close()


def http_chat(srv, fps):
    part = {"type": "video_url", "video_url": {"url": [data_url(n) for n in FRAMES]}}
    if fps is not None:
        part["video_url"]["fps"] = fps
    body = {"model": SERVED, "max_tokens": 6, "temperature": 0, "ignore_eos": True, "return_token_ids": True,
            "mm_processor_kwargs": {"max_soft_tokens": 70},
            "messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": data_url(IMAGE)}}, part,
                {"type": "text", "text": "What moves?"}]}]}
    rq = urllib.request.Request("http://127.0.0.1:%d/v1/chat/completions" % srv.http_port,
                                data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(rq, timeout=120) as r:
        return json.loads(r.read())


def grpc_chat(P, fps, frames=None):
    video = P.Video(frames=frames if frames is not None else [raw(n) for n in FRAMES], fps=fps)
    msg = P.ChatMessage(role="user", content="What moves?", images=[raw(IMAGE)], videos=[video])
    return P.ChatInput(messages=[msg], max_soft_tokens=70)


def generate(stub, P, chat):
    ids, text, usage = [], "", None
    for r in stub.Generate(P.GenerateRequest(chat=chat, stop=P.StopRules(max_tokens=6, ignore_eos=True)),
                           timeout=120):
        ids += list(r.token_ids)
        text += r.text
        if r.HasField("usage"):
            usage = r.usage
    return ids, text, usage


@pytest.mark.parametrize("fps", [2.0, 0.0])
def test_video_frames_match_http(pb, vstub, vision_server, fps):
    P = pb.g4serve_pb2
    h = http_chat(vision_server, fps if fps else None)  # gRPC's 0 is HTTP's default (1)
    cfg = json.load(open(os.path.join(CKPT, "config.json")))
    want = h["prompt_token_ids"]
    assert want.count(cfg["video_token_id"]) > 0 and want.count(cfg["boi_token_id"]) == 3
    chat = grpc_chat(P, fps)
    ids = list(vstub.Tokenize(P.TokenizeRequest(chat=chat), timeout=60).ids)
    assert ids == want, "gRPC's video prompt differs from HTTP's for the same frames"
    toks, text, usage = generate(vstub, P, chat)
    assert usage.prompt_tokens == h["usage"]["prompt_tokens"] == len(want)
    assert toks == h["choices"][0]["token_ids"] and len(toks) == 6
    assert text == (h["choices"][0]["message"]["content"] or "")


def test_fps_changes_the_timestamps(pb, vstub):
    P = pb.g4serve_pb2
    a = list(vstub.Tokenize(P.TokenizeRequest(chat=grpc_chat(P, 1.0)), timeout=60).ids)
    b = list(vstub.Tokenize(P.TokenizeRequest(chat=grpc_chat(P, 0.05)), timeout=60).ids)  # frame 1 at 00:20
    assert a != b and len(a) == len(b)


@pytest.mark.parametrize("case", ["too_many", "none", "fps", "broken"])
def test_refusals_name_the_part(pb, vstub, case):
    P = pb.g4serve_pb2
    frames = {"too_many": [raw(FRAMES[0])] * 33, "none": [], "fps": None,
              "broken": [raw(FRAMES[0]), raw(FRAMES[1])[:200]]}[case]
    chat = grpc_chat(P, -1.0 if case == "fps" else 1.0, frames)
    needle = {"too_many": "chat.messages[0].videos[0]: 33 video frames, more than the 32",
              "none": "chat.messages[0].videos[0] has no frames",
              "fps": "chat.messages[0].videos[0].fps must be in (0, 1000]",
              "broken": "chat.messages[0].videos[0].frames[1]: "}[case]
    for call in (lambda: generate(vstub, P, chat), lambda: vstub.Tokenize(P.TokenizeRequest(chat=chat), timeout=60)):
        with pytest.raises(grpc.RpcError) as e:
            call()
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert needle in e.value.details(), e.value.details()


def test_text_only_model_refuses_video(pb, channel):
    P = pb.g4serve_pb2
    stub = pb.g4serve_pb2_grpc.G4ServeStub(channel)
    msg = P.ChatMessage(role="user", content="hi", videos=[P.Video(frames=[raw(FRAMES[0])])])
    with pytest.raises(grpc.RpcError) as e:
        stub.Tokenize(P.TokenizeRequest(chat=P.ChatInput(messages=[msg])), timeout=10)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "chat.messages[0].videos[0]: video input is not supported" in e.value.details()


def test_grid_beyond_the_tower_is_invalid_argument(pb, vstub):
    """The tiny tower's position tables have 48 rows; a wide image at budget 140 makes a grid
    wider than that: INVALID_ARGUMENT naming the image, not an engine failure, and the server
    goes on answering."""
    P = pb.g4serve_pb2
    msg = P.ChatMessage(role="user", content="Describe.", images=[raw("wide_640x240.jpg")])
    wide = P.ChatInput(messages=[msg], max_soft_tokens=140)
    with pytest.raises(grpc.RpcError) as e:
        generate(vstub, P, wide)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "chat.messages[0].images[0]: the image's patch grid" in e.value.details(), e.value.details()
    ok = P.ChatInput(messages=[msg], max_soft_tokens=70)
    assert len(generate(vstub, P, ok)[0]) == 6


def test_more_than_64_images_and_frames_refused(pb, vstub):
    """Images and video frames together are capped at 64 a request, as on HTTP (two videos of 32
    frames and one image: 65)."""
    P = pb.g4serve_pb2
    stub = vstub
    video = P.Video(frames=[raw(FRAMES[0])] * 32)
    msg = P.ChatMessage(role="user", content="hi", images=[raw(IMAGE)], videos=[video, video])
    with pytest.raises(grpc.RpcError) as e:
        stub.Tokenize(P.TokenizeRequest(chat=P.ChatInput(messages=[msg])), timeout=10)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "65 images and video frames, more than the 64" in e.value.details(), e.value.details()
