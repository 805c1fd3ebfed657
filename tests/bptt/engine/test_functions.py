"""Every operation: forward equals NumPy, backward passes gradcheck, bad inputs fail clearly."""
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis.extra.numpy import mutually_broadcastable_shapes

import bptt.engine.functions as F
import bptt.engine.losses as losses
from bptt import Tensor, gradcheck

RNG = np.random.default_rng(1234)


def normal(*shape):
    return RNG.standard_normal(shape)


def positive(*shape):
    return np.abs(RNG.standard_normal(shape)) + 0.5


def away_from_zero(*shape):
    return positive(*shape) * RNG.choice([-1.0, 1.0], size=shape)


def softmax_ref(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def sigmoid_ref(x):
    return 1 / (1 + np.exp(-x))


LABELS = np.array([2, 0, 1, 2, 2])


def cross_entropy_ref(logits):
    return -np.log(softmax_ref(logits)[np.arange(len(LABELS)), LABELS]).mean()


def same(fn):
    """A case whose Tensor expression is also valid NumPy."""
    return fn, fn


# (fn on Tensors, the same on ndarrays, inputs)
CASES = {
    "add": (*same(lambda a, b: a + b), [normal(3, 4), normal(3, 4)]),
    "add (3,4)+(4,)": (*same(lambda a, b: a + b), [normal(3, 4), normal(4)]),
    "add (3,1)+(1,4)": (*same(lambda a, b: a + b), [normal(3, 1), normal(1, 4)]),
    "add (3,4)+()": (*same(lambda a, b: a + b), [normal(3, 4), normal()]),
    "add python scalar": (*same(lambda a: 2.5 + a), [normal(3)]),
    "add same tensor twice": (*same(lambda a: a + a), [normal(2, 3)]),
    "sub (4,)-(3,4)": (*same(lambda a, b: a - b), [normal(4), normal(3, 4)]),
    "rsub scalar": (*same(lambda a: 1.0 - a), [normal(3)]),
    "mul (3,1)*(1,4)": (*same(lambda a, b: a * b), [normal(3, 1), normal(1, 4)]),
    "mul (2,3,4)*(3,1)": (*same(lambda a, b: a * b), [normal(2, 3, 4), normal(3, 1)]),
    "mul same tensor twice": (*same(lambda a: a * a), [normal(2, 3)]),
    "div (3,4)/(4,)": (*same(lambda a, b: a / b), [normal(3, 4), away_from_zero(4)]),
    "div (1,4)/(3,1)": (*same(lambda a, b: a / b), [normal(1, 4), away_from_zero(3, 1)]),
    "rdiv scalar": (*same(lambda a: 2.0 / a), [away_from_zero(5)]),
    "neg": (*same(lambda a: -a), [normal(2, 3)]),
    "matmul": (*same(lambda a, b: a @ b), [normal(3, 4), normal(4, 2)]),
    "matmul ndarray @ Tensor": (lambda b: np.ones((2, 3)) @ b, lambda b: np.ones((2, 3)) @ b,
                                [normal(3, 4)]),
    "tanh": (lambda a: a.tanh(), np.tanh, [normal(3, 4)]),
    "sigmoid": (lambda a: a.sigmoid(), sigmoid_ref, [normal(3, 4) * 4]),
    "relu": (lambda a: a.relu(), lambda a: np.maximum(a, 0), [away_from_zero(3, 4)]),
    "exp": (lambda a: a.exp(), np.exp, [normal(3, 4)]),
    "log": (lambda a: a.log(), np.log, [positive(3, 4)]),
    "softmax last axis": (F.softmax, softmax_ref, [normal(3, 4)]),
    "softmax axis 0": (lambda a: F.softmax(a, axis=0), lambda a: softmax_ref(a, axis=0),
                       [normal(3, 4)]),
    "sum all": (*same(lambda a: a.sum()), [normal(3, 4)]),
    "sum axis 0": (*same(lambda a: a.sum(axis=0)), [normal(3, 4)]),
    "sum axis -1 keepdims": (*same(lambda a: a.sum(axis=-1, keepdims=True)), [normal(3, 4)]),
    "sum axes (0, 2)": (*same(lambda a: a.sum(axis=(0, 2))), [normal(2, 3, 4)]),
    "sum axes (0, -1) keepdims": (*same(lambda a: a.sum(axis=(0, -1), keepdims=True)),
                                  [normal(2, 3, 4)]),
    "mean all": (*same(lambda a: a.mean()), [normal(3, 4)]),
    "mean all keepdims": (*same(lambda a: a.mean(keepdims=True)), [normal(3, 4)]),
    "mean axis 1": (*same(lambda a: a.mean(axis=1)), [normal(3, 4)]),
    "mean axis -2 keepdims": (*same(lambda a: a.mean(axis=-2, keepdims=True)),
                              [normal(2, 3, 4)]),
    "reshape": (*same(lambda a: a.reshape(4, 3)), [normal(3, 4)]),
    "reshape tuple with -1": (*same(lambda a: a.reshape((2, -1))), [normal(2, 3, 4)]),
    "transpose": (*same(lambda a: a.transpose()), [normal(3, 4)]),
    "transpose axes": (*same(lambda a: a.transpose(1, 2, 0)), [normal(2, 3, 4)]),
    "transpose axes tuple": (*same(lambda a: a.transpose((2, 0, 1))), [normal(2, 3, 4)]),
    "transpose negative axes": (*same(lambda a: a.transpose(-1, 0, -2)), [normal(2, 3, 4)]),
    "T": (*same(lambda a: a.T), [normal(3, 4)]),
    "getitem int": (*same(lambda a: a[1]), [normal(3, 4)]),
    "getitem negative int pair": (*same(lambda a: a[-1, 2]), [normal(3, 4)]),
    "getitem slices": (*same(lambda a: a[1:, ::2]), [normal(3, 4)]),
    "getitem ellipsis newaxis": (*same(lambda a: a[..., None, 1:3]), [normal(2, 3, 4)]),
    "getitem repeated indices": (*same(lambda a: a[[0, 0, 2, 0]]), [normal(3, 4)]),
    "getitem repeated index arrays": (*same(lambda a: a[np.array([1, 1, 2]), np.array([0, 0, 3])]),
                                      [normal(3, 4)]),
    "getitem array and slice": (*same(lambda a: a[:, np.array([3, 3, 0])]), [normal(3, 4)]),
    "getitem boolean mask": (*same(lambda a: a[np.array([True, False, True])]), [normal(3, 4)]),
    "concatenate axis 0": (lambda a, b: F.concatenate([a, b]), lambda a, b: np.concatenate([a, b]),
                           [normal(2, 3), normal(4, 3)]),
    "concatenate axis -1, three": (
        lambda a, b, c: F.concatenate([a, b, c], axis=-1),
        lambda a, b, c: np.concatenate([a, b, c], axis=-1),
        [normal(2, 1), normal(2, 3), normal(2, 2)]),
    "concatenate with a constant": (
        lambda a: F.concatenate([np.ones((1, 3)), a]),
        lambda a: np.concatenate([np.ones((1, 3)), a]), [normal(2, 3)]),
    "stack axis 0": (lambda a, b: F.stack([a, b]), lambda a, b: np.stack([a, b]),
                     [normal(2, 3), normal(2, 3)]),
    "stack axis -1": (lambda a, b, c: F.stack([a, b, c], axis=-1),
                      lambda a, b, c: np.stack([a, b, c], axis=-1),
                      [normal(2, 3), normal(2, 3), normal(2, 3)]),
    "softmax_cross_entropy": (lambda z: losses.softmax_cross_entropy(z, LABELS), cross_entropy_ref,
                              [normal(5, 3)]),
    "mse_loss ndarray target": (lambda p: losses.mse_loss(p, np.arange(6.0).reshape(2, 3)),
                                lambda p: np.mean((p - np.arange(6.0).reshape(2, 3)) ** 2),
                                [normal(2, 3)]),
    "mse_loss Tensor target": (losses.mse_loss, lambda p, t: np.mean((p - t) ** 2),
                               [normal(2, 3), normal(2, 3)]),
    "tanh rnn, weights reused": (
        lambda x, w, u: _rnn(x, w, u, lambda h: h.tanh()),
        lambda x, w, u: _rnn(x, w, u, np.tanh), [normal(4, 2, 3), normal(3, 5), normal(5, 5)]),
}


def _rnn(xs, w, u, tanh):
    h = np.zeros((xs.shape[1], u.shape[0]))
    for t in range(xs.shape[0]):
        h = tanh(xs[t] @ w + h @ u)
    return h


@pytest.mark.parametrize("name", list(CASES))
def test_forward_matches_numpy(name):
    fn, reference, inputs = CASES[name]
    out = fn(*[Tensor(x) for x in inputs])
    np.testing.assert_allclose(out.data, reference(*inputs), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", list(CASES))
def test_backward_passes_gradcheck(name):
    fn, _, inputs = CASES[name]
    assert gradcheck(fn, inputs).elements == sum(x.size for x in inputs)


@settings(max_examples=25, deadline=None)
@given(mutually_broadcastable_shapes(num_shapes=2, max_dims=3, max_side=3))
def test_broadcasting_gradients_reach_each_input_shape(shapes):
    a, b = (normal(*s) for s in shapes.input_shapes)
    gradcheck(lambda x, y: x * y + y, [a, b])


def test_repeated_indices_accumulate_their_gradients():
    x = Tensor(np.zeros(4), requires_grad=True)
    x[[0, 0, 2, 0]].sum().backward()
    np.testing.assert_array_equal(x.grad, [3.0, 0.0, 1.0, 0.0])


def test_fused_cross_entropy_matches_composed_ops():
    logits, labels = normal(6, 4), np.array([0, 3, 1, 1, 2, 0])
    fused = Tensor(logits, requires_grad=True)
    composed = Tensor(logits, requires_grad=True)
    loss = losses.softmax_cross_entropy(fused, labels)
    reference = -(F.softmax(composed).log()[np.arange(6), labels]).mean()
    loss.backward()
    reference.backward()
    np.testing.assert_allclose(loss.item(), reference.item(), rtol=1e-13)
    np.testing.assert_allclose(fused.grad, composed.grad, rtol=1e-12, atol=1e-15)


def test_cross_entropy_is_stable_for_huge_logits():
    logits = np.array([[1000.0, 0.0, -1000.0], [0.0, 2000.0, 0.0]])
    loss = losses.softmax_cross_entropy(Tensor(logits), np.array([0, 0]))
    np.testing.assert_allclose(loss.item(), (0.0 + 2000.0) / 2)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_is_the_log_sum_exp_mean_bit_for_bit(dtype):
    # The loss is summed then divided (cheaper than mean()): the same bits as mean(), in both
    # precisions (float32 keeps float32, as mean() does).
    rng = np.random.default_rng(4)
    for n, c in ((1, 2), (7, 3), (16, 3), (120, 3), (33, 10)):
        logits = (rng.standard_normal((n, c)) * rng.uniform(0.1, 30)).astype(dtype)
        labels = rng.integers(0, c, n)
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        expected = np.asarray(-log_probs[np.arange(n), labels].mean(), dtype=dtype)
        loss = losses.softmax_cross_entropy(Tensor(logits), labels).data
        assert loss.dtype == dtype and loss.tobytes() == expected.tobytes()


def test_cross_entropy_accepts_any_integer_label_dtype():
    loss = losses.softmax_cross_entropy(Tensor(normal(2, 3)), np.array([2, 1], dtype=np.uint8))
    assert np.isfinite(loss.item())


# --- numerics ----------------------------------------------------------------------------------
def test_sigmoid_is_exact_at_extremes_without_overflow_warnings():
    x = Tensor(np.array([-1000.0, -30.0, 0.0, 30.0, 1000.0]), requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = x.sigmoid()
        y.backward(np.ones(5))
    np.testing.assert_allclose(y.data, [0.0, sigmoid_ref(-30.0), 0.5, sigmoid_ref(30.0), 1.0],
                               rtol=1e-15, atol=0)
    # at +30, y * (1 - y) loses digits to cancellation: fine in absolute terms
    np.testing.assert_allclose(x.grad, [0.0, 9.357622968839299e-14, 0.25, 9.357622e-14, 0.0],
                               rtol=1e-6, atol=1e-16)


def test_log_of_non_positive_values_gives_numpys_values_without_warnings():
    x = Tensor(np.array([0.0, -1.0, 1.0]), requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = x.log()
        y.backward(np.ones(3))
    assert y.data[0] == -np.inf and np.isnan(y.data[1]) and y.data[2] == 0.0
    assert x.grad[0] == np.inf and x.grad[2] == 1.0


def test_exp_overflow_gives_inf_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert Tensor(np.array([1000.0])).exp().data[0] == np.inf


# --- dtypes ------------------------------------------------------------------------------------
def test_python_numbers_keep_float32_tensors_float32():
    x = Tensor(np.ones(3, np.float32), requires_grad=True)
    for y in (x * 2.0, 2 * x, x + 1, 1.5 - x, x / 3.0, 3.0 / x):
        assert y.dtype == np.float32, y


def test_gradients_have_the_dtype_of_the_input_they_flow_to():
    a = Tensor(np.ones((3, 4), np.float32), requires_grad=True)
    b = Tensor(np.ones(4, np.float64), requires_grad=True)
    w = Tensor(np.ones((4, 2), np.float64), requires_grad=True)
    for op in (lambda h: h * b, lambda h: h / b, lambda h: b - h, lambda h: h @ w,
               lambda h: w.T @ h.T, lambda h: F.concatenate([h, b.reshape(1, 4)]),
               lambda h: F.stack([h, b + np.zeros((3, 4))], axis=1),
               lambda h: losses.mse_loss(h, b.reshape(1, 4) + np.zeros((3, 1))),
               lambda h: losses.softmax_cross_entropy(h + b, np.array([0, 1, 2]))):
        h = (a * 1.0).retain_grad()  # not a leaf: nothing casts its gradient on arrival
        loss = op(h).sum()
        assert loss.dtype == np.float64
        loss.backward()
        assert h.grad.dtype == np.float32 and a.grad.dtype == np.float32, loss.creator
        for t in (b, w):
            assert t.grad is None or t.grad.dtype == np.float64, loss.creator
            t.zero_grad()
        a.zero_grad()


@pytest.mark.parametrize("op", [F.tanh, F.sigmoid, F.relu, F.exp, F.softmax,
                                lambda x: x.sum(axis=0), lambda x: x.mean(),
                                lambda x: losses.softmax_cross_entropy(x, np.array([0, 1]))])
def test_float32_stays_float32(op):
    x = Tensor(np.full((2, 3), 0.5, np.float32), requires_grad=True)
    y = op(x)
    y.backward(np.ones(y.shape, np.float32))
    assert y.dtype == np.float32 and x.grad.dtype == np.float32


# --- bad inputs ----------------------------------------------------------------------------------
def test_matmul_names_both_shapes_when_inner_dims_differ():
    with pytest.raises(ValueError, match=r"^matmul: shapes \(3, 4\) and \(5, 2\) do not align "
                                         r"\(4 != 5\)$"):
        Tensor(np.ones((3, 4))) @ np.ones((5, 2))


def test_matmul_refuses_non_2d_operands():
    with pytest.raises(ValueError, match=r"2-D operands, got shapes \(4,\) and \(4, 2\)"):
        F.matmul(Tensor(np.ones(4)), np.ones((4, 2)))


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div"])
def test_elementwise_ops_name_both_shapes_that_do_not_broadcast(op):
    with pytest.raises(ValueError, match=rf"^{op}: shapes \(3, 4\) and \(5,\) do not broadcast$"):
        getattr(F, op)(Tensor(np.ones((3, 4))), np.ones(5))


def test_integer_operands_are_refused():
    with pytest.raises(TypeError, match="int64"):
        Tensor(np.ones(3)) + np.arange(3)


@pytest.mark.parametrize("join", [F.concatenate, F.stack])
def test_joining_nothing_is_refused(join):
    with pytest.raises(ValueError, match="at least one tensor"):
        join([])


def test_mse_loss_counts_nan_positions_in_the_prediction():
    pred = np.zeros((2, 3))
    pred[0, 1] = pred[1, 0] = pred[1, 2] = np.nan
    with pytest.raises(FloatingPointError,
                       match=r"mse_loss: prediction contains NaN at 3 positions \(first at "
                             r"index \(0, 1\)\)"):
        losses.mse_loss(Tensor(pred, requires_grad=True), np.zeros((2, 3)))


def test_mse_loss_names_inf_in_the_target():
    target = np.zeros(4)
    target[2] = -np.inf
    with pytest.raises(FloatingPointError, match=r"target contains Inf at 1 position \(first"):
        losses.mse_loss(Tensor(np.zeros(4)), target)


def test_mse_loss_reports_overflow_of_finite_inputs():
    with pytest.raises(FloatingPointError, match="every input is finite"):
        losses.mse_loss(Tensor(np.full(2, 1e200)), np.zeros(2))


def test_mse_loss_refuses_shapes_that_would_broadcast():
    with pytest.raises(ValueError, match=r"prediction shape \(4,\) and target shape \(4, 1\)"):
        losses.mse_loss(Tensor(np.zeros(4)), np.zeros((4, 1)))


def test_cross_entropy_names_nan_and_inf_in_logits():
    logits = normal(3, 2)
    logits[1, 1], logits[2, 0] = np.nan, np.inf
    with pytest.raises(FloatingPointError, match=r"logits contains NaN at 1 position and Inf at "
                                                 r"1 position \(first at index \(1, 1\)\)"):
        losses.softmax_cross_entropy(Tensor(logits), np.array([0, 1, 0]))


@pytest.mark.parametrize("labels, error, message", [
    (np.array([0.0, 1.0, 2.0]), TypeError, "integer class indices, got dtype float64"),
    (np.array([True, False, True]), TypeError, "got dtype bool"),
    (np.array([[0], [1], [2]]), ValueError, r"shape \(N,\) = \(3,\) with N >= 1, got \(3, 1\)"),
    (np.array([0, 1]), ValueError, r"got \(2,\)"),
    (np.array([0, 4, 1]), ValueError, r"in \[0, 4\), got 4 at position 1"),
    (np.array([0, 1, -1]), ValueError, r"in \[0, 4\), got -1 at position 2"),
])
def test_cross_entropy_validates_labels(labels, error, message):
    with pytest.raises(error, match=message):
        losses.softmax_cross_entropy(Tensor(normal(3, 4)), labels)


def test_cross_entropy_needs_2d_logits():
    with pytest.raises(ValueError, match=r"shape \(N, C\), got \(4,\)"):
        losses.softmax_cross_entropy(Tensor(normal(4)), np.array([0]))
