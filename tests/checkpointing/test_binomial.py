"""Revolve: binomial checkpointing reaches Griewank's minimum with at most `slots` kept states."""
from functools import lru_cache

import pytest
from hypothesis import given, settings, strategies as st

from checkpointing.binomial import Revolve, binomial_split, griewank_minimum, revolve_counts
from checkpointing.plan import ChainProfile, Record, Reverse, simulate


@lru_cache(maxsize=None)
def fewest_forwards(steps, slots):
    """Griewank's recursion, searched exhaustively: F(l, s) = min_j j + F(l-j, s-1) + F(j, s)."""
    if steps == 1:
        return 0
    if slots == 1:
        return steps * (steps - 1) // 2
    return min(j + fewest_forwards(steps - j, slots - 1) + fewest_forwards(j, slots)
               for j in range(1, steps))


def stats_of(slots, T, state=10, tape=30):
    profile = ChainProfile.uniform(T, state, tape)
    return simulate(Revolve(slots).plan(profile), profile=profile)


def test_closed_form_matches_the_exhaustive_recursion():
    for steps in range(1, 45):
        for slots in range(1, 10):
            assert griewank_minimum(steps, slots) == fewest_forwards(steps, slots), (steps, slots)


def test_split_points_are_optimal():
    for steps in range(2, 80):
        for slots in range(2, 10):
            j = binomial_split(steps, slots)
            assert 1 <= j < steps
            assert (j + griewank_minimum(steps - j, slots - 1) + griewank_minimum(j, slots)
                    == griewank_minimum(steps, slots)), (steps, slots, j)


@pytest.mark.parametrize("slots, forwards", [(10, 3636), (32, 2405)])
def test_the_issues_examples_for_a_thousand_steps(slots, forwards):
    assert griewank_minimum(1000, slots) == forwards
    assert stats_of(slots, 1000).advanced_steps == forwards


@given(T=st.integers(1, 300), slots=st.integers(1, 40))
@settings(max_examples=150, deadline=None)
def test_revolve_matches_griewank_minimum(T, slots):
    stats = stats_of(slots, T)
    assert stats.advanced_steps == griewank_minimum(T, slots)
    assert stats.recorded_steps == stats.reversed_steps == T
    assert stats.peak_tapes == 1 and stats.peak_states <= slots


@given(T=st.integers(1, 200), slots=st.integers(1, 30), state=st.integers(1, 99),
       tape=st.integers(1, 99))
@settings(max_examples=80, deadline=None)
def test_revolve_peaks_at_its_slots_the_current_state_and_one_tape(T, slots, state, tape):
    # the adaptive strategy relies on this to pick the most slots that fit a budget
    assert stats_of(slots, T, state, tape).peak_bytes == (min(slots, T - 1) + 1) * state + tape


def test_with_a_slot_for_every_state_each_step_runs_once_more_at_most():
    assert griewank_minimum(50, 49) == griewank_minimum(50, 500) == 49
    assert stats_of(500, 50).advanced_steps == 49 and stats_of(500, 50).peak_states == 49
    assert griewank_minimum(1, 3) == 0 and griewank_minimum(7, 1) == 21


def test_one_step_is_recorded_and_reversed_with_no_slot():
    assert list(Revolve(4).plan(ChainProfile.uniform(1))) == [Record(0), Reverse(0)]


def test_a_plan_can_be_replayed_and_sizes_do_not_change_it():
    uneven = ChainProfile(6, [1, 9, 2, 8, 3, 7], [5, 1, 5, 1, 5, 1])
    plan = Revolve(2).plan(uneven)
    assert list(plan) == list(plan) == list(Revolve(2).plan(ChainProfile.uniform(6)))
    assert plan.strategy == "revolve"
    assert simulate(plan, profile=uneven).advanced_steps == griewank_minimum(6, 2)


@pytest.mark.parametrize("slots", [0, -1, 2.5, "3", True])
def test_revolve_refuses_senseless_slots(slots):
    with pytest.raises(ValueError, match=r"slots must be a whole number >= 1, got"):
        Revolve(slots)


def test_griewank_minimum_refuses_an_empty_chain():
    with pytest.raises(ValueError, match="length must be a whole number >= 1, got 0"):
        griewank_minimum(0, 3)


@pytest.mark.slow
@pytest.mark.parametrize("slots", [20, 100_000])
def test_a_hundred_thousand_steps_plan_without_recursion(slots):
    stats = stats_of(slots, 100_000)
    assert stats.advanced_steps == griewank_minimum(100_000, slots)
    assert stats.peak_states == min(slots, 99_999)


@pytest.mark.parametrize("slots", [1, 2, 3, 5, 8, 40])
@pytest.mark.parametrize("T", [1, 2, 3, 4, 7, 16, 37, 100, 333])
def test_revolve_closed_form_counts_are_what_a_replay_counts(T, slots):
    plan = Revolve(slots).plan(ChainProfile.uniform(T))
    assert plan.check() == revolve_counts(T, min(slots, T))
    assert simulate(plan) == plan.check()  # a full replay agrees, and finds the plan valid


def test_a_revolve_plan_for_a_million_steps_is_counted_without_a_replay(monkeypatch):
    from checkpointing.plan import Replay
    monkeypatch.setattr(Replay, "run", lambda *a, **k: pytest.fail("replayed"))
    stats = Revolve(20).plan(ChainProfile.uniform(10**6)).check()
    assert stats.advanced_steps == griewank_minimum(10**6, 20) and stats.peak_states == 20
