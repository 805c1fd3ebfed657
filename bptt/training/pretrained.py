"""Checkpoints in the Hugging Face `save_pretrained` layout: `save_pretrained` / `from_pretrained`.

A saved model is a directory of three files:
- `config.json`: the model (architecture, sizes, activation or cell, dtype), what surrounds it
  (feature and class names, normalisation statistics, task, data split, recipe, metrics), a
  format version, and two SHA-256 digests: of `model.safetensors` and of the config itself.
  Keys sorted, so equal configs are equal bytes. The schema is `bptt.training.model_config`.
- `model.safetensors`: the weights in PyTorch's names and (out, in) shapes
  (`bptt.training.weights_layout`), so `torch.nn.Linear` and the torch cells load them.
- `README.md`: the model card (`bptt.training.model_card`).

Loading trusts nothing: the directory and each file must be what they claim (a regular file of
bounded size, valid UTF-8 JSON without duplicate keys, NaN or deep nesting); the config must
match the schema exactly; the weights file's header must list exactly the tensors the config
implies, with their shapes and dtype, before a model is allocated (a huge size in a changed
config costs nothing); the file's size must be what the header implies; both digests must
hold (a config or weights file changed after saving is refused). Every refusal is a
`ModelFileError` naming the path. Writes are atomic file by file, config.json last (it commits
the set: a crash between files leaves digests that refuse the mixture).
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bptt.engine.tensor import no_grad
from bptt.nn import MLP, Module
from bptt.nn.feedback import attach_feedback
from bptt.nn.rnn import RNN
from bptt.training import model_config
from bptt.training.files import atomic_write_files, parse_json, read_regular_file
from bptt.training.io import MAX_ARRAYS_BYTES, ModelFileError, safetensors_bytes
from bptt.training.model_card import model_card
from bptt.training.weights_layout import (FEEDBACK, expected_tensors, from_file_layout,
                                          to_file_layout)

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "README.md"
MAX_CONFIG_BYTES = 16 * 2 ** 20
MAX_HEADER_BYTES = 100 * 2 ** 20  # safetensors' own limit on a header
SAFETENSORS_DTYPES = {"F32": np.dtype(np.float32), "F64": np.dtype(np.float64)}
BUILDERS = {"mlp": MLP.from_config, "rnn": RNN.from_config}

__all__ = ["CARD_FILE", "CONFIG_FILE", "ModelFileError", "Pretrained", "WEIGHTS_FILE",
           "from_pretrained", "load_config", "save_pretrained"]


@dataclass(frozen=True)
class Pretrained:
    """A loaded checkpoint: the model, its checked config (a dict, keys sorted) and where it
    was read from. `outputs` and `predict` apply the saved normalisation to raw inputs."""

    model: Module
    config: dict
    directory: Path

    @property
    def features(self) -> list[str] | None:
        """The input names, in column order, or None if the config has none."""
        return self.config.get("features")

    @property
    def classes(self) -> list[str] | None:
        """The output class names, in logit order, or None."""
        return self.config.get("classes")

    def standardise(self, x: np.ndarray) -> np.ndarray:
        """(x - input_mean) / input_std with the training statistics (x unchanged without)."""
        if "input_mean" not in self.config:
            return x
        dtype = np.dtype(self.config["dtype"])
        mean = np.asarray(self.config["input_mean"], dtype)
        std = np.asarray(self.config["input_std"], dtype)
        return (x - mean) / std

    def outputs(self, x: np.ndarray) -> np.ndarray:
        """MLP: logits (n, out) for raw inputs x (n, in). RNN: read-outs (T, B, out) for
        inputs (T, B, in). Computed without recording a graph."""
        x = self.standardise(x)
        if isinstance(self.model, RNN):
            return self.model.predict(x)
        with no_grad():
            return self.model(x).data

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Class indices: the argmax of `outputs(x)` over its last axis."""
        return np.argmax(self.outputs(x), axis=-1)


def save_pretrained(directory, model: Module, config: dict | None = None) -> Path:
    """Save `model` (an `MLP` or an `RNN`) and `config` into `directory` (created if needed).

    `config` holds what surrounds the model, all optional: task, features, classes,
    input_mean, input_std, seed, data, training, metrics (flat objects of short values),
    intended_use. The model's own keys (`model.config()`) are added; if `config` repeats one,
    it must agree. NumPy numbers and arrays are accepted and saved as JSON numbers and lists.
    Everything is checked against the schema before a file is written (ValueError). Returns
    the directory.
    """
    if not isinstance(model, (MLP, RNN)):
        raise TypeError(f"save_pretrained saves an MLP or an RNN, got {type(model).__name__}")
    extra = model_config.plain(dict(config or {}))
    own = model.config()
    clash = {k: (extra[k], v) for k, v in own.items() if k in extra and extra[k] != v}
    if clash:
        raise ValueError("config disagrees with the model: "
                         + "; ".join(f"{k}: given {a!r}, the model has {b!r}"
                                     for k, (a, b) in sorted(clash.items())))
    for key in ("format", "format_version", *model_config.DIGEST_KEYS):
        extra.pop(key, None)  # written here, never taken from the caller
    full = {**extra, **own, "format": model_config.FORMAT,
            "format_version": model_config.FORMAT_VERSION}
    full = model_config.check_config(full, saved=False)
    weights = safetensors_bytes(to_file_layout(model.state_dict(), full),
                                {"format": model_config.FORMAT,
                                 "format_version": str(model_config.FORMAT_VERSION)})
    full["weights_sha256"] = hashlib.sha256(weights).hexdigest()
    full["config_sha256"] = model_config.config_digest(full)
    text = json.dumps(full, indent=2, sort_keys=True, allow_nan=False) + "\n"
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write_files(directory, {WEIGHTS_FILE: weights,
                                   CARD_FILE: model_card(full, os.fspath(directory)).encode(),
                                   CONFIG_FILE: text.encode()})
    return directory


def load_config(directory) -> dict:
    """The checked config of the model saved in `directory` (see the module docstring);
    a ModelFileError names the directory or `config.json` and what is wrong."""
    directory = _checked_directory(directory)
    path = directory / CONFIG_FILE
    config = parse_json(read_regular_file(path, MAX_CONFIG_BYTES, ModelFileError), path,
                        ModelFileError)
    try:
        config = model_config.check_config(config)
    except ValueError as error:
        raise ModelFileError(f"{path}: {error}") from None
    if model_config.config_digest(config) != config["config_sha256"]:
        raise ModelFileError(f"{path}: changed since it was saved (its contents do not match "
                             f"the SHA-256 it recorded, config_sha256); save the model again "
                             f"rather than editing the file")
    return config


def from_pretrained(directory) -> Pretrained:
    """Load the model saved by `save_pretrained` in `directory`, checked as the module
    docstring says; any problem is a ModelFileError naming the file."""
    directory = Path(directory)
    config = load_config(directory)
    path = directory / WEIGHTS_FILE
    expected = expected_tensors(config)
    dtype = np.dtype(config["dtype"])
    data = read_regular_file(path, MAX_ARRAYS_BYTES, ModelFileError)
    header_bytes = _check_header(data, path, expected, dtype, config.get("backward", "backprop"))
    size = 8 + header_bytes + sum(int(np.prod(shape)) * dtype.itemsize
                                  for shape in _all_shapes(data, header_bytes, expected))
    if len(data) != size:
        raise ModelFileError(f"{path}: {len(data)} bytes, but its header describes {size}: "
                             + ("the file is truncated" if len(data) < size else
                                "bytes follow the tensors"))
    if hashlib.sha256(data).hexdigest() != config["weights_sha256"]:
        raise ModelFileError(f"{path}: its contents do not match the SHA-256 recorded in "
                             f"{directory / CONFIG_FILE} (weights_sha256): the file was changed "
                             f"or damaged after it was saved")
    arrays = _parse_safetensors(data, path)
    bad = sorted(name for name, a in arrays.items() if not np.isfinite(a).all())
    if bad:
        raise ModelFileError(f"{path}: tensor {bad[0]!r} contains NaN or Inf")
    model = BUILDERS[config["architecture"]](config)
    variant = config.get("backward", "backprop")
    if variant != "backprop":  # its feedback matrices: shapes follow the sizes checked above
        attach_feedback(model, variant, np.random.default_rng(0))
    try:
        model.load_state_dict(from_file_layout(arrays, config))
    except ValueError as error:
        raise ModelFileError(f"{path}: does not match {CONFIG_FILE} ({error})") from None
    return Pretrained(model, config, directory)


def _checked_directory(directory) -> Path:
    directory = Path(directory)
    try:
        is_dir = directory.is_dir()
        exists = is_dir or directory.exists()
    except OSError as error:  # e.g. a name over 255 bytes
        raise ModelFileError(f"{directory}: cannot look it up ({error.strerror or error})") \
            from None
    if not exists:
        raise ModelFileError(f"{directory}: no such directory; expected a directory written "
                             f"by save_pretrained (bptt-bench --save)")
    if not is_dir:
        raise ModelFileError(f"{directory}: not a directory; expected a directory holding "
                             f"{CONFIG_FILE}, {WEIGHTS_FILE} and {CARD_FILE}")
    return directory


def _check_header(data: bytes, path: Path, expected: dict[str, tuple[int, ...]],
                  dtype: np.dtype, variant: str) -> int:
    """Compare the tensors the safetensors header in `data` lists with `expected`: returns the
    header's length in bytes, or a ModelFileError listing every difference."""
    length = int.from_bytes(data[:8], "little") if len(data) >= 8 else -1
    if not 0 < length <= min(MAX_HEADER_BYTES, len(data) - 8):
        raise ModelFileError(f"{path}: not a readable safetensors file (header length "
                             f"{length})")
    header = parse_json(data[8:8 + length], path, ModelFileError)
    if not isinstance(header, dict):
        raise ModelFileError(f"{path}: not a readable safetensors file (header is not an "
                             f"object)")
    header.pop("__metadata__", None)
    if variant != "backprop":  # checked against the built model's own (load_state_dict)
        header = {k: v for k, v in header.items() if not k.startswith(FEEDBACK)}
    problems = []
    missing = [n for n in expected if n not in header]
    unexpected = sorted(n for n in header if n not in expected)
    if missing:
        problems.append(f"missing {missing}")
    if unexpected:
        problems.append(f"unexpected {unexpected}")
    for name, shape in expected.items():
        entry = header.get(name)
        if name not in header:
            continue
        if not isinstance(entry, dict):
            problems.append(f"{name}: not a tensor entry")
            continue
        got_shape = entry.get("shape")
        if not isinstance(got_shape, list) or tuple(got_shape) != shape:
            problems.append(f"{name}: shape {_shape(got_shape)}, expected {shape}")
        got = SAFETENSORS_DTYPES.get(entry.get("dtype"))
        if got != dtype:
            problems.append(f"{name}: dtype {got or entry.get('dtype')}, expected {dtype}")
    if problems:
        raise ModelFileError(f"{path}: does not match {CONFIG_FILE} ({'; '.join(problems)})")
    return length


def _all_shapes(data: bytes, header_bytes: int, expected: dict) -> list[tuple[int, ...]]:
    """The expected shapes plus those of the feedback matrices the (checked) header lists."""
    header = parse_json(data[8:8 + header_bytes], "header")
    extra = [tuple(v["shape"]) for k, v in header.items()
             if k.startswith(FEEDBACK) and isinstance(v, dict)
             and isinstance(v.get("shape"), list)
             and all(isinstance(n, int) and n >= 0 for n in v["shape"])]
    return list(expected.values()) + extra


def _shape(value) -> str:
    return str(tuple(value)) if isinstance(value, list) else repr(value)


def _parse_safetensors(data: bytes, path: Path) -> dict[str, np.ndarray]:
    from safetensors import SafetensorError
    from safetensors.numpy import load

    try:
        return load(data)
    except SafetensorError as error:
        raise ModelFileError(f"{path}: not a readable safetensors file ({error})") from None
