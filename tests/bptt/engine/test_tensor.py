"""The engine: recording, the reverse sweep, accumulation, the cache and its accounting."""
import weakref

import numpy as np
import pytest

from bptt import Tensor, backward, graph_bytes, is_grad_enabled, no_grad


def leaf(*values):
    return Tensor(np.array(values, dtype=np.float64), requires_grad=True)


@pytest.mark.slow
def test_a_chain_of_100_000_ops_backpropagates_without_recursion():
    x = leaf(1.0)
    y = x
    for _ in range(100_000):
        y = y * 1.0000001
    y.sum().backward()
    np.testing.assert_allclose(x.grad, [1.0000001 ** 100_000], rtol=1e-9)
    del y  # releasing a 100,000-deep graph must not overflow the C stack either


def test_a_tensor_used_twice_receives_both_gradients():
    x = leaf(3.0, -2.0)
    (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad, [6.0, -4.0])
    y = leaf(3.0, -2.0)
    (y + y).sum().backward()
    np.testing.assert_array_equal(y.grad, [2.0, 2.0])


def test_diamond_graph_sums_both_paths():
    x = leaf(2.0)
    h = x * 3.0
    (h.tanh() + h * h).sum().backward()
    np.testing.assert_allclose(x.grad, [3.0 * (1 - np.tanh(6.0) ** 2) + 2 * 6.0 * 3.0])


def test_leaf_gradients_accumulate_across_backward_calls():
    x = leaf(1.0, 2.0)
    for _ in range(2):
        (x * np.array([5.0, 7.0])).sum().backward()
    np.testing.assert_array_equal(x.grad, [10.0, 14.0])
    x.zero_grad()
    assert x.grad is None


def test_no_grad_records_nothing_and_restores_the_mode():
    x = leaf(1.0)
    with no_grad():
        assert not is_grad_enabled()
        y = (x * 2.0).tanh()
    assert y.creator is None and not y.requires_grad
    with pytest.raises(RuntimeError):
        with no_grad():
            raise RuntimeError("leaving by an exception")
    assert is_grad_enabled()
    assert (x * 2.0).creator is not None


def test_constants_need_no_gradient():
    y = Tensor(np.ones(2)) * 3.0
    assert y.creator is None and not y.requires_grad
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.sum().backward()


def test_backward_twice_needs_retain_graph():
    x = leaf(1.0, 2.0)
    loss = (x.tanh() * x).sum()
    loss.backward()
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        loss.backward()


def test_retain_graph_allows_a_second_reversal_that_accumulates():
    x = leaf(0.5, -1.5)
    loss = (x.tanh() * x).sum()
    loss.backward(retain_graph=True)
    first = x.grad.copy()
    loss.backward()
    np.testing.assert_allclose(x.grad, 2 * first)


def test_the_cache_is_freed_by_backward():
    x = leaf(1.0, 2.0)
    h = x.tanh()
    loss = (h * h).sum()
    nodes = [loss.creator, h.creator]
    loss.backward()
    assert all(node.saved is None for node in nodes)


def test_graph_bytes_counts_each_saved_buffer_once_and_nothing_after_backward():
    x = Tensor(np.ones(1000), requires_grad=True)
    h = x.tanh()  # saves its output: 8000 bytes
    y = h * h  # saves h twice: the same buffer
    z = y[10:20]  # saves no array
    loss = z.sum()
    assert graph_bytes([loss]) == 8000
    assert graph_bytes([loss], exclude=[h.data]) == 0
    loss.backward()
    assert graph_bytes([loss]) == 0


def test_graph_bytes_leaves_out_parameters():
    w = Tensor(np.ones((50, 10)), requires_grad=True)
    x = np.ones((4, 50))
    loss = (Tensor(x) @ w).sum()  # matmul saves x (1600 bytes) and w (a parameter)
    assert graph_bytes([loss]) == 1600
    assert graph_bytes([loss], exclude=[x]) == 0


def test_a_dropped_graph_is_freed_without_the_garbage_collector():
    import gc
    x = leaf(1.0, 2.0)
    loss = ((x * 2.0).tanh() * x).sum()
    node = weakref.ref(loss.creator)
    inner = weakref.ref(loss.creator.edges[0][0])
    gc.disable()
    try:
        del loss
        assert node() is None and inner() is None
    finally:
        gc.enable()


def test_retain_grad_keeps_intermediate_gradients():
    x = leaf(1.0, -2.0)
    h = (x * 3.0).retain_grad()
    other = x * 5.0
    (h * h).sum().backward()
    np.testing.assert_allclose(h.grad, 2 * h.data)
    assert other.grad is None


def test_several_roots_with_seed_gradients():
    x = leaf(1.0, 2.0)
    a, b = x * 2.0, x * x
    backward([a, b], [np.array([1.0, 1.0]), np.array([10.0, 0.0])])
    np.testing.assert_allclose(x.grad, [2.0 + 20.0, 2.0])


@pytest.mark.parametrize("data, dtype", [
    (np.arange(3), "int64"), (np.ones(3, np.float16), "float16"),
    (np.array([True, False]), "bool"), (np.ones(2, np.complex128), "complex128"),
])
def test_non_float_data_is_refused_naming_its_dtype(data, dtype):
    with pytest.raises(TypeError, match=rf"dtype float32 or float64, got {dtype}"):
        Tensor(data)


def test_python_bool_is_refused():
    with pytest.raises(TypeError, match="got bool"):
        Tensor(True)


def test_backward_on_a_non_scalar_needs_a_seed_gradient():
    y = leaf(1.0, 2.0) * 2.0
    with pytest.raises(ValueError, match=r"shape \(2,\) needs a seed gradient"):
        y.backward()


def test_seed_gradient_must_match_the_shape():
    y = leaf(1.0, 2.0) * 2.0
    with pytest.raises(ValueError, match=r"seed gradient has shape \(3,\), expected \(2,\)"):
        y.backward(np.ones(3))


def test_detach_cuts_the_graph():
    x = leaf(1.0)
    y = (x * 2.0).detach() * x
    y.backward()
    np.testing.assert_array_equal(x.grad, [2.0])
