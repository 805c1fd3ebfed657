"""Adaptive: the least recomputation within a byte budget, on uniform and uneven chains."""
from functools import lru_cache

import pytest
from hypothesis import assume, given, settings, strategies as st

from checkpointing.adaptive import Adaptive, recomputation
from checkpointing.binomial import Revolve, griewank_minimum
from checkpointing.full import Full
from checkpointing.plan import ChainProfile, simulate


def run(strategy, profile):
    plan = strategy.plan(profile)
    return simulate(plan, profile=profile), recomputation(plan, profile)


def full_peak(profile):
    return simulate(Full().plan(profile), profile=profile).peak_bytes


def best_revolve(profile, budget):
    """The least recomputation of any Revolve plan within the budget, by trying every slot count."""
    costs = [c for stats, c in (run(Revolve(s), profile) for s in range(1, profile.length + 1))
             if stats.peak_bytes <= budget]
    return min(costs, default=float("inf"))


def optimum(profile, budget):
    """The keep-a-state-or-keep-a-tape program searched exhaustively, in bytes (tiny chains)."""
    T = profile.length
    state = [profile.state_bytes[min(i, T - 1)] for i in range(T + 1)]
    tape = profile.tape_bytes

    @lru_cache(maxsize=None)
    def least(a, b, m):
        if m < state[a]:
            return float("inf")
        if b - a == 1:
            return 0.0 if m >= tape[a] + state[b] else float("inf")
        best = least(a + 1, b, m - tape[a])
        for j in range(1, b - a):
            advance = sum(profile.cost(i) for i in range(a, a + j))
            best = min(best, advance + least(a + j, b, m - state[a]) + least(a, a + j, m))
        return best

    return least(0, T, budget)


uniform_chains = st.builds(ChainProfile.uniform, st.integers(1, 300), st.integers(1, 64),
                           st.integers(1, 256))


@st.composite
def uneven_chains(draw, longest=24, largest=4096):
    T = draw(st.integers(1, longest))
    sizes = st.lists(st.integers(1, largest), min_size=T, max_size=T)
    costs = st.lists(st.sampled_from([0.5, 1.0, 2.0, 3.0]), min_size=T, max_size=T)
    return ChainProfile(T, draw(sizes), draw(sizes), draw(st.none() | costs))


def budget_between(profile, fraction):
    """A budget `fraction` of the way from the minimum to full's peak."""
    low, high = Adaptive.minimum_budget(profile), full_peak(profile)
    return low + int(fraction * max(0, high - low))


@given(profile=uniform_chains | uneven_chains(), fraction=st.floats(0, 1.1))
@settings(max_examples=120, deadline=None)
def test_adaptive_fits_the_budget_and_never_loses_to_revolve_or_full(profile, fraction):
    budget = budget_between(profile, fraction)
    stats, cost = run(Adaptive(budget), profile)
    assert stats.peak_bytes <= budget and stats.reversed_steps == profile.length
    if full_peak(profile) <= budget:
        assert cost == 0
    if profile.length <= 64:  # trying every Revolve is slow beyond
        assert cost <= best_revolve(profile, budget)


@given(profile=uniform_chains | uneven_chains(), slots=st.integers(1, 40))
@settings(max_examples=80, deadline=None)
def test_adaptive_recomputes_no_more_than_revolve_with_the_same_memory(profile, slots):
    revolve, revolve_cost = run(Revolve(slots), profile)
    stats, cost = run(Adaptive(revolve.peak_bytes), profile)
    assert stats.peak_bytes <= revolve.peak_bytes and cost <= revolve_cost


@given(profile=uneven_chains(longest=7, largest=9) | st.builds(
           ChainProfile.uniform, st.integers(1, 9), st.integers(1, 5), st.integers(1, 9)),
       extra=st.integers(0, 40))
@settings(max_examples=150, deadline=None)
def test_adaptive_is_the_optimum_of_its_program_when_bytes_are_few(profile, extra):
    budget = Adaptive.minimum_budget(profile) + extra
    assume(budget <= 256)  # memory in whole bytes: no rounding
    assert recomputation(Adaptive(budget).plan(profile), profile) == optimum(profile, budget)


def test_uneven_layers_are_planned_by_their_sizes():
    # wide and narrow layers: keeping the narrow states and the small tapes beats counting slots
    widths = [64, 4, 4, 64, 4, 4, 64, 4, 4, 64, 4, 4] * 4
    profile = ChainProfile(len(widths), widths, [3 * w for w in widths])
    budget = full_peak(profile) // 4
    stats, cost = run(Adaptive(budget), profile)
    assert stats.peak_bytes <= budget
    assert cost < best_revolve(profile, budget) / 2


def test_a_hundred_layer_chain_is_planned_exactly_enough():
    widths = [(37 * i) % 97 + 3 for i in range(100)]
    profile = ChainProfile(100, [8 * w for w in widths], [24 * w for w in widths])
    for fraction in (0.05, 0.2):
        budget = int(full_peak(profile) * fraction)
        stats, cost = run(Adaptive(budget), profile)
        assert stats.peak_bytes <= budget and cost <= best_revolve(profile, budget)


@pytest.mark.parametrize("fraction", [0.0, 0.01, 0.1, 0.5, 0.99])
def test_a_thousand_uniform_steps(fraction):
    profile = ChainProfile.uniform(1000, 10, 30)
    budget = budget_between(profile, fraction)
    stats, cost = run(Adaptive(budget), profile)
    slots = min((budget - 30) // 10 - 1, 999)  # the most Revolve fits (test_binomial)
    assert stats.peak_bytes <= budget and cost <= griewank_minimum(1000, slots)


def test_full_is_the_plan_when_it_fits():
    profile = ChainProfile(3, [10, 20, 30], [100, 200, 300])
    plan = Adaptive(full_peak(profile)).plan(profile)
    assert plan.strategy == "adaptive"
    assert list(plan) == list(Full().plan(profile))


@given(profile=uniform_chains | uneven_chains(longest=60))
@settings(max_examples=60, deadline=None)
def test_the_minimum_is_what_full_or_one_slot_revolve_needs(profile):
    leanest = min(full_peak(profile), run(Revolve(1), profile)[0].peak_bytes)
    assert Adaptive.minimum_budget(profile) == leanest


def test_the_minimum_is_the_leanest_plans_peak():
    profile = ChainProfile.uniform(10, 1024, 2048)
    assert Adaptive.minimum_budget(profile) == 4096  # state 0, the current state, one tape
    assert run(Adaptive(4096), profile)[0].peak_bytes == 4096
    short = ChainProfile.uniform(1, 1024, 2048)
    assert Adaptive.minimum_budget(short) == full_peak(short) == 3072


def test_a_budget_below_the_minimum_names_it():
    profile = ChainProfile.uniform(10, 1024, 2048)
    with pytest.raises(ValueError, match="budget 1000 B is below the minimum 4096 B that any "
                                         "plan for this chain needs"):
        Adaptive(1000).plan(profile)
    with pytest.raises(ValueError, match="below the minimum 4096 B"):
        Adaptive(4095).plan(profile)


@pytest.mark.parametrize("budget", [0, -5, 1.5, "4096", True, None])
def test_adaptive_refuses_senseless_budgets(budget):
    with pytest.raises(ValueError, match="budget must be a whole number of bytes >= 1, got"):
        Adaptive(budget)


def test_recomputation_weighs_steps_by_their_cost():
    profile = ChainProfile(3, [1, 1, 1], [1, 1, 1], [1.0, 10.0, 100.0])
    assert recomputation(Full().plan(profile), profile) == 0
    # one slot: steps 0..1 advanced to reach step 2, step 0 to reach step 1
    assert recomputation(Revolve(1).plan(profile), profile) == 1 + 10 + 1


@pytest.mark.slow
def test_a_hundred_thousand_uniform_steps_plan_in_seconds():
    profile = ChainProfile.uniform(100_000, 10, 30)
    budget = full_peak(profile) // 10
    stats, cost = run(Adaptive(budget), profile)
    slots = min((budget - 30) // 10 - 1, 99_999)
    assert stats.peak_bytes <= budget and cost <= griewank_minimum(100_000, slots)
