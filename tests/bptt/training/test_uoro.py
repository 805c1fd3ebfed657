"""UORO: its forward derivative is the cell's, its gradient is BPTT's in expectation, its memory
does not grow with T, and it is reproducible."""
import numpy as np
import pytest

from bptt.engine.tensor import Tensor, no_grad
from bptt.nn.rnn import RNN
from bptt.training.uoro import UORO, cell_jvp
from checkpointing import Full, Truncated, gradients

T, B, D, H = 6, 2, 2, 3


def problem(cell, T=T, dtype=np.float64):
    rng = np.random.default_rng(1)
    model = RNN(cell, D, H, 1, np.random.default_rng(3), dtype=dtype)
    x = rng.standard_normal((T, B, D)).astype(dtype)
    y = rng.standard_normal((T, B, 1)).astype(dtype)
    return model, x, y


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_cell_jvp_matches_central_differences(cell):
    model, x, _ = problem(cell)
    rng = np.random.default_rng(2)
    state = tuple(rng.standard_normal((B, H)) for _ in model.cell.state_names)
    direction = tuple(rng.standard_normal((B, H)) for _ in state)

    def step(s):
        with no_grad():
            return [t.data for t in model.cell(Tensor(x[0]), tuple(Tensor(a) for a in s))]

    e = 1e-6
    plus = step(tuple(a + e * d for a, d in zip(state, direction)))
    minus = step(tuple(a - e * d for a, d in zip(state, direction)))
    for p, m, jvp in zip(plus, minus, cell_jvp(model.cell, x[0], state, direction)):
        np.testing.assert_allclose(jvp, (p - m) / (2 * e), rtol=1e-7, atol=1e-9)


def samples(model, x, y, n):
    plan = UORO(seed=0).plan(model.chain(x, y).profile())
    out = []
    for _ in range(n):
        model.zero_grad()
        plan.run(model.chain(x, y))
        out.append(np.concatenate([p.grad.ravel() for p in model.parameters()]))
    return np.array(out)


@pytest.mark.parametrize("cell", ["rnn", "gru"])
def test_uoro_is_unbiased_for_bptt(cell):
    """The mean of many UORO gradients is full BPTT's within a few standard errors, while a
    biased gradient (truncated BPTT, one step) is many standard errors away: the test can fail."""
    model, x, y = problem(cell)
    full, _ = gradients(Full(), model.chain(x, y), model.parameters())
    truncated, _ = gradients(Truncated(1), model.chain(x, y), model.parameters())
    full = np.concatenate([g.ravel() for g in full.values()])
    truncated = np.concatenate([g.ravel() for g in truncated.values()])
    draws = samples(model, x, y, 400)
    error = draws.std(axis=0) / np.sqrt(len(draws)) + 1e-15
    assert np.max(np.abs(draws.mean(axis=0) - full) / error) < 5
    assert np.max(np.abs(truncated - full) / error) > 10
    assert np.std(draws, axis=0).max() > 0  # a noisy estimate, not BPTT in disguise


def test_uoro_memory_does_not_grow_with_T_and_runs_are_reproducible():
    peaks = []
    for length in (10, 80):
        model, x, y = problem("gru", T=length, dtype=np.float32)
        run = UORO().plan(model.chain(x, y).profile()).run(model.chain(x, y))
        peaks.append(run.peak_cache_bytes)
        assert run.stats.forward_steps == length and run.stats.peak_tapes == 1
    assert peaks[0] == peaks[1]
    model, x, y = problem("rnn")
    first, second = samples(model, x, y, 2), samples(model, x, y, 2)
    assert np.array_equal(first, second)       # the same seed, the same signs
    assert not np.array_equal(first[0], first[1])  # each run draws fresh ones


def test_uoro_plan_refuses_a_chain_of_another_length():
    model, x, y = problem("rnn")
    plan = UORO().plan(model.chain(x, y).profile())
    short, sx, sy = problem("rnn", T=3)
    with pytest.raises(ValueError, match="plan is for 6 steps but the chain has 3"):
        plan.run(short.chain(sx, sy))
