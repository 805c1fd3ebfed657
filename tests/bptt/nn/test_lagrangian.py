"""The Lagrange multipliers solved from the stationarity conditions are the reverse sweep's δ."""
import numpy as np
import pytest

from bptt.engine import losses
from bptt.nn import MLP
from bptt.nn.lagrangian import lagrange_multipliers


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "relu"])
@pytest.mark.parametrize("sizes", [(4, 3), (4, 7, 3), (5, 8, 6, 4)])
def test_multipliers_equal_the_deltas_of_backprop(sizes, activation):
    rng = np.random.default_rng(len(sizes))
    model = MLP(list(sizes), activation, rng=rng)
    x = rng.standard_normal((20, sizes[0]))
    y = rng.integers(0, sizes[-1], 20)
    lambdas = lagrange_multipliers(model, x, y, chunk=7)
    losses.softmax_cross_entropy(model(x, inspect=True), y).backward()
    deltas = [record.delta for record in model.layer_records]
    assert len(lambdas) == len(deltas)
    for lam, delta in zip(lambdas, deltas):
        assert lam.shape == delta.shape
        np.testing.assert_allclose(lam, delta, rtol=0, atol=1e-12)
        assert np.abs(delta).max() > 1e-6  # not trivially zero
