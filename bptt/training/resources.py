"""Resources checked before they are spent: a run's memory estimated without allocating it.

A run that cannot fit should be refused in milliseconds with the sizes, not end minutes later
in NumPy's "Unable to allocate 71.1 PiB" (or in the kernel's OOM killer). `estimate_run_bytes`
adds up what a sequence run holds, from sizes alone: the plan's predicted peak cache
(`checkpointing.simulate` on the chain's profile), the weights and their gradients, the
optimiser's buffers, the training and evaluation batches, the per-step history, and the
reference gradient's plan when one is computed. `check_fits` compares an estimate with a limit
(`--max-memory`) or with the memory the machine has available, and raises `InsufficientMemory`.

The chain's sizes come from `sequence_profile`, which measures tiny probe models (hidden and
batch 1 or 2, two steps) and extrapolates: a step's state and tape bytes are bilinear in
(batch, hidden) and the weight count is quadratic in hidden, so the extrapolation is exact
(tests compare it with the real profile). The estimate counts arrays, not Python's objects or
the allocator's slack: a run over the limit cannot fit; one under it usually does.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

import numpy as np

from bptt.training.memory import format_bytes
from checkpointing.plan import ChainProfile, simulate

#: Longest chain `bptt` plans: replaying a plan costs 4-11 µs per step here (full to revolve),
#: so 10^7 steps take up to two minutes, and 10^9 would take hours.
MAX_PLAN_STEPS = 10_000_000
#: Bytes of one step's history: its StepRecord (~224 B) and the row's dict of it (~192 B),
#: measured with tracemalloc; the JSON text written at the end comes on top.
HISTORY_BYTES_PER_STEP = 400
#: The evaluation batch after training holds at least this many sequences.
EVAL_BATCH = 128


class InsufficientMemory(MemoryError, ValueError):
    """A run's estimated memory exceeds the limit; the message names both, and the parts.

    A MemoryError (what it is) and a ValueError (bad sizes given by the user: the CLI reports it
    as one `Error:` line with exit code 2)."""


@dataclass(frozen=True)
class RunEstimate:
    """The bytes a run needs, by part (name -> bytes); `total` is their sum."""
    parts: dict

    @property
    def total(self) -> int:
        return sum(self.parts.values())

    def describe(self) -> str:
        """"1.2 GiB (cache 1.0 GiB, weights and gradients 190 MiB, ...)", largest first."""
        parts = sorted(self.parts.items(), key=lambda kv: -kv[1])
        return (f"{format_bytes(self.total)} ("
                + ", ".join(f"{k} {format_bytes(v)}" for k, v in parts if v) + ")")


def check_plan_length(length: int) -> None:
    """Refuse a chain longer than `MAX_PLAN_STEPS` before any plan is made (it would not end)."""
    if length > MAX_PLAN_STEPS:
        raise ValueError(f"a chain of {length:,} steps is past the longest bptt plans "
                         f"({MAX_PLAN_STEPS:,} steps): counting its plan alone would take "
                         f"{length * 4e-6 / 60:,.0f} minutes or more")


def sequence_profile(setup) -> ChainProfile:
    """The profile `setup`'s chains have (uniform state and tape bytes per step), predicted
    from probe models of hidden size and batch 1 and 2 without building the real model."""
    check_plan_length(setup.task.seq_len)

    def measure(batch: int, hidden: int) -> tuple[int, int]:
        model, inputs, targets = _probe(setup, batch, hidden).first_batch()
        profile = model.chain(inputs, targets).profile()
        return profile.state_bytes[0], profile.tape_bytes[0]

    return ChainProfile.uniform(setup.task.seq_len,
                                *extrapolate_sizes(measure, setup.batch, setup.hidden))


def extrapolate_sizes(measure, batch: int, hidden: int) -> tuple[int, int]:
    """(state bytes, tape bytes) of one step at `batch` and `hidden`, from `measure(b, h)` at
    b, h in {1, 2}: both are bilinear in (batch, hidden) for the cells here (every array of a
    step is batch x (a multiple of hidden, or the input size))."""
    s11, s12, s21, s22 = measure(1, 1), measure(1, 2), measure(2, 1), measure(2, 2)
    B, H = batch - 1, hidden - 1

    def bilinear(k: int) -> int:
        a, b, c, d = s11[k], s21[k] - s11[k], s12[k] - s11[k], s22[k] - s21[k] - s12[k] + s11[k]
        return a + b * B + c * H + d * B * H

    return bilinear(0), bilinear(1)


def parameter_count(setup) -> int:
    """Number of weights of `setup`'s model (quadratic in hidden: three probes fix it)."""
    n1, n2, n3 = (sum(p.size for p in _probe(setup, 1, h).build_model(
        np.random.default_rng(0)).parameters()) for h in (1, 2, 3))
    second = n3 - 2 * n2 + n1  # 2a for n(h) = a h^2 + b h + c
    h = setup.hidden - 1
    return n1 + (n2 - n1) * h + second * h * (h - 1) // 2


def estimate_run_bytes(setup, strategy, reference=None, with_plans: bool = True) -> RunEstimate:
    """What `train_sequence(setup, strategy)` holds, in bytes by part, without allocating it.

    `reference`: the strategy of a reference gradient computed on the first batch (as
    `bptt-bench` does), counted with its own model and plan. `with_plans=False` leaves the
    plans' caches out: a lower bound that costs no planning (`check_fits` uses it first).
    """
    from bptt.training.train import OPTIMIZERS

    task, itemsize = setup.task, np.dtype(setup.dtype).itemsize
    weights = parameter_count(setup) * itemsize
    target_items = int(np.prod(task.target_shape(1))) * (8 if task.loss == "xent" else itemsize)
    per_sequence = task.seq_len * task.input_size * itemsize + target_items
    parts = {
        "weights and gradients": 2 * weights,
        "optimiser state": len(OPTIMIZERS[setup.optimizer].buffer_names) * weights,
        "planning probe": weights,  # train_sequence plans on a freshly built model
        "batches": per_sequence * setup.batch * 2,  # the training batch and the probe's
        "evaluation batch": (per_sequence + task.seq_len * task.output_size * itemsize)
        * max(setup.batch, EVAL_BATCH),
        "history": setup.steps * HISTORY_BYTES_PER_STEP,
    }
    if reference is not None:
        parts["reference gradient"] = 2 * weights + per_sequence * setup.batch
    if with_plans:
        profile = sequence_profile(setup)
        parts["cache"] = simulate(strategy.plan(profile), profile=profile).peak_bytes
        if reference is not None:
            parts["reference gradient"] += simulate(reference.plan(profile),
                                                    profile=profile).peak_bytes
    return RunEstimate(parts)


def available_memory() -> tuple[int, str] | None:
    """(bytes this process may still allocate, where that figure comes from), or None.

    Linux: MemAvailable in /proc/meminfo (free memory plus what the kernel can reclaim), lowered
    to a cgroup v2 limit's headroom when there is one. Elsewhere: free physical pages
    (`os.sysconf`). None when neither can be read: then only `--max-memory` limits a run.
    """
    found = None
    try:
        with open("/proc/meminfo", "rb") as f:
            for line in f.read(1 << 16).decode("ascii", "replace").splitlines():
                if line.startswith("MemAvailable:"):
                    found = (int(line.split()[1]) * 1024, "MemAvailable in /proc/meminfo")
    except (OSError, ValueError, IndexError):
        found = None
    if found is None:
        try:
            found = (os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"),
                     "free physical memory (sysconf)")
        except (AttributeError, OSError, ValueError):
            return None
    cgroup = _cgroup_headroom()
    if cgroup is not None and cgroup < found[0]:
        found = (cgroup, "the cgroup's memory.max less memory.current")
    return found


def _cgroup_headroom() -> int | None:
    try:
        with open("/sys/fs/cgroup/memory.max", "rb") as f:
            limit = f.read(64).strip()
        with open("/sys/fs/cgroup/memory.current", "rb") as f:
            current = int(f.read(64).strip())
    except (OSError, ValueError):
        return None
    return None if limit == b"max" else max(0, int(limit) - current)


SEQUENCE_HINT = ("make --hidden, --batch, --seq-len or --steps smaller, or pick a strategy that "
                 "keeps less")


def check_fits(estimate: RunEstimate, limit: int | None = None,
               hint: str = SEQUENCE_HINT) -> None:
    """Raise `InsufficientMemory` when `estimate` exceeds `limit` bytes (default: the memory
    available, see `available_memory`; no check when that is unknown). `hint` ends the
    message: what to change."""
    if limit is not None:
        where = "limit"
    else:
        found = available_memory()
        if found is None:
            return
        limit, where = found[0], f"available ({found[1]})"
    if estimate.total > limit:
        raise InsufficientMemory(f"this run needs an estimated {estimate.describe()}, more "
                                 f"than the {format_bytes(limit)} {where}; {hint}")


def check_run_fits(setup, strategy, reference=None, limit: int | None = None) -> RunEstimate:
    """`check_fits` for `train_sequence(setup, strategy)`: the plan-free lower bound first (so
    that absurd sizes are refused before any planning), then the full estimate, returned."""
    check_fits(estimate_run_bytes(setup, strategy, reference, with_plans=False), limit)
    estimate = estimate_run_bytes(setup, strategy, reference)
    check_fits(estimate, limit)
    return estimate


def _probe(setup, batch: int, hidden: int):
    """`setup` shrunk to `batch`, `hidden` and the task's shortest chain of at least 2 steps."""
    task = setup.task
    short = dataclasses.replace(task, seq_len=max(2, task.min_seq_len)) \
        if task.seq_len > max(2, task.min_seq_len) else task
    return dataclasses.replace(setup, task=short, batch=batch, hidden=hidden)
