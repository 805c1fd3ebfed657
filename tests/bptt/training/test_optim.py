import math

import numpy as np
import pytest

from bptt import Tensor
from bptt.nn import Parameter
from bptt.training.optim import SGD, Adam, clip_grad_norm, grad_norm


def param(values, grad=None, dtype=np.float64):
    p = Parameter(np.array(values, dtype=dtype))
    p.grad = None if grad is None else np.array(grad, dtype=dtype)
    return p


def test_sgd_without_momentum_subtracts_lr_times_grad():
    p = param([1.0, -2.0], grad=[0.5, 4.0])
    SGD([p], lr=0.1).step()
    np.testing.assert_allclose(p.data, [1.0 - 0.05, -2.0 - 0.4], rtol=0, atol=1e-15)


def test_sgd_momentum_accumulates_velocity():
    p = param([1.0], grad=[2.0])
    opt = SGD([p], lr=0.1, momentum=0.9)
    opt.step()  # v = 2, p = 1 - 0.2
    np.testing.assert_allclose(p.data, [0.8], atol=1e-15)
    p.grad = np.array([1.0])
    opt.step()  # v = 0.9 * 2 + 1 = 2.8, p = 0.8 - 0.28
    np.testing.assert_allclose(p.data, [0.52], atol=1e-15)


def test_adam_first_two_steps_by_hand():
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
    p = param([1.0, 2.0], grad=[0.5, -1.0])
    opt = Adam([p], lr=lr, betas=(b1, b2), eps=eps)
    opt.step()
    # Step 1: m_hat = g, v_hat = g², so the step is lr * sign(g) (up to eps).
    np.testing.assert_allclose(p.data, [1.0 - lr * 0.5 / (0.5 + eps),
                                        2.0 + lr * 1.0 / (1.0 + eps)], rtol=1e-14)
    expected = p.data.copy()
    g1, g2 = np.array([0.5, -1.0]), np.array([-0.25, 3.0])
    p.grad = g2.copy()
    opt.step()
    m = b1 * (1 - b1) * g1 + (1 - b1) * g2
    v = b2 * (1 - b2) * g1 ** 2 + (1 - b2) * g2 ** 2
    expected -= lr * (m / (1 - b1 ** 2)) / (np.sqrt(v / (1 - b2 ** 2)) + eps)
    np.testing.assert_allclose(p.data, expected, rtol=1e-14)


def test_updates_keep_float32_parameters_float32():
    p = param([1.0, 2.0], grad=[0.1, 0.2], dtype=np.float32)
    for opt in (SGD([p], lr=0.1, momentum=0.5), Adam([p])):
        opt.step()
        assert p.data.dtype == np.float32


def test_parameters_without_gradient_are_left_alone():
    a, b = param([1.0], grad=[1.0]), param([1.0])
    SGD([a, b], lr=0.5).step()
    assert a.data[0] == 0.5 and b.data[0] == 1.0


def test_zero_grad_clears_gradients():
    a = param([1.0], grad=[1.0])
    opt = Adam([a])
    opt.zero_grad()
    assert a.grad is None


@pytest.mark.parametrize("make", [
    lambda ps: SGD(ps, lr=0.05, momentum=0.9),
    lambda ps: Adam(ps, lr=0.01)])
def test_resuming_from_state_dict_is_bit_identical_to_an_uninterrupted_run(make):
    grads = [np.random.default_rng(k).normal(size=3) for k in range(4)]

    def run(opt, p, steps):
        for g in steps:
            p.grad = g.copy()
            opt.step()

    p_full = param(np.ones(3))
    run(make([p_full]), p_full, grads)

    p_first = param(np.ones(3))
    first = make([p_first])
    run(first, p_first, grads[:2])
    state = first.state_dict()
    p_resumed = param(p_first.data.copy())
    resumed = make([p_resumed])
    resumed.load_state_dict(state)
    run(resumed, p_resumed, grads[2:])
    assert p_resumed.data.tobytes() == p_full.data.tobytes()


def test_state_dict_buffers_are_named_and_copied():
    p = param([1.0], grad=[1.0])
    opt = Adam([p])
    opt.step()
    state = opt.state_dict()
    assert sorted(state["buffers"]) == ["m.0", "v.0"] and state["steps"] == 1
    state["buffers"]["m.0"][:] = 99
    assert opt.buffers["m"][0][0] != 99


def test_load_state_dict_rejects_other_type_and_mismatched_buffers():
    p = param([1.0, 2.0])
    with pytest.raises(ValueError, match="state is for optimizer 'SGD', not Adam"):
        Adam([p]).load_state_dict(SGD([p], lr=0.1).state_dict())
    state = SGD([param([1.0])], lr=0.1).state_dict()
    with pytest.raises(ValueError, match=r"velocity.0: \(1,\) float64, expected \(2,\) float64"):
        SGD([p], lr=0.1).load_state_dict(state)


@pytest.mark.parametrize("kwargs, message", [
    ({"lr": 0.0}, "lr must be a finite number > 0, got 0.0"),
    ({"lr": -1.0}, "lr must be a finite number > 0"),
    ({"lr": math.nan}, "lr must be a finite number > 0"),
    ({"lr": "0.1"}, "lr must be a number, got '0.1'"),
    ({"lr": 0.1, "momentum": 1.0}, r"momentum must be in \[0, 1\), got 1.0"),
    ({"lr": 0.1, "momentum": -0.1}, r"momentum must be in \[0, 1\)"),
])
def test_sgd_validates_hyperparameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SGD([param([1.0])], **kwargs)


@pytest.mark.parametrize("kwargs, message", [
    ({"betas": (0.9, 1.0)}, r"betas must be a pair of numbers in \[0, 1\)"),
    ({"betas": (0.9,)}, "betas must be a pair"),
    ({"eps": 0.0}, "eps must be a finite number > 0"),
    ({"lr": math.inf}, "lr must be a finite number > 0"),
])
def test_adam_validates_hyperparameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Adam([param([1.0])], **kwargs)


def test_optimizer_rejects_empty_duplicate_or_frozen_parameters():
    p = param([1.0])
    with pytest.raises(ValueError, match="empty parameter list"):
        SGD([], lr=0.1)
    with pytest.raises(ValueError, match="same parameter more than once"):
        SGD([p, p], lr=0.1)
    with pytest.raises(TypeError, match="require grad"):
        SGD([Tensor(np.ones(2))], lr=0.1)


def test_clip_grad_norm_scales_all_gradients_to_the_global_norm():
    a, b = param([0.0, 0.0], grad=[3.0, 0.0]), param([0.0], grad=[4.0])
    total = clip_grad_norm([a, b], max_norm=1.0)
    assert total == 5.0
    np.testing.assert_allclose(a.grad, [0.6, 0.0], rtol=1e-15)
    np.testing.assert_allclose(b.grad, [0.8], rtol=1e-15)


def test_clip_grad_norm_below_the_limit_changes_nothing_and_skips_missing_grads():
    a, b = param([0.0], grad=[0.3]), param([0.0])
    assert clip_grad_norm([a, b], max_norm=1.0) == pytest.approx(0.3)
    assert a.grad[0] == 0.3 and b.grad is None


def test_clip_grad_norm_leaves_non_finite_gradients_for_the_caller():
    a = param([0.0, 0.0], grad=[np.inf, 1.0])
    assert clip_grad_norm([a], max_norm=1.0) == math.inf
    assert a.grad[1] == 1.0


def test_clip_grad_norm_validates_max_norm():
    with pytest.raises(ValueError, match="max_norm must be a finite number > 0, got -1.0"):
        clip_grad_norm([param([0.0], grad=[1.0])], max_norm=-1)


def test_clip_grad_norm_uses_a_norm_already_taken_and_grad_norm_sums_in_float64():
    a, b = param([0.0, 0.0], grad=[3.0, 0.0]), param([0.0], grad=[4.0])
    assert grad_norm([a, b]) == 5.0
    assert clip_grad_norm([a, b], max_norm=1.0, norm=10.0) == 10.0  # scaled by 1 / 10
    np.testing.assert_allclose(a.grad, [0.3, 0.0], rtol=1e-15)
    g = np.random.default_rng(0).standard_normal(1000).astype(np.float32)
    c = Parameter(np.zeros(1000, np.float32))
    c.grad = g
    assert grad_norm([c]) == math.sqrt(float(np.sum(np.square(g, dtype=np.float64))))
