"""test_startup.py - what g4serve needs to start on a checkpoint: its tokenizer. A checkpoint
directory (written by g4-make-tiny) without tokenizer.json is refused at startup with a message
naming the missing file, never served with another tokenizer; the same directory starts with an
explicit --tokenizer, or once its tokenizer.json is there."""
import os
import pathlib
import shutil
import subprocess

import pytest

from conftest import ROOT, find_binary

TOKENIZER = ROOT / "tests" / "text" / "data" / "tokenizer.json"


@pytest.fixture()
def checkpoint(tmp_path):
    tool = os.environ.get("G4_MAKE_TINY") or str(pathlib.Path(find_binary()).parents[1] / "tools" / "g4-make-tiny")
    if not os.path.exists(tool):
        pytest.skip(f"{tool} is not built")
    d = tmp_path / "ckpt"
    subprocess.run([tool, "--config", "tiny-dense", "--seed", "3", "--out", str(d)], check=True,
                   capture_output=True, timeout=120)
    assert not (d / "tokenizer.json").exists()
    return d


def test_checkpoint_without_tokenizer_is_refused(checkpoint):
    try:
        p = subprocess.run([find_binary(), "--host", "127.0.0.1", "--port", "0", "--grpc-port", "0",
                            "--model", str(checkpoint)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired as e:  # killed by run(); it served the checkpoint with some tokenizer
        pytest.fail("g4serve started on a checkpoint without tokenizer.json:\n%s" % (e.stderr or b"").decode())
    assert p.returncode != 0, p.stderr
    assert str(checkpoint / "tokenizer.json") in p.stderr, p.stderr
    assert "ready" not in p.stderr


def test_checkpoint_with_tokenizer_starts(checkpoint, make_server):
    s = make_server(["--model", str(checkpoint), "--tokenizer", str(TOKENIZER)])
    assert f"tokenizer {TOKENIZER}" in s.stderr()
    shutil.copy(TOKENIZER, checkpoint / "tokenizer.json")
    s = make_server(["--model", str(checkpoint)])
    assert f"tokenizer {checkpoint / 'tokenizer.json'}" in s.stderr()
