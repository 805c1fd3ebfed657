"""What `bptt-bench --task iris` measures: the MLP as a chain of layers, under a memory strategy.

The depth-only case of the same trade-off as a recurrent network's: a layer is a step. One flat
row (a dict, JSON-ready) per strategy with the sequence benchmark's memory and exactness keys
(`bptt.studies.bench`), taken on the first training batch with the initial weights, plus the
iris run's own figures:
- `peak_cache_bytes`, `peak_traced_bytes`, `peak_rss_mib`, `forward_steps`: one gradient;
- `step_time_s`: the median seconds of a training step (a batch's gradient and update);
- `test_accuracy`, `test_loss`, `final_train_loss` after the last epoch (`metric` is the test
  accuracy, `final_loss` the final train loss) and `baseline_accuracy`, the trivial predictor's;
- `no_gradient`: the parameters the strategy cannot reach (warned about before training);
- `history`: one record per epoch: losses and accuracies on both sets, `step` the updates done
  and `seconds` the time since training began.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Callable, Sequence

import numpy as np

from bptt.nn.layer_chain import LayerChain
from bptt.studies.bench import (max_abs_diff, measured_gradients, strategy_params,
                                warn_unreached)
from checkpointing.full import Full
from checkpointing.plan import ChainProfile
from tasks import iris

Strategy = Callable[[ChainProfile], object]  # a batch chain's profile -> its strategy


def first_batch(data: iris.IrisData, seed: int, batch_size: int,
                hidden: Sequence[int] = (iris.HIDDEN,), dropout: float = 0.0):
    """(model with the initial weights, inputs, labels) of the first step of `iris.train`
    with the same seed, batch size, hidden widths and dropout."""
    init_rng, shuffle_rng = np.random.default_rng(seed).spawn(2)
    model = iris.build_model(init_rng, hidden, dropout)
    rows = shuffle_rng.permutation(len(data.x_train))[:batch_size]
    return model, data.x_train[rows], data.y_train[rows]


def measure(data: iris.IrisData, strategy: Strategy, seed: int, batch_size: int,
            hidden: Sequence[int] = (iris.HIDDEN,), reference: dict | None = None,
            dropout: float = 0.0) -> dict:
    """The memory and exactness figures of one first-batch gradient with `strategy`, before
    any training: a partial row. Warns if the strategy leaves some parameters without a
    gradient (`bptt.studies.bench.warn_unreached`). `reference`: full's gradients, if known."""
    model, x, y = first_batch(data, seed, batch_size, hidden, dropout)

    def chain():  # training step 0's chain, its dropout mask included
        return LayerChain(model, x, y, step=0)

    profile = chain().profile()
    chosen = strategy(profile)
    grads, execution, traced, rss = measured_gradients(model, chain, chosen, measure=True)
    if reference is None:
        reference = grads if isinstance(chosen, Full) else \
            measured_gradients(model, chain, Full())[0]
    missing = warn_unreached(chosen, grads, reference, profile.length)
    stats = execution.stats
    return {
        "strategy": chosen.name, "params": strategy_params(chosen), "task": "iris",
        "cell": "mlp", "seq_len": profile.length, "hidden": list(hidden),
        "sizes": list(model.sizes),
        "batch": batch_size, "seed": seed, "dropout": dropout,
        "peak_cache_bytes": execution.peak_cache_bytes, "peak_traced_bytes": traced,
        "peak_rss_mib": rss, "forward_steps": stats.forward_steps,
        "recorded_steps": stats.recorded_steps, "peak_states": stats.peak_states,
        "peak_tapes": stats.peak_tapes, "grad_max_abs_diff_vs_full": max_abs_diff(grads,
                                                                                  reference),
        "no_gradient": missing,
    }


def full_gradients(data: iris.IrisData, seed: int, batch_size: int,
                   hidden: Sequence[int] = (iris.HIDDEN,), dropout: float = 0.0) -> dict:
    """`full`'s first-batch gradients, the reference of `measure` (compare computes it once)."""
    model, x, y = first_batch(data, seed, batch_size, hidden, dropout)
    return measured_gradients(model, lambda: LayerChain(model, x, y, step=0), Full())[0]


def benchmark(data: iris.IrisData, strategy: Strategy, *, seed: int = 42, epochs: int = 80,
              lr: float = 0.1, batch_size: int = 16, hidden: Sequence[int] = (iris.HIDDEN,),
              optimizer: str = "sgd", clip: float | None = None, on_nonfinite: str = "stop",
              backward: str = "backprop", dropout: float = 0.0,
              measured: dict | None = None, reference: dict | None = None,
              on_epoch=None) -> tuple[dict, iris.IrisRun]:
    """Measure `strategy` (unless `measured` already holds `measure`'s row) and train with it:
    (the row, the run). The training options are `iris.train`'s."""
    if measured is None:
        measured = measure(data, strategy, seed, batch_size, hidden, reference, dropout)
    started = time.perf_counter()
    seconds_at = []  # since training began, at the end of each epoch

    def epoch_done(record):
        seconds_at.append(time.perf_counter() - started)
        if on_epoch is not None:
            on_epoch(record)

    run = iris.train(data, seed=seed, epochs=epochs, lr=lr, batch_size=batch_size,
                     on_epoch=epoch_done, strategy=strategy, hidden=hidden, optimizer=optimizer,
                     clip=clip, on_nonfinite=on_nonfinite, backward=backward,
                     dropout=dropout)
    seconds = time.perf_counter() - started
    per_epoch = -(-len(data.x_train) // batch_size)
    final = run.final
    row = {
        **measured, "epochs": epochs, "lr": lr, "optimizer": optimizer, "clip": clip,
        "backward": backward,
        "step_time_s": float(np.median(run.step_times)), "final_loss": final.train_loss,
        "metric_name": "test accuracy", "metric": final.test_accuracy,
        "test_accuracy": final.test_accuracy, "test_loss": final.test_loss,
        "final_train_loss": final.train_loss, "train_seconds": seconds,
        "baseline_accuracy": iris.baseline_accuracy(data),
        "history": [{**_plain_record(r), "step": r.epoch * per_epoch, "seconds": t}
                    for r, t in zip(run.history, seconds_at)],
    }
    return row, run


def _plain_record(record) -> dict:
    """An epoch record as a dict, without `alignment` when nothing was measured."""
    data = dataclasses.asdict(record)
    if data.get("alignment") is None:
        data.pop("alignment", None)
    return data
