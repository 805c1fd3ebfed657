"""Very long sequences: a training step at T = 100,000 holds a cache bounded by the slots, runs
without deep recursion, and the memory a step allocates does not grow with T.

tracemalloc slows these tiny steps several times, so the growth is measured between T = 1,000
and T = 5,000 and bounded per step of T: any per-step leak (a kept state, tape or Python object,
each at least 16 bytes) breaks the bound; a byte of bookkeeping per step (the plan's replay
marks which losses were added) does not. The full-length run is checked with the executor's
exact count, and the batch check must not allocate in proportion to the batch.
"""
import sys

import numpy as np
import pytest

from bptt.training.memory import traced_peak
from bptt.nn.rnn import RNN
from bptt.training.optim import Adam
from bptt.training.train import train_step
from checkpointing import Adaptive, Revolve, simulate

SLOTS = 32


def tiny_model():
    return RNN("rnn", 1, 2, 1, np.random.default_rng(0), every_step=False)


def batch(T):
    return (np.random.default_rng(1).standard_normal((T, 1, 1)).astype(np.float32),
            np.ones((1, 1), np.float32))


def frame_depth() -> int:
    frame, depth = sys._getframe(), 0
    while frame is not None:
        frame, depth = frame.f_back, depth + 1
    return depth


@pytest.mark.slow
def test_a_hundred_thousand_steps_train_with_the_cache_bounded_by_the_slots():
    model = tiny_model()
    inputs, targets = batch(100_000)
    profile = model.chain(inputs, targets).profile()
    state, tape = profile.state_bytes[0], profile.tape_bytes[0]
    plan = Revolve(SLOTS).plan(profile)
    before = [p.data.copy() for p in model.parameters()]
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(frame_depth() + 120)  # nothing may recurse as deep as the chain is long
    try:
        result = train_step(plan, model.chain(inputs, targets), model.parameters(),
                            Adam(model.parameters(), lr=0.01), clip=1.0)
    finally:
        sys.setrecursionlimit(limit)
    run = result.execution
    assert not result.skipped and np.isfinite(run.loss)
    assert run.stats.peak_states <= SLOTS and run.stats.recorded_steps == 100_000
    assert run.peak_cache_bytes <= SLOTS * state + tape + state  # slots, one tape, the current
    short = tiny_model().chain(*batch(1000))
    assert run.peak_cache_bytes == simulate(Revolve(SLOTS).plan(short.profile()),
                                            profile=short.profile()).peak_bytes
    assert all(not np.array_equal(a, p.data) for a, p in zip(before, model.parameters()))


@pytest.mark.slow
@pytest.mark.parametrize("strategy", [Revolve(SLOTS), Adaptive(SLOTS * 8 + 20 + 16)],
                         ids=["revolve", "adaptive"])
def test_the_memory_a_training_step_allocates_does_not_grow_with_t(strategy):
    model = tiny_model()
    optimizer = Adam(model.parameters(), lr=0.01)
    peaks = {}
    for T in (1000, 5000):
        inputs, targets = batch(T)
        plan = strategy.plan(model.chain(inputs, targets).profile())

        def step():  # the whole step: chain, plan check, sweep, clipping, update
            return train_step(plan, model.chain(inputs, targets), model.parameters(), optimizer,
                              clip=1.0)

        step()  # warm-up: first-call allocations
        peaks[T], result = traced_peak(step)
        assert result.execution.peak_cache_bytes <= strategy_budget(strategy)
    growth = (peaks[5000] - peaks[1000]) / 4000
    assert growth < 4, f"the traced peak grows by {growth:.1f} bytes per step of T ({peaks})"
    assert peaks[5000] < 2 * peaks[1000]


def strategy_budget(strategy) -> int:
    return strategy.budget if isinstance(strategy, Adaptive) else (SLOTS + 1) * 8 + 20


def test_checking_a_long_batch_allocates_nothing_the_size_of_the_batch():
    model = RNN("rnn", 2, 8, 1, np.random.default_rng(0))
    inputs, targets = np.ones((100_000, 4, 2), np.float32), np.ones((100_000, 4, 1), np.float32)
    model.chain(inputs, targets)
    peak, chain = traced_peak(lambda: model.chain(inputs, targets))  # NaN/Inf checks included
    assert chain.length == 100_000 and peak < 64 * 2**10 < inputs.nbytes // 32
