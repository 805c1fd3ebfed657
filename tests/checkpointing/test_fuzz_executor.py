"""The executor, fuzzed: whatever plan it is given, it either runs it exactly or refuses it whole.

Valid plans from every strategy, on small random recurrent chains, give `full`'s gradients bit
for bit (the exact ones) and never hold more bytes than `simulate` counted. Invalid plans --
random action streams, or valid plans with one action removed, duplicated or altered -- are
refused with `PlanError` before a single step runs: the chain sees no call at all. A mutated plan
that `simulate` still accepts must then also run exactly: acceptance means correctness.
"""
import dataclasses

import numpy as np
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from bptt.nn.rnn import RNN
from checkpointing import (Adaptive, Advance, Cut, Discard, Drop, Full, OnlineCheckpointing,
                           Periodic, Plan, PlanError, Record, Restore, Reverse, Revolve, Snapshot,
                           Truncated, execute, execute_online, gradients, simulate)

SETTINGS = settings(max_examples=400, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def counted(chain):
    """`chain`, whatever its class, with the steps the executor asks of it counted in `calls`."""
    chain.calls = 0
    for name in ("advance", "record", "reverse"):
        def count(*args, _step=getattr(chain, name), **kwargs):
            chain.calls += 1
            return _step(*args, **kwargs)
        setattr(chain, name, count)
    if getattr(chain, "fuses_runs", False):  # a window is its steps, recorded and reversed
        def record_run(start, stop, state, _run=chain.record_run):
            chain.calls += stop - start
            return _run(start, stop, state)

        def reverse_run(run, grad, _reverse=chain.reverse_run):
            chain.calls += len(run.caches)
            return _reverse(run, grad)
        chain.record_run, chain.reverse_run = record_run, reverse_run
    return chain


@st.composite
def problems(draw):
    """(model, inputs, targets) of a small random recurrent chain."""
    cell = draw(st.sampled_from(["rnn", "lstm", "gru"]))
    T, B = draw(st.integers(1, 10)), draw(st.integers(1, 3))
    D, H = draw(st.integers(1, 3)), draw(st.integers(1, 4))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    every_step = draw(st.booleans())
    seed = draw(st.integers(0, 2**16))
    model = RNN(cell, D, H, 2, np.random.default_rng(seed), dtype=dtype, every_step=every_step)
    rng = np.random.default_rng(seed + 1)
    inputs = rng.standard_normal((T, B, D)).astype(dtype)
    targets = rng.standard_normal((T, B, 2) if every_step else (B, 2)).astype(dtype)
    return model, inputs, targets


@st.composite
def strategies_for(draw, T, profile):
    """Any strategy with any valid parameters for a chain of T steps."""
    kind = draw(st.sampled_from(["full", "truncated", "checkpoint", "revolve", "adaptive",
                                 "online"]))
    if kind == "full":
        return Full()
    if kind == "truncated":
        k1 = draw(st.integers(1, T + 1))
        return Truncated(k1, draw(st.integers(k1, T + 2)))
    if kind == "checkpoint":
        return Periodic(draw(st.none() | st.integers(1, T + 1)))
    if kind == "revolve":
        return Revolve(draw(st.integers(1, T + 2)))
    if kind == "online":
        return OnlineCheckpointing(draw(st.integers(1, T + 2)))
    minimum = Adaptive.minimum_budget(profile)
    full = simulate(Full().plan(profile), profile=profile).peak_bytes
    return Adaptive(draw(st.integers(minimum, max(minimum, full + 64))))


def reference(model, inputs, targets):
    grads, run = gradients(Full(), model.chain(inputs, targets), model.parameters())
    return grads, run


def assert_gradients_equal(model, expected, run, expected_run):
    for k, p in enumerate(model.parameters()):
        key = p.name if p.name in expected else str(k)
        got = np.zeros_like(p.data) if p.grad is None else p.grad
        assert np.array_equal(got, expected[key]), key
    assert all(np.array_equal(a, b) for a, b in zip(run.initial_grad, expected_run.initial_grad))
    assert run.loss == expected_run.loss


def run_plan(plan, model, inputs, targets):
    for p in model.parameters():
        p.zero_grad()
    return execute(plan, model.chain(inputs, targets))


@SETTINGS
@given(st.data())
def test_every_valid_plan_runs_exactly_within_what_simulate_counted(data):
    model, inputs, targets = data.draw(problems())
    profile = model.chain(inputs, targets).profile()
    strategy = data.draw(strategies_for(inputs.shape[0], profile))
    expected, expected_run = reference(model, inputs, targets)
    plan = strategy.plan(profile)
    stats = simulate(plan, profile=profile)
    run = run_plan(plan, model, inputs, targets)
    assert run.peak_cache_bytes <= stats.peak_bytes
    if plan.exact:
        assert_gradients_equal(model, expected, run, expected_run)
    if isinstance(strategy, OnlineCheckpointing):  # and as a stream, deciding step by step
        for p in model.parameters():
            p.zero_grad()
        streamed = execute_online(OnlineCheckpointing(strategy.slots),
                                  model.chain(inputs, targets), profile)
        assert_gradients_equal(model, expected, streamed, expected_run)


def actions(T):
    index = st.integers(-1, T + 1)
    return st.one_of(
        st.builds(Advance, index, index), st.builds(Snapshot, index), st.builds(Restore, index),
        st.builds(Drop, index), st.builds(Record, index), st.builds(Discard, index),
        st.builds(Cut, index), st.builds(Reverse, index, st.booleans(), st.booleans()))


@st.composite
def mutated(draw, plan, T):
    """`plan`'s actions with one removed, duplicated, replaced, or its index shifted."""
    steps = list(plan)
    k = draw(st.integers(0, len(steps) - 1))
    how = draw(st.sampled_from(["remove", "duplicate", "replace", "shift", "swap"]))
    if how == "remove":
        del steps[k]
    elif how == "duplicate":
        steps.insert(k, steps[k])
    elif how == "replace":
        steps[k] = draw(actions(T))
    elif how == "swap" and k + 1 < len(steps):
        steps[k], steps[k + 1] = steps[k + 1], steps[k]
    else:
        field = "start" if isinstance(steps[k], Advance) else "index"
        if isinstance(steps[k], Advance) and draw(st.booleans()):
            field = "stop"
        shift = draw(st.sampled_from([-2, -1, 1, 2]))
        steps[k] = dataclasses.replace(steps[k], **{field: getattr(steps[k], field) + shift})
    return steps


def check_refused_or_exact(steps, exact, model, inputs, targets, profile):
    """Refused with no step run, or, if `simulate` accepts it, run like any valid plan."""
    T = inputs.shape[0]
    plan = Plan(T, "fuzzed", steps, exact=exact)
    try:
        stats = simulate(plan, profile=profile)
    except PlanError:
        chain = counted(model.chain(inputs, targets))
        try:
            execute(plan, chain)
        except PlanError:
            assert chain.calls == 0, "a step ran before the plan was refused"
        else:
            raise AssertionError("execute ran a plan that simulate refuses")
        return False
    expected, expected_run = reference(model, inputs, targets)
    run = run_plan(plan, model, inputs, targets)
    assert run.peak_cache_bytes <= stats.peak_bytes
    if exact:
        assert_gradients_equal(model, expected, run, expected_run)
    return True


@SETTINGS
@given(st.data())
def test_a_mutated_plan_is_refused_before_any_step_or_still_runs_exactly(data):
    model, inputs, targets = data.draw(problems())
    T = inputs.shape[0]
    profile = model.chain(inputs, targets).profile()
    plan = data.draw(strategies_for(T, profile)).plan(profile)
    steps = data.draw(mutated(plan, T))
    accepted = check_refused_or_exact(steps, plan.exact, model, inputs, targets, profile)
    event("still valid" if accepted else "refused")


@SETTINGS
@given(st.data())
def test_a_random_action_stream_is_refused_before_any_step(data):
    model, inputs, targets = data.draw(problems())
    T = inputs.shape[0]
    steps = data.draw(st.lists(actions(T), max_size=3 * T + 4))
    exact = data.draw(st.booleans())
    profile = model.chain(inputs, targets).profile()
    accepted = check_refused_or_exact(steps, exact, model, inputs, targets, profile)
    event("valid by chance" if accepted else "refused")


def test_the_counting_chain_sees_every_step_of_a_plan_that_runs():
    model = RNN("rnn", 1, 2, 1, np.random.default_rng(0), dtype=np.float64)
    inputs, targets = np.ones((5, 1, 1)), np.ones((5, 1, 1))
    for strategy in (Revolve(2), Full()):  # mostly single steps; one window
        plan = strategy.plan(model.chain(inputs, targets).profile())
        stats = simulate(plan)
        chain = counted(model.chain(inputs, targets))
        execute(plan, chain)
        assert chain.calls == stats.forward_steps + stats.reversed_steps >= 10
