"""gradcheck passes correct gradients and pinpoints wrong ones."""
import numpy as np
import pytest

from bptt import Function, GradcheckResult, Tensor, gradcheck


class WrongScale(Function):
    """y = 3x, with a backward that forgets the 3 for element 2 only."""

    def forward(self, x):
        return 3 * x

    def backward(self, g):
        grad = 3 * g
        grad.reshape(-1)[2] = g.reshape(-1)[2]
        return grad


class ReverseWithIdentityBackward(Function):
    """y = x[::-1] with the backward of the identity: right for a plain sum, wrong otherwise."""

    def forward(self, x):
        return x[::-1].copy()

    def backward(self, g):
        return g


def test_correct_gradients_pass_and_report_what_was_compared():
    x, w = np.linspace(-1, 1, 6).reshape(2, 3), np.linspace(0.5, 2, 3)
    result = gradcheck(lambda a, b: (a * b).tanh(), [x, Tensor(w)])
    assert isinstance(result, GradcheckResult) and result
    assert result.elements == 9
    assert 0 < result.max_abs_error < 1e-8


def test_a_wrong_element_is_named_with_both_values():
    weights = np.random.default_rng(0).standard_normal((2, 2))  # gradcheck's projection
    with pytest.raises(AssertionError) as failure:
        gradcheck(lambda a: WrongScale()(a), [np.ones((2, 2))])
    message = str(failure.value)
    assert message.startswith("gradcheck: input 0 element (1, 0): ")
    analytic, numeric = float(weights[1, 0]), 3 * float(weights[1, 0])
    assert f"analytic {analytic!r}" in message
    assert f"numeric {numeric:.8f}" in message
    assert "1 of 4 elements mismatch" in message
    assert f"max abs error {abs(numeric - analytic):.3e}" in message and "max rel error" in message


def test_the_worst_element_of_a_later_input_is_named():
    with pytest.raises(AssertionError, match=r"input 1 element \(2,\): analytic .* numeric"):
        gradcheck(lambda a, b: (a * 2.0).sum() + WrongScale()(b), [np.ones(2), np.arange(4.0)])


def test_non_scalar_outputs_are_projected_with_random_weights():
    x = np.arange(4.0)
    gradcheck(lambda a: ReverseWithIdentityBackward()(a).sum(), [x])  # equal weights miss it
    with pytest.raises(AssertionError, match="input 0"):
        gradcheck(lambda a: ReverseWithIdentityBackward()(a), [x])


def test_an_input_fn_ignores_has_zero_gradient():
    assert gradcheck(lambda a, b: a * 2.0, [np.ones(2), np.ones(3)])


def test_inputs_are_not_modified():
    x = np.linspace(0, 1, 5)
    before = x.copy()
    gradcheck(lambda a: a.exp(), [x])
    np.testing.assert_array_equal(x, before)


@pytest.mark.parametrize("value, message", [
    (np.ones(3, np.float32), "input 0 has dtype float32"),
    (Tensor(np.ones(3, np.float32)), "input 0 has dtype float32"),
    ([1.0, 2.0], "input 0 must be a float64 ndarray or Tensor, got list"),
])
def test_non_float64_inputs_are_refused(value, message):
    with pytest.raises(TypeError, match=message):
        gradcheck(lambda a: a * 2.0, [value])


def test_fn_must_return_a_tensor():
    with pytest.raises(TypeError, match="fn must return a Tensor, got ndarray"):
        gradcheck(lambda a: a.data * 2, [np.ones(2)])
