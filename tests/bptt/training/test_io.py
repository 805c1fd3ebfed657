import os

import numpy as np
import pytest

from bptt.training.files import atomic_write_files
from bptt.training.io import ModelFileError, load_arrays, save_arrays


def test_an_interrupted_write_keeps_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "x.safetensors"
    save_arrays(path, {"a": np.ones(3)})

    def crash(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        save_arrays(path, {"a": np.zeros(3)})
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["x.safetensors"]
    np.testing.assert_array_equal(load_arrays(path)["a"], np.ones(3))


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_a_corrupt_safetensors_file_is_an_error_naming_the_file(tmp_path, damage):
    path = tmp_path / "w.safetensors"
    save_arrays(path, {"a": np.arange(12.0)})
    content = path.read_bytes()
    path.write_bytes({"truncate": content[: len(content) // 2], "garbage": b"\x00" * 64,
                      "empty": b""}[damage])
    with pytest.raises(ModelFileError, match=r"w\.safetensors: not a readable safetensors"):
        load_arrays(path)
    with pytest.raises(ModelFileError, match=r"nothing\.safetensors: file not found"):
        load_arrays(tmp_path / "nothing.safetensors")


def test_safetensors_metadata_must_be_strings(tmp_path):
    with pytest.raises(TypeError, match="metadata values must be str"):
        save_arrays(tmp_path / "a.safetensors", {"a": np.ones(1)}, metadata={"epochs": 3})


def test_several_files_are_written_all_or_none(tmp_path, monkeypatch):
    atomic_write_files(tmp_path, {"a": b"old a", "b": b"old b"})

    def fail(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(OSError, match="No space"):
        atomic_write_files(tmp_path, {"a": b"new a", "b": b"new b"})
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path)) == ["a", "b"]
    assert (tmp_path / "a").read_bytes() == b"old a" and (tmp_path / "b").read_bytes() == b"old b"
