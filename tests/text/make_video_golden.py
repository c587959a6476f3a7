"""make_video_golden.py - reference prompt ids for video input (test_prompt.c, test_video_prompt):
a chat with an image and two videos given as frames, rendered with the Gemma 4 chat template,
its <|image|> / <|video|> markers replaced by transformers' own Gemma4Processor.replace_image_token /
replace_video_token (timestamps from VideoMetadata(fps, frames_indices), the per-frame soft-token
count from the video processor's resize rule at its default budget of 70), and the text encoded
by the HF `tokenizers` library with tests/text/data/tokenizer.json (the test tokenizer, the real ids).

Run (writes tests/text/data/video_golden.json; committed, CI never runs this):
    PYTHONPATH=<dir with torchvision> /work/venv-hf/bin/python tests/text/make_video_golden.py
"""
import json
import os
import re
import types

import jinja2
from tokenizers import Tokenizer
from transformers.models.gemma4.processing_gemma4 import Gemma4Processor
from transformers.models.gemma4.video_processing_gemma4 import Gemma4VideoProcessor, get_aspect_ratio_preserving_size
from transformers.video_utils import VideoMetadata

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
TEMPLATE = "/work/shared/gemma4/chat_template.jinja"


def frame_tokens(w, h):
    vp = Gemma4VideoProcessor
    th, tw = get_aspect_ratio_preserving_size(h, w, vp.patch_size, vp.max_soft_tokens * vp.pooling_kernel_size**2,
                                              vp.pooling_kernel_size)
    return (th // vp.patch_size) * (tw // vp.patch_size) // vp.pooling_kernel_size**2


def main():
    # an image (640x480 at budget 280 -> its count is given), then a 3-frame video at 1 fps, text,
    # and a 2-frame video at 0.5 fps whose frames sit at 61 s and 125 s (frames_indices 30, 62)
    image_tokens = 12
    videos = [
        {"size": [320, 240], "fps": 1.0, "frames_indices": [0, 1, 2]},
        {"size": [256, 256], "fps": 0.5, "frames_indices": [30, 62]},
    ]
    messages = [{"role": "user", "content": [
        {"type": "image"}, {"type": "video"}, {"type": "text", "text": "What happens?"},
        {"type": "video"}]}]
    env = jinja2.Environment(trim_blocks=False, lstrip_blocks=False)
    env.globals["raise_exception"] = lambda m: (_ for _ in ()).throw(Exception(m))
    text = env.from_string(open(TEMPLATE).read()).render(messages=messages, add_generation_prompt=True,
                                                        bos_token="<bos>")
    fake = types.SimpleNamespace(boi_token="<|image>", eoi_token="<image|>", image_token="<|image|>",
                                 video_token="<|video|>")
    vid_inputs = {"num_soft_tokens_per_video": [frame_tokens(*v["size"]) for v in videos],
                  "video_metadata": [VideoMetadata(total_num_frames=max(v["frames_indices"]) + 1, fps=v["fps"],
                                                   frames_indices=v["frames_indices"]) for v in videos]}
    img_inputs = {"num_soft_tokens_per_image": [image_tokens]}
    repl = {"image": iter([Gemma4Processor.replace_image_token(fake, img_inputs, 0)]),
            "video": iter([Gemma4Processor.replace_video_token(fake, vid_inputs, i) for i in range(len(videos))])}
    tok = Tokenizer.from_file(os.path.join(HERE, "data", "tokenizer.json"))
    expanded = re.sub(r"(?P<image><\|image\|>)|(?P<video><\|video\|>)", lambda m: next(repl[m.lastgroup]), text)
    ids = tok.encode(expanded, add_special_tokens=False).ids
    out = {
        "messages": messages,
        "image_tokens": image_tokens,
        "videos": [{"fps": v["fps"], "seconds": [i / v["fps"] for i in v["frames_indices"]],
                    "frame_tokens": vid_inputs["num_soft_tokens_per_video"][k], "size": v["size"]}
                   for k, v in enumerate(videos)],
        "text": expanded,
        "ids": ids,
    }
    with open(os.path.join(HERE, "data", "video_golden.json"), "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
