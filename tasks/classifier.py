"""Training an MLP classifier by minibatch SGD, each batch's gradient taken by a memory
strategy's plan over the layers (`LayerChain`) and formed by a backward variant.

Shared by the iris and digits tasks: a data object with x_train, y_train, x_test, y_test
(features float64, labels int64 class indices) and the layer sizes are all a task supplies.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import time

import numpy as np

from bptt.engine import losses
from bptt.nn import MLP
from bptt.nn.feedback import attach_feedback, check_variant, trainable_parameters
from bptt.nn.layer_chain import LayerChain
from bptt.training.resources import RunEstimate
from bptt.training.train import kept_plan, make_optimizer, train_step
from checkpointing.full import Full
from checkpointing.plan import ChainProfile
from checkpointing.truncated import Truncated

BYTES_PER_EPOCH = 600  # an EpochRecord (~388 B) and its dict in a report (~208 B)


@dataclass(frozen=True)
class EpochRecord:
    """Loss (mean cross-entropy, nats) and accuracy (fraction) on both sets after one epoch;
    `alignment`: what the run's `measure(model)` returned then (None without one)."""

    epoch: int
    train_loss: float
    train_accuracy: float
    test_loss: float
    test_accuracy: float
    alignment: object = None


@dataclass
class ClassifierRun:
    """A finished training run: the model, its per-epoch history and the recipe that made it
    (optimiser, lr, batch, epochs, seed: what a model card reports)."""

    model: MLP
    data: object
    history: list[EpochRecord] = field(default_factory=list)
    step_times: list[float] = field(default_factory=list)  # seconds of each training step
    recipe: dict = field(default_factory=dict)
    peak_cache_bytes: int = 0  # the executor's exact count, largest over the batches
    epoch_seconds: list[float] = field(default_factory=list)  # training and evaluation

    @property
    def final(self) -> EpochRecord:
        return self.history[-1]


def evaluate(model: MLP, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of `model` on (x, y), on arrays (`MLP.logits`: no graph,
    no dropout; the same numbers as `model(x)` under `no_grad`)."""
    logits = model.logits(x)
    loss = losses.SoftmaxCrossEntropy().run(logits, y)
    return float(loss), float(np.mean(np.argmax(logits, axis=1) == y))


def run_estimate(sizes: Sequence[int], samples: int, batch_size: int, epochs: int,
                 optimizer: str) -> RunEstimate:
    """What `train_classifier` holds for an MLP of layer `sizes` on `samples` rows, from the
    sizes alone (nothing allocated): float64 weights with their gradients and optimiser buffers,
    the copies measuring and full's reference gradient make, the layers' activations (every
    tape of a batch; the whole data set when evaluating), and the history. Check it with
    `bptt.training.resources.check_fits` before training."""
    weights = 8 * sum(a * b + b for a, b in zip(sizes, sizes[1:]))
    activations = 8 * sum(sizes)
    return RunEstimate({
        "weights and gradients": 2 * weights,
        "optimiser state": (2 if optimizer == "adam" else 1) * weights,
        "measurement and reference": 4 * weights,
        "activations": activations * (2 * samples + 3 * min(batch_size, samples)),
        "history": epochs * BYTES_PER_EPOCH})


def train_classifier(data, sizes: Sequence[int], seed: int = 42, epochs: int = 80,
                     lr: float = 0.1, batch_size: int = 16,
                     on_epoch: Callable[[EpochRecord], None] | None = None,
                     strategy: Callable[[ChainProfile], object] | None = None,
                     backward: str = "backprop",
                     measure: Callable[[MLP], object] | None = None,
                     feedback_options: dict | None = None, optimizer: str = "sgd",
                     clip: float | None = None, on_nonfinite: str = "stop",
                     dropout: float = 0.0,
                     on_model: Callable[[int, MLP], None] | None = None) -> ClassifierRun:
    """Train a tanh MLP of `sizes` on `data` with minibatch SGD (or `optimizer="adam"`);
    `on_epoch` after every epoch; `clip` and `on_nonfinite` are `train_step`'s.

    `strategy(profile)` returns the memory strategy for a batch's chain (default `Full()`;
    exact strategies give the same gradients bit for bit). `backward`: the variant that forms
    the layers' errors (`bptt.nn.feedback`); `measure(model)` is recorded in each epoch's
    `alignment`; `feedback_options` go to `attach_feedback` (e.g. kp's decay). `seed` spawns
    independent generators for the weights (then the feedback matrices) and the shuffles, so
    the number of epochs and the variant do not change the initial weights.
    `dropout`: the probability of dropping each unit before the head, masks keyed by
    (seed, batch number, layer), so every exact strategy still gives `full`'s gradients.
    `on_model(epoch, model)` sees the model before training (epoch 0) and after every epoch
    (to inspect or draw it; not to change it).
    """
    check_variant(backward)
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be >= 1, got {epochs} and {batch_size}")
    init_rng, shuffle_rng = np.random.default_rng(seed).spawn(2)
    model = attach_feedback(MLP(sizes, "tanh", rng=init_rng, dropout=dropout), backward,
                            init_rng, **(feedback_options or {}))
    params = trainable_parameters(model)
    every_parameter = model.parameters()  # what each batch's chain names as external: one walk
    run = ClassifierRun(model, data, recipe={
        "optimizer": optimizer, "lr": lr, "batch": batch_size, "epochs": epochs, "seed": seed,
        "clip": clip, "loss": "mean softmax cross-entropy", "dropout": dropout,
        "backward": backward})
    optimizer = make_optimizer(optimizer, params, lr)
    feedback = getattr(model, "feedback", None)
    plans = {}  # one plan per batch size (the last batch may be smaller)
    n = len(data.x_train)
    step = 0
    if on_model is not None:
        on_model(0, model)
    for epoch in range(1, epochs + 1):
        epoch_started = time.perf_counter()
        order = shuffle_rng.permutation(n)
        for start in range(0, n, batch_size):
            batch = order[start:start + batch_size]
            chain = LayerChain(model, data.x_train[batch], data.y_train[batch], step=step,
                               parameters=every_parameter)
            if len(batch) not in plans:
                profile = chain.profile()
                chosen = (strategy or (lambda _: Full()))(profile)
                if backward == "dfa" and isinstance(chosen, Truncated):
                    raise ValueError("backward variant 'dfa' cannot run under the truncated "
                                     "strategy: every layer needs the output error, which a "
                                     "truncated window does not reach; use an exact strategy")
                plans[len(batch)] = kept_plan(chosen.plan(profile))
            started = time.perf_counter()
            result = train_step(plans[len(batch)], chain, params, optimizer, step=step,
                                clip=clip, on_nonfinite=on_nonfinite, feedback=feedback)
            run.step_times.append(time.perf_counter() - started)
            if result.execution is not None:
                run.peak_cache_bytes = max(run.peak_cache_bytes,
                                           result.execution.peak_cache_bytes)
            step += 1
        record = EpochRecord(epoch, *evaluate(model, data.x_train, data.y_train),
                             *evaluate(model, data.x_test, data.y_test),
                             None if measure is None else measure(model))
        run.history.append(record)
        run.epoch_seconds.append(time.perf_counter() - epoch_started)
        if on_epoch is not None:
            on_epoch(record)
        if on_model is not None:
            on_model(epoch, model)
    return run
