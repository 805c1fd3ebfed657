"""Resources checked before they are spent: the memory estimate is made from sizes alone and
matches what a run really builds; runs that cannot fit are refused before any allocation."""
import time

import pytest

from bptt.training import resources
from bptt.training.resources import (InsufficientMemory, RunEstimate, check_fits,
                                     check_run_fits, estimate_run_bytes, parameter_count,
                                     sequence_profile)
from bptt.training.train import SequenceSetup
from checkpointing import Full, Periodic, Revolve, simulate
from tasks import make_task


@pytest.mark.parametrize("task, seq_len", [("adding", 30), ("reber", 20), ("text", 25),
                                           ("copy", 25)])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("batch, hidden", [(3, 7), (17, 33)])
def test_predicted_sizes_are_the_real_ones(task, seq_len, cell, batch, hidden):
    setup = SequenceSetup(task=make_task(task, seq_len=seq_len), cell=cell, hidden=hidden,
                          batch=batch, dtype="float64" if batch == 3 else "float32")
    model, inputs, targets = setup.first_batch()
    real = model.chain(inputs, targets).profile()
    predicted = sequence_profile(setup)
    assert predicted.length == real.length == seq_len
    assert (predicted.state_bytes[0], predicted.tape_bytes[0]) == (real.state_bytes[0],
                                                                   real.tape_bytes[0])
    assert parameter_count(setup) == sum(p.size for p in model.parameters())


def test_the_estimate_counts_the_plan_the_weights_and_the_data():
    setup = SequenceSetup(task=make_task("reber", seq_len=40), hidden=16, batch=4, steps=10)
    model, inputs, targets = setup.first_batch()
    profile = model.chain(inputs, targets).profile()
    estimate = estimate_run_bytes(setup, Full())
    weights = sum(p.data.nbytes for p in model.parameters())
    assert estimate.parts["cache"] == simulate(Full().plan(profile), profile=profile).peak_bytes
    assert estimate.parts["weights and gradients"] == 2 * weights
    assert estimate.parts["optimiser state"] == 2 * weights  # Adam: two moments
    assert estimate.parts["batches"] == 2 * (inputs.nbytes + targets.nbytes)
    revolve = estimate_run_bytes(setup, Revolve(3), reference=Periodic())
    assert revolve.parts["cache"] < estimate.parts["cache"]
    assert "reference gradient" in revolve.parts and "reference gradient" not in estimate.parts


@pytest.mark.parametrize("change", [dict(hidden=10**8), dict(batch=10**9), dict(steps=10**14),
                                    dict(seq_len=10**9 - 1)])
def test_absurd_sizes_are_refused_at_once_without_allocating(change):
    seq_len = change.pop("seq_len", 200)
    setup = SequenceSetup(task=make_task("reber", seq_len=seq_len), **change)
    started = time.perf_counter()
    with pytest.raises(InsufficientMemory, match=r"this run needs an estimated .*B \(.*\), "
                                                 r"more than the .* available"):
        check_run_fits(setup, Full())
    assert time.perf_counter() - started < 5  # a plan of 10^9 steps would take an hour


def test_a_limit_is_named_with_the_estimate():
    setup = SequenceSetup(task=make_task("adding", seq_len=50), hidden=8, batch=2, steps=5)
    estimate = check_run_fits(setup, Full(), limit=10**9)  # fits: returned
    with pytest.raises(InsufficientMemory) as refused:
        check_run_fits(setup, Full(), limit=estimate.total - 1)
    assert resources.format_bytes(estimate.total) in str(refused.value)
    assert "limit" in str(refused.value)
    assert isinstance(refused.value, MemoryError) and isinstance(refused.value, ValueError)
    check_run_fits(setup, Revolve(2), limit=estimate.total - 1)  # keeps less: fits


def test_a_plan_longer_than_the_cap_is_refused_before_planning():
    setup = SequenceSetup(task=make_task("adding", seq_len=resources.MAX_PLAN_STEPS + 1),
                          hidden=1, batch=1, steps=1)
    with pytest.raises(ValueError, match="past the longest bptt plans"):
        sequence_profile(setup)


def test_available_memory_is_read_from_the_machine(monkeypatch):
    found = resources.available_memory()
    assert found is not None and found[0] > 0
    monkeypatch.setattr(resources, "available_memory", lambda: (1000, "a test"))
    with pytest.raises(InsufficientMemory, match=r"more than the 1000 B available \(a test\)"):
        check_fits(RunEstimate({"cache": 1001}))
    check_fits(RunEstimate({"cache": 1000}))
    monkeypatch.setattr(resources, "available_memory", lambda: None)
    check_fits(RunEstimate({"cache": 10**30}))  # unknown: only an explicit limit refuses
    with pytest.raises(InsufficientMemory):
        check_fits(RunEstimate({"cache": 10**30}), limit=10**12)
