"""Safetensors files and training states; the low-level helpers saved models are built on.

Every write goes to a temporary file in the target directory and is moved into place with
`os.replace`, so an interrupted run leaves either the old file or the new one, never half of
one; `atomic_write_files` does so for several files at once. Saved models (a directory in the
Hugging Face `save_pretrained` layout) are `bptt.training.pretrained`'s.
A training state (`save_state`/`load_state`) pairs a safetensors file with a JSON file that
names it and its SHA-256, and carries a SHA-256 of its own content: the pair is replaced as
one, so a crash never mixes two states, and a change to either file is refused by name.

Files are read only if they are regular files under a size limit (`read_regular_file`: a FIFO
or /dev/zero is refused, not waited on or read forever); JSON is read strictly (`parse_json`:
NaN, Infinity and nesting past Python's recursion limit are errors naming the file) and
written strictly (`strict_json`: NaN and infinities become null). Writes never replace
anything but a regular file. `lock_state_dir` gives a run sole use of a state directory.
"""
from __future__ import annotations

import hashlib
import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Mapping

import numpy as np

from bptt.training.files import (FileReadError, atomic_write_bytes, parse_json,
                                 read_regular_file, strict_json)

STATE_FILE = "training_state.json"
STATE_ARRAYS = "training_state-{digest}.safetensors"
FORMAT = "bptt"

MAX_JSON_BYTES = 1 << 30      # a state's JSON: ~140 B per step of history
MAX_ARRAYS_BYTES = 1 << 40    # a state's or a model's safetensors file


class ModelFileError(FileReadError):
    """A saved file (model or training state) is missing, unreadable, corrupt, changed since it
    was written, or does not match what it must describe; the message names the path."""


class StateLockedError(ValueError):
    """Another run holds the training-state directory."""


def save_arrays(path, arrays: Mapping[str, np.ndarray],
                metadata: Mapping[str, str] | None = None) -> None:
    """Write named arrays to a safetensors file, atomically. Metadata values must be str."""
    atomic_write_bytes(path, safetensors_bytes(arrays, metadata))


def safetensors_bytes(arrays: Mapping[str, np.ndarray],
                      metadata: Mapping[str, str] | None = None) -> bytes:
    """The safetensors file of `arrays` and `metadata` (str values), byte-for-byte
    reproducible: the same arrays and metadata always give the same bytes."""
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


def save_state(directory, arrays: Mapping[str, np.ndarray], info: dict) -> None:
    """Save a training state in `directory` (created if needed): `arrays` as safetensors, `info`
    (JSON-serialisable; NaN and infinities become null) in `training_state.json`, which also
    names the arrays' file, its SHA-256, and a SHA-256 of the JSON's own content ("checksum",
    see `state_checksum`), so that a change to either file is detected.

    The arrays go to a new file named by their digest; the JSON, written last, is the commit
    point; the older arrays files are removed after it. Interrupted anywhere, the directory
    holds the previous state or the new one, whole (and temporary files that the next
    `lock_state_dir` removes).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    data = safetensors_bytes(arrays, {"format": FORMAT})
    digest = hashlib.sha256(data).hexdigest()
    name = STATE_ARRAYS.format(digest=digest[:16])
    content = strict_json({**info, "arrays": name, "sha256": digest})
    content["checksum"] = state_checksum(content)
    text = json.dumps(content, indent=2, allow_nan=False) + "\n"
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


def state_checksum(content: dict) -> str:
    """SHA-256 of a state JSON's content without its "checksum" entry, in canonical form
    (sorted keys, no spaces): any change to any value, a one-unit change included, alters it.
    It detects damage and edits, not forgery (anyone can recompute it)."""
    body = {k: v for k, v in content.items() if k != "checksum"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def load_state(directory) -> tuple[dict[str, np.ndarray], dict]:
    """(arrays, info) of the training state saved by `save_state` in `directory`.

    A ModelFileError names the file that is missing, not a regular file, too large, not
    strict JSON, not safetensors, or whose content differs from the checksums recorded
    (changed or damaged after it was written). `info` still holds "arrays", "sha256" and
    "checksum"; JSON nulls stand for NaN (see `save_state`).
    """
    from safetensors import SafetensorError
    from safetensors.numpy import load

    directory = Path(directory)
    if not directory.is_dir():
        what = "does not exist" if not directory.exists() else "is not a directory"
        raise ModelFileError(f"{directory} {what}; expected a directory holding "
                             f"{STATE_FILE}")
    path = directory / STATE_FILE
    if not path.exists() and not path.is_symlink():
        raise ModelFileError(f"{path}: file not found; {directory} holds no saved training "
                             f"state")
    info = parse_json(read_regular_file(path, MAX_JSON_BYTES, ModelFileError), path,
                      ModelFileError)
    if not isinstance(info, dict):
        raise ModelFileError(f"{path}: expected a JSON object, got {type(info).__name__}")
    if not isinstance(info.get("checksum"), str) or info["checksum"] != state_checksum(info):
        raise ModelFileError(f"{path}: its content does not match the checksum it recorded; "
                             f"the file was changed or damaged")
    name = info.get("arrays")
    if not isinstance(name, str) or Path(name).name != name or not name:
        raise ModelFileError(f"{path}: 'arrays' must name a file in {directory}, got {name!r}")
    arrays_path = directory / name
    try:
        data = read_regular_file(arrays_path, MAX_ARRAYS_BYTES, ModelFileError)
    except ModelFileError as error:
        if not arrays_path.exists():
            raise ModelFileError(f"{arrays_path}: file not found (named in {path})") from None
        raise error from None
    if hashlib.sha256(data).hexdigest() != info.get("sha256"):
        raise ModelFileError(f"{arrays_path}: its contents do not match the SHA-256 recorded "
                             f"in {path}; the file was changed or damaged")
    try:
        arrays = load(data)
    except SafetensorError as error:
        raise ModelFileError(f"{arrays_path}: not a readable safetensors file "
                             f"({error})") from None
    return arrays, info


@contextmanager
def lock_state_dir(directory):
    """Hold `directory` (created if needed) for one run: a second `lock_state_dir` on it, in
    this process or another, fails with `StateLockedError` until the first is left.

    An advisory `flock` on the directory itself (no lock file to leave behind; released by the
    kernel if the process dies, SIGKILL included). On taking it, leftovers of a run killed
    mid-save are removed: temporary files of atomic writes, and arrays files that the state's
    JSON does not name. Where `fcntl` is missing (Windows) nothing is locked.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on Linux
        yield directory
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StateLockedError(f"{directory} is in use by another run (it holds the "
                                   f"directory's lock); wait for it to end or use another "
                                   f"--state-dir") from None
        remove_stale_files(directory)
        yield directory
    finally:
        os.close(fd)  # releases the lock


def remove_stale_files(directory) -> list[Path]:
    """Remove what an interrupted save left in a state directory (call it holding the lock):
    temporary files of atomic writes, and arrays files the current state does not name.
    Returns the paths removed."""
    directory = Path(directory)
    named = None
    try:
        info = parse_json(read_regular_file(directory / STATE_FILE, MAX_JSON_BYTES),
                          directory / STATE_FILE)
        named = info.get("arrays") if isinstance(info, dict) else None
    except FileReadError:
        pass  # no readable state: keep every arrays file (loading will name the problem)
    stale = [p for p in directory.glob(".*.tmp") if p.is_file()]
    if named is not None:
        stale += [p for p in directory.glob(STATE_ARRAYS.format(digest="*")) if p.name != named]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale
