"""test_images_grpc.py - image bytes in g4serve.v1 chat messages (ChatMessage.images,
ChatInput.max_soft_tokens) through a real grpcio client: the text-only tiny model answers
INVALID_ARGUMENT naming image input, on Generate and Tokenize; a chat without images is
unchanged. The success path needs a checkpoint with a vision tower (the HTTP side's
test_images.py checks intake over the mock model; this runs once a multimodal checkpoint is
served)."""
import pathlib

import grpc
import pytest

GOLDEN = pathlib.Path(__file__).resolve().parents[2] / "tests" / "media" / "golden"


@pytest.fixture(scope="module")
def stub(pb, channel):
    return pb.g4serve_pb2_grpc.G4ServeStub(channel)


def test_text_only_model_refuses_images(pb, stub):
    P = pb.g4serve_pb2
    img = (GOLDEN / "small_50x37.jpg").read_bytes()
    chat = P.ChatInput(messages=[P.ChatMessage(role="user", content="Describe.", images=[img])], max_soft_tokens=70)
    with pytest.raises(grpc.RpcError) as e:
        list(stub.Generate(P.GenerateRequest(chat=chat, stop=P.StopRules(max_tokens=2)), timeout=10))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "vision tower" in e.value.details()
    with pytest.raises(grpc.RpcError) as e:
        stub.Tokenize(P.TokenizeRequest(chat=chat), timeout=10)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "vision tower" in e.value.details()
    plain = P.ChatInput(messages=[P.ChatMessage(role="user", content="Describe.")], max_soft_tokens=70)
    ids = stub.Tokenize(P.TokenizeRequest(chat=plain), timeout=10).ids
    assert len(ids) > 0
