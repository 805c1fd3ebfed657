"""The executor checks a plan once while it lives (a training loop runs one plan per step), still
refuses invalid plans before any step runs, and always tells the chain the plan has finished."""
import numpy as np
import pytest

from bptt.nn.rnn import RNN
from checkpointing import Full, Plan, PlanError, Record, Reverse, execute
from checkpointing.plan import Replay


def problem(T=6):
    model = RNN("rnn", 2, 3, 1, np.random.default_rng(0), dtype=np.float64)
    rng = np.random.default_rng(1)
    return model, rng.standard_normal((T, 2, 2)), rng.standard_normal((T, 2, 1))


def test_a_plan_run_again_is_not_replayed_again(monkeypatch):
    model, inputs, targets = problem()
    plan = Full().plan(model.chain(inputs, targets).profile())
    calls = []
    real = Replay.run
    monkeypatch.setattr(Replay, "run", lambda *a, **k: calls.append(1) or real(*a, **k))
    first = execute(plan, model.chain(inputs, targets))
    second = execute(plan, model.chain(inputs, targets))
    assert len(calls) == 1 and first.stats == second.stats
    execute(Full().plan(model.chain(inputs, targets).profile()), model.chain(inputs, targets))
    assert len(calls) == 2  # another plan is checked


def test_a_plan_cannot_be_changed_after_it_was_checked():
    actions = [Record(0), Record(1), Reverse(1), Reverse(0)]
    plan = Plan(2, "hand", actions)
    plan.check()
    actions.pop()  # the caller's list, not the plan's
    assert len(list(plan)) == 4 and isinstance(plan.actions, tuple)


def test_an_invalid_plan_is_still_refused_before_any_step_runs():
    model, inputs, targets = problem(2)
    chain = model.chain(inputs, targets)
    ran = []
    chain.record = lambda *a: ran.append(a)
    bad = Plan(2, "bad", [Record(0), Record(1), Reverse(0), Reverse(1)])
    for _ in range(2):
        with pytest.raises(PlanError, match="expected Reverse\\(1\\)"):
            execute(bad, chain)
    assert ran == []


@pytest.mark.parametrize("fused", [False, True], ids=["step_by_step", "windows"])
def test_the_chain_is_told_the_plan_finished_even_when_a_step_fails(fused):
    model, inputs, targets = problem()
    chain = model.chain(inputs, targets)
    assert chain.fuses_runs  # full's one window goes through reverse_run
    chain.fuses_runs = fused
    plan = Full().plan(chain.profile())
    finished = []
    chain.finish = lambda: finished.append(True)
    failing = lambda *a, **k: (_ for _ in ()).throw(FloatingPointError("boom"))  # noqa: E731
    setattr(chain, "reverse_run" if fused else "reverse", failing)
    with pytest.raises(FloatingPointError, match="boom"):
        execute(plan, chain)
    assert finished == [True]
