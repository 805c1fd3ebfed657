import json
import os

import numpy as np
import pytest

from bptt.training import io
from bptt.training.io import ModelFileError, load_arrays, load_model, save_arrays, save_model
from bptt.nn import MLP


@pytest.fixture
def model():
    return MLP([4, 7, 3], "relu", rng=np.random.default_rng(5))


@pytest.fixture
def saved(tmp_path, model):
    save_model(tmp_path / "run", model, {**model.config(), "task": "unit"})
    return tmp_path / "run"


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_round_trip_gives_bit_identical_predictions(tmp_path, dtype):
    model = MLP([4, 7, 5, 3], "tanh", rng=np.random.default_rng(1), dtype=dtype)
    save_model(tmp_path, model, model.config())
    loaded = load_model(tmp_path)
    assert isinstance(loaded, MLP) and loaded.config() == model.config()
    x = np.random.default_rng(2).normal(size=(10, 4)).astype(dtype)
    assert loaded(x).data.tobytes() == model(x).data.tobytes()


def test_saved_files_are_safetensors_and_json_and_extra_config_is_kept(saved, model):
    config = io.load_config(saved)
    assert config["task"] == "unit" and config["sizes"] == [4, 7, 3]
    arrays = load_arrays(saved / io.WEIGHTS_FILE)
    assert sorted(arrays) == sorted(model.state_dict())
    from safetensors import safe_open
    with safe_open(str(saved / io.WEIGHTS_FILE), framework="numpy") as f:
        assert f.metadata() == {"format": "bptt", "architecture": "mlp"}


def test_overwriting_leaves_no_temporary_files(saved, model):
    save_model(saved, model, model.config())
    assert sorted(os.listdir(saved)) == ["config.json", "model.safetensors"]


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
def test_corrupt_weights_file_is_an_error_naming_the_file(saved, damage):
    path = saved / io.WEIGHTS_FILE
    content = path.read_bytes()
    path.write_bytes({"truncate": content[: len(content) // 2], "garbage": b"\x00" * 64,
                      "empty": b""}[damage])
    with pytest.raises(ModelFileError, match="model.safetensors: not a readable safetensors"):
        load_model(saved)


def test_missing_files_are_errors_naming_the_file(saved, tmp_path):
    (saved / io.WEIGHTS_FILE).unlink()
    with pytest.raises(ModelFileError, match=r"model\.safetensors: file not found"):
        load_model(saved)
    with pytest.raises(ModelFileError, match=r"config\.json: file not found"):
        load_model(tmp_path / "nowhere")


def test_bad_json_is_an_error_naming_the_file(saved):
    (saved / io.CONFIG_FILE).write_text('{"architecture": "mlp", ')
    with pytest.raises(ModelFileError, match=r"config\.json: not valid JSON"):
        load_model(saved)


def test_unknown_architecture_or_incomplete_config_is_an_error(saved):
    path = saved / io.CONFIG_FILE
    config = json.loads(path.read_text())
    path.write_text(json.dumps({**config, "architecture": "transformer"}))
    with pytest.raises(ModelFileError, match=r"config\.json: 'architecture' must be one of"):
        load_model(saved)
    del config["sizes"]
    path.write_text(json.dumps(config))
    with pytest.raises(ModelFileError, match=r"config\.json: cannot build the model"):
        load_model(saved)


def test_weights_that_do_not_match_the_config_are_listed(saved):
    path = saved / io.CONFIG_FILE
    config = json.loads(path.read_text())
    path.write_text(json.dumps({**config, "sizes": [4, 8, 3]}))
    with pytest.raises(ModelFileError, match=r"model\.safetensors: does not match config\.json"
                                             r".*layers\.0\.weight: shape \(4, 7\), expected "
                                             r"\(4, 8\)"):
        load_model(saved)
    path.write_text(json.dumps({**config, "dtype": "float32"}))
    with pytest.raises(ModelFileError, match=r"layers\.0\.weight: dtype float64, expected float32"):
        load_model(saved)
    path.write_text(json.dumps({**config, "sizes": [4, 7, 2, 3]}))
    with pytest.raises(ModelFileError, match=r"missing \['layers\.2\.weight', 'layers\.2\.bias'\]"):
        load_model(saved)


def test_save_model_refuses_unknown_architecture_and_non_json_config(tmp_path, model):
    with pytest.raises(ValueError, match="config\\['architecture'\\] must be one of"):
        save_model(tmp_path, model, {"sizes": [4, 7, 3]})
    with pytest.raises(TypeError):
        save_model(tmp_path, model, {**model.config(), "rng": np.random.default_rng()})
    assert os.listdir(tmp_path) == []


def test_safetensors_metadata_must_be_strings(tmp_path):
    with pytest.raises(TypeError, match="metadata values must be str"):
        save_arrays(tmp_path / "a.safetensors", {"a": np.ones(1)}, metadata={"epochs": 3})
