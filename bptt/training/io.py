"""Saving and loading models: weights in `model.safetensors`, constructor data in `config.json`.

The format is generic: a dict of named arrays plus a JSON config whose "architecture" names the
builder that rebuilds the model (`ARCHITECTURES`: "mlp" or "rnn"). Every write goes
to a temporary file in the target directory and is moved into place with `os.replace`, so an
interrupted run leaves either the old file or the new one, never half of one.
A training state (`save_state`/`load_state`) pairs a safetensors file with a JSON file that
names it and its SHA-256: the pair is replaced as one, so a crash never mixes two states.
"""
from __future__ import annotations

import hashlib
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
STATE_FILE = "training_state.json"
STATE_ARRAYS = "training_state-{digest}.safetensors"
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
    atomic_write_bytes(path, _safetensors_bytes(arrays, metadata))


def _safetensors_bytes(arrays: Mapping[str, np.ndarray],
                       metadata: Mapping[str, str] | None = None) -> bytes:
    from safetensors.numpy import save

    metadata = metadata or {}
    bad = {k: type(v).__name__ for k, v in metadata.items() if not isinstance(v, str)}
    if bad:
        raise TypeError(f"safetensors metadata values must be str, got {bad}")
    contiguous = {name: np.ascontiguousarray(a) for name, a in arrays.items()}
    return _sorted_metadata(save(contiguous, metadata=dict(metadata)))


def _sorted_metadata(data: bytes) -> bytes:
    """The same safetensors bytes with the header's `__metadata__` in sorted key order.

    safetensors (0.8) writes metadata in a random order on every call (safetensors issue #584),
    so equal arrays and metadata would give different bytes and digests. Tensor offsets are
    relative to the end of the header, so rewriting the header changes nothing else.
    """
    length = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + length])
    if not header.get("__metadata__"):
        return data
    header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    text = text.ljust(max(length, -(-len(text) // 8) * 8))  # padded with spaces, as written
    return len(text).to_bytes(8, "little") + text + data[8 + length:]


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


def save_state(directory, arrays: Mapping[str, np.ndarray], info: dict) -> None:
    """Save a training state in `directory` (created if needed): `arrays` as safetensors, `info`
    (JSON-serialisable) in `training_state.json`, which also names the arrays' file and its
    SHA-256.

    The arrays go to a new file named by their digest; the JSON, written last, is the commit
    point; the older arrays files are removed after it. Interrupted anywhere, the directory
    holds the previous state or the new one, whole.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    data = _safetensors_bytes(arrays, {"format": FORMAT})
    digest = hashlib.sha256(data).hexdigest()
    name = STATE_ARRAYS.format(digest=digest[:16])
    text = json.dumps({**info, "arrays": name, "sha256": digest}, indent=2) + "\n"
    existed = (directory / name).exists()
    atomic_write_bytes(directory / name, data)
    try:
        atomic_write_bytes(directory / STATE_FILE, text.encode())
    except BaseException:
        if not existed:  # nothing refers to it: leave the directory as it was
            (directory / name).unlink(missing_ok=True)
        raise
    for old in directory.glob(STATE_ARRAYS.format(digest="*")):
        if old.name != name:
            old.unlink(missing_ok=True)


def load_state(directory) -> tuple[dict[str, np.ndarray], dict]:
    """(arrays, info) of the training state saved by `save_state` in `directory`.

    A ModelFileError names the file that is missing, not JSON, not safetensors, or whose bytes
    differ from the SHA-256 the JSON recorded (changed or damaged after it was written).
    """
    from safetensors import SafetensorError
    from safetensors.numpy import load

    directory = Path(directory)
    if not directory.is_dir():
        what = "does not exist" if not directory.exists() else "is not a directory"
        raise ModelFileError(f"{directory} {what}; expected a directory holding "
                             f"{STATE_FILE}")
    path = directory / STATE_FILE
    try:
        info = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise ModelFileError(f"{path}: file not found; {directory} holds no saved training "
                             f"state") from None
    except OSError as error:
        raise ModelFileError(f"{path}: cannot read it ({error.strerror or error})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ModelFileError(f"{path}: not valid JSON ({error})") from None
    name = info.get("arrays") if isinstance(info, dict) else None
    if not isinstance(name, str) or Path(name).name != name or not name:
        raise ModelFileError(f"{path}: 'arrays' must name a file in {directory}, got {name!r}")
    arrays_path = directory / name
    try:
        data = arrays_path.read_bytes()
    except FileNotFoundError:
        raise ModelFileError(f"{arrays_path}: file not found (named in {path})") from None
    except OSError as error:
        raise ModelFileError(f"{arrays_path}: cannot read it ({error.strerror or error})") from None
    if hashlib.sha256(data).hexdigest() != info.get("sha256"):
        raise ModelFileError(f"{arrays_path}: its contents do not match the SHA-256 recorded "
                             f"in {path}; the file was changed or damaged")
    try:
        arrays = load(data)
    except SafetensorError as error:
        raise ModelFileError(f"{arrays_path}: not a readable safetensors file "
                             f"({error})") from None
    return arrays, info
