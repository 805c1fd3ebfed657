"""Saving and loading models: weights in `model.safetensors`, constructor data in `config.json`.

The format is generic: a dict of named arrays plus a JSON config whose "architecture" names the
builder that rebuilds the model (`ARCHITECTURES`: "mlp" or "rnn"). Every write goes
to a temporary file in the target directory and is moved into place with `os.replace`, so an
interrupted run leaves either the old file or the new one, never half of one.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from bptt.nn import MLP, Module
from bptt.nn.rnn import RNN

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
FORMAT = "bptt"

# architecture name -> function(config) -> a Module with freshly initialised weights
ARCHITECTURES: dict[str, Callable[[dict], Module]] = {"mlp": MLP.from_config,
                                                      "rnn": RNN.from_config}


class ModelFileError(ValueError):
    """A saved model file is missing, unreadable, corrupt or does not match its config."""


def atomic_write_bytes(path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file in the same directory and `os.replace`."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; give what open() would have
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_json(path, value) -> None:
    """Write `value` as indented JSON to `path`, atomically (see `atomic_write_bytes`)."""
    atomic_write_bytes(path, (json.dumps(value, indent=2) + "\n").encode())


def save_arrays(path, arrays: Mapping[str, np.ndarray],
                metadata: Mapping[str, str] | None = None) -> None:
    """Write named arrays to a safetensors file, atomically. Metadata values must be str."""
    from safetensors.numpy import save

    metadata = metadata or {}
    bad = {k: type(v).__name__ for k, v in metadata.items() if not isinstance(v, str)}
    if bad:
        raise TypeError(f"safetensors metadata values must be str, got {bad}")
    contiguous = {name: np.ascontiguousarray(a) for name, a in arrays.items()}
    atomic_write_bytes(path, save(contiguous, metadata=dict(metadata)))


def load_arrays(path) -> dict[str, np.ndarray]:
    """The named arrays of a safetensors file, or a ModelFileError naming the file."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    try:
        return load_file(str(path))
    except FileNotFoundError:
        raise ModelFileError(f"{path}: file not found") from None
    except (SafetensorError, OSError) as error:
        raise ModelFileError(f"{path}: not a readable safetensors file ({error})") from None


def save_model(directory, model: Module, config: dict) -> None:
    """Save `model`'s parameters and `config` into `directory` (created if needed).

    `config` must be JSON-serialisable and hold "architecture" (a key of `ARCHITECTURES`) plus
    what its builder needs, e.g. `MLP.config()`; extra keys (task, seed, ...) are kept as is.
    The weights are written first, the config last.
    """
    architecture = config.get("architecture")
    if architecture not in ARCHITECTURES:
        raise ValueError(f"config['architecture'] must be one of {sorted(ARCHITECTURES)}, "
                         f"got {architecture!r}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    text = json.dumps(config, indent=2) + "\n"  # fail on unserialisable config before writing
    save_arrays(directory / WEIGHTS_FILE, model.state_dict(),
                metadata={"format": FORMAT, "architecture": architecture})
    atomic_write_bytes(directory / CONFIG_FILE, text.encode())


def load_config(directory) -> dict:
    """The config saved by `save_model` in `directory`, or a ModelFileError naming the file."""
    path = Path(directory) / CONFIG_FILE
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelFileError(f"{path}: file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ModelFileError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(config, dict) or config.get("architecture") not in ARCHITECTURES:
        found = config.get("architecture") if isinstance(config, dict) else config
        raise ModelFileError(f"{path}: 'architecture' must be one of {sorted(ARCHITECTURES)}, "
                             f"got {found!r}")
    return config


def load_model(directory) -> Module:
    """Rebuild the model saved in `directory` from its config and load its weights.

    The weights' names, shapes and dtypes must be exactly those of the model the config
    describes; any difference is a ModelFileError naming the weights file and listing it.
    """
    directory = Path(directory)
    config = load_config(directory)
    try:
        model = ARCHITECTURES[config["architecture"]](config)
    except (KeyError, TypeError, ValueError) as error:
        raise ModelFileError(f"{directory / CONFIG_FILE}: cannot build the model "
                             f"({type(error).__name__}: {error})") from None
    weights = directory / WEIGHTS_FILE
    state = load_arrays(weights)
    try:
        model.load_state_dict(state)
    except ValueError as error:
        raise ModelFileError(f"{weights}: does not match {CONFIG_FILE} ({error})") from None
    return model
