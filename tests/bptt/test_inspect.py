"""`bptt.inspect`: caches and deltas of one batch, checked against finite differences."""
import numpy as np
import pytest

from bptt.inspect import MLPInspection, RNNInspection, inspect_batch
from bptt.nn import MLP, RNN, Linear
from checkpointing import Adaptive, Periodic, Revolve, Truncated

EPS = 1e-6


def mlp_problem(dropout=0.0, activation="tanh"):
    rng = np.random.default_rng(0)
    model = MLP([4, 6, 5, 3], activation, rng=np.random.default_rng(1), dropout=dropout)
    return model, rng.normal(size=(7, 4)), rng.integers(0, 3, 7)


def reference_loss(model, x, labels, k, row, col, shift, step=None):
    """The MLP's mean cross-entropy in plain NumPy, with z^(k)[row, col] shifted by `shift`."""
    f = {"tanh": np.tanh, "relu": lambda z: np.maximum(z, 0),
         "sigmoid": lambda z: 1 / (1 + np.exp(-z))}[model.activation]
    h = x
    for j, layer in enumerate(model.layers):
        if j == len(model.layers) - 1 and step is not None and model.dropout.p:
            h = h * model.dropout.mask(h.shape, h.dtype, step, call=j)
        z = h @ layer.weight.data + layer.bias.data
        if j == k:
            z = z.copy()
            z[row, col] += shift
        h = z if j == len(model.layers) - 1 else f(z)
    h = h - h.max(axis=1, keepdims=True)
    log_p = h - np.log(np.exp(h).sum(axis=1, keepdims=True))
    return -log_p[np.arange(len(labels)), labels].mean()


@pytest.mark.parametrize("activation", ["tanh", "sigmoid"])
@pytest.mark.parametrize("dropout, step", [(0.0, None), (0.5, 3)])
def test_every_mlp_delta_is_the_finite_difference_of_the_loss_in_z(activation, dropout, step):
    model, x, labels = mlp_problem(dropout, activation)
    seen = inspect_batch(model, x, labels, step=step)
    assert isinstance(seen, MLPInspection) and len(seen.layers) == 3
    assert seen.loss == pytest.approx(reference_loss(model, x, labels, 0, 0, 0, 0.0, step),
                                      rel=1e-12)
    for k, layer in enumerate(seen.layers):
        numeric = np.zeros_like(layer.delta)
        for row, col in np.ndindex(*numeric.shape):
            up = reference_loss(model, x, labels, k, row, col, EPS, step)
            down = reference_loss(model, x, labels, k, row, col, -EPS, step)
            numeric[row, col] = (up - down) / (2 * EPS)
        np.testing.assert_allclose(layer.delta, numeric, rtol=1e-6, atol=1e-9)
    assert max(seen.formula_errors().values()) < 1e-12


def test_the_cached_arrays_are_the_layers_inputs_pre_activations_and_outputs():
    model, x, labels = mlp_problem(dropout=0.5)
    seen = inspect_batch(model, x, labels, step=1)
    np.testing.assert_array_equal(seen.layers[0].input, x)
    for below, above in zip(seen.layers[:-1], seen.layers[1:]):
        np.testing.assert_array_equal(below.output, np.tanh(below.pre_activation))
        expected = below.output if above.mask is None else below.output * above.mask
        np.testing.assert_array_equal(above.input, expected)
    assert seen.layers[-1].mask is not None and seen.layers[0].mask is None
    np.testing.assert_array_equal(seen.layers[-1].output, seen.layers[-1].pre_activation)
    arrays = seen.arrays()
    assert set(arrays) == {f"layers.{k}.{a}" for k in range(3)
                           for a in ("input", "pre_activation", "output", "delta",
                                     "weight_grad", "bias_grad")}
    rows = seen.summary()
    assert len(rows) == 12 and rows[3]["symbol"] == "δ^(l)"
    assert rows[3]["norm"] == pytest.approx(np.linalg.norm(seen.layers[0].delta))
    assert model.layer_records == []  # no graph kept alive


def test_stale_gradients_cannot_spoil_an_inspection():
    model, x, labels = mlp_problem()
    clean = inspect_batch(model, x, labels)
    for p in model.parameters():
        p.grad = np.full_like(p.data, 123.0)  # leftovers of an earlier backward
    again = inspect_batch(model, x, labels)
    for a, b, layer in zip(clean.layers, again.layers, model.layers):
        np.testing.assert_array_equal(a.weight_grad, b.weight_grad)
        np.testing.assert_array_equal(layer.weight.grad, a.input.T @ a.delta)


def rnn_problem(cell, T=6, batch=3):
    # D >= G, so W_x has full column rank and dL/dx_t = delta_t W_x^T determines delta_t.
    hidden = {"rnn": 3, "lstm": 2, "gru": 2}[cell]
    width = {"rnn": 1, "lstm": 4, "gru": 3}[cell] * hidden
    rng = np.random.default_rng(4)
    model = RNN(cell, width + 1, hidden, 2, np.random.default_rng(5), dtype=np.float64)
    return (model, rng.standard_normal((T, batch, width + 1)),
            rng.standard_normal((T, batch, 2)))


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_every_time_steps_delta_agrees_with_finite_differences(cell):
    model, inputs, targets = rnn_problem(cell)
    seen = inspect_batch(model, inputs, targets)
    assert isinstance(seen, RNNInspection) and seen.recomputed == ()
    W_x = model.cell.W_x.data
    for t, step in enumerate(seen.steps):
        grad_x = np.zeros_like(inputs[t])
        for index in np.ndindex(*grad_x.shape):
            shifted = []
            for sign in (1, -1):
                moved = inputs.copy()
                moved[(t, *index)] += sign * EPS
                shifted.append(inspect_batch(model, moved, targets).loss)
            grad_x[index] = (shifted[0] - shifted[1]) / (2 * EPS)
        numeric_delta = np.linalg.lstsq(W_x, grad_x.T, rcond=None)[0].T
        np.testing.assert_allclose(step.delta_a, numeric_delta, rtol=1e-5, atol=1e-8)
        np.testing.assert_allclose(step.delta_a @ W_x.T, grad_x, rtol=1e-5, atol=1e-9)
    assert max(seen.formula_errors(model).values()) < 1e-12


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_the_rnn_cache_is_states_and_the_pre_activation_is_their_sum(cell):
    model, inputs, targets = rnn_problem(cell)
    seen = inspect_batch(model, inputs, targets)
    for before, after in zip(seen.steps[:-1], seen.steps[1:]):
        for a, b in zip(before.state_out, after.state_in):
            np.testing.assert_array_equal(a, b)
    if cell == "rnn":
        for step in seen.steps:
            np.testing.assert_allclose(step.state_out[0], np.tanh(step.pre_activation),
                                       rtol=1e-12, atol=1e-15)
            np.testing.assert_array_equal(step.delta, step.delta_u)
    names = seen.arrays()
    assert "steps.0.state_out.0" in names and "steps.5.delta_a" in names


@pytest.mark.parametrize("strategy", [Periodic(2), Revolve(2), Adaptive(10 ** 6)])
def test_under_a_checkpointing_plan_the_same_arrays_and_the_recomputed_steps_are_named(strategy):
    model, inputs, targets = rnn_problem("gru", T=9)
    full = inspect_batch(model, inputs, targets)
    seen = inspect_batch(model, inputs, targets, strategy=strategy)
    for name, array in full.arrays().items():
        assert np.array_equal(seen.arrays()[name], array), name
    for name, grad in full.grads.items():
        assert np.array_equal(seen.grads[name], grad)
    forwards = [s.forwards for s in seen.steps]
    assert seen.recomputed == tuple(t for t, n in enumerate(forwards) if n > 1)
    assert seen.strategy == str(strategy)
    if not isinstance(strategy, Adaptive):  # a roomy budget may keep every tape
        assert seen.recomputed
    assert [s.forwards for s in full.steps] == [1] * 9


def test_a_truncated_inspection_says_what_it_cut():
    model, inputs, targets = rnn_problem("rnn", T=8)
    seen = inspect_batch(model, inputs, targets, strategy=Truncated(4))
    assert np.all(seen.steps[3].grad_out[0] != 0)  # own loss only: the cut at 4 drops the rest
    full = inspect_batch(model, inputs, targets)
    assert not np.array_equal(seen.steps[3].grad_out[0], full.steps[3].grad_out[0])


@pytest.mark.parametrize("make, error, message", [
    (lambda m: (m, np.ones((3, 4), np.int64), np.zeros(3, int)), TypeError,
     "inputs must be a float32/float64 array, got int64"),
    (lambda m: (m, np.ones((3, 4), np.float32), np.zeros(3, int)), TypeError,
     "inputs have dtype float32 but the model is float64"),
    (lambda m: (m, np.ones((3, 5)), np.zeros(3, int)), ValueError,
     r"inputs must have shape \(batch >= 1, 4\), got \(3, 5\)"),
    (lambda m: (m, np.ones((0, 4)), np.zeros(0, int)), ValueError, r"got \(0, 4\)"),
    (lambda m: (m, np.full((3, 4), np.nan), np.zeros(3, int)), ValueError, "NaN or Inf"),
    (lambda m: (m, np.ones((3, 4)), np.zeros(3)), TypeError,
     "labels must be an integer array of class indices, got float64"),
    (lambda m: (m, np.ones((3, 4)), np.zeros(4, int)), ValueError,
     r"labels must have shape \(3,\), got \(4,\)"),
    (lambda m: (m, np.ones((3, 4)), np.array([0, 3, 1])), ValueError,
     r"labels must be class indices in \[0, 3\), got values from 0 to 3"),
    (lambda m: (Linear(2, 2, np.random.default_rng(0)), np.ones((1, 2)), np.zeros(1, int)),
     TypeError, "inspects an MLP or an RNN, got Linear"),
])
def test_bad_input_is_named(make, error, message):
    model, x, labels = make(mlp_problem()[0])
    with pytest.raises(error, match=message):
        inspect_batch(model, x, labels)


def test_bad_recurrent_input_and_a_strategy_for_an_mlp_are_named():
    model, inputs, targets = rnn_problem("rnn")
    with pytest.raises(ValueError, match=r"inputs must have shape \(T, B, 4\), got \(6, 3\)"):
        inspect_batch(model, inputs[:, :, 0], targets)
    with pytest.raises(TypeError, match="inputs have dtype float32 but the model is float64"):
        inspect_batch(model, inputs.astype(np.float32), targets)
    with pytest.raises(ValueError, match=r"targets must have shape \(6, 3, 2\)"):
        inspect_batch(model, inputs, targets[:, :, :1])
    mlp, x, labels = mlp_problem()
    with pytest.raises(ValueError, match="strategies are for inspecting an RNN"):
        inspect_batch(mlp, x, labels, strategy=Revolve(2))


def test_the_readmes_inspection_block_runs():
    import pathlib
    readme = pathlib.Path(__file__).parents[2] / "README.md"
    if not readme.exists():
        pytest.skip("README.md is not beside the tests")
    blocks = [b.split("```", 1)[0] for b in readme.read_text().split("```python\n")[1:]]
    block = next(b for b in blocks if "inspect_batch" in b)
    scope = {}
    exec(block.replace("print(", "errors = ("), scope)
    assert max(scope["errors"].values()) < 1e-12
