"""The gradient-equivalence suite: what every memory strategy promises, checked on real chains.

Exact strategies give gradients *bitwise* equal to `full`'s (numpy.array_equal): recomputation
runs the same operations on the same values in the same order, and the reverse sweep accumulates
in the same order whatever was kept. `full` itself agrees with one backward pass over the whole
unrolled graph (to rounding) and with central finite differences in float64. `truncated` equals
`full` when its window covers the sequence, and otherwise the gradient of the explicitly detached
objective, computed here independently.
"""
import numpy as np
import pytest

from bptt import backward, no_grad, Tensor
from bptt.nn.layer_chain import LayerChain
from bptt.nn.linear import MLP
from bptt.nn.rnn import RNN
from checkpointing import (Adaptive, Advance, Full, OnlineCheckpointing, Periodic, PlanError,
                           Record, Revolve, Truncated, assert_same_gradients, execute,
                           execute_online, gradients, simulate)

CELLS = ["rnn", "lstm", "gru"]
LENGTHS = [1, 2, 3, 7, 64, 1000]


def make_problem(cell, T, every_step=True, seed=0, batch=2, hidden=3):
    rng = np.random.default_rng(seed)
    model = RNN(cell, 2, hidden, 2, np.random.default_rng(seed + 1), dtype=np.float64,
                every_step=every_step)
    inputs = rng.standard_normal((T, batch, 2))
    targets = rng.standard_normal((T, batch, 2) if every_step else (batch, 2))
    return model, inputs, targets


def exact_strategies(chain):
    """Every exact strategy at several settings, budgets relative to full's cache."""
    profile = chain.profile()
    full_peak = simulate(Full().plan(profile), profile=profile).peak_bytes
    minimum = Adaptive.minimum_budget(profile)
    budgets = sorted({max(minimum, int(full_peak * f)) for f in (1.0, 0.3, 0.1, 0.0)})
    T = chain.length
    return ([Periodic(), Periodic(1), Periodic(max(1, T // 3))]
            + [Revolve(s) for s in (1, 2, 5, 32) if s > 1 or T <= 64]  # 1 slot: T^2/2 forwards
            + [Adaptive(b) for b in budgets])


@pytest.mark.parametrize("T", [pytest.param(T, marks=pytest.mark.slow) if T >= 1000 else T
                               for T in LENGTHS])
@pytest.mark.parametrize("cell", CELLS)
def test_exact_strategies_give_fulls_gradients_bit_for_bit(cell, T):
    model, inputs, targets = make_problem(cell, T)
    chain = model.chain(inputs, targets)
    assert_same_gradients(lambda: model.chain(inputs, targets), model.parameters(),
                          exact_strategies(chain))


@pytest.mark.parametrize("cell", CELLS)
def test_input_gradients_are_bit_for_bit_too(cell):
    model, inputs, targets = make_problem(cell, 23, every_step=False)
    reference = model.chain(inputs, targets, input_grad=True)
    gradients(Full(), reference, model.parameters())
    assert np.any(reference.input_grad != 0)
    for strategy in exact_strategies(reference):
        chain = model.chain(inputs, targets, input_grad=True)
        gradients(strategy, chain, model.parameters())
        assert np.array_equal(chain.input_grad, reference.input_grad), strategy


def unrolled_backward(model, inputs, targets, windows=None):
    """Gradients from one backward over the whole graph, built step by step with Tensors.

    `windows`: truncated BPTT's objective, as (first step, first loss step, end) triples: the
    state at `first step` is a constant, and the losses of steps first-loss..end-1 count.
    """
    T = inputs.shape[0]
    model.zero_grad()
    chain = model.chain(inputs, targets)
    total = 0.0
    for start, own, end in windows or [(0, 0, T)]:
        state = chain.initial_state()
        with no_grad():
            for t in range(start):
                state = chain.advance(t, state)
        state = tuple(Tensor(a) for a in state)
        losses = []
        for t in range(start, end):
            state, loss = chain.step(t, state, need_loss=True)
            if loss is not None and t >= own:
                losses.append(loss)
        objective = losses[0]
        for loss in losses[1:]:
            objective = objective + loss
        backward([objective])
        total += float(objective.data)
    return total, {p.name: p.grad.copy() for p in model.parameters()}


@pytest.mark.parametrize("cell", CELLS)
def test_full_agrees_with_one_backward_over_the_whole_graph(cell):
    model, inputs, targets = make_problem(cell, 40)
    loss, expected = unrolled_backward(model, inputs, targets)
    model.zero_grad()
    run = execute(Full().plan(model.chain(inputs, targets).profile()),
                  model.chain(inputs, targets))
    assert run.loss == pytest.approx(loss, rel=1e-12)
    for p in model.parameters():
        np.testing.assert_allclose(p.grad, expected[p.name], rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("cell", CELLS)
def test_full_agrees_with_finite_differences(cell):
    model, inputs, targets = make_problem(cell, 6, batch=2, hidden=2)

    def loss_of():
        chain = model.chain(inputs, targets)
        return execute(Full().plan(chain.profile()), chain).loss

    model.zero_grad()
    loss_of()
    analytic = {name: p.grad.copy() for name, p in model.named_parameters()}
    eps = 1e-6
    for name, p in model.named_parameters():
        for index in np.ndindex(p.data.shape):
            saved = p.data[index]
            p.data[index] = saved + eps
            up = loss_of()
            p.data[index] = saved - eps
            down = loss_of()
            p.data[index] = saved
            numeric = (up - down) / (2 * eps)
            assert analytic[name][index] == pytest.approx(numeric, rel=1e-5, abs=1e-8), \
                (name, index)


@pytest.mark.parametrize("k1, k2", [(5, 5), (3, 7), (4, 4), (1, 1), (2, 9)])
@pytest.mark.parametrize("cell", CELLS)
def test_truncated_is_the_gradient_of_the_detached_objective(cell, k1, k2):
    T = 23
    model, inputs, targets = make_problem(cell, T)
    ends = [min(e, T) for e in range(k1, T + k1, k1)]
    windows = [(max(0, own - (k2 - k1)), own, end) for own, end in zip([0] + ends[:-1], ends)]
    loss, expected = unrolled_backward(model, inputs, targets, windows)
    grads, run = gradients(Truncated(k1, k2), model.chain(inputs, targets), model.parameters())
    full, _ = gradients(Full(), model.chain(inputs, targets), model.parameters())
    assert run.loss == pytest.approx(loss, rel=1e-12)  # every step's loss, counted once
    for name in expected:
        np.testing.assert_allclose(grads[name], expected[name], rtol=1e-10, atol=1e-13)
    assert not np.allclose(grads["W_h"], full["W_h"], rtol=1e-6)  # it really truncates


@pytest.mark.parametrize("cell", CELLS)
def test_truncated_with_a_window_covering_the_sequence_is_full(cell):
    model, inputs, targets = make_problem(cell, 12)
    full, _ = gradients(Full(), model.chain(inputs, targets), model.parameters())
    for strategy in (Truncated(12), Truncated(20), Truncated(12, 30)):
        grads, _ = gradients(strategy, model.chain(inputs, targets), model.parameters())
        for name in full:
            assert np.array_equal(grads[name], full[name]), (strategy, name)


def test_a_deep_mlp_of_mixed_widths_is_a_chain_like_any_other():
    rng = np.random.default_rng(3)
    widths = [5] + [int(w) for w in rng.choice([2, 7, 16, 33], size=63)] + [3]
    mlp = MLP(widths, "tanh", rng=np.random.default_rng(4))
    inputs = rng.standard_normal((6, 5))
    labels = rng.integers(0, 3, 6)
    chain = LayerChain(mlp, inputs, labels)
    assert chain.length == 64 and len(set(chain.profile().tape_bytes)) > 1
    assert_same_gradients(lambda: LayerChain(mlp, inputs, labels), mlp.parameters(),
                          exact_strategies(chain))
    profile = chain.profile()
    for strategy in exact_strategies(chain):  # uneven sizes: the byte model still holds
        plan = strategy.plan(profile)
        measured = execute(plan, LayerChain(mlp, inputs, labels)).peak_cache_bytes
        assert measured <= simulate(plan, profile=profile).peak_bytes, strategy
    # and the same gradient as the MLP's own backward
    mlp.zero_grad()
    from bptt.engine import losses
    losses.softmax_cross_entropy(mlp(inputs), labels).backward()
    direct = [p.grad.copy() for p in mlp.parameters()]
    grads, _ = gradients(Revolve(3), LayerChain(mlp, inputs, labels), mlp.parameters())
    for g, d in zip(grads.values(), direct):
        np.testing.assert_allclose(g, d, rtol=1e-12, atol=1e-15)


def test_dropout_in_an_mlp_keeps_every_exact_strategy_exact():
    # Recomputed layers redraw their masks from (seed, step, layer): no stream to replay.
    rng = np.random.default_rng(8)
    mlp = MLP([4, 16, 9, 12, 3], "tanh", rng=np.random.default_rng(9), dropout=0.5)
    inputs, labels = rng.standard_normal((10, 4)), rng.integers(0, 3, 10)
    chain = LayerChain(mlp, inputs, labels, step=7)
    assert_same_gradients(lambda: LayerChain(mlp, inputs, labels, step=7), mlp.parameters(),
                          exact_strategies(chain))
    with_mask = gradients(Full(), LayerChain(mlp, inputs, labels, step=7), mlp.parameters())[0]
    other = gradients(Full(), LayerChain(mlp, inputs, labels, step=8), mlp.parameters())[0]
    plain = gradients(Full(), LayerChain(mlp, inputs, labels), mlp.parameters())[0]
    for g in (other, plain):  # the masks really act, and differ from step to step
        assert not np.array_equal(g["weight"], with_mask["weight"])


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("T", [1, 7, 64])
def test_dropout_between_cell_and_readout_keeps_every_exact_strategy_exact(cell, T):
    rng = np.random.default_rng(T)
    model = RNN(cell, 2, 3, 2, np.random.default_rng(1), dtype=np.float64, dropout=0.4)
    inputs, targets = rng.standard_normal((T, 4, 2)), rng.standard_normal((T, 4, 2))
    chain = model.chain(inputs, targets, step=11)
    assert_same_gradients(lambda: model.chain(inputs, targets, step=11), model.parameters(),
                          exact_strategies(chain))
    with_mask = gradients(Full(), model.chain(inputs, targets, step=11), model.parameters())[0]
    plain = gradients(Full(), model.chain(inputs, targets), model.parameters())[0]
    assert not np.array_equal(with_mask["weight"], plain["weight"])  # the read-out's


def test_executor_counts_cache_bytes_exactly_and_checkpoint_holds_less():
    model, inputs, targets = make_problem("rnn", 100, batch=4, hidden=8)
    chain = model.chain(inputs, targets)
    full = execute(Full().plan(chain.profile()), model.chain(inputs, targets))
    ckpt = execute(Periodic().plan(chain.profile()), model.chain(inputs, targets))
    state = 4 * 8 * 8  # one (B, H) float64 state
    assert full.peak_cache_bytes >= 100 * state  # every step's output is kept
    assert ckpt.peak_cache_bytes < 0.3 * full.peak_cache_bytes
    assert ckpt.stats.forward_steps > full.stats.forward_steps == 100


@pytest.mark.parametrize("cell", CELLS)
def test_measured_peak_never_exceeds_what_the_plan_counted(cell):
    """The planners' byte model is the executor's truth: budgets hold in real memory."""
    model, inputs, targets = make_problem(cell, 50, batch=4, hidden=8)
    profile = model.chain(inputs, targets).profile()
    for strategy in exact_strategies(model.chain(inputs, targets)) + [Truncated(7, 12)]:
        plan = strategy.plan(profile)
        counted = simulate(plan, profile=profile).peak_bytes
        measured = execute(plan, model.chain(inputs, targets)).peak_cache_bytes
        assert measured <= counted, strategy
        if isinstance(strategy, (Full, Revolve)):
            assert measured == counted, strategy
        if isinstance(strategy, Adaptive):
            assert measured <= strategy.budget


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("T", [1, 5, 64, 300])
def test_online_policy_gives_fulls_gradients_with_memory_bounded_by_its_slots(cell, T):
    model, inputs, targets = make_problem(cell, T)
    full, _ = gradients(Full(), model.chain(inputs, targets), model.parameters())
    model.zero_grad()
    chain = model.chain(inputs, targets)
    run = execute_online(OnlineCheckpointing(slots=4), chain, chain.profile())
    for p in model.parameters():
        assert np.array_equal(p.grad, full[p.name]), p.name
    assert run.stats.peak_states <= 4 and run.stats.peak_tapes == 1
    state = sum(a.nbytes for a in chain.initial_state())
    tape = chain.profile().tape_bytes[0]
    assert run.peak_cache_bytes <= 5 * state + tape  # 4 slots, the current state, one tape


def test_online_policy_learns_the_length_only_at_the_end():
    class Spy(OnlineCheckpointing):
        def reverse(self, length):
            assert self.steps == length  # every step was announced before the end was
            return super().reverse(length)

    model, inputs, targets = make_problem("rnn", 40)
    execute_online(Spy(3), model.chain(inputs, targets))


def test_an_invalid_online_action_stops_before_it_runs():
    class Broken(OnlineCheckpointing):
        def forward(self, i):
            return [Advance(i, i + 1)] if i else [Record(5)]

    model, inputs, targets = make_problem("rnn", 10)
    with pytest.raises(PlanError, match="action 0 Record"):
        execute_online(Broken(3), model.chain(inputs, targets))
