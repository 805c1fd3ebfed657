"""`FusedSequenceChain` (a fused cell's chain, run on arrays with block GEMMs) computes what the
composed cells' engine chain computes, for every cell, loss and strategy; bitwise equality across
exact strategies is `tests/checkpointing/test_equivalence.py`'s."""
import numpy as np
import pytest

from bptt.nn.rnn import RNN, FusedSequenceChain, SequenceChain
from checkpointing import (Adaptive, Full, Periodic, Revolve, Truncated, assert_same_gradients,
                           execute, gradients, simulate)

CELLS = ["rnn", "lstm", "gru"]


def twins(cell, loss="mse", every_step=True, T=11, batch=3, seed=0):
    """A fused model and its composed twin (same weights), inputs and targets."""
    rng = np.random.default_rng(seed)
    out = 4 if loss == "xent" else 2
    models = [RNN(cell, 2, 5, out, np.random.default_rng(seed + 1), dtype=np.float64,
                  loss=loss, every_step=every_step, fused=fused) for fused in (True, False)]
    inputs = rng.standard_normal((T, batch, 2))
    lead = (T, batch) if every_step else (batch,)
    targets = (rng.integers(0, out, lead) if loss == "xent"
               else rng.standard_normal(lead + (out,)))
    return models, inputs, targets


@pytest.mark.parametrize("strategy", [Full(), Periodic(), Revolve(2), Truncated(3, 5)],
                         ids=["full", "checkpoint", "revolve", "truncated"])
@pytest.mark.parametrize("loss, every_step", [("mse", True), ("mse", False), ("xent", True),
                                              ("xent", False)])
@pytest.mark.parametrize("cell", CELLS)
def test_fused_chain_agrees_with_the_composed_cells(cell, loss, every_step, strategy):
    (fused, composed), inputs, targets = twins(cell, loss, every_step)
    results = []
    for model in (fused, composed):
        chain = model.chain(inputs, targets, input_grad=True)
        grads, run = gradients(strategy, chain, model.parameters())
        results.append((grads, run, chain.input_grad))
    assert isinstance(fused.chain(inputs, targets), FusedSequenceChain)
    assert type(composed.chain(inputs, targets)) is SequenceChain
    (fg, frun, fx), (cg, crun, cx) = results
    assert frun.loss == pytest.approx(crun.loss, rel=1e-12)
    assert fg.keys() == cg.keys()
    for name in fg:
        np.testing.assert_allclose(fg[name], cg[name], rtol=1e-10, atol=1e-13, err_msg=name)
    np.testing.assert_allclose(fx, cx, rtol=1e-10, atol=1e-13)
    for a, b in zip(frun.initial_grad, crun.initial_grad):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("edge", [lambda b: 1, lambda b: b - 1, lambda b: b, lambda b: b + 1,
                                  lambda b: 2 * b, lambda b: 2 * b + 1],
                         ids=["1", "b-1", "b", "b+1", "2b", "2b+1"])
@pytest.mark.parametrize("strategy", [Periodic(2), Full()], ids=["checkpoint2", "full"])
def test_block_edges_change_nothing(edge, strategy):
    """Sequences shorter than a block, ending on a block edge or just past one."""
    (fused, composed), _, _ = twins("gru")
    T = edge(fused.chain(*twins("gru")[1:]).block)
    (fused, composed), inputs, targets = twins("gru", T=T)
    grads = [gradients(strategy, m.chain(inputs, targets), m.parameters())[0]
             for m in (fused, composed)]
    for name in grads[0]:
        np.testing.assert_allclose(grads[0][name], grads[1][name], rtol=1e-10, atol=1e-13)


def test_the_block_holds_a_bounded_number_of_rows():
    """4 steps at least, 32 at most, a block's (B, G) rows within BLOCK_NUMBERS above 4."""
    size = FusedSequenceChain.block_size
    assert size(32, 1024) == 4 and size(32, 256) == 4 and size(1, 16) == 32
    for batch in (1, 3, 32, 512):
        for width in (1, 16, 256, 1024, 4096):
            block = size(batch, width)
            assert 4 <= block <= 32 and block & (block - 1) == 0
            assert block == 4 or block * batch * width <= FusedSequenceChain.BLOCK_NUMBERS
            assert block == 32 or 2 * block * batch * width > FusedSequenceChain.BLOCK_NUMBERS


def test_the_chain_reads_the_weights_at_each_run():
    (model, _), inputs, targets = twins("lstm")
    chain = model.chain(inputs, targets)
    plan = Full().plan(chain.profile())
    execute(plan, chain)
    for p in model.parameters():
        p.data *= 0.5  # an optimiser step between two runs of the same chain
    model.zero_grad()
    again = execute(plan, chain)
    first = {p.name: p.grad.copy() for p in model.parameters()}
    model.zero_grad()
    fresh = execute(plan, model.chain(inputs, targets))
    assert again.loss == fresh.loss
    for p in model.parameters():
        assert np.array_equal(first[p.name], p.grad), p.name


def test_frozen_parameters_get_no_gradient():
    (model, _), inputs, targets = twins("rnn")
    model.cell.W_h.requires_grad = False
    model.zero_grad()
    execute(Full().plan(model.chain(inputs, targets).profile()), model.chain(inputs, targets))
    assert model.cell.W_h.grad is None and model.cell.W_x.grad is not None


@pytest.mark.parametrize("cell", CELLS)
def test_fused_tapes_cache_no_more_than_the_composed_ones(cell):
    (fused, composed), inputs, targets = twins(cell)
    sizes = [m.chain(inputs, targets).profile() for m in (fused, composed)]
    assert sizes[0].state_bytes[0] == sizes[1].state_bytes[0]
    assert 0 < sizes[0].tape_bytes[0] <= sizes[1].tape_bytes[0]


@pytest.mark.parametrize("cell", CELLS)
def test_predict_is_the_same_fused_or_composed(cell):
    (fused, composed), inputs, _ = twins(cell)
    np.testing.assert_allclose(fused.predict(inputs), composed.predict(inputs), rtol=1e-12,
                               atol=1e-14)


@pytest.mark.parametrize("cell", CELLS)
def test_exact_strategies_stay_bitwise_at_benchmark_widths_in_float32(cell):
    """Block GEMMs of realistic shapes (BLAS kernels differ with size) keep the promise."""
    model = RNN(cell, 32, 64, 1, np.random.default_rng(1), dtype=np.float32)
    rng = np.random.default_rng(0)
    inputs = rng.standard_normal((37, 32, 32)).astype(np.float32)
    targets = rng.standard_normal((37, 32, 1)).astype(np.float32)
    profile = model.chain(inputs, targets).profile()
    budget = simulate(Periodic().plan(profile), profile=profile).peak_bytes
    assert_same_gradients(lambda: model.chain(inputs, targets), model.parameters(),
                          [Periodic(), Periodic(5), Revolve(3), Adaptive(budget)])
