"""Dropout: masks that depend on (seed, step, call) only, scaled so the expectation is kept."""
import numpy as np
import pytest

from bptt import Tensor, gradcheck
from bptt.nn import MLP, RNN
from bptt.nn import Dropout


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5, float("nan"), float("inf"), True, "0.5", None])
def test_p_outside_zero_one_is_refused_naming_it(p):
    with pytest.raises(ValueError, match=r"dropout p must be a number in \[0, 1\), got "
                                         + repr(p).replace("(", r"\(").replace(".", r"\.")):
        Dropout(p)


@pytest.mark.parametrize("what, kwargs", [("seed", {"seed": -1}), ("step", {"step": 2 ** 64}),
                                          ("call", {"call": 1.5}), ("step", {"step": True})])
def test_bad_seeds_steps_and_calls_are_refused(what, kwargs):
    seed = kwargs.pop("seed", 0)
    with pytest.raises(ValueError, match=f"dropout {what} must be an integer"):
        Dropout(0.5, seed=seed).mask((3,), np.float64, **{"step": 0, **kwargs})


def test_the_mask_is_a_function_of_seed_step_and_call_only():
    a, b = Dropout(0.4, seed=7), Dropout(0.4, seed=7)
    first = a.mask((5, 6), np.float64, step=3, call=2)
    a.mask((5, 6), np.float64, step=0, call=0)  # draws in between change nothing
    a.mask((100,), np.float32, step=9, call=1)
    np.testing.assert_array_equal(a.mask((5, 6), np.float64, step=3, call=2), first)
    np.testing.assert_array_equal(b.mask((5, 6), np.float64, step=3, call=2), first)
    for other in (a.mask((5, 6), np.float64, step=4, call=2),
                  a.mask((5, 6), np.float64, step=3, call=3),
                  Dropout(0.4, seed=8).mask((5, 6), np.float64, step=3, call=2)):
        assert not np.array_equal(other, first)


def test_steps_and_calls_do_not_share_numbers():
    drop = Dropout(0.5, seed=1)
    masks = [drop.mask((64,), np.float64, step=s, call=c) for s in range(3) for c in range(3)]
    assert len({m.tobytes() for m in masks}) == len(masks)


@pytest.mark.parametrize("p, dtype", [(0.1, np.float64), (0.5, np.float32), (0.9, np.float64)])
def test_a_fraction_p_is_dropped_and_the_rest_scaled_by_one_over_one_minus_p(p, dtype):
    mask = Dropout(p, seed=3).mask((200, 500), dtype, step=1)
    assert mask.dtype == dtype
    assert set(np.unique(mask)) == {0, dtype(1 / (1 - p))}
    assert abs(np.mean(mask == 0) - p) < 0.005  # 100,000 draws: 5 standard errors at most
    assert abs(mask.mean() - 1) < 0.02


def test_without_a_step_or_with_p_zero_dropout_is_the_identity():
    x = Tensor(np.arange(6.0).reshape(2, 3))
    assert Dropout(0.5)(x) is x
    assert Dropout(0.0)(x, step=4) is x


def test_the_gradient_goes_through_the_kept_units_only():
    drop = Dropout(0.3, seed=2)
    x = np.random.default_rng(0).normal(size=(4, 5))
    assert gradcheck(lambda t: drop(t, step=1, call=0), [x])
    y = Tensor(x, requires_grad=True)
    drop(y, step=1).sum().backward()
    np.testing.assert_array_equal(y.grad, drop.mask(x.shape, x.dtype, step=1))


def test_a_model_with_dropout_has_the_weights_of_the_model_without():
    plain, dropped = (MLP([4, 8, 3], rng=np.random.default_rng(5), dropout=p) for p in (0, 0.5))
    for a, b in zip(plain.parameters(), dropped.parameters()):
        np.testing.assert_array_equal(a.data, b.data)
    rnns = [RNN("gru", 2, 4, 1, np.random.default_rng(5), dropout=p) for p in (0, 0.5)]
    for a, b in zip(*(m.parameters() for m in rnns)):
        np.testing.assert_array_equal(a.data, b.data)
    x = np.ones((2, 4))
    np.testing.assert_array_equal(dropped(x).data, plain(x).data)  # evaluation: no mask
    assert not np.array_equal(dropped(x, step=0).data, plain(x).data)
    assert dropped.config()["dropout"] == 0.5 and "dropout" not in plain.config()
