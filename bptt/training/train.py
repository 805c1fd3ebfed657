"""Training with a memory strategy: one step = run the plan on a batch's chain, then update.

`train_step` is the one place where a gradient is taken and applied; `train_sequence` loops it
over batches of a sequence task. Same seed, same options: bit-identical losses and weights, and
exact strategies follow `full`'s trajectory bit for bit (they compute the same gradients).
A run's `TrainingState` (weights, optimiser buffers, the batch generator's state, history) can
be saved every few steps and continued later (`save_training_state`, `load_training_state`):
the continued run ends bit for bit where an uninterrupted one would.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import time
import warnings
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from bptt.training import io
from bptt.nn.feedback import attach_feedback, trainable_parameters
from bptt.nn.rnn import RNN
from bptt.training.optim import SGD, Adam, Optimizer, clip_grad_norm, grad_norm
from bptt.training.state_schema import state_schema_problems
from checkpointing.executor import Execution, execute
from checkpointing.full import Full
from checkpointing.plan import ChainProfile, Plan, whole_number
from checkpointing.truncated import Truncated

OPTIMIZERS = {"sgd": SGD, "adam": Adam}
ON_NONFINITE = ("stop", "skip")
STATE_FORMAT = "bptt-training-state"


class NonFiniteError(FloatingPointError):
    """A training step produced NaN or Inf in its loss or gradients."""


@dataclass(frozen=True)
class StepRecord:
    """One training step: its loss (before the update), seconds since training began, whether
    it was skipped for a non-finite loss or gradient, and the gradient's global L2 norm before
    clipping (NaN when the sweep stopped at a non-finite loss). For a lossy strategy, the
    gradient's cosine similarity with `full`'s on the same batch and weights and its relative
    error |g - g_full| / |g_full| (NaN for exact strategies, whose error is zero by design)."""
    step: int
    loss: float
    seconds: float
    skipped: bool = False
    grad_norm: float = float("nan")
    grad_cosine: float = float("nan")
    grad_rel_error: float = float("nan")


@dataclass(frozen=True)
class StepResult:
    """What `train_step` did.

    execution: the executed plan, None when the sweep itself stopped at a non-finite loss;
    skipped: the update was not applied (non-finite loss or gradient); grad_norm: the global L2
    norm of the gradient before clipping (NaN or Inf when not finite); clipped: `clip` scaled it.
    """
    execution: Execution | None
    skipped: bool
    grad_norm: float
    clipped: bool = False
    grad_cosine: float = float("nan")
    grad_rel_error: float = float("nan")


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


def gradient_error(grads: list, reference: list) -> tuple[float, float]:
    """(cosine similarity, relative L2 error) of all gradients together against `reference`,
    in float64; a zero reference gives cosine NaN and relative error 0 or inf."""
    dot = sum(float(np.vdot(g.astype(np.float64), r)) for g, r in zip(grads, reference))
    g2 = sum(float(np.vdot(g.astype(np.float64), g)) for g in grads)
    r2 = sum(float(np.vdot(r.astype(np.float64), r)) for r in reference)
    d2 = sum(float(np.sum(np.square(g.astype(np.float64) - r))) for g, r in zip(grads, reference))
    cosine = dot / math.sqrt(g2 * r2) if g2 > 0 and r2 > 0 else float("nan")
    relative = math.sqrt(d2 / r2) if r2 > 0 else (0.0 if d2 == 0 else float("inf"))
    return cosine, relative


def run_plan(plan, chain) -> Execution:
    """Execute a checkpointing plan, or run an online-gradient plan (one with `run(chain)`,
    e.g. `bptt.training.uoro`), on `chain`: parameter gradients accumulate."""
    run = getattr(plan, "run", None)
    return run(chain) if run is not None else execute(plan, chain)


SHORT_PLAN = 256  # steps: a plan this short is kept as a tuple of actions by `kept_plan`


def kept_plan(plan):
    """`plan` with its actions generated once and kept as a tuple, if it is a checkpointing
    `Plan` of at most `SHORT_PLAN` steps; otherwise `plan` itself. A training loop runs one
    plan at every step: for a short chain (an MLP's few layers) regenerating the actions each
    time costs more than the steps they run (~1 µs per action), and a short tuple costs
    nothing to keep. Long plans stay lazy (their actions would not fit in memory at T = 10^6).
    """
    if isinstance(plan, Plan) and callable(plan.actions) and plan.length <= SHORT_PLAN:
        return dataclasses.replace(plan, actions=tuple(plan))
    return plan


def _reference_grads(reference: Plan, chain, params) -> list:
    for p in params:
        p.zero_grad()
    execute(reference, chain)
    return [np.zeros_like(p.data) if p.grad is None else p.grad.copy() for p in params]


def train_step(plan: Plan, chain, params, optimizer: Optimizer, *, step: int = 0,
               clip: float | None = None, on_nonfinite: str = "stop",
               feedback=None, reference: Plan | None = None) -> StepResult:
    """Take one gradient with `plan` on `chain` and apply it.

    A NaN or Inf in the loss or in a gradient stops training with `NonFiniteError` naming the
    step (`on_nonfinite="stop"`) or skips the update with a warning ("skip"); either way the
    parameters and the optimiser state (buffers and step count) stay exactly as they were
    before the step. `clip`: the largest global gradient norm allowed; larger (exploding)
    gradients are scaled down to it, keeping their direction. `feedback`: the model's
    `bptt.nn.feedback.Feedback` (None for backprop), whose learned matrices get their local
    update with the weights'. `reference`: a plan (`full`'s) whose gradient on the same batch
    the step's is compared with (cosine, relative error).
    """
    if on_nonfinite not in ON_NONFINITE:
        raise ValueError(f"on_nonfinite must be one of {list(ON_NONFINITE)}, got {on_nonfinite!r}")
    expected = None if reference is None else _reference_grads(reference, chain, params)
    for p in params:
        p.zero_grad()
    try:
        run = run_plan(plan, chain)
    except FloatingPointError as error:  # a loss that refuses a non-finite value mid-sweep
        run, problem, norm = None, str(error), float("nan")
    else:
        # One pass over the gradients: a finite norm means every one is finite; only a
        # non-finite one (or loss) needs the per-parameter look that names the culprit.
        norm = grad_norm(params)
        problem = None if math.isfinite(norm) and math.isfinite(run.loss) else \
            nonfinite_problem(run.loss, params)
    if problem is not None:
        message = (f"step {step}: {problem}; the update was not applied, parameters and "
                   f"optimiser state are as before the step")
        if on_nonfinite == "stop":
            for p in params:
                p.zero_grad()
            raise NonFiniteError(message + " (lower the learning rate, clip gradients, or "
                                           "skip such steps)")
        warnings.warn(message, RuntimeWarning, stacklevel=2)
        for p in params:
            p.zero_grad()
        return StepResult(run, True, norm)
    errors = (float("nan"), float("nan")) if expected is None else gradient_error(
        [np.zeros_like(p.data) if p.grad is None else p.grad for p in params], expected)
    if feedback is not None:
        feedback.before_update()  # kp gives its matrices their gradients: the norm changes
        norm = grad_norm(params)
    if clip is not None:
        clip_grad_norm(params, clip, norm=norm)
    optimizer.step()
    if feedback is not None:
        feedback.after_update()
    return StepResult(run, False, norm, clip is not None and norm > clip, *errors)


@dataclass
class SequenceRun:
    """A finished run: the model, per-step history, the plan used and the last execution.

    history: every step of the run, those of an earlier run it continues included;
    step_times: seconds of each training step (forward, backward and update) run here,
    untraced; plan: None if no step was run here; metric: the task's metric on a held-out
    batch after training.
    """
    model: RNN
    plan: Plan | None
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
    """Everything that defines a sequence-training run, so that runs can be repeated exactly.

    The defaults are `bptt-bench`'s recipe (a tanh RNN learns the embedded Reber grammar at
    T = 200 with them in 400 steps)."""
    task: object
    cell: str = "rnn"
    hidden: int = 64
    batch: int = 32
    steps: int = 400
    lr: float = 3e-3
    optimizer: str = "adam"
    seed: int = 0
    clip: float | None = 1.0
    on_nonfinite: str = "stop"
    dtype: str = "float32"
    backward: str = "backprop"
    dropout: float = 0.0  # before the read-out, masks keyed by (seed, step, time step)

    def generators(self) -> tuple[np.random.Generator, np.random.Generator, np.random.Generator]:
        """Independent generators for (weights, training batches, the evaluation batch)."""
        return tuple(np.random.default_rng(self.seed).spawn(3))

    def build_model(self, rng: np.random.Generator) -> RNN:
        """The RNN with initial weights from `rng`, then its feedback matrices (if the backward
        variant has any) from the same generator, so the weights are the same for every variant."""
        task = self.task
        model = RNN(self.cell, task.input_size, self.hidden, task.output_size, rng,
                    dtype=np.dtype(self.dtype), loss=task.loss, every_step=task.every_step,
                    dropout=self.dropout)
        return attach_feedback(model, self.backward, rng)

    def first_batch(self):
        """(model with initial weights, inputs, targets) of the first training step."""
        init_rng, data_rng, _ = self.generators()
        model = self.build_model(init_rng)
        return model, *self.task.batch(data_rng, self.batch, dtype=np.dtype(self.dtype))


@dataclass
class TrainingState:
    """A sequence-training run after `step` completed steps: all that decides the rest of it.

    The weights, the optimiser (buffers, step count, hyperparameters), the generator that draws
    the training batches, and the history so far. The evaluation batch comes from the seed.
    """
    step: int
    model: RNN
    optimizer: Optimizer
    data_rng: np.random.Generator
    history: list[StepRecord] = field(default_factory=list)

    @classmethod
    def start(cls, setup: SequenceSetup) -> "TrainingState":
        """The state before the first step: initial weights, a fresh optimiser and generator."""
        init_rng, data_rng, _ = setup.generators()
        model = setup.build_model(init_rng)
        return cls(0, model, make_optimizer(setup.optimizer, trainable_parameters(model),
                                            setup.lr),
                   data_rng)


def train_sequence(setup: SequenceSetup, strategy=None,
                   on_step: Callable[[StepRecord], None] | None = None, *,
                   state: TrainingState | None = None,
                   on_save: Callable[[TrainingState], None] | None = None,
                   save_every: int = 50, plan: Plan | None = None) -> SequenceRun:
    """Train an RNN on `setup.task` with `strategy` (default `Full()`) up to `setup.steps` steps.

    `state`: continue from it (see `load_training_state`) instead of from the seed's start.
    `on_save(state)` is called every `save_every` completed steps, after the last step, and
    when a non-finite step stops training (with the state before that step, so that it can be
    continued, e.g. skipping such steps). `plan`: `strategy`'s plan for this setup's sizes if
    the caller already made it (a plan is made and checked once per run); None: made here.
    See `train_step` for the rest.
    """
    strategy = strategy or Full()
    save_every = whole_number("save_every", save_every, 1, "steps")
    state = state or TrainingState.start(setup)
    if state.step > setup.steps:
        raise ValueError(f"the run is already at step {state.step}, past steps={setup.steps}")
    eval_rng = setup.generators()[2]
    dtype = np.dtype(setup.dtype)
    model, params = state.model, trainable_parameters(state.model)
    feedback = getattr(model, "feedback", None)
    run = SequenceRun(model, None, state.history)
    if plan is not None:
        run.plan = plan
    elif state.step < setup.steps:
        # Plans depend on sizes only: profile the initial model (a continued run's weights may
        # be far from sane) on the first batch.
        probe, inputs, targets = setup.first_batch()
        run.plan = strategy.plan(probe.chain(inputs, targets, step=0).profile())
    reference = None if not getattr(strategy, "lossy", False) else Full().plan(
        ChainProfile.uniform(setup.task.seq_len))
    begin = time.perf_counter() - (state.history[-1].seconds if state.history else 0.0)
    for step in range(state.step, setup.steps):
        drawn_from = state.data_rng.bit_generator.state
        inputs, targets = setup.task.batch(state.data_rng, setup.batch, dtype=dtype)
        chain = model.chain(inputs, targets, step=step)
        start = time.perf_counter()
        try:
            result = train_step(run.plan, chain, params, state.optimizer, step=step,
                                clip=setup.clip, on_nonfinite=setup.on_nonfinite,
                                feedback=feedback, reference=reference)
        except NonFiniteError:
            if on_save is not None:  # the state before this step: its batch not drawn yet
                state.data_rng.bit_generator.state = drawn_from
                on_save(state)
            raise
        end = time.perf_counter()
        run.step_times.append(end - start)
        run.last = result.execution or run.last
        loss = result.execution.loss if result.execution else float("nan")
        record = StepRecord(step, loss, end - begin, result.skipped, result.grad_norm,
                            result.grad_cosine, result.grad_rel_error)
        state.history.append(record)
        state.step = step + 1
        if on_step is not None:
            on_step(record)
        if on_save is not None and (state.step % save_every == 0 or state.step == setup.steps):
            on_save(state)
    inputs, targets = setup.task.batch(eval_rng, max(setup.batch, 128), dtype=dtype)
    run.metric = float(setup.task.metric(model.predict(inputs), targets))
    return run


# --- saving and continuing a run ------------------------------------------------------------------

def run_identity(setup: SequenceSetup, strategy) -> dict:
    """What a continued run must share with the saved one, as JSON-ready data.

    Everything that decides the trajectory: the task and its options, the model, batch size,
    optimiser, learning rate, seed, clipping, precision and the strategy. Not the number of
    steps (that is how far to go) nor what to do on a non-finite step.
    """
    task = setup.task
    options = {f.name: _plain(getattr(task, f.name)) for f in dataclasses.fields(task) if f.init}
    params = {k: (v.name if hasattr(v, "plan") else v) for k, v in vars(strategy).items()
              if not k.startswith("_")}
    return {"task": task.name, "task_options": options, "cell": setup.cell,
            "hidden": setup.hidden, "batch": setup.batch, "optimizer": setup.optimizer,
            "lr": setup.lr, "seed": setup.seed, "clip": setup.clip, "dtype": setup.dtype,
            "backward": setup.backward, "dropout": setup.dropout,
            "strategy": {"name": strategy.name, **params},
            "exact": not (isinstance(strategy, Truncated) or getattr(strategy, "lossy", False))}


def _plain(value):
    return os.fspath(value) if isinstance(value, os.PathLike) else value


def identity_differences(saved: dict, now: dict) -> list[str]:
    """The entries of two `run_identity` dicts that differ, as "name: saved X, now Y".

    Two exact strategies count as the same: they follow the same trajectory bit for bit, so a
    run may be continued with less (or more) memory.
    """
    now = json.loads(json.dumps(now))  # as saved: tuples become lists
    same_strategy = saved.get("exact") is True and now["exact"]
    return [f"{k}: saved {saved.get(k)!r}, now {now[k]!r}" for k in now
            if saved.get(k) != now[k] and not (k in ("strategy", "exact") and same_strategy)]


def save_training_state(directory, state: TrainingState, identity: dict) -> None:
    """Save `state` in `directory`, atomically: the weights and optimiser buffers as
    safetensors, the rest (step, optimiser step count, the generator's state, history, and the
    run's `identity`) as JSON. See `bptt.training.io.save_state` for how a crash is survived."""
    optimizer = state.optimizer.state_dict()
    arrays = {f"model.{k}": v for k, v in state.model.state_dict().items()}
    arrays.update({f"optimizer.{k}": v for k, v in optimizer.pop("buffers").items()})
    info = {"format": STATE_FORMAT, "step": state.step, "run": identity,
            "model": state.model.config(), "optimizer": optimizer,
            "data_rng": state.data_rng.bit_generator.state,
            "history": [dataclasses.asdict(r) for r in state.history]}
    io.save_state(directory, arrays, info)


def load_training_state(directory, setup: SequenceSetup, strategy) -> TrainingState:
    """The state saved in `directory`, to continue training with `setup` and `strategy`.

    Raises `bptt.training.io.ModelFileError` (a ValueError) naming the file for a missing,
    corrupt, changed or foreign state, for any entry whose type or value is not what
    `save_training_state` writes (exact types: a bool is not an int, a string not a float),
    and naming every option that differs from the saved run's. The optimiser's
    hyperparameters must be this run's: a state never silently replaces them.
    """
    arrays, info = io.load_state(directory)
    where = f"{os.fspath(directory)}/{io.STATE_FILE}"
    if info.get("format") != STATE_FORMAT:
        raise io.ModelFileError(f"{where}: not a bptt training state (format "
                                f"{info.get('format')!r}, expected {STATE_FORMAT!r})")
    if type(info.get("run")) is dict:  # other options first: the likeliest mistake
        differences = identity_differences(info["run"], run_identity(setup, strategy))
        if differences:
            raise io.ModelFileError(f"cannot continue the run saved in {os.fspath(directory)} "
                                    f"with other options: " + "; ".join(differences))
    fresh = TrainingState.start(setup)
    problems = state_schema_problems(info, fresh)
    if problems:
        raise io.ModelFileError(f"{where}: not a valid training state: " + "; ".join(problems))
    state = fresh
    try:
        state.model.load_state_dict({k[len("model."):]: v for k, v in arrays.items()
                                     if k.startswith("model.")})
        state.optimizer.load_state_dict({
            **info["optimizer"], "buffers": {k[len("optimizer."):]: v for k, v in arrays.items()
                                             if k.startswith("optimizer.")}})
        state.data_rng.bit_generator.state = info["data_rng"]
    except (KeyError, TypeError, ValueError) as error:
        text = f"missing {error}" if isinstance(error, KeyError) else str(error)
        raise io.ModelFileError(f"{where}: does not match its arrays or this run "
                                f"({text})") from None
    state.history = [StepRecord(r["step"], _float(r["loss"]), r["seconds"], r["skipped"],
                                _float(r["grad_norm"])) for r in info["history"]]
    state.step = info["step"]
    return state


def _float(value) -> float:
    return float("nan") if value is None else value
