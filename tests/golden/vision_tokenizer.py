"""vision_tokenizer.py - a tokenizer.json for the tiny multimodal checkpoint of tests/golden/vision/
(its 512-token vocabulary), for the integration tests that serve it (tests/integration/test_images.py,
test_video.py, tests/integration_grpc/test_video_grpc.py). Standard library only."""
import json
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]


def tiny_tokenizer(path):
    """A tokenizer for the 512-token vocabulary of tests/golden/vision: the test tokenizer's
    control tokens that sit below 512 at their ids, the image / video / audio tokens at the ids
    the checkpoint's config names, every other text as byte-fallback tokens (no merges), the ids
    left over as unused tokens."""
    cfg = json.loads((ROOT / "tests" / "golden" / "vision" / "config.json").read_text())
    moved = {"<|image>": cfg["boi_token_id"], "<image|>": cfg["eoi_token_id"], "<|image|>": cfg["image_token_id"],
             "<|video|>": cfg["video_token_id"], "<|audio|>": cfg["audio_token_id"], "<|audio>": cfg["boa_token_id"],
             "<audio|>": cfg["eoa_token_index"]}
    tok = json.loads((ROOT / "tests" / "text" / "data" / "tokenizer.json").read_text())
    added = []
    for t in tok["added_tokens"]:
        t["id"] = moved.get(t["content"], t["id"])
        assert t["id"] < cfg["text_config"]["vocab_size"], t
        added.append(t)
    tok["added_tokens"] = added
    vocab = {t["content"]: t["id"] for t in added}
    free = [i for i in range(cfg["text_config"]["vocab_size"]) if i not in vocab.values()]
    for b in range(256):
        vocab["<0x%02X>" % b] = free[b]
    for i in free[256:]:  # the id space must be contiguous
        vocab["<unused%d>" % i] = i
    tok["model"]["vocab"] = vocab
    tok["model"]["merges"] = []
    path.write_text(json.dumps(tok))
    return path
