"""Every strategy's plan replays validly over a grid of chain lengths and parameters."""
import math

import pytest
from hypothesis import given, settings, strategies as st

from checkpointing import Full, Periodic, Truncated, make_strategy, simulate
from checkpointing.plan import ChainProfile, Cut, Reverse


def stats_of(strategy, T, state=10, tape=30):
    profile = ChainProfile.uniform(T, state, tape)
    return simulate(strategy.plan(profile), profile=profile)


@pytest.mark.parametrize("T", [1, 2, 3, 7, 64, 1000])
def test_full_records_everything_once(T):
    stats = stats_of(Full(), T)
    assert stats.forward_steps == T and stats.peak_tapes == T and stats.advanced_steps == 0


@pytest.mark.parametrize("T", [1, 2, 3, 7, 64, 1000])
def test_checkpoint_keeps_about_sqrt_t(T):
    stats = stats_of(Periodic(), T)
    k = math.isqrt(T - 1) + 1
    assert stats.peak_tapes <= k
    assert stats.peak_states <= math.ceil(T / k)
    # the last segment is recorded in the first sweep: every other step runs twice
    assert stats.advanced_steps == (math.ceil(T / k) - 1) * k


def test_checkpoint_at_t_1000_holds_a_tenth_of_full():
    full, ckpt = stats_of(Full(), 1000), stats_of(Periodic(), 1000)
    assert ckpt.peak_bytes <= 0.1 * full.peak_bytes


@given(T=st.integers(1, 300), segment=st.integers(1, 50))
@settings(max_examples=60, deadline=None)
def test_checkpoint_any_segment_is_valid(T, segment):
    stats = stats_of(Periodic(segment), T)
    assert stats.reversed_steps == T and stats.peak_tapes <= segment


@given(T=st.integers(1, 200), k1=st.integers(1, 20), extra=st.integers(0, 20))
@settings(max_examples=80, deadline=None)
def test_truncated_is_valid_and_bounded_by_k2(T, k1, extra):
    k2 = k1 + extra
    stats = stats_of(Truncated(k1, k2), T)
    assert stats.recorded_steps == T and stats.advanced_steps == 0
    assert stats.peak_tapes <= k2


def test_truncated_with_k_at_least_t_is_full():
    T = 9
    plan = list(Truncated(9).plan(ChainProfile.uniform(T)))
    assert plan == list(Full().plan(ChainProfile.uniform(T)))


def test_truncated_chunks_cut_at_every_boundary():
    plan = list(Truncated(3).plan(ChainProfile.uniform(7)))
    assert [a.index for a in plan if isinstance(a, Cut)] == [0, 3, 6]
    assert all(a.with_loss and not a.keep for a in plan if isinstance(a, Reverse))


@pytest.mark.parametrize("kwargs, message", [
    (dict(k1=0), "k1 must be a whole number >= 1, got 0"),
    (dict(k1=4, k2=2), "k2 must be a whole number >= k1 = 4"),
    (dict(k1=2.5), "k1 must be a whole number"),
])
def test_truncated_refuses_senseless_windows(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Truncated(**kwargs)


@pytest.mark.parametrize("segment", [0, -3, 1.5])
def test_checkpoint_refuses_bad_segments(segment):
    with pytest.raises(ValueError, match="segment must be a whole number >= 1"):
        Periodic(segment)


def test_unknown_strategy_is_named():
    with pytest.raises(ValueError, match="unknown strategy 'fast'; choose one of"):
        make_strategy("fast")
