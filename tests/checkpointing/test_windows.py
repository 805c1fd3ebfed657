"""Windows: a chain that `fuses_runs` records and reverses a plan's windows in two calls.

The executor replaces each "Record(a..b-1), then at once Reverse(b-1..a) with loss, not kept"
by one window. Running a plan that way must change nothing but the time: the same loss, the
same gradients bit for bit, the same peak bytes (within the plan's prediction) as the same
plan run action by action.
"""
import numpy as np
import pytest

from bptt.nn.rnn import RNN, FusedSequenceChain
from bptt.training.memory import traced_peak
from checkpointing import (Adaptive, Full, Periodic, Record, Revolve, Reverse, Snapshot,
                           Truncated, execute, simulate)
from checkpointing.executor import _Window, _windows
from checkpointing.plan import Drop, Restore


def problem(cell, outputs, every_step, dtype, T=23, batch=3, hidden=5, seed=0):
    rng = np.random.default_rng(seed)
    model = RNN(cell, 4, hidden, outputs, np.random.default_rng(seed + 1), dtype=dtype,
                every_step=every_step)
    inputs = rng.standard_normal((T, batch, 4)).astype(dtype)
    shape = (T, batch, outputs) if every_step else (batch, outputs)
    return model, inputs, rng.standard_normal(shape).astype(dtype)


def run(model, inputs, targets, strategy, fused, input_grad=False):
    chain = model.chain(inputs, targets, input_grad=input_grad)
    chain.fuses_runs = fused
    model.zero_grad()
    profile = chain.profile()
    plan = strategy.plan(profile)
    done = execute(plan, chain)
    grads = {n: p.grad.copy() for n, p in model.named_parameters()}
    return done, grads, simulate(plan, profile=profile).peak_bytes, chain.input_grad


STRATEGIES = [Full(), Periodic(), Periodic(4), Revolve(3), Truncated(5), Truncated(3, 6),
              Adaptive(1)]


@pytest.mark.parametrize("strategy", STRATEGIES, ids=lambda s: repr(s))
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("outputs,every_step,dtype", [
    (1, True, np.float32), (3, True, np.float64), (1, False, np.float64)])
def test_windows_change_nothing_but_the_time(cell, outputs, every_step, dtype, strategy):
    model, inputs, targets = problem(cell, outputs, every_step, dtype)
    if isinstance(strategy, Adaptive):  # a third of full's cache
        profile = model.chain(inputs, targets).profile()
        strategy = Adaptive(simulate(Full().plan(profile), profile=profile).peak_bytes // 3)
    stepwise, stepwise_grads, predicted, stepwise_dx = run(model, inputs, targets, strategy,
                                                           fused=False, input_grad=True)
    fused, fused_grads, _, fused_dx = run(model, inputs, targets, strategy, fused=True,
                                          input_grad=True)
    assert fused.loss == stepwise.loss
    for name, grad in stepwise_grads.items():
        assert np.array_equal(fused_grads[name], grad), name
    assert np.array_equal(fused_dx, stepwise_dx)
    for a, b in zip(fused.initial_grad, stepwise.initial_grad):
        assert np.array_equal(a, b)
    assert fused.peak_cache_bytes == stepwise.peak_cache_bytes
    assert fused.peak_cache_bytes <= predicted


def test_full_and_checkpoint_run_as_windows_and_revolve_mostly_step_by_step():
    model, inputs, targets = problem("rnn", 1, True, np.float32, T=20)
    profile = model.chain(inputs, targets).profile()
    full = list(_windows(Full().plan(profile)))
    assert full == [_Window(0, 20)]
    segments = [a for a in _windows(Periodic(5).plan(profile)) if type(a) is _Window]
    assert [(w.start, w.stop) for w in segments] == [(15, 20), (10, 15), (5, 10), (0, 5)]
    revolve = list(_windows(Revolve(2).plan(profile)))
    assert sum(type(a) is Reverse for a in revolve) > 10


def test_only_whole_windows_with_their_losses_are_fused():
    kept = [Record(0), Record(1), Reverse(1, keep=True), Reverse(0)]
    assert list(_windows(kept)) == kept
    no_loss = [Record(0), Record(1), Reverse(1), Reverse(0, with_loss=False)]
    assert list(_windows(no_loss)) == no_loss
    single = [Record(0), Reverse(0)]
    assert list(_windows(single)) == single
    partly = [Snapshot(0), Record(0), Record(1), Record(2), Reverse(2), Restore(0),
              Record(0), Record(1), Drop(0), Reverse(1), Reverse(0)]
    assert list(_windows(partly)) == partly[:6] + [_Window(0, 2, (Drop(0),))]
    broken = [Record(0), Record(2)]
    assert list(_windows(broken)) == broken


def test_cross_entropy_chains_go_step_by_step():
    model = RNN("gru", 2, 3, 4, np.random.default_rng(0), loss="xent")
    chain = model.chain(np.zeros((5, 2, 2), np.float32), np.zeros((5, 2), np.int64))
    assert not chain.fuses_runs


def test_a_chain_that_overrides_reverse_is_not_bypassed_by_windows():
    class Counting(FusedSequenceChain):
        reversed = 0

        def reverse(self, i, tape, grad, with_loss=True, keep=False):
            Counting.reversed += 1
            return super().reverse(i, tape, grad, with_loss, keep)

    model, inputs, targets = problem("lstm", 1, True, np.float32, T=6)
    chain = Counting(model, inputs, targets)
    assert not chain.fuses_runs and model.chain(inputs, targets).fuses_runs
    execute(Full().plan(chain.profile()), chain)
    assert Counting.reversed == 6


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_a_window_allocates_no_more_than_its_steps_one_by_one(cell):
    """What tracemalloc sees of full's one window is at most what it sees of the same steps
    run action by action: no temporary as large as the window's states (a one-pass read-out
    once took one, and the tanh RNN's traced peak at T = 1000 went from 33 to 63 MiB)."""
    model, inputs, targets = problem(cell, 1, True, np.float32, T=400, batch=8, hidden=64)
    plan = Full().plan(model.chain(inputs, targets).profile())
    peaks = {}
    for fused in (False, True):
        def run():
            chain = model.chain(inputs, targets)
            chain.fuses_runs = fused
            return execute(plan, chain)
        run()  # warm-up: cached constants, lazy imports
        peaks[fused] = traced_peak(run)[0]
    assert peaks[True] <= peaks[False], peaks


@pytest.mark.parametrize("fused", [False, True], ids=["step_by_step", "windows"])
def test_a_non_finite_read_out_names_its_time_step_either_way(fused):
    model, inputs, targets = problem("rnn", 1, True, np.float32, T=9)
    targets[6, 1, 0] = 1e30  # finite, but its squared error overflows float32: step 6 only
    chain = model.chain(inputs, targets)
    chain.fuses_runs = fused
    with pytest.raises(FloatingPointError, match=r"^time step 6: mse_loss: the loss is not "
                                                 r"finite although every input is finite"):
        execute(Full().plan(chain.profile()), chain)
