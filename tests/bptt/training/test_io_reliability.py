"""Files that can be trusted: equal contents give equal bytes, a failed write leaves nothing
half-written (saved models: tests/bptt/training/test_pretrained.py)."""
import os

import numpy as np
import pytest

from bptt.training import io
from bptt.training.files import atomic_write_bytes
from bptt.training.io import save_arrays


def test_equal_arrays_and_metadata_give_equal_bytes_whatever_safetensors_does(tmp_path):
    arrays = {"b": np.arange(3.0), "a": np.ones((2, 2), np.float32)}
    metadata = {f"key{k}": f"value {k} \"quoted\" é" for k in range(12)}
    files = []
    for k in range(8):  # safetensors orders metadata at random on each call
        save_arrays(tmp_path / f"{k}.safetensors", arrays, metadata)
        files.append((tmp_path / f"{k}.safetensors").read_bytes())
    assert len(set(files)) == 1
    loaded = io.load_arrays(tmp_path / "0.safetensors")
    assert all(np.array_equal(loaded[k], v) for k, v in arrays.items())
    from safetensors import safe_open
    with safe_open(str(tmp_path / "0.safetensors"), framework="numpy") as f:
        assert f.metadata() == metadata


@pytest.mark.parametrize("failing", ["write", "fsync"])
def test_a_write_failing_midway_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch,
                                                                           failing):
    path = tmp_path / "out.json"
    path.write_bytes(b"old")

    def fail(*args):
        raise OSError(28, "No space left on device")

    if failing == "fsync":
        monkeypatch.setattr(os, "fsync", fail)
    else:
        real = os.fdopen

        class HalfFile:
            def __init__(self, f):
                self.f = f

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.f.close()

            def write(self, data):
                self.f.write(data[: len(data) // 2])  # half of it reaches the disk
                fail()

        monkeypatch.setattr(os, "fdopen", lambda fd, mode: HalfFile(real(fd, mode)))
    with pytest.raises(OSError, match="No space left on device"):
        atomic_write_bytes(path, b"new contents" * 100)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["out.json"] and path.read_bytes() == b"old"
