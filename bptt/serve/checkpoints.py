"""The checkpoints a server may serve: found only in the directories it was given, safetensors only.

A checkpoint is a directory in the `save_pretrained` layout that `bptt-bench --save DIR` writes
(`config.json`, `model.safetensors`, a `README.md` model card), loaded and checked by
`bptt.training.pretrained.from_pretrained` (schema, digests, tensor header before any
allocation); only files that really lie in the directory are read. Each served model has
a name: its directory's name, checked against `NAME_PATTERN`, so that a name in a URL is only
ever a key into the table of models loaded at start-up, never a path. Nothing is unpickled: the
weights are read with safetensors, and a directory that holds only pickled weights is refused.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bptt.nn import MLP, Module
from bptt.training import files, io
from bptt.training.pretrained import (CARD_FILE, CONFIG_FILE, WEIGHTS_FILE, Pretrained,
                                      from_pretrained)

#: A served model's name: a letter or digit, then up to 63 letters, digits, '.', '_' or '-'.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
MAX_CARD_BYTES = 2 ** 20
PICKLE_FILES = ("pytorch_model.bin", "model.pt", "model.pth", "model.pkl")

# Sequence tasks whose inputs and read-outs are symbols: their names for features and classes.
_TASK_SYMBOLS = {"reber": "tasks.reber"}


class CheckpointError(ValueError):
    """A directory given to the server is not a checkpoint it can serve (the message says why)."""


@dataclass(frozen=True)
class ServedModel:
    """A loaded checkpoint and what the service needs to describe and validate its inputs.

    `kind` is "mlp" (inputs (batch, features)) or "rnn" (inputs (batch, steps, features)).
    `features` names the input columns, `classes` the read-out classes (None for a regression
    read-out): the config's names, else the task's symbols, else x0, x1, ... and 0, 1, ....
    """

    name: str
    pretrained: Pretrained
    card: str | None
    kind: str
    features: tuple[str, ...]
    classes: tuple[str, ...] | None

    @property
    def model(self) -> Module:
        return self.pretrained.model

    @property
    def config(self) -> dict:
        return self.pretrained.config

    @property
    def directory(self) -> Path:
        return self.pretrained.directory

    @property
    def dtype(self) -> np.dtype:
        return self.model.dtype

    def model_inputs(self, raw: np.ndarray) -> np.ndarray:
        """Raw inputs standardised as in training (when the config says so), in the model's
        dtype."""
        return np.ascontiguousarray(self.pretrained.standardise(raw), dtype=self.dtype)

    def parameter_count(self) -> int:
        """The number of scalar weights."""
        return sum(p.data.size for p in self.model.parameters())


def check_name(name: str) -> str:
    """`name` if it may name a served model, else a CheckpointError saying what is allowed."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name) or ".." in name:
        raise CheckpointError(f"model name {name!r} must be 1-64 letters, digits, '.', '_' or "
                              f"'-', start with a letter or digit and contain no '..'")
    return name


def find_checkpoints(directories) -> dict[str, ServedModel]:
    """Every checkpoint in `directories`, by name.

    A directory holding `config.json` is one checkpoint, named after the directory; any other
    directory is a collection whose immediate subdirectories holding `config.json` are the
    checkpoints (so a container can serve everything under one `/models`). Two checkpoints of
    the same name, or no checkpoint at all, is a CheckpointError.
    """
    found: dict[str, ServedModel] = {}
    for directory in map(Path, directories):
        if not directory.is_dir():
            what = "does not exist" if not directory.exists() else "is not a directory"
            raise CheckpointError(f"{directory} {what}; expected a checkpoint directory "
                                  f"({CONFIG_FILE} + {WEIGHTS_FILE}) or a directory of them")
        if (directory / CONFIG_FILE).exists():
            members = [directory]
        else:
            members = sorted(d for d in directory.iterdir()
                             if d.is_dir() and (d / CONFIG_FILE).exists())
            if not members:
                raise CheckpointError(f"{directory} holds no {CONFIG_FILE}, nor any "
                                      f"subdirectory with one: no checkpoint to serve")
        for member in members:
            served = load_checkpoint(member)
            if served.name in found:
                raise CheckpointError(f"two checkpoints are named {served.name!r}: "
                                      f"{found[served.name].directory} and {member}")
            found[served.name] = served
    if not found:
        raise CheckpointError("no checkpoint directory given")
    return found


def load_checkpoint(directory, name: str | None = None) -> ServedModel:
    """The checkpoint in `directory`, served as `name` (default: the directory's name)."""
    directory = Path(directory)
    name = check_name(name if name is not None else directory.resolve().name)
    for file in (CONFIG_FILE, WEIGHTS_FILE, CARD_FILE):
        _check_inside(directory, file)
    if not (directory / WEIGHTS_FILE).exists():
        pickled = [f for f in PICKLE_FILES if (directory / f).exists()]
        also = f" (it holds {pickled[0]}: pickled weights are never loaded)" if pickled else ""
        raise CheckpointError(f"{directory / WEIGHTS_FILE}: file not found{also}; "
                              f"bptt-serve loads safetensors checkpoints only")
    try:
        pretrained = from_pretrained(directory)
        card = None
        if (directory / CARD_FILE).exists():
            card = files.read_regular_file(directory / CARD_FILE, MAX_CARD_BYTES,
                                           "model card").decode("utf-8", errors="replace")
    except io.ModelFileError as error:
        raise CheckpointError(str(error)) from None
    kind = "mlp" if isinstance(pretrained.model, MLP) else "rnn"
    features, classes = _names(pretrained.model, pretrained.config, kind)
    return ServedModel(name, pretrained, card, kind, features, classes)


def _check_inside(directory: Path, file: str) -> None:
    # A symbolic link may point anywhere: only files that really lie in the directory are read.
    path = directory / file
    if path.exists() and not path.resolve().is_relative_to(directory.resolve()):
        raise CheckpointError(f"{path} resolves to {path.resolve()}, outside {directory}; "
                              f"checkpoints are read only from the directories given")


def _names(model: Module, config: dict, kind: str) -> tuple[tuple[str, ...], tuple | None]:
    """(feature names, class names or None), from the config, else the task, else generic."""
    n_in = model.sizes[0] if kind == "mlp" else model.input_size
    n_out = model.sizes[-1] if kind == "mlp" else model.output_size
    symbols = None
    if config.get("task") in _TASK_SYMBOLS:
        import importlib
        symbols = tuple(importlib.import_module(_TASK_SYMBOLS[config["task"]]).SYMBOLS)
    # the config's names were checked by from_pretrained: one distinct name per input, output
    features = tuple(config.get("features") or symbols or (f"x{i}" for i in range(n_in)))
    classifies = kind == "mlp" or model.loss == "xent"
    classes = (tuple(config.get("classes") or symbols or (str(c) for c in range(n_out)))
               if classifies else None)
    return features, classes
