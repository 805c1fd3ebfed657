"""Checkpoints in the `save_pretrained` layout: round trips, the files, and every refusal."""
import json
import os

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from bptt.nn import MLP, RNN
from bptt.training import model_config
from bptt.training.pretrained import (CARD_FILE, CONFIG_FILE, WEIGHTS_FILE, ModelFileError,
                                      from_pretrained, load_config, save_pretrained)

EXTRA = {"task": "unit", "features": ["a", "b", "c", "d"], "classes": ["x", "y", "z"],
         "input_mean": [0.5, -1.0, 2.0, 0.0], "input_std": [1.0, 2.0, 0.5, 3.0], "seed": 3,
         "training": {"lr": 0.1, "optimizer": "sgd"}, "metrics": {"test_accuracy": 0.9}}


@pytest.fixture
def mlp():
    return MLP([4, 7, 3], "tanh", rng=np.random.default_rng(5))


@pytest.fixture
def saved(tmp_path, mlp):
    return save_pretrained(tmp_path / "model", mlp, EXTRA)


def rewrite_config(directory, redigest=True, drop=(), **changes):
    """Change config.json's entries; with `redigest` its own digest is recomputed, so the
    change passes the tamper check and reaches the checks behind it."""
    path = directory / CONFIG_FILE
    config = {**json.loads(path.read_text()), **changes}
    for key in drop:
        config.pop(key)
    if redigest:
        config["config_sha256"] = model_config.config_digest(config)
    path.write_text(json.dumps(config))


def rewrite_weights(directory, arrays):
    """Replace model.safetensors and record its new digest, so that only the layout differs."""
    import hashlib
    save_file(arrays, str(directory / WEIGHTS_FILE))
    digest = hashlib.sha256((directory / WEIGHTS_FILE).read_bytes()).hexdigest()
    rewrite_config(directory, weights_sha256=digest)


# --- round trips and the files -------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_an_mlp_round_trips_bit_for_bit(tmp_path, dtype):
    model = MLP([4, 7, 5, 3], "relu", rng=np.random.default_rng(1), dtype=dtype)
    save_pretrained(tmp_path, model)
    loaded = from_pretrained(tmp_path)
    assert isinstance(loaded.model, MLP) and loaded.model.config() == model.config()
    x = np.random.default_rng(2).normal(size=(10, 4)).astype(dtype)
    assert loaded.model(x).data.tobytes() == model(x).data.tobytes()
    assert loaded.outputs(x).tobytes() == model(x).data.tobytes()  # no statistics: x as is


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_a_recurrent_model_round_trips_bit_for_bit(tmp_path, cell):
    model = RNN(cell, 3, 5, 2, np.random.default_rng(0), loss="xent", every_step=False)
    save_pretrained(tmp_path, model, {"task": "text", "classes": ["p", "q"]})
    loaded = from_pretrained(tmp_path)
    assert isinstance(loaded.model, RNN) and loaded.model.config() == model.config()
    inputs = np.random.default_rng(1).standard_normal((7, 2, 3)).astype(np.float32)
    assert loaded.outputs(inputs).tobytes() == model.predict(inputs).tobytes()
    assert loaded.classes == ["p", "q"]


def test_the_directory_holds_config_weights_and_card_and_nothing_else(saved, mlp):
    assert sorted(os.listdir(saved)) == [CARD_FILE, CONFIG_FILE, WEIGHTS_FILE]
    text = (saved / CONFIG_FILE).read_text()
    config = json.loads(text)
    assert list(config) == sorted(config)
    assert config["format_version"] == model_config.FORMAT_VERSION
    assert {k: config[k] for k in mlp.config()} == mlp.config()
    assert {k: config[k] for k in EXTRA} == EXTRA
    arrays = load_file(str(saved / WEIGHTS_FILE))
    assert {k: a.shape for k, a in arrays.items()} == {
        "layers.0.weight": (7, 4), "layers.0.bias": (7,),
        "layers.1.weight": (3, 7), "layers.1.bias": (3,)}
    np.testing.assert_array_equal(arrays["layers.0.weight"], mlp.layers[0].weight.data.T)
    card = (saved / CARD_FILE).read_text()
    for fact in ("library_name: bptt", "4-7-3 tanh MLP", "## Measured", "test_accuracy | 0.9",
                 "## Intended use", "from_pretrained", "## Training recipe", "- lr: 0.1"):
        assert fact in card


def test_the_same_model_gives_the_same_bytes(tmp_path, mlp):
    a = save_pretrained(tmp_path / "a", mlp, EXTRA)
    b = save_pretrained(tmp_path / "b", mlp, dict(reversed(list(EXTRA.items()))))
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        assert (a / name).read_bytes() == (b / name).read_bytes()


def test_saving_again_replaces_the_files_and_leaves_no_temporaries(saved, mlp):
    save_pretrained(saved, mlp, {**EXTRA, "task": "again"})
    assert sorted(os.listdir(saved)) == [CARD_FILE, CONFIG_FILE, WEIGHTS_FILE]
    assert from_pretrained(saved).config["task"] == "again"


def test_an_interrupted_save_changes_nothing(saved, mlp, monkeypatch):
    before = {name: (saved / name).read_bytes() for name in os.listdir(saved)}

    def crash(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        save_pretrained(saved, MLP([4, 7, 3], "tanh", rng=np.random.default_rng(9)), EXTRA)
    monkeypatch.undo()
    assert {name: (saved / name).read_bytes() for name in os.listdir(saved)} == before


def test_the_saved_statistics_standardise_raw_inputs(saved, mlp):
    loaded = from_pretrained(saved)
    raw = np.random.default_rng(3).normal(size=(6, 4))
    expected = mlp((raw - np.array(EXTRA["input_mean"])) / np.array(EXTRA["input_std"])).data
    np.testing.assert_array_equal(loaded.outputs(raw), expected)
    np.testing.assert_array_equal(loaded.predict(raw), expected.argmax(axis=1))
    assert loaded.features == EXTRA["features"]


def test_numpy_numbers_are_saved_as_json_numbers(tmp_path, mlp):
    save_pretrained(tmp_path, mlp, {"seed": np.int64(4), "input_mean": np.zeros(4),
                                    "input_std": np.ones(4, np.float32),
                                    "metrics": {"acc": np.float64(0.5)}})
    config = load_config(tmp_path)
    assert config["seed"] == 4 and type(config["seed"]) is int
    assert config["input_std"] == [1.0] * 4 and config["metrics"] == {"acc": 0.5}


# --- what save_pretrained refuses ---------------------------------------------------------------

@pytest.mark.parametrize("config, message", [
    ({"sizes": [4, 8, 3]}, r"config disagrees with the model: sizes: given \[4, 8, 3\]"),
    ({"features": ["a", "b"]}, r"'features' has 2 entries but the model has 4 inputs"),
    ({"input_mean": [0.0] * 4}, r"'input_mean' and 'input_std' go together"),
    ({"input_mean": [0.0] * 4, "input_std": [1, 0, 1, 1]}, r"'input_std' must be > 0"),
    ({"seed": -1}, r"'seed' must be an integer >= 0"),
    ({"metrics": {"loss": float("nan")}}, r"'metrics.loss' must be a string, a finite"),
    ({"colour": "blue"}, r"unknown key 'colour'"),
])
def test_save_refuses_a_bad_config_before_writing_anything(tmp_path, mlp, config, message):
    with pytest.raises(ValueError, match=message):
        save_pretrained(tmp_path / "m", mlp, config)
    assert not (tmp_path / "m").exists()


def test_save_refuses_what_it_cannot_describe(tmp_path):
    from bptt.nn import Linear
    with pytest.raises(TypeError, match="saves an MLP or an RNN, got Linear"):
        save_pretrained(tmp_path, Linear(2, 2, np.random.default_rng(0)))


# --- what from_pretrained refuses: the directory and config.json ----------------------------------

def test_a_missing_directory_a_file_and_an_over_long_name_are_named(tmp_path):
    with pytest.raises(ModelFileError, match=r"nowhere: no such directory"):
        from_pretrained(tmp_path / "nowhere")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ModelFileError, match=r"file: not a directory"):
        from_pretrained(tmp_path / "file")
    long = tmp_path / ("n" * 300)
    with pytest.raises(ModelFileError, match=r"n{300}: cannot look it up \(File name too long"):
        from_pretrained(long)


def test_a_config_json_that_is_not_a_regular_file_is_named(saved):
    (saved / CONFIG_FILE).unlink()
    with pytest.raises(ModelFileError, match=r"config\.json: file not found"):
        from_pretrained(saved)
    (saved / CONFIG_FILE).mkdir()
    with pytest.raises(ModelFileError, match=r"config\.json: a directory, expected a regular file"):
        from_pretrained(saved)
    (saved / CONFIG_FILE).rmdir()
    os.mkfifo(saved / CONFIG_FILE)  # would block a plain open() forever
    with pytest.raises(ModelFileError,
                       match=r"config\.json: a FIFO \(named pipe\), expected a regular file"):
        from_pretrained(saved)


@pytest.mark.parametrize("content, message", [
    (b'{"architecture": "mlp", ', r"not valid JSON"),
    (b"\xff\xfe{}", r"not valid JSON"),
    (b"[" * 100_000 + b"]" * 100_000, r"not valid JSON \(nested too deeply\)"),
    (b'{"format": "bptt", "format": "bptt"}', r"not valid JSON \(duplicate key 'format'\)"),
    (b'{"seed": NaN}', r"not valid JSON \(NaN is not JSON"),
    (b"[1, 2]", r"the config must be a JSON object, got a list"),
    (b" " * (17 * 2 ** 20), r"17825792 bytes, more than the 16777216 bytes bptt reads"),
])
def test_a_config_that_is_not_a_json_object_is_named(saved, content, message):
    (saved / CONFIG_FILE).write_bytes(content)
    with pytest.raises(ModelFileError, match=r"config\.json: " + message):
        from_pretrained(saved)


@pytest.mark.parametrize("changes, message", [
    ({"architecture": ["mlp"]}, r"'architecture' must be one of \['mlp', 'rnn'\], got \['mlp'\]"),
    ({"format": "torch"}, r"'format' must be 'bptt'"),
    ({"format_version": 2}, r"'format_version' is 2, written by a newer bptt"),
    ({"format_version": "1"}, r"'format_version' must be the integer 1, got '1'"),
    ({"format_version": True}, r"'format_version' must be the integer 1, got True"),
    ({"sizes": [4, True, 3]}, r"'sizes\[1\]' must be an integer from 1 to 2147483647, got a "
                              r"boolean True"),
    ({"sizes": "4,7,3"}, r"'sizes' must be a list of at least 2"),
    ({"activation": "gelu"}, r"'activation' must be one of"),
    ({"dtype": "float16"}, r"'dtype' must be one of \['float32', 'float64'\]"),
    ({"hidden_size": 5}, r"unknown key 'hidden_size' for architecture 'mlp'"),
    ({"dropout": 1.0}, r"'dropout' must be a number in \[0, 1\)"),
    ({"classes": ["x", "x", "y"]}, r"'classes' must be a list of distinct names"),
    ({"input_std": [1, 1, 1, "2"]}, r"'input_std\[3\]' must be a finite number, got a string"),
    ({"weights_sha256": "abc"}, r"'weights_sha256' must be a SHA-256"),
])
def test_a_config_outside_the_schema_is_refused_with_the_key(saved, changes, message):
    rewrite_config(saved, **changes)
    with pytest.raises(ModelFileError, match=r"config\.json: " + message):
        from_pretrained(saved)


def test_a_missing_key_is_named(saved):
    rewrite_config(saved, drop=["activation"])
    with pytest.raises(ModelFileError, match=r"config\.json: missing key 'activation'"):
        from_pretrained(saved)


@pytest.fixture
def saved_rnn(tmp_path):
    model = RNN("lstm", 3, 5, 2, np.random.default_rng(0))
    return save_pretrained(tmp_path / "rnn", model, {"task": "adding"})


@pytest.mark.parametrize("changes, message", [
    ({"every_step": "no"}, r"'every_step' must be true or false, got a string 'no'"),
    ({"every_step": 0}, r"'every_step' must be true or false, got an integer 0"),
    ({"hidden_size": 5.0}, r"'hidden_size' must be an integer from 1"),
    ({"cell": "elman"}, r"'cell' must be one of \['gru', 'lstm', 'rnn'\]"),
    ({"loss": "hinge"}, r"'loss' must be one of \['mse', 'xent'\]"),
    ({"sizes": [1, 2]}, r"unknown key 'sizes' for architecture 'rnn'"),
])
def test_a_recurrent_config_outside_the_schema_is_refused(saved_rnn, changes, message):
    rewrite_config(saved_rnn, **changes)
    with pytest.raises(ModelFileError, match=r"config\.json: " + message):
        from_pretrained(saved_rnn)


def test_a_config_changed_after_saving_is_refused(saved):
    rewrite_config(saved, redigest=False, input_mean=[0.0, 0.0, 0.0, 0.0])
    with pytest.raises(ModelFileError, match=r"config\.json: changed since it was saved"):
        from_pretrained(saved)


# --- what from_pretrained refuses: the weights ----------------------------------------------------

@pytest.mark.parametrize("changes, message", [
    ({"sizes": [4, 8, 3]}, r"layers\.0\.weight: shape \(7, 4\), expected \(8, 4\)"),
    ({"sizes": [4, 7, 2, 3]}, r"missing \['layers\.2\.weight', 'layers\.2\.bias'\]"),
    ({"sizes": [4, 3]}, r"unexpected \['layers\.1\.bias', 'layers\.1\.weight'\]"),
    ({"dtype": "float32"}, r"layers\.0\.weight: dtype float64, expected float32"),
])
def test_weights_that_do_not_match_the_config_are_listed(saved, changes, message):
    rewrite_config(saved, **changes)
    with pytest.raises(ModelFileError, match=r"model\.safetensors: does not match config\.json "
                                             r"\(.*" + message):
        from_pretrained(saved)


@pytest.mark.parametrize("changes, message", [
    ({"hidden_size": 2 ** 31 - 1}, r"cell\.weight_ih: shape \(20, 3\), expected \(8589934588, 3\)"),
    ({"cell": "gru"}, r"cell\.weight_ih: shape \(20, 3\), expected \(15, 3\)"),
    ({"output_size": 3}, r"readout\.weight: shape \(2, 5\), expected \(3, 5\)"),
])
def test_a_huge_or_wrong_size_is_refused_before_anything_is_allocated(saved_rnn, changes,
                                                                      message, monkeypatch):
    from bptt.training import pretrained

    def no_build(config):
        raise AssertionError("a model was built before the weights were checked")

    monkeypatch.setitem(pretrained.BUILDERS, "rnn", no_build)
    rewrite_config(saved_rnn, **changes)
    with pytest.raises(ModelFileError, match=r"model\.safetensors: does not match .*" + message):
        from_pretrained(saved_rnn)


def test_extra_missing_and_retyped_tensors_are_listed(saved):
    arrays = load_file(str(saved / WEIGHTS_FILE))
    arrays["layers.9.weight"] = np.zeros(2)
    del arrays["layers.1.bias"]
    arrays["layers.0.bias"] = arrays["layers.0.bias"].astype(np.float32)
    rewrite_weights(saved, arrays)
    with pytest.raises(ModelFileError, match=r"missing \['layers\.1\.bias'\]; unexpected "
                                             r"\['layers\.9\.weight'\]; layers\.0\.bias: dtype "
                                             r"float32, expected float64"):
        from_pretrained(saved)


@pytest.mark.parametrize("damage, message", [
    (lambda b: b[:len(b) - 10], r"806 bytes, but its header describes 816: the file is "
                                r"truncated"),
    (lambda b: b[:5], r"not a readable safetensors file \(header length -1\)"),
    (lambda b: b"\x80\x04\x95" + b"\x00" * 61, r"not a readable safetensors file"),  # a pickle
    (lambda b: b[:-1] + bytes([b[-1] ^ 1]), r"its contents do not match the SHA-256 recorded "
                                            r"in .*config\.json \(weights_sha256\)"),
    (lambda b: b + b"\x00" * 8, r"824 bytes, but its header describes 816: bytes follow"),
])
def test_a_damaged_weights_file_is_named(saved, damage, message):
    path = saved / WEIGHTS_FILE
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(ModelFileError, match=r"model\.safetensors: " + message):
        from_pretrained(saved)


def test_a_renamed_weights_file_is_not_found(saved):
    os.rename(saved / WEIGHTS_FILE, saved / "pytorch_model.bin")
    with pytest.raises(ModelFileError, match=r"model\.safetensors: file not found"):
        from_pretrained(saved)


def test_non_finite_weights_are_refused(saved):
    arrays = load_file(str(saved / WEIGHTS_FILE))
    arrays["layers.1.weight"][0, 0] = np.nan
    rewrite_weights(saved, arrays)
    with pytest.raises(ModelFileError, match=r"tensor 'layers\.1\.weight' contains NaN"):
        from_pretrained(saved)


# --- PyTorch reads the same file ------------------------------------------------------------------

def card_block(directory, language_line):
    """The card's code block that contains `language_line`."""
    text = (directory / CARD_FILE).read_text()
    blocks = [b.split("```", 1)[0] for b in text.split("```python\n")[1:]]
    return next(b for b in blocks if language_line in b)


@pytest.mark.parametrize("dropout", [0.0, 0.25])
def test_torch_loads_the_mlp_into_a_sequential_and_predicts_the_same(tmp_path, dropout):
    torch = pytest.importorskip("torch")
    from safetensors.torch import load_file as torch_load
    model = MLP([4, 16, 8, 3], "tanh", rng=np.random.default_rng(2), dropout=dropout)
    save_pretrained(tmp_path, model, EXTRA)
    assert load_config(tmp_path).get("dropout", 0.0) == dropout
    state = torch_load(str(tmp_path / WEIGHTS_FILE))
    net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 8),
                              torch.nn.Tanh(), torch.nn.Linear(8, 3)).double().eval()
    net.load_state_dict({f"{2 * int(k.split('.')[1])}.{k.split('.')[2]}": v
                         for k, v in state.items()})
    x = np.random.default_rng(4).normal(size=(25, 4))
    with torch.no_grad():
        expected = net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(model(x).data, expected, rtol=0, atol=1e-6)
    scope = {}
    exec(card_block(tmp_path, "import torch"), scope)  # the card's own snippet works too
    with torch.no_grad():
        card_net = scope["net"](torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(card_net, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_torch_cells_load_the_recurrent_weights_and_predict_the_same(tmp_path, cell):
    torch = pytest.importorskip("torch")
    model = RNN(cell, 3, 6, 2, np.random.default_rng(1), dtype=np.float64)
    save_pretrained(tmp_path, model)
    scope = {}
    exec(card_block(tmp_path, "import torch"), scope)
    inputs = np.random.default_rng(2).standard_normal((9, 4, 3))
    expected = model.predict(inputs)
    h = torch.zeros(4, 6, dtype=torch.float64)
    c = torch.zeros_like(h)
    outputs = []
    with torch.no_grad():
        for x in torch.from_numpy(inputs):
            if cell == "lstm":
                h, c = scope["cell"](x, (h, c))
            else:
                h = scope["cell"](x, h)
            outputs.append(scope["readout"](h).numpy())
    np.testing.assert_allclose(np.stack(outputs), expected, rtol=0, atol=1e-10)


def test_the_cards_bptt_snippet_loads_the_model(saved):
    scope = {}
    exec(card_block(saved, "from_pretrained"), scope)
    assert isinstance(scope["model"], MLP) and scope["config"]["task"] == "unit"
