"""Online checkpointing: bounded slots while a stream of unknown length arrives, exact reverse."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from bptt.nn.rnn import RNN
from checkpointing.binomial import griewank_minimum
from checkpointing.equivalence import assert_same_gradients
from checkpointing.online import OnlineCheckpointing
from checkpointing.plan import Advance, ChainProfile, Drop, Snapshot, simulate


def stats_of(slots, T):
    return simulate(OnlineCheckpointing(slots).plan(ChainProfile.uniform(T)))


@given(T=st.integers(1, 300), slots=st.integers(1, 12))
@settings(max_examples=150, deadline=None)
def test_streamed_plans_are_exact_and_keep_at_most_the_slots(T, slots):
    stats = stats_of(slots, T)
    assert stats.reversed_steps == T and stats.peak_tapes == 1
    assert stats.peak_states <= slots
    # each step once while streaming, then no more than offline Revolve needs
    assert stats.advanced_steps <= T + griewank_minimum(T, slots)


def test_the_stream_api_gives_the_plan():
    stream, actions = OnlineCheckpointing(3), []
    for i in range(40):
        step = stream.forward(i)
        assert step[-1] == Advance(i, i + 1)
        actions += step
    actions += stream.reverse(40)
    assert actions == list(OnlineCheckpointing(3).plan(ChainProfile.uniform(40)))


def test_memory_stays_bounded_as_the_stream_grows():
    stream, kept = OnlineCheckpointing(4), set()
    for i in range(20_000):
        for action in stream.forward(i):
            if isinstance(action, Snapshot):
                kept.add(action.index)
            elif isinstance(action, Drop):
                kept.remove(action.index)
        assert len(kept) <= 4 and 0 in kept


def test_a_plan_is_replayed_from_a_fresh_stream():
    plan = OnlineCheckpointing(2).plan(ChainProfile.uniform(30))
    assert plan.strategy == "adaptive-online" and list(plan) == list(plan)


def test_one_slot_keeps_only_the_initial_state():
    stats = stats_of(1, 30)
    assert stats.peak_states == 1 and stats.advanced_steps == 30 + griewank_minimum(30, 1)


def test_online_gives_fulls_gradients_bit_for_bit():
    rng = np.random.default_rng(0)
    model = RNN("lstm", 2, 3, 2, np.random.default_rng(1), dtype=np.float64, every_step=True)
    inputs, targets = rng.standard_normal((37, 2, 2)), rng.standard_normal((37, 2, 2))
    assert_same_gradients(lambda: model.chain(inputs, targets), model.parameters(),
                          [OnlineCheckpointing(s) for s in (1, 3, 8)])


@pytest.mark.parametrize("calls, message", [
    ([("forward", 1)], "expected step 0, got 1"),
    ([("forward", 0), ("forward", 0)], "expected step 1, got 0"),
    ([("forward", 0), ("reverse", 2)], "the stream has 1 steps, got length 2"),
    ([("reverse", 0)], "the stream has 0 steps, got length 0"),
    ([("forward", 0), ("reverse", 1), ("forward", 1)], "already reversed"),
    ([("forward", 0), ("reverse", 1), ("reverse", 1)], "already reversed"),
])
def test_misuse_of_the_stream_is_named(calls, message):
    stream = OnlineCheckpointing(2)
    with pytest.raises(ValueError, match=message):
        for method, i in calls:
            getattr(stream, method)(i)


@pytest.mark.parametrize("slots", [0, 1.5, True])
def test_online_refuses_senseless_slots(slots):
    with pytest.raises(ValueError, match="slots must be a whole number >= 1, got"):
        OnlineCheckpointing(slots)


@pytest.mark.slow
def test_a_hundred_thousand_streamed_steps():
    stats = stats_of(20, 100_000)
    assert stats.peak_states <= 20
    assert stats.advanced_steps <= 100_000 + griewank_minimum(100_000, 20)
