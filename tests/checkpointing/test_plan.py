"""The plan vocabulary and its replay: invalid plans are refused at the action at fault."""
import pytest

from checkpointing.plan import (Advance, ChainProfile, Cut, Discard, Drop, Plan, PlanError,
                                Record, Restore, Reverse, Snapshot, simulate)


def full_actions(T):
    return [Record(i) for i in range(T)] + [Reverse(i) for i in reversed(range(T))]


def test_full_plan_counts_every_step_once():
    stats = simulate(Plan(4, "full", full_actions(4)))
    assert (stats.forward_steps, stats.recorded_steps, stats.advanced_steps) == (4, 4, 0)
    assert (stats.reversed_steps, stats.peak_tapes, stats.peak_states) == (4, 4, 0)


def test_bytes_follow_the_profile():
    profile = ChainProfile(3, [10, 20, 30], [100, 200, 300])
    stats = simulate(Plan(3, "full", full_actions(3)), profile=profile)
    # all three tapes and the final state (sized like state 2) held at once
    assert stats.peak_bytes == 100 + 200 + 300 + 30


def test_snapshot_restore_plan_is_valid_and_counts_recomputation():
    actions = [Snapshot(0), Advance(0, 2), Record(2), Reverse(2), Restore(0), Record(0),
               Record(1), Reverse(1), Reverse(0), Drop(0)]
    stats = simulate(Plan(3, "hand", actions))
    assert stats.advanced_steps == 2 and stats.recorded_steps == 3 and stats.peak_states == 1


@pytest.mark.parametrize("actions, exact, message", [
    ([Record(1)], True, "current state is 0, not 1"),
    ([Restore(0)], True, "state 0 is not kept"),
    ([Snapshot(0), Snapshot(0)], True, "already kept"),
    ([Reverse(0)], True, "step 0 has no tape"),
    ([Record(0), Record(1), Record(2), Reverse(2), Reverse(0)], False,
     "gradient held is that of state 2"),
    ([Record(0), Record(1), Record(2), Reverse(2), Reverse(2)], False, "has no tape"),
    ([Advance(0, 5)], True, "stop must be in 1..3"),
    ([Record(0), Record(1), Record(2), Reverse(1)], True, "expected Reverse(2)"),
    ([Record(0), Record(1), Record(2), Reverse(2), Cut(2)], True, "never cuts"),
    ([Discard(1)], True, "step 1 has no tape"),
    ([Drop(2)], True, "state 2 is not kept"),
    (["advance"], True, "not a plan action"),
])
def test_invalid_actions_are_named(actions, exact, message):
    with pytest.raises(PlanError, match=message.replace("(", r"\(").replace(")", r"\)")):
        simulate(actions, length=3, exact=exact)


def test_a_plan_must_finish_its_work():
    with pytest.raises(PlanError, match="never adds the loss gradient of step"):
        simulate([Record(0), Record(1), Reverse(1), Discard(0)], length=2, exact=False)
    with pytest.raises(PlanError, match="ends holding tapes of step"):
        simulate([Record(0), Record(1), Reverse(1, keep=True), Reverse(0)], length=2,
                 exact=False)
    with pytest.raises(PlanError, match="ends holding state"):
        simulate([Snapshot(0)] + full_actions(2), length=2)


def test_a_loss_gradient_is_added_once():
    actions = [Record(0), Reverse(0, keep=True), Cut(0), Reverse(0)]
    with pytest.raises(PlanError, match="already added"):
        simulate(actions, length=1, exact=False)


def test_profile_must_match_the_chain():
    with pytest.raises(ValueError, match="tape_bytes has 2 entries for a chain of 3 steps"):
        ChainProfile(3, [1, 1, 1], [1, 1])
    with pytest.raises(ValueError, match="at least one step"):
        ChainProfile.uniform(0)


def test_plans_can_be_streams_and_are_re_iterable():
    plan = Plan(2, "full", lambda: iter(full_actions(2)))
    assert list(plan) == list(plan) == full_actions(2)
    assert "Reverse(index=1" in plan.describe()
