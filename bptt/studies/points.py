"""Sweep points as plain data: strategies x cells x sequence lengths x tasks x seeds.

A sweep file (TOML) lists the axes; every combination is one `Point`, one training run with the
existing recipe (`SequenceSetup`). Strategies are written as calls:

    strategies = ["full", "revolve(slots=8)", "revolve(slots=8, snapshots=float16)",
                  "adaptive(budget=0.1, compress=float16)", "full(tapes=int8)", "uoro"]
    compressions = ["float16", "int8"]   # optional: each snapshot strategy once more per codec
    cells = ["rnn", "gru"]
    seq_lens = [100, 1000]
    tasks = ["adding"]
    seeds = [0, 1]
    steps = 60        # and optionally hidden, batch, lr

`adaptive(budget=x)` with x < 1 is a fraction of `full`'s peak cache for that chain (so one
spec fits every T), with x >= 1 bytes. `snapshots=` / `tapes=` wrap any strategy in
`checkpointing.lossy.Compressed`.
"""
from __future__ import annotations

import itertools
import re
import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path

from checkpointing.codecs import CODECS

STRATEGY_NAMES = ("full", "truncated", "checkpoint", "revolve", "adaptive", "uoro")
CELL_NAMES = ("rnn", "lstm", "gru")
SNAPSHOT_STRATEGIES = ("checkpoint", "revolve", "adaptive")
PARAMETERS = {"full": {"tapes"}, "truncated": {"k1", "k2", "tapes"},
              "checkpoint": {"segment", "snapshots", "tapes"},
              "revolve": {"slots", "snapshots", "tapes"},
              "adaptive": {"budget", "compress", "tapes"}, "uoro": set()}
AXES = {"strategies", "compressions", "cells", "seq_lens", "tasks", "seeds", "steps", "hidden",
        "batch", "lr"}
DEFAULTS = {"steps": 60, "hidden": 32, "batch": 16, "lr": 0.01, "compressions": []}
_CALL = re.compile(r"^\s*([a-z_]+)\s*(?:\((.*)\))?\s*$")


class SweepError(ValueError):
    """A sweep definition that cannot be run: names the bad entry and what was expected."""


@dataclass(frozen=True)
class Point:
    """One training run of a sweep: its strategy spec and the recipe's parameters."""
    strategy: str
    cell: str
    seq_len: int
    task: str
    seed: int
    steps: int
    hidden: int
    batch: int
    lr: float

    def params(self) -> dict:
        """The point as JSON-ready data (what its store key is made of)."""
        return asdict(self)


def parse_strategy(spec: str) -> tuple[str, dict]:
    """("revolve", {"slots": 8, "snapshots": "float16"}) from "revolve(slots=8, snapshots=float16)";
    SweepError naming the spec for an unknown strategy, parameter or codec."""
    match = _CALL.match(spec) if isinstance(spec, str) else None
    if match is None:
        raise SweepError(f"strategy {spec!r} is not of the form name or name(key=value, ...)")
    name, body = match.group(1), match.group(2) or ""
    if name not in STRATEGY_NAMES:
        raise SweepError(f"unknown strategy {name!r} in {spec!r}; choose from "
                         f"{', '.join(STRATEGY_NAMES)}")
    params = {}
    for item in filter(None, (p.strip() for p in body.split(","))):
        key, eq, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not eq or key not in PARAMETERS[name]:
            raise SweepError(f"strategy {spec!r}: {name} takes "
                             f"{', '.join(sorted(PARAMETERS[name])) or 'no parameters'}, "
                             f"got {item!r}")
        if key in ("snapshots", "tapes", "compress"):
            if value not in CODECS:
                raise SweepError(f"strategy {spec!r}: unknown codec {value!r}; choose from "
                                 f"{', '.join(sorted(CODECS))}")
            params[key] = value
        else:
            try:
                params[key] = float(value) if key == "budget" else int(value)
            except ValueError:
                raise SweepError(f"strategy {spec!r}: {key} must be a number, "
                                 f"got {value!r}") from None
    return name, params


def _list(config: dict, key: str, kind, where: str) -> list:
    value = config[key]
    if not isinstance(value, list) or not value or not all(isinstance(v, kind) for v in value):
        raise SweepError(f"{where}: {key} must be a non-empty list of "
                         f"{kind.__name__ if isinstance(kind, type) else 'values'}, "
                         f"got {value!r}")
    return value


def points_from_config(config: dict, where: str = "sweep") -> list[Point]:
    """Every point of a sweep definition (the TOML's table), checked; SweepError if malformed."""
    from tasks.registry import TASKS

    unknown = sorted(set(config) - AXES)
    if unknown:
        raise SweepError(f"{where}: unknown key {unknown[0]!r}; expected {', '.join(sorted(AXES))}")
    missing = [k for k in ("strategies", "cells", "seq_lens", "tasks", "seeds") if k not in config]
    if missing:
        raise SweepError(f"{where}: missing {missing[0]!r}")
    config = {**DEFAULTS, **config}
    strategies = _list(config, "strategies", str, where)
    for spec in strategies:
        try:
            parse_strategy(spec)
        except SweepError as error:
            raise SweepError(f"{where}: {error}") from None
    for c in config["compressions"]:
        if c not in CODECS:
            raise SweepError(f"{where}: unknown codec {c!r} in compressions; choose from "
                             f"{', '.join(sorted(CODECS))}")
    cells = _list(config, "cells", str, where)
    for cell in cells:
        if cell not in CELL_NAMES:
            raise SweepError(f"{where}: unknown cell {cell!r}; choose from {', '.join(CELL_NAMES)}")
    tasks = _list(config, "tasks", str, where)
    for task in tasks:
        if task not in TASKS or task == "text":
            raise SweepError(f"{where}: unknown task {task!r}; choose from adding, copy, reber")
    seq_lens, seeds = _list(config, "seq_lens", int, where), _list(config, "seeds", int, where)
    if min(seq_lens) < 2 or min(seeds) < 0:
        raise SweepError(f"{where}: seq_lens must be >= 2 and seeds >= 0, got {seq_lens} "
                         f"and {seeds}")
    for key in ("steps", "hidden", "batch"):
        if isinstance(config[key], bool) or not isinstance(config[key], int) or config[key] < 1:
            raise SweepError(f"{where}: {key} must be a whole number >= 1, got {config[key]!r}")
    if not isinstance(config["lr"], (int, float)) or not config["lr"] > 0:
        raise SweepError(f"{where}: lr must be a number > 0, got {config['lr']!r}")
    specs = list(strategies)
    for spec in strategies:  # each snapshot strategy once more per codec it lacks
        name, params = parse_strategy(spec)
        if name in SNAPSHOT_STRATEGIES and not {"snapshots", "compress"} & set(params):
            key = "compress" if name == "adaptive" else "snapshots"
            for codec in config["compressions"]:
                inner = spec.strip()[len(name):].strip().strip("()")
                specs.append(f"{name}({inner + ', ' if inner else ''}{key}={codec})")
    specs = list(dict.fromkeys(specs))
    return [Point(s, cell, T, task, seed, config["steps"], config["hidden"], config["batch"],
                  float(config["lr"]))
            for task, cell, T, seed, s in itertools.product(tasks, cells, seq_lens, seeds, specs)]


def load_sweep(path) -> list[Point]:
    """The points of a TOML sweep file; SweepError naming the file for a bad one."""
    path = Path(path)
    try:
        config = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise SweepError(f"cannot read sweep file {path}: {error.strerror or error}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise SweepError(f"{path} is not a valid TOML sweep file: {error}") from None
    return points_from_config(config.get("sweep", config), where=str(path))
