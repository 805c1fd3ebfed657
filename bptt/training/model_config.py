"""The schema of a saved model's `config.json`: every key, its exact JSON type and its range.

A config describes the model (architecture, sizes, activation or cell, dtype) and what a user of
the checkpoint needs around it (feature and class names, the normalisation statistics, the task,
the data split, the training recipe, measured metrics). `check_config` accepts exactly this
schema and nothing else: an unknown key, a bool where an integer belongs (`"every_step": "no"`,
`"hidden_size": true`), a list where a name belongs, a NaN or a size out of range is refused with
the key and what was expected, before any model is built or any weight is read.
"""
from __future__ import annotations

import hashlib
import json
import math
from typing import Any

import numpy as np

FORMAT = "bptt"
FORMAT_VERSION = 1
MAX_SIZE = 2 ** 31 - 1       # any larger width could not be a real weight matrix dimension
MAX_TEXT = 10_000            # characters of one string value
MAX_ITEMS = 1_000_000        # entries of one list or mapping
ARCHITECTURES = ("mlp", "rnn")
DTYPES = ("float32", "float64")
ACTIVATIONS = ("relu", "sigmoid", "tanh")
CELLS = ("gru", "lstm", "rnn")
LOSSES = ("mse", "xent")
DIGEST_KEYS = ("config_sha256", "weights_sha256")

# keys any architecture may have; each has a checker in _CHECKS
_COMMON_OPTIONAL = ("task", "features", "classes", "input_mean", "input_std", "seed", "data",
                    "training", "metrics", "intended_use", "dropout", "backward")
BACKWARD_VARIANTS = ("backprop", "dfa", "fa", "hebbian", "kp", "sign")  # bptt.nn.feedback's


def check_config(config: Any, *, saved: bool = True) -> dict:
    """`config` checked against the schema; returns it as a dict with sorted keys.

    `saved=True` (reading a file) also requires the two digests `config_sha256` and
    `weights_sha256` that `save_pretrained` adds. Raises ValueError naming the first key that
    is unknown, missing, of the wrong JSON type or out of range (a wrong format or version is
    reported before anything else, since another version's schema may differ).
    """
    if not isinstance(config, dict):
        raise ValueError(f"the config must be a JSON object, got {_json_type(config)}")
    if config.get("format") != FORMAT:
        raise ValueError(f"'format' must be {FORMAT!r}, got {config.get('format')!r}: not a "
                         f"bptt model")
    version = config.get("format_version")
    if _is_int(version) and version > FORMAT_VERSION:
        raise ValueError(f"'format_version' is {version}, written by a newer bptt; this one "
                         f"reads version {FORMAT_VERSION}")
    if version != FORMAT_VERSION or not _is_int(version):
        raise ValueError(f"'format_version' must be the integer {FORMAT_VERSION}, got "
                         f"{version!r}")
    architecture = config.get("architecture")
    if not isinstance(architecture, str) or architecture not in ARCHITECTURES:
        raise ValueError(f"'architecture' must be one of {list(ARCHITECTURES)}, got "
                         f"{architecture!r}")
    required = {"format", "format_version", "architecture", "dtype",
                *(("sizes", "activation") if architecture == "mlp" else
                  ("cell", "input_size", "hidden_size", "output_size", "loss", "every_step"))}
    if saved:
        required.update(DIGEST_KEYS)
    allowed = required | set(_COMMON_OPTIONAL) | set(DIGEST_KEYS)
    unknown = sorted(set(config) - allowed)
    if unknown:
        raise ValueError(f"unknown key {unknown[0]!r} for architecture {architecture!r}; "
                         f"the keys are {sorted(allowed)}")
    missing = sorted(required - set(config))
    if missing:
        raise ValueError(f"missing key {missing[0]!r}")
    for key in sorted(config):
        _CHECKS[key](key, config[key])
    inputs, outputs = io_sizes(config)
    for key, size in (("features", inputs), ("input_mean", inputs), ("input_std", inputs),
                      ("classes", outputs)):
        if key in config and len(config[key]) != size:
            raise ValueError(f"{key!r} has {len(config[key])} entries but the model has "
                             f"{size} {'inputs' if key != 'classes' else 'outputs'}")
    if ("input_mean" in config) != ("input_std" in config):
        raise ValueError("'input_mean' and 'input_std' go together: give both or neither")
    if "input_std" in config and min(config["input_std"]) <= 0:
        raise ValueError(f"'input_std' must be > 0 everywhere, got {config['input_std']}")
    return dict(sorted(config.items()))


def io_sizes(config: dict) -> tuple[int, int]:
    """(number of inputs, number of outputs) of the model a checked config describes."""
    if config["architecture"] == "mlp":
        return config["sizes"][0], config["sizes"][-1]
    return config["input_size"], config["output_size"]


def plain(value: Any) -> Any:
    """`value` with NumPy scalars and arrays and tuples made JSON data (what may be saved)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return plain(value.tolist())
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value


def canonical_json(config: dict) -> bytes:
    """The config as compact JSON with sorted keys: the bytes its digest is taken over."""
    return json.dumps(config, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode()


def config_digest(config: dict) -> str:
    """SHA-256 (hex) of the config without its own `config_sha256` entry."""
    rest = {k: v for k, v in config.items() if k != "config_sha256"}
    return hashlib.sha256(canonical_json(rest)).hexdigest()


# --- the checkers -----------------------------------------------------------------------------

def _json_type(value) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
             list: "a list", dict: "an object", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _fail(key: str, expected: str, value) -> None:
    shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
    raise ValueError(f"{key!r} must be {expected}, got {_json_type(value)} {shown}")


def _choice(options):
    def check(key, value):
        if not isinstance(value, str) or value not in options:
            _fail(key, f"one of {list(options)}", value)
    return check


def _size(key, value):
    if not _is_int(value) or not 1 <= value <= MAX_SIZE:
        _fail(key, f"an integer from 1 to {MAX_SIZE}", value)


def _text(key, value):
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        _fail(key, f"a string of at most {MAX_TEXT} characters", value)


def _exact(expected):
    def check(key, value):
        if value != expected or type(value) is not type(expected):
            _fail(key, repr(expected), value)
    return check


def _digest(key, value):
    if not (isinstance(value, str) and len(value) == 64
            and all(c in "0123456789abcdef" for c in value)):
        _fail(key, "a SHA-256 as 64 lowercase hex digits", value)


def _sizes(key, value):
    if not isinstance(value, list) or not 2 <= len(value) <= MAX_ITEMS:
        _fail(key, "a list of at least 2 layer widths (in, hidden..., out)", value)
    for k, size in enumerate(value):
        _size(f"{key}[{k}]", size)


def _names(key, value):
    if not isinstance(value, list) or len(value) > MAX_ITEMS:
        _fail(key, "a list of names", value)
    for k, name in enumerate(value):
        _text(f"{key}[{k}]", name)
    if len(set(value)) != len(value):
        _fail(key, "a list of distinct names", value)


def _numbers(key, value):
    if not isinstance(value, list) or not value or len(value) > MAX_ITEMS:
        _fail(key, "a non-empty list of finite numbers", value)
    for k, number in enumerate(value):
        if not _is_number(number):
            _fail(f"{key}[{k}]", "a finite number", number)


def _seed(key, value):
    if not _is_int(value) or value < 0:
        _fail(key, "an integer >= 0", value)


def _every_step(key, value):
    if not isinstance(value, bool):
        _fail(key, "true or false", value)


def _dropout(key, value):
    if not _is_number(value) or not 0 <= value < 1:
        _fail(key, "a number in [0, 1)", value)


def _scalars(key, value):
    """A flat object of short descriptive values (the data split, the recipe, the metrics)."""
    if not isinstance(value, dict) or len(value) > 1000:
        _fail(key, "an object of names to strings, numbers, booleans or null", value)
    for name, item in value.items():
        _text(f"{key} key", name)
        if isinstance(item, str):
            _text(f"{key}.{name}", item)
        elif not (item is None or isinstance(item, bool) or _is_number(item)):
            _fail(f"{key}.{name}", "a string, a finite number, a boolean or null", item)


_CHECKS = {
    "format": _exact(FORMAT), "format_version": _exact(FORMAT_VERSION),
    "architecture": _choice(ARCHITECTURES), "dtype": _choice(DTYPES),
    "sizes": _sizes, "activation": _choice(ACTIVATIONS), "dropout": _dropout,
    "cell": _choice(CELLS), "input_size": _size, "hidden_size": _size, "output_size": _size,
    "loss": _choice(LOSSES), "every_step": _every_step,
    "task": _text, "features": _names, "classes": _names, "input_mean": _numbers,
    "input_std": _numbers, "seed": _seed, "data": _scalars, "training": _scalars,
    "metrics": _scalars, "intended_use": _text, "backward": _choice(BACKWARD_VARIANTS),
    "config_sha256": _digest, "weights_sha256": _digest,
}
