"""Training with a memory strategy: one step = run the plan on a batch's chain, then update.

`train_step` is the one place where a gradient is taken and applied; `train_sequence` loops it
over batches of a sequence task. Same seed, same options: bit-identical losses and weights, and
exact strategies follow `full`'s trajectory bit for bit (they compute the same gradients).
"""
from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from bptt.nn.rnn import RNN
from bptt.optim import SGD, Adam, Optimizer, clip_grad_norm
from checkpointing.executor import Execution, execute
from checkpointing.full import Full
from checkpointing.plan import Plan

OPTIMIZERS = {"sgd": SGD, "adam": Adam}
ON_NONFINITE = ("stop", "skip")


class NonFiniteError(FloatingPointError):
    """A training step produced NaN or Inf in its loss or gradients."""


@dataclass(frozen=True)
class StepRecord:
    """One training step: its loss (before the update), seconds since training began, and
    whether it was skipped for a non-finite loss or gradient."""
    step: int
    loss: float
    seconds: float
    skipped: bool = False


def make_optimizer(name: str, params, lr: float) -> Optimizer:
    """"sgd" or "adam" over `params` with learning rate `lr`."""
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {sorted(OPTIMIZERS)}")
    return OPTIMIZERS[name](params, lr=lr)


def nonfinite_problem(loss: float, params) -> str | None:
    """A message naming what is NaN/Inf (the loss or a parameter's gradient), or None."""
    if not math.isfinite(loss):
        return f"the loss is {loss}"
    for k, p in enumerate(params):
        if p.grad is not None and not np.isfinite(p.grad).all():
            name = getattr(p, "name", None) or f"parameter {k}"
            return f"the gradient of {name} contains NaN or Inf"
    return None


def train_step(plan: Plan, chain, params, optimizer: Optimizer, *, step: int = 0,
               clip: float | None = None,
               on_nonfinite: str = "stop") -> tuple[Execution | None, bool]:
    """Take one gradient with `plan` on `chain` and apply it: (the execution, skipped?).

    A skipped step returns no execution when the sweep itself stopped at a non-finite loss.

    A NaN or Inf in the loss or in a gradient stops training with `NonFiniteError` naming the
    step (`on_nonfinite="stop"`) or skips the update with a warning ("skip"); either way the
    parameters and the optimiser state stay exactly as they were before the step. `clip`: the
    largest global gradient norm allowed (exploding gradients are scaled down to it).
    """
    if on_nonfinite not in ON_NONFINITE:
        raise ValueError(f"on_nonfinite must be one of {list(ON_NONFINITE)}, got {on_nonfinite!r}")
    for p in params:
        p.zero_grad()
    try:
        run = execute(plan, chain)
        problem = nonfinite_problem(run.loss, params)
    except FloatingPointError as error:  # a loss that refuses a non-finite value mid-sweep
        run, problem = None, str(error)
    if problem is not None:
        message = (f"step {step}: {problem}; the update was not applied, parameters and "
                   f"optimiser state are as before the step")
        if on_nonfinite == "stop":
            raise NonFiniteError(message + " (lower the learning rate, clip gradients, or "
                                           "skip such steps)")
        warnings.warn(message, RuntimeWarning, stacklevel=2)
        for p in params:
            p.zero_grad()
        return run, True
    if clip is not None:
        clip_grad_norm(params, clip)
    optimizer.step()
    return run, False


@dataclass
class SequenceRun:
    """A finished run: the model, per-step history, the plan used and the last execution.

    step_times: seconds of each training step (forward, backward and update), untraced.
    metric: the task's metric on a held-out batch after training.
    """
    model: RNN
    plan: Plan
    history: list[StepRecord] = field(default_factory=list)
    step_times: list[float] = field(default_factory=list)
    last: Execution | None = None
    metric: float = float("nan")

    @property
    def final_loss(self) -> float:
        """Mean loss of the last tenth of the steps (at least one): less noisy than the last."""
        losses = [r.loss for r in self.history if not r.skipped]
        tail = losses[-max(1, len(losses) // 10):]
        return float(np.mean(tail)) if tail else float("nan")

    @property
    def median_step_time(self) -> float:
        return float(np.median(self.step_times)) if self.step_times else float("nan")


@dataclass(frozen=True)
class SequenceSetup:
    """Everything that defines a sequence-training run, so that runs can be repeated exactly."""
    task: object
    cell: str = "rnn"
    hidden: int = 64
    batch: int = 32
    steps: int = 300
    lr: float = 1e-2
    optimizer: str = "adam"
    seed: int = 0
    clip: float | None = 1.0
    on_nonfinite: str = "stop"
    dtype: str = "float32"

    def generators(self) -> tuple[np.random.Generator, np.random.Generator, np.random.Generator]:
        """Independent generators for (weights, training batches, the evaluation batch)."""
        return tuple(np.random.default_rng(self.seed).spawn(3))

    def build_model(self, rng: np.random.Generator) -> RNN:
        task = self.task
        return RNN(self.cell, task.input_size, self.hidden, task.output_size, rng,
                   dtype=np.dtype(self.dtype), loss=task.loss, every_step=task.every_step)

    def first_batch(self):
        """(model with initial weights, inputs, targets) of the first training step."""
        init_rng, data_rng, _ = self.generators()
        model = self.build_model(init_rng)
        return model, *self.task.batch(data_rng, self.batch, dtype=np.dtype(self.dtype))


def train_sequence(setup: SequenceSetup, strategy=None,
                   on_step: Callable[[StepRecord], None] | None = None) -> SequenceRun:
    """Train an RNN on `setup.task` with `strategy` (default `Full()`); see `train_step`."""
    strategy = strategy or Full()
    init_rng, data_rng, eval_rng = setup.generators()
    dtype = np.dtype(setup.dtype)
    model = setup.build_model(init_rng)
    optimizer = make_optimizer(setup.optimizer, model.parameters(), setup.lr)
    params = model.parameters()
    run = None
    begin = time.perf_counter()
    for step in range(setup.steps):
        inputs, targets = setup.task.batch(data_rng, setup.batch, dtype=dtype)
        chain = model.chain(inputs, targets)
        if run is None:
            run = SequenceRun(model, strategy.plan(chain.profile()))
        start = time.perf_counter()
        execution, skipped = train_step(run.plan, chain, params, optimizer, step=step,
                                        clip=setup.clip, on_nonfinite=setup.on_nonfinite)
        end = time.perf_counter()
        run.step_times.append(end - start)
        run.last = execution or run.last
        record = StepRecord(step, execution.loss if execution else float("nan"), end - begin,
                            skipped)
        run.history.append(record)
        if on_step is not None:
            on_step(record)
    inputs, targets = setup.task.batch(eval_rng, max(setup.batch, 128), dtype=dtype)
    run.metric = float(setup.task.metric(model.predict(inputs), targets))
    return run
