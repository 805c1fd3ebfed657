"""`bptt-bench sweep`: every point of a sweep trained on Dask workers, each result one SQLite row.

`run_point(params)` is one training run (the `SequenceSetup` recipe) under the point's strategy,
returning JSON-ready figures: peak cache bytes (the executor's exact ledger), `full`'s peak on
the same chain, the bytes saved, forwards per step, the smoothed loss curve, final loss and
metric, and for lossy strategies the gradient's cosine and relative error against `full` per
step. It is a pure function of the point: same point, same numbers, bit for bit, on any worker.

`run_sweep` maps the points not yet in the store onto a Dask cluster (a `LocalCluster` of
one-thread worker processes by default, or the scheduler at an address) and writes each result
as it arrives. Dask only maps points to workers: a worker that dies takes its point with it and
the rest go on; the next run of the same command finishes what is missing.
"""
from __future__ import annotations

import os
import time
from typing import Callable

import numpy as np

from bptt.studies.convergence import smooth
from bptt.studies.points import Point, parse_strategy
from bptt.studies.store import Store, point_key
from bptt.training.train import SequenceSetup, train_sequence
from checkpointing import Adaptive, Full, Periodic, Revolve, Truncated, execute, simulate
from checkpointing.lossy import Compressed


def make_point_strategy(spec: str, profile):
    """The strategy object of a spec string (see `bptt.studies.points`) for a chain's profile."""
    name, params = parse_strategy(spec)
    codecs = {k: params.pop(k) for k in ("snapshots", "tapes") if k in params}
    if name == "uoro":
        from bptt.training.uoro import UORO
        return UORO()
    if name == "full":
        strategy = Full()
    elif name == "truncated":
        strategy = Truncated(params.get("k1", max(1, profile.length // 10)), params.get("k2"))
    elif name == "checkpoint":
        strategy = Periodic(params.get("segment"))
    elif name == "revolve":
        strategy = Revolve(params.get("slots", 10))
    else:
        budget = params.get("budget", 0.1)
        if budget < 1:
            full = simulate(Full().plan(profile), profile=profile).peak_bytes
            budget = max(int(full * budget), Adaptive.minimum_budget(profile))
        strategy = Adaptive(int(budget), compress=params.get("compress"))
    return Compressed(strategy, **codecs) if codecs else strategy


def run_point(params: dict) -> dict:
    """Train one point and return its figures (JSON-ready); see the module docstring."""
    from tasks import make_task

    p = Point(**params)
    setup = SequenceSetup(task=make_task(p.task, seq_len=p.seq_len), cell=p.cell, hidden=p.hidden,
                          batch=p.batch, steps=p.steps, lr=p.lr, seed=p.seed)
    model, inputs, targets = setup.first_batch()
    profile = model.chain(inputs, targets).profile()
    strategy = make_point_strategy(p.strategy, profile)
    plan = strategy.plan(profile)
    full_peak = execute(Full().plan(profile), model.chain(inputs, targets)).peak_cache_bytes
    model.zero_grad()
    start = time.perf_counter()
    run = train_sequence(setup, strategy)
    seconds = time.perf_counter() - start
    losses = [r.loss for r in run.history]
    cosines = [r.grad_cosine for r in run.history]
    errors = [r.grad_rel_error for r in run.history]
    lossy = bool(getattr(strategy, "lossy", False))
    peak = run.last.peak_cache_bytes
    uncompressed = (simulate(plan, profile=profile).peak_bytes
                    if lossy and hasattr(plan, "compression") else None)
    return {
        "label": getattr(strategy, "name", p.strategy), "lossy": lossy,
        "exact": not lossy and not isinstance(strategy, Truncated),
        "peak_cache_bytes": peak, "full_peak_bytes": full_peak,
        "saved_vs_full_bytes": full_peak - peak,
        "saved_by_codec_bytes": None if uncompressed is None else uncompressed - peak,
        "forward_steps": run.last.stats.forward_steps,
        "losses": losses, "smoothed": smooth(losses), "final_loss": run.final_loss,
        "metric": run.metric, "metric_name": setup.task.metric_name,
        "grad_cosine": cosines if lossy else None, "grad_rel_error": errors if lossy else None,
        "mean_grad_cosine": float(np.mean(cosines)) if lossy else None,
        "mean_grad_rel_error": float(np.mean(errors)) if lossy else None,
        "train_seconds": seconds,
    }


def _timed_point(params: dict) -> tuple[dict, dict, float]:
    # One thread of BLAS per worker: the machine's cores are the workers.
    start = time.perf_counter()
    result = run_point(params)
    return params, result, time.perf_counter() - start


class SweepOutcome:
    """What a sweep run did: points already stored, run now, lost to failed workers."""

    def __init__(self, total: int, skipped: int):
        self.total, self.skipped, self.finished = total, skipped, 0
        self.lost: list[tuple[dict, str]] = []


def run_sweep(points: list[Point], store: Store, scheduler: str | None = None,
              workers: int | None = None, on_done: Callable[[int], None] | None = None,
              on_start: Callable[[int], None] | None = None,
              connect_timeout: float = 5.0) -> SweepOutcome:
    """Run the points not yet in `store` on Dask and store each as it finishes.

    `scheduler`: "tcp://HOST:PORT" of a running cluster, used as it is; None starts a
    `LocalCluster` of `workers` one-thread processes (default: the CPU count) and stops it at
    the end. `on_start(n)` is told how many points will run, `on_done(1)` after each. A point
    whose worker dies (or that raises) is reported in `outcome.lost` and not stored.
    Raises OSError when the scheduler cannot be reached within `connect_timeout` seconds.
    """
    from distributed import Client, LocalCluster, as_completed

    params = [p.params() for p in points]
    done = store.done()
    todo = list({point_key(q, store.version): q for q in params
                 if point_key(q, store.version) not in done}.values())
    outcome = SweepOutcome(len(points), len(params) - len(todo))
    if on_start is not None:
        on_start(len(todo))
    if not todo:
        return outcome
    cluster = None
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # inherited by the worker processes
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if scheduler is None:
        import dask

        # One point at a time per worker: a worker that dies takes only the point it runs.
        with dask.config.set({"distributed.scheduler.worker-saturation": 1.0}):
            cluster = LocalCluster(n_workers=workers or os.cpu_count() or 1,
                                   threads_per_worker=1, processes=True,
                                   dashboard_address=":0")
        address = cluster
    else:
        address = scheduler
    try:
        try:
            client = Client(address, timeout=connect_timeout)
        except (OSError, TimeoutError) as error:
            raise OSError(f"cannot reach the Dask scheduler at {scheduler}: "
                          f"{error or type(error).__name__}") from None
        try:
            # All at once, so the scheduler queues them and hands each worker one at a time.
            futures = client.map(_timed_point, todo, pure=False)
            for future in as_completed(futures):
                try:
                    q, result, seconds = future.result()
                except Exception as error:  # KilledWorker, or the point itself failed
                    outcome.lost.append((futures_params(futures, future, todo),
                                         f"{type(error).__name__}: {error}"))
                else:
                    store.add(q, result, seconds)
                    outcome.finished += 1
                if on_done is not None:
                    on_done(1)
        finally:
            client.close()
    finally:
        if cluster is not None:
            cluster.close()
    return outcome


def futures_params(futures: list, future, todo: list[dict]) -> dict:
    """The point of a failed future (its position in the submitted list)."""
    return todo[futures.index(future)]
