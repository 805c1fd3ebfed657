"""Files that can be trusted: equal contents give equal bytes, a failed write leaves nothing
half-written, and a saved recurrent model is only loaded into the model its config describes."""
import json
import os

import numpy as np
import pytest

from bptt.training import io
from bptt.training.io import ModelFileError, atomic_write_bytes, load_model, save_arrays, save_model
from bptt.nn.rnn import RNN


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


@pytest.fixture
def saved_rnn(tmp_path):
    model = RNN("lstm", 3, 5, 2, np.random.default_rng(0), loss="xent")
    save_model(tmp_path, model, {**model.config(), "task": "text"})
    return tmp_path, model


def test_a_recurrent_model_round_trips_bit_for_bit(saved_rnn):
    directory, model = saved_rnn
    loaded = load_model(directory)
    assert isinstance(loaded, RNN) and loaded.config() == model.config()
    inputs = np.random.default_rng(1).standard_normal((7, 2, 3)).astype(np.float32)
    assert loaded.predict(inputs).tobytes() == model.predict(inputs).tobytes()


@pytest.mark.parametrize("change, message", [
    ({"hidden_size": 6}, r"cell\.W_x: shape \(3, 20\), expected \(3, 24\)"),
    ({"cell": "gru"}, r"cell\.W_x: shape \(3, 20\), expected \(3, 15\)"),
    ({"input_size": 4}, r"cell\.W_x: shape \(3, 20\), expected \(4, 20\)"),
    ({"output_size": 3}, r"readout\.weight: shape \(5, 2\), expected \(5, 3\)"),
    ({"dtype": "float64"}, r"cell\.W_x: dtype float32, expected float64"),
    ({"cell": "rnn", "hidden_size": 20}, r"cell\.W_h: shape \(5, 20\), expected \(20, 20\); "
                                         r"readout\.weight: shape \(5, 2\), expected \(20, 2\)"),
])
def test_a_recurrent_config_that_does_not_match_its_weights_says_what_differs(saved_rnn, change,
                                                                             message):
    directory, _ = saved_rnn
    path = directory / io.CONFIG_FILE
    path.write_text(json.dumps({**json.loads(path.read_text()), **change}))
    with pytest.raises(ModelFileError, match=r"model\.safetensors: does not match config\.json "
                                             r"\(state does not match RNN: .*" + message):
        load_model(directory)


@pytest.mark.parametrize("change, message", [
    ({"cell": "elman"}, r"unknown cell kind 'elman'"),
    ({"loss": "hinge"}, r"unknown loss 'hinge'"),
    ({"hidden_size": 0}, r"hidden_size"),
])
def test_a_recurrent_config_that_cannot_build_a_model_is_named(saved_rnn, change, message):
    directory, _ = saved_rnn
    path = directory / io.CONFIG_FILE
    path.write_text(json.dumps({**json.loads(path.read_text()), **change}))
    with pytest.raises(ModelFileError, match=r"config\.json: cannot build the model .*" + message):
        load_model(directory)
