"""The fused read-out + squared error node (`ReadoutMSE`) is the composed one, in one node."""
import numpy as np
import pytest

from bptt import Tensor, gradcheck, graph_bytes
from bptt.engine import losses
from bptt.engine.cell_functions import ReadoutMSE
from bptt.engine.tensor import topological_order


def data(seed=0, batch=5, hidden=4, out=3, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=shape).astype(dtype)
            for shape in ((batch, hidden), (hidden, out), (out,), (batch, out))]


def fused(h, W, b, target, scale):
    return ReadoutMSE()(h, W, b, target, scale=scale)


def composed(h, W, b, target, scale):
    return losses.mse_loss(h @ W + b, target) * scale


@pytest.mark.parametrize("scale", [1.0, 0.25, 1 / 7])
@pytest.mark.parametrize("shape", [(5, 4, 3), (1, 1, 1), (32, 16, 1)])
def test_fused_readout_matches_the_composed_ops_in_value_and_every_gradient(shape, scale):
    arrays = data(1, *shape)
    results = []
    for loss_of in (fused, composed):
        leaves = [Tensor(a, requires_grad=True) for a in arrays]
        loss = loss_of(*leaves, scale)
        loss.backward()
        results.append([loss.data] + [t.grad for t in leaves])
    for a, b in zip(*results):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_fused_readout_passes_gradcheck():
    assert gradcheck(lambda *t: fused(*t, 0.3), data(2))


def test_fused_readout_is_one_node_caching_no_more_than_the_composed_ops():
    caches = {}
    for loss_of in (fused, composed):
        leaves = [Tensor(a, requires_grad=True) for a in data(3)]
        loss = loss_of(*leaves[:3], leaves[3].data, 0.5)
        assert (len(topological_order([loss])) == 1) == (loss_of is fused)
        caches[loss_of] = graph_bytes([loss])
    assert 0 < caches[fused] <= caches[composed]


def test_fused_readout_stays_float32():
    leaves = [Tensor(a, requires_grad=True) for a in data(4, dtype=np.float32)]
    loss = fused(*leaves, 0.5)
    loss.backward()
    assert loss.dtype == np.float32 and all(t.grad.dtype == np.float32 for t in leaves)


def test_fused_readout_reports_a_non_finite_loss_as_mse_loss_does():
    h, W, b, target = data(5)
    with pytest.raises(FloatingPointError, match="mse_loss: the loss is not finite"):
        fused(h, W * 1e200, b, target, 1.0)
    target[2, 1] = np.nan
    with pytest.raises(FloatingPointError, match=r"mse_loss: target contains NaN at 1 position "
                                                 r"\(first at index \(2, 1\)\)"):
        fused(h, W, b, target, 1.0)


@pytest.mark.parametrize("shapes, message", [
    (((5, 4), (3, 3), (3,), (5, 3)), r"readout_mse: shapes \(5, 4\) and \(3, 3\) do not align"),
    (((5, 4), (4, 3), (3,), (5, 1)), r"mse_loss: prediction shape \(5, 3\) and target shape "
                                     r"\(5, 1\) differ"),
])
def test_fused_readout_refuses_shapes_that_do_not_fit(shapes, message):
    with pytest.raises(ValueError, match=message):
        fused(*(np.zeros(s) for s in shapes), 1.0)
