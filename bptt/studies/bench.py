"""What `bptt-bench` measures for one strategy: memory three ways, time, convergence, exactness.

`benchmark(setup, strategy)` returns one flat row (a dict, JSON-ready):
- `peak_cache_bytes`: the executor's exact peak of states and tapes held in one training step;
- `peak_traced_bytes`: tracemalloc's peak above the starting level in that step;
- `peak_rss_mib`: memory-profiler's peak resident set size of the process in that step;
- `forward_steps`: step forwards per iteration, recording ones included (T for `full`);
- `step_time_s`: median seconds of a training step (forward, backward, update), untraced;
- `final_loss` and the task's metric after training;
- `grad_max_abs_diff_vs_full`: the largest difference from `full`'s gradient on the first batch
  (0.0 for every exact strategy: they are bitwise equal), and `grad_reference`, the exact
  strategy that gradient was computed with. Only `full` itself holds every tape: for any other
  strategy the reference is another exact plan of bounded memory (`reference_strategy`), which
  gives full's gradient bit for bit, so the run's memory stays bounded by what it chose.
"""
from __future__ import annotations

import warnings
from typing import Callable

import numpy as np

from bptt.training.memory import rss_peak_mib, traced_peak
from bptt.training.train import SequenceRun, SequenceSetup, StepRecord, train_sequence
from checkpointing.binomial import Revolve
from checkpointing.executor import Execution, execute
from checkpointing.full import Full
from checkpointing.periodic import Periodic

REFERENCE_SLOTS = 10


def first_batch_gradients(setup: SequenceSetup, strategy, measure: bool = False, plan=None):
    """Gradients of the initial weights on the first batch: (model, inputs, targets, {name:
    grad}, execution, traced peak bytes, RSS peak MiB). Peaks are measured when `measure`.
    `plan`: `strategy`'s plan for the setup, if already made."""
    model, inputs, targets = setup.first_batch()
    return (model, inputs, targets,
            *measured_gradients(model, lambda: model.chain(inputs, targets, step=0), strategy,
                                measure, plan=plan))


def measured_gradients(model, make_chain: Callable[[], object], strategy,
                       measure: bool = False, plan=None) -> tuple[dict, Execution, int | None,
                                                                  float | None]:
    """({name: grad}, execution, traced peak bytes, RSS peak MiB) of one gradient of `model`
    taken with `strategy` on the chain `make_chain()` builds (a fresh one per run). Peaks are
    measured when `measure` (after a warm-up run), else None; the model's gradients are left
    as the last run made them. `plan`: `strategy`'s plan for that chain, if already made."""
    chain = make_chain()
    plan = plan or strategy.plan(chain.profile())
    traced = rss = None
    if measure:
        execute(plan, make_chain())  # warm-up: first-call allocations
        model.zero_grad()
        traced, _ = traced_peak(lambda: execute(plan, make_chain()))
        model.zero_grad()
        rss, _ = rss_peak_mib(lambda: execute(plan, make_chain()))
    model.zero_grad()
    execution = execute(plan, chain)
    grads = {name: np.zeros_like(p.data) if p.grad is None else p.grad.copy()
             for name, p in model.named_parameters()}  # None: the plan never reached it
    return grads, execution, traced, rss


def parameters_without_gradient(grads: dict, reference: dict) -> list[str]:
    """Names of the parameters whose gradient is exactly zero in `grads` although `full`'s
    (`reference`) is not: a strategy that cannot reach them (a truncation window shorter than
    an MLP's chain of layers never reaches its first layers), so they would never learn."""
    return [name for name, g in grads.items()
            if not np.any(g) and np.any(reference[name])]


def warn_unreached(strategy, grads: dict, reference: dict, length: int) -> list[str]:
    """Warn (`UserWarning`) naming the parameters `strategy` gives no gradient; returns them."""
    missing = parameters_without_gradient(grads, reference)
    if missing:
        why = ""
        if getattr(strategy, "k2", None) is not None and strategy.k2 < length:
            why = (f": its window of k2={strategy.k2} steps is shorter than the chain's "
                   f"{length} steps (k2 >= {length} or an exact strategy reaches them)")
        name = label({"strategy": strategy.name, "params": strategy_params(strategy)})
        warnings.warn(f"{name} gives no gradient to {', '.join(missing)}{why}; they will keep "
                      f"their initial values", UserWarning, stacklevel=2)
    return missing


def reference_strategy(strategy):
    """The exact strategy whose first-batch gradient `strategy`'s is compared with.

    `full` is its own reference. Any other strategy gets `checkpoint` (sqrt(T) states and one
    segment's tapes: O(sqrt T) memory), and `checkpoint` itself gets `revolve` with
    `REFERENCE_SLOTS` slots, so that the comparison is between two different exact plans.
    """
    if isinstance(strategy, Full):
        return strategy
    return Revolve(REFERENCE_SLOTS) if isinstance(strategy, Periodic) else Periodic()


def max_abs_diff(a: dict, b: dict) -> float:
    """Largest absolute difference between two {name: array} dicts with the same keys."""
    return max(float(np.max(np.abs(a[k] - b[k]))) for k in a)


def benchmark(setup: SequenceSetup, strategy, reference: dict | None = None, on_step=None,
              reference_label: str = "full", **training) -> tuple[dict, SequenceRun, dict]:
    """Measure `strategy` on `setup` and train with it: (row, the run, first-batch extras).

    `reference`: the first-batch gradients of an exact strategy named `reference_label`, if
    already computed (compare reuses them); by default those of `reference_strategy(strategy)`.
    `training`: passed on to `train_sequence` (state, on_save, save_every).
    The extras hold what `--save-grads` writes: inputs, targets, initial weights, gradients.
    """
    model, inputs, targets = setup.first_batch()
    plan = strategy.plan(model.chain(inputs, targets).profile())  # once for the whole run
    model, inputs, targets, grads, execution, traced, rss = first_batch_gradients(
        setup, strategy, measure=True, plan=plan)
    if reference is None:
        chosen = reference_strategy(strategy)
        reference_label = label({"strategy": chosen.name, "params": strategy_params(chosen)})
        reference = grads if chosen is strategy else first_batch_gradients(setup, chosen)[3]
    warn_unreached(strategy, grads, reference, setup.task.seq_len)
    extras = {"inputs": inputs, "targets": targets,
              "weights": {n: p.data.copy() for n, p in model.named_parameters()},
              "grads": grads}
    run = train_sequence(setup, strategy, on_step=on_step, plan=plan, **training)
    stats = execution.stats
    row = {
        "strategy": strategy.name, "params": strategy_params(strategy),
        "task": setup.task.name, "cell": setup.cell, "seq_len": setup.task.seq_len,
        "hidden": setup.hidden, "batch": setup.batch, "seed": setup.seed, "steps": setup.steps,
        "lr": setup.lr, "optimizer": setup.optimizer, "dtype": setup.dtype,
        "backward": setup.backward, "dropout": setup.dropout,
        "peak_cache_bytes": execution.peak_cache_bytes, "peak_traced_bytes": traced,
        "peak_rss_mib": rss, "forward_steps": stats.forward_steps,
        "recorded_steps": stats.recorded_steps, "peak_states": stats.peak_states,
        "peak_tapes": stats.peak_tapes, "step_time_s": run.median_step_time,
        "final_loss": run.final_loss, "metric_name": setup.task.metric_name,
        "metric": run.metric, "grad_max_abs_diff_vs_full": max_abs_diff(grads, reference),
        "grad_reference": reference_label,
        "history": [_record(r) for r in run.history],
    }
    return row, run, extras


def label(row: dict) -> str:
    """`revolve(slots=10)`: a row's strategy and its parameters."""
    params = ", ".join(f"{k}={v}" for k, v in row.get("params", {}).items() if v is not None)
    return f"{row['strategy']}({params})" if params else row["strategy"]


def strategy_params(strategy) -> dict:
    return {k: v for k, v in vars(strategy).items() if not k.startswith("_")}


def _record(r: StepRecord) -> dict:
    return {"step": r.step, "loss": r.loss, "seconds": r.seconds, "skipped": r.skipped,
            "grad_norm": r.grad_norm}
