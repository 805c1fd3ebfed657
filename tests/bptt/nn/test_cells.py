import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bptt import Tensor, gradcheck, graph_bytes
from bptt.engine import functions as F
from bptt.nn.cells import CELLS, GRUCell, LSTMCell, RNNCell, make_cell
from bptt.engine.tensor import topological_order

KINDS = list(CELLS)


def rng(seed=0):
    return np.random.default_rng(seed)


def sigmoid(v):
    return 1 / (1 + np.exp(-v))


def reference_step(kind, x, state, p):
    """The cell equations in plain NumPy, written from the docstrings' formulas."""
    if kind == "rnn":
        return (np.tanh(x @ p["W_x"] + state[0] @ p["W_h"] + p["b"]),)
    if kind == "lstm":
        h, c = state
        i, f, g, o = np.split(x @ p["W_x"] + h @ p["W_h"] + p["b"], 4, axis=1)
        c_new = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
        return sigmoid(o) * np.tanh(c_new), c_new
    (h,) = state
    a_r, a_z, a_n = np.split(x @ p["W_x"] + p["b_x"], 3, axis=1)
    u_r, u_z, u_n = np.split(h @ p["W_h"] + p["b_h"], 3, axis=1)
    r, z = sigmoid(a_r + u_r), sigmoid(a_z + u_z)
    n = np.tanh(a_n + r * u_n)
    return ((1 - z) * n + z * h,)


def unroll_with_loss(cell, xs, state):
    """Run the cell over xs and return (states, loss): a weighted sum of every state array at
    every step, so each step's h and c receive a distinct gradient."""
    weights = rng(99)
    states, loss = [], Tensor(0.0)
    for x in xs:
        state = cell(x, state)
        states.append(state)
        for s in state:
            loss = loss + (s * weights.normal(size=s.shape)).sum()
    return states, loss


def run_both_modes(kind, batch, input_size, hidden_size, steps, leaves=True):
    """Fused and composed twins (same seed) on the same inputs: per mode, the values of every
    state and the loss, then the gradients of every parameter, input and initial state array."""
    results = []
    for fused in (True, False):
        cell = make_cell(kind, input_size, hidden_size, rng(1), fused=fused)
        data = rng(2)
        xs = [Tensor(data.normal(size=(batch, input_size)), requires_grad=leaves)
              for _ in range(steps)]
        state = tuple(Tensor(data.normal(size=(batch, hidden_size)), requires_grad=leaves)
                      for _ in range(cell.state_size))
        states, loss = unroll_with_loss(cell, xs, state)
        loss.backward()
        values = [s.data for step in states for s in step] + [loss.data]
        grads = [p.grad for p in cell.parameters()]
        if leaves:
            grads += [t.grad for t in (*xs, *state)]
        results.append((values, grads))
    return results


@pytest.mark.parametrize("kind", KINDS)
def test_fused_and_composed_cells_agree_on_values_and_every_gradient(kind):
    (fused_values, fused_grads), (composed_values, composed_grads) = run_both_modes(
        kind, batch=3, input_size=4, hidden_size=5, steps=4)
    assert len(fused_grads) == len(composed_grads)
    for a, b in zip(fused_values + fused_grads, composed_values + composed_grads):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)


@settings(max_examples=25, deadline=None)
@given(kind=st.sampled_from(KINDS), batch=st.integers(1, 4), input_size=st.integers(1, 5),
       hidden_size=st.integers(1, 6), steps=st.integers(1, 4))
def test_fused_and_composed_cells_agree_for_any_sizes(kind, batch, input_size, hidden_size,
                                                      steps):
    (fv, fg), (cv, cg) = run_both_modes(kind, batch, input_size, hidden_size, steps)
    for a, b in zip(fv + fg, cv + cg):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
def test_parameter_gradients_agree_when_inputs_and_state_are_constants(kind):
    (_, fused_grads), (_, composed_grads) = run_both_modes(kind, 2, 3, 4, 3, leaves=False)
    assert len(fused_grads) == len(CELLS[kind].parameter_shapes(3, 4))
    for a, b in zip(fused_grads, composed_grads):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)


def unrolled_function(cell, steps):
    """fn(x_0..x_{steps-1}, *state, *params) -> every final state array side by side, running
    the cell with gradcheck's leaves in place of its parameters."""
    names = [name for name, _ in cell.named_parameters()]

    def fn(*tensors):
        xs, state = tensors[:steps], tensors[steps:steps + cell.state_size]
        for name, p in zip(names, tensors[steps + cell.state_size:]):
            setattr(cell, name, p)
        for x in xs:
            state = cell(x, state)
        return F.concatenate(list(state), axis=1)
    return fn


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "composed"])
@pytest.mark.parametrize("kind", KINDS)
def test_cells_pass_gradcheck_over_two_steps(kind, fused):
    cell = make_cell(kind, 3, 2, rng(3), fused=fused)
    data = rng(4)
    inputs = ([data.normal(size=(2, 3)) for _ in range(2)]
              + [data.normal(size=(2, 2)) for _ in range(cell.state_size)]
              + [p.data.copy() for p in cell.parameters()])
    assert gradcheck(unrolled_function(cell, steps=2), inputs)


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "composed"])
@pytest.mark.parametrize("kind", KINDS)
def test_multi_step_unroll_follows_the_documented_equations(kind, fused):
    cell = make_cell(kind, 3, 4, rng(5), fused=fused)
    params = {name: p.data for name, p in cell.named_parameters()}
    xs = rng(6).normal(size=(8, 2, 3))
    state, expected = cell.initial_state(2), cell.initial_state(2)
    for x in xs:
        state = cell(x, state)
        expected = reference_step(kind, x, expected, params)
        for got, want in zip(state, expected):
            np.testing.assert_allclose(got.data, want, rtol=0, atol=1e-12)
    assert np.abs(cell.hidden(state).data).max() > 0.1  # the unroll did not fade to nothing


@pytest.mark.parametrize("kind", KINDS)
def test_float32_cells_stay_float32_and_match_the_float64_equations(kind):
    cell = make_cell(kind, 3, 4, rng(7), dtype=np.float32)
    x = rng(8).normal(size=(2, 3)).astype(np.float32)
    state = tuple(Tensor(a, requires_grad=True) for a in cell.initial_state(2))
    new = cell(x, state)
    assert all(s.dtype == np.float32 for s in new)
    sum(s.sum() for s in new).backward()
    assert all(p.grad.dtype == np.float32 for p in cell.parameters())
    assert all(s.grad.dtype == np.float32 for s in state)
    params = {name: p.data.astype(np.float64) for name, p in cell.named_parameters()}
    expected = reference_step(kind, x.astype(np.float64), cell.initial_state(2), params)
    for got, want in zip(new, expected):
        np.testing.assert_allclose(got.data, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_fused_step_is_one_node_caching_no_more_than_the_composed_step(kind):
    caches = {}
    for fused in (True, False):
        cell = make_cell(kind, 3, 4, rng(), fused=fused)
        x = Tensor(rng(1).normal(size=(5, 3)), requires_grad=True)
        state = tuple(Tensor(a, requires_grad=True) for a in cell.initial_state(5))
        new = cell(x, state)
        nodes = topological_order(list(new))
        assert (len(nodes) == 1) == fused
        caches[fused] = graph_bytes(list(new))
    assert 0 < caches[True] <= caches[False]


@pytest.mark.parametrize("kind", KINDS)
def test_fused_step_is_deterministic_and_leaves_its_inputs_unchanged(kind):
    cell = make_cell(kind, 3, 4, rng())
    data = rng(1)
    x = data.normal(size=(5, 3))
    state = tuple(data.normal(size=(5, 4)) for _ in range(cell.state_size))
    before = [a.copy() for a in (x, *state)] + [p.data.copy() for p in cell.parameters()]
    runs = []
    for _ in range(2):
        cell.zero_grad()
        leaves = [Tensor(a, requires_grad=True) for a in (x, *state)]
        new = cell(leaves[0], tuple(leaves[1:]))
        sum((s * s).sum() for s in new).backward()
        runs.append([s.data for s in new] + [t.grad for t in leaves]
                    + [p.grad for p in cell.parameters()])
    for a, b in zip(*runs):
        assert a.tobytes() == b.tobytes()
    after = [x, *state] + [p.data for p in cell.parameters()]
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kind, shapes", [
    ("rnn", {"W_x": (3, 4), "W_h": (4, 4), "b": (4,)}),
    ("lstm", {"W_x": (3, 16), "W_h": (4, 16), "b": (16,)}),
    ("gru", {"W_x": (3, 12), "W_h": (4, 12), "b_x": (12,), "b_h": (12,)}),
])
def test_parameters_have_the_documented_names_shapes_and_range(kind, shapes):
    cell = make_cell(kind, 3, 4, rng())
    assert {name: p.shape for name, p in cell.named_parameters()} == shapes
    assert all(p.requires_grad and p.name == name for name, p in cell.named_parameters())
    assert all(np.abs(p.data).max() <= 1 / np.sqrt(4) for p in cell.parameters())


@pytest.mark.parametrize("kind", KINDS)
def test_same_seed_gives_bit_identical_parameters_in_both_modes(kind):
    a, b, c = (make_cell(kind, 3, 4, rng(s), fused=f) for s, f in ((7, True), (7, False),
                                                                   (8, True)))
    for pa, pb, pc in zip(a.parameters(), b.parameters(), c.parameters()):
        assert pa.data.tobytes() == pb.data.tobytes()
        assert not np.array_equal(pa.data, pc.data)
    a32 = make_cell(kind, 3, 4, rng(7), dtype=np.float32)
    for p64, p32 in zip(a.parameters(), a32.parameters()):
        np.testing.assert_array_equal(p32.data, p64.data.astype(np.float32))


@pytest.mark.parametrize("cls, names", [(RNNCell, ("h",)), (LSTMCell, ("h", "c")),
                                        (GRUCell, ("h",))])
def test_initial_state_is_zeros_of_the_cell_dtype_and_hidden_is_h(cls, names):
    cell = cls(3, 4, rng(), dtype=np.float32)
    assert (cell.input_size, cell.hidden_size, cell.dtype) == (3, 4, np.float32)
    assert cell.state_size == len(names)
    state = cell.initial_state(5)
    assert len(state) == len(names)
    assert all(a.shape == (5, 4) and a.dtype == np.float32 and not a.any() for a in state)
    new = cell(np.ones((5, 3), np.float32), state)
    assert cell.hidden(new) is new[0]
    with pytest.raises(ValueError, match="batch must be a positive integer, got 0"):
        cell.initial_state(0)


def test_make_cell_builds_each_kind_and_rejects_unknown_ones():
    for kind, cls in CELLS.items():
        cell = make_cell(kind, 2, 3, rng(), dtype=np.float32, fused=False)
        assert type(cell) is cls and cell.dtype == np.float32 and not cell.fused
    with pytest.raises(ValueError, match=r"unknown cell kind 'elman'; choose one of "
                                         r"\['rnn', 'lstm', 'gru'\]"):
        make_cell("elman", 2, 3, rng())


@pytest.mark.parametrize("make_args, error, message", [
    ((0, 3, rng()), ValueError, "input_size must be a positive integer, got 0"),
    ((2, 2.5, rng()), ValueError, "hidden_size must be a positive integer, got 2.5"),
    ((2, 3, 0), TypeError, "rng must be a numpy.random.Generator"),
])
def test_cells_reject_bad_constructor_arguments(make_args, error, message):
    with pytest.raises(error, match=message):
        LSTMCell(*make_args)


def test_cells_reject_an_integer_dtype():
    with pytest.raises(ValueError, match="dtype must be float32 or float64, got int32"):
        GRUCell(2, 3, rng(), dtype=np.int32)


H0 = np.zeros((2, 4))


@pytest.mark.parametrize("x, state, error, message", [
    (np.zeros(3), (H0, H0), ValueError, r"LSTMCell: x must have shape \(batch, 3\), got \(3,\)"),
    (np.zeros((2, 5)), (H0, H0), ValueError, r"x must have shape \(batch, 3\), got \(2, 5\)"),
    (np.zeros((2, 3), np.float32), (H0, H0), TypeError,
     "x has dtype float32 but the cell is float64"),
    (np.zeros((2, 3), np.int64), (H0, H0), TypeError, "x has dtype int64 but the cell is float64"),
    ([[0.0] * 3] * 2, (H0, H0), TypeError, "x must be a Tensor or an ndarray, got list"),
    (np.zeros((2, 3)), Tensor(H0), ValueError,
     r"state must be a tuple of 2 \(h, c\), got Tensor"),
    (np.zeros((2, 3)), (H0,), ValueError, r"state must be a tuple of 2 \(h, c\), got a tuple of 1"),
    (np.zeros((2, 3)), (H0, np.zeros((3, 4))), ValueError,
     r"state c must have shape \(2, 4\) \(batch 2, hidden 4\), got \(3, 4\)"),
    (np.zeros((2, 3)), (H0, H0.astype(np.float32)), TypeError,
     "state c has dtype float32 but the cell is float64"),
])
def test_cell_step_rejects_bad_inputs_with_the_value_and_the_expectation(x, state, error,
                                                                         message):
    for fused in (True, False):
        with pytest.raises(error, match=message):
            LSTMCell(3, 4, rng(), fused=fused)(x, state)
