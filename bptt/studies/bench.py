"""What `bptt-bench` measures for one strategy: memory three ways, time, convergence, exactness.

`benchmark(setup, strategy)` returns one flat row (a dict, JSON-ready):
- `peak_cache_bytes`: the executor's exact peak of states and tapes held in one training step;
- `peak_traced_bytes`: tracemalloc's peak above the starting level in that step;
- `peak_rss_mib`: memory-profiler's peak resident set size of the process in that step;
- `forward_steps`: step forwards per iteration, recording ones included (T for `full`);
- `step_time_s`: median seconds of a training step (forward, backward, update), untraced;
- `final_loss` and the task's metric after training;
- `grad_max_abs_diff_vs_full`: the largest difference from `full`'s gradient on the first batch
  (0.0 for every exact strategy: they are bitwise equal).
"""
from __future__ import annotations

import numpy as np

from bptt.training.memory import rss_peak_mib, traced_peak
from bptt.training.train import SequenceRun, SequenceSetup, StepRecord, train_sequence
from checkpointing.executor import execute
from checkpointing.full import Full


def first_batch_gradients(setup: SequenceSetup, strategy, measure: bool = False):
    """Gradients of the initial weights on the first batch: (model, inputs, targets, {name:
    grad}, execution, traced peak bytes, RSS peak MiB). Peaks are measured when `measure`."""
    model, inputs, targets = setup.first_batch()
    chain = model.chain(inputs, targets)
    plan = strategy.plan(chain.profile())
    traced = rss = None
    if measure:
        execute(plan, model.chain(inputs, targets))  # warm-up: first-call allocations
        model.zero_grad()
        traced, _ = traced_peak(lambda: execute(plan, model.chain(inputs, targets)))
        model.zero_grad()
        rss, _ = rss_peak_mib(lambda: execute(plan, model.chain(inputs, targets)))
        model.zero_grad()
    execution = execute(plan, chain)
    grads = {name: p.grad.copy() for name, p in model.named_parameters()}
    return model, inputs, targets, grads, execution, traced, rss


def max_abs_diff(a: dict, b: dict) -> float:
    """Largest absolute difference between two {name: array} dicts with the same keys."""
    return max(float(np.max(np.abs(a[k] - b[k]))) for k in a)


def benchmark(setup: SequenceSetup, strategy, reference: dict | None = None,
              on_step=None, **training) -> tuple[dict, SequenceRun, dict]:
    """Measure `strategy` on `setup` and train with it: (row, the run, first-batch extras).

    `reference`: full's first-batch gradients, if already computed (compare reuses them).
    `training`: passed on to `train_sequence` (state, on_save, save_every).
    The extras hold what `--save-grads` writes: inputs, targets, initial weights, gradients.
    """
    model, inputs, targets, grads, execution, traced, rss = first_batch_gradients(
        setup, strategy, measure=True)
    if reference is None:
        reference = grads if isinstance(strategy, Full) else first_batch_gradients(setup, Full())[3]
    extras = {"inputs": inputs, "targets": targets,
              "weights": {n: p.data.copy() for n, p in model.named_parameters()},
              "grads": grads}
    run = train_sequence(setup, strategy, on_step=on_step, **training)
    stats = execution.stats
    row = {
        "strategy": strategy.name, "params": _params(strategy),
        "task": setup.task.name, "cell": setup.cell, "seq_len": setup.task.seq_len,
        "hidden": setup.hidden, "batch": setup.batch, "seed": setup.seed, "steps": setup.steps,
        "lr": setup.lr, "optimizer": setup.optimizer, "dtype": setup.dtype,
        "peak_cache_bytes": execution.peak_cache_bytes, "peak_traced_bytes": traced,
        "peak_rss_mib": rss, "forward_steps": stats.forward_steps,
        "recorded_steps": stats.recorded_steps, "peak_states": stats.peak_states,
        "peak_tapes": stats.peak_tapes, "step_time_s": run.median_step_time,
        "final_loss": run.final_loss, "metric_name": setup.task.metric_name,
        "metric": run.metric, "grad_max_abs_diff_vs_full": max_abs_diff(grads, reference),
        "history": [_record(r) for r in run.history],
    }
    return row, run, extras


def label(row: dict) -> str:
    """`revolve(slots=10)`: a row's strategy and its parameters."""
    params = ", ".join(f"{k}={v}" for k, v in row.get("params", {}).items() if v is not None)
    return f"{row['strategy']}({params})" if params else row["strategy"]


def _params(strategy) -> dict:
    return {k: v for k, v in vars(strategy).items() if not k.startswith("_")}


def _record(r: StepRecord) -> dict:
    return {"step": r.step, "loss": r.loss, "seconds": r.seconds, "skipped": r.skipped,
            "grad_norm": r.grad_norm}
