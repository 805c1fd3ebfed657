"""Which directories the service loads, by which names, and what it refuses."""
import os

import numpy as np
import pytest

from bptt.serve.checkpoints import CheckpointError, check_name, find_checkpoints, load_checkpoint
from tasks.reber import SYMBOLS


def test_a_directory_of_checkpoints_serves_each_under_its_directory_name(checkpoints):
    models = find_checkpoints([checkpoints])
    assert sorted(models) == ["adding", "iris", "reber"]
    iris = models["iris"]
    assert iris.kind == "mlp" and iris.features[0] == "SepalLengthCm"
    assert iris.classes == ("Iris-setosa", "Iris-versicolor", "Iris-virginica")
    assert iris.card.startswith("---") and "iris" in iris.card
    assert models["reber"].features == tuple(SYMBOLS) == models["reber"].classes
    assert models["adding"].classes is None  # a regression read-out
    assert models["adding"].features == ("x0", "x1")


def test_one_checkpoint_directory_is_one_model(checkpoints):
    assert list(find_checkpoints([checkpoints / "iris"])) == ["iris"]


@pytest.mark.parametrize("name", ["iris", "Iris-2.v1", "a" * 64, "0_x"])
def test_names_that_may_be_served(name):
    assert check_name(name) == name


@pytest.mark.parametrize("name", ["", "..", "../iris", "a/b", "a\\b", ".hidden", "-x", "a..b",
                                  "a" * 65, "iris\x00", "name with space", "é"])
def test_names_that_could_be_paths_or_odd_are_refused(name):
    with pytest.raises(CheckpointError, match="model name"):
        check_name(name)


def test_a_checkpoint_named_oddly_is_refused_at_load(model_dir):
    odd = model_dir / "has space"
    os.rename(model_dir / "iris", odd)
    with pytest.raises(CheckpointError, match="model name 'has space'"):
        load_checkpoint(odd)
    assert load_checkpoint(odd, name="iris").name == "iris"


def test_two_checkpoints_of_one_name_are_refused(checkpoints, tmp_path):
    other = tmp_path / "elsewhere"
    (other / "iris").mkdir(parents=True)
    for f in (checkpoints / "iris").iterdir():
        (other / "iris" / f.name).write_bytes(f.read_bytes())
    with pytest.raises(CheckpointError, match="two checkpoints are named 'iris'"):
        find_checkpoints([checkpoints, other])


def test_missing_empty_and_file_directories_are_refused(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        find_checkpoints([tmp_path / "nowhere"])
    (tmp_path / "file").write_text("x")
    with pytest.raises(CheckpointError, match="is not a directory"):
        find_checkpoints([tmp_path / "file"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no checkpoint to serve"):
        find_checkpoints([tmp_path / "empty"])
    with pytest.raises(CheckpointError, match="no checkpoint directory given"):
        find_checkpoints([])


def test_pickled_weights_are_never_loaded(model_dir):
    iris = model_dir / "iris"
    (iris / "model.safetensors").rename(iris / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="pytorch_model.bin: pickled weights are never "
                                              "loaded.*safetensors checkpoints only"):
        load_checkpoint(iris)


def test_a_file_linked_from_outside_the_directory_is_refused(model_dir, tmp_path):
    iris = model_dir / "iris"
    outside = tmp_path / "secret.safetensors"
    (iris / "model.safetensors").rename(outside)
    (iris / "model.safetensors").symlink_to(outside)
    with pytest.raises(CheckpointError, match="outside .*read only from the directories given"):
        load_checkpoint(iris)


def test_a_damaged_checkpoint_is_refused_naming_the_file(model_dir):
    weights = model_dir / "reber" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="model.safetensors.*SHA-256"):
        find_checkpoints([model_dir])


def test_the_model_is_the_saved_one(checkpoints):
    from bptt.training.pretrained import from_pretrained
    served = load_checkpoint(checkpoints / "iris")
    saved = from_pretrained(checkpoints / "iris").model.state_dict()
    for name, value in served.model.state_dict().items():
        assert np.array_equal(value, saved[name])
