import numpy as np
import pytest

from bptt import Tensor
from bptt.engine import losses
from bptt.nn import MLP, Linear, Module, Parameter, he_normal, xavier_uniform


def rng(seed=0):
    return np.random.default_rng(seed)


def test_linear_weight_is_in_by_out_and_computes_x_at_w_plus_b():
    layer = Linear(4, 3, rng())
    assert layer.weight.shape == (4, 3) and layer.bias.shape == (3,)
    assert np.all(layer.bias.data == 0)
    x = rng(1).normal(size=(5, 4))
    np.testing.assert_array_equal(layer(x).data, x @ layer.weight.data + layer.bias.data)


def test_linear_rejects_input_of_the_wrong_width():
    with pytest.raises(ValueError, match=r"expects input of shape \(batch, 4\), got \(5, 3\)"):
        Linear(4, 3, rng())(np.zeros((5, 3)))


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_linear_rejects_sizes_that_are_not_positive_integers(bad):
    with pytest.raises(ValueError, match="in_features must be a positive integer"):
        Linear(bad, 3, rng())


def test_same_seed_gives_bit_identical_weights_and_other_seeds_differ():
    a, b, c = (MLP([4, 8, 3], rng=rng(s)) for s in (7, 7, 8))
    for (_, pa), (_, pb), (_, pc) in zip(a.named_parameters(), b.named_parameters(),
                                         c.named_parameters()):
        assert pa.data.tobytes() == pb.data.tobytes()
    assert not np.array_equal(a.layers[0].weight.data, c.layers[0].weight.data)


def test_xavier_uniform_stays_within_the_glorot_limit():
    w = xavier_uniform(200, 100, rng())
    limit = np.sqrt(6 / 300)
    assert w.shape == (200, 100) and np.abs(w).max() <= limit
    assert np.var(w) == pytest.approx(limit ** 2 / 3, rel=0.05)


def test_he_normal_has_std_sqrt_2_over_fan_in():
    w = he_normal(200, 100, rng())
    assert np.std(w) == pytest.approx(np.sqrt(2 / 200), rel=0.05)
    assert abs(np.mean(w)) < 0.01


def test_float32_weights_are_the_rounded_float64_draws():
    w32 = xavier_uniform(5, 4, rng(3), dtype=np.float32)
    assert w32.dtype == np.float32
    np.testing.assert_array_equal(w32, xavier_uniform(5, 4, rng(3)).astype(np.float32))


def test_mlp_uses_he_init_for_relu_and_xavier_otherwise():
    for activation, init in (("relu", "he"), ("sigmoid", "xavier"), ("tanh", "xavier")):
        assert [layer.init for layer in MLP([3, 4, 2], activation, rng=rng()).layers] == [init] * 2


def test_init_needs_a_generator_not_a_seed():
    with pytest.raises(TypeError, match="numpy.random.Generator"):
        Linear(2, 2, 0)


def test_unknown_init_is_named_with_the_choices():
    with pytest.raises(ValueError, match=r"unknown init 'lecun'.*\['he', 'xavier'\]"):
        Linear(2, 2, rng(), init="lecun")


def test_unknown_activation_is_named_with_the_choices():
    with pytest.raises(ValueError,
                       match=r"unknown activation 'gelu'.*\['relu', 'sigmoid', 'tanh'\]"):
        MLP([2, 3, 1], "gelu", rng=rng())


@pytest.mark.parametrize("sizes", [[4], [4, 0, 2], [4, -3]])
def test_mlp_rejects_bad_sizes(sizes):
    with pytest.raises(ValueError, match="sizes"):
        MLP(sizes, rng=rng())


def test_mlp_rejects_non_float_dtype():
    with pytest.raises(ValueError, match="dtype must be float32 or float64, got int64"):
        MLP([2, 2], rng=rng(), dtype=np.int64)


@pytest.mark.parametrize("activation, f", [
    ("tanh", np.tanh), ("relu", lambda z: np.maximum(z, 0)),
    ("sigmoid", lambda z: 1 / (1 + np.exp(-z)))])
def test_mlp_of_any_depth_matches_numpy_with_no_activation_on_the_last_layer(activation, f):
    mlp = MLP([3, 5, 4, 6, 2], activation, rng=rng())
    x = rng(1).normal(size=(7, 3))
    h = x
    for k, layer in enumerate(mlp.layers):
        z = h @ layer.weight.data + layer.bias.data
        h = z if k == len(mlp.layers) - 1 else f(z)
    out = mlp(x)
    assert out.shape == (7, 2) and len(mlp.layers) == 4
    np.testing.assert_allclose(out.data, h, rtol=1e-12, atol=1e-12)


def test_float32_mlp_keeps_float32_end_to_end():
    mlp = MLP([3, 4, 2], rng=rng(), dtype=np.float32)
    assert all(p.dtype == np.float32 for p in mlp.parameters())
    assert mlp(np.ones((2, 3), np.float32)).dtype == np.float32


def test_named_parameters_are_dotted_and_in_construction_order():
    mlp = MLP([3, 4, 2], rng=rng())
    assert [n for n, _ in mlp.named_parameters()] == [
        "layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias"]
    assert mlp.parameters() == [p for _, p in mlp.named_parameters()]
    assert all(isinstance(p, Parameter) and p.requires_grad for p in mlp.parameters())


def test_nested_modules_and_plain_tensors_attributes():
    class Net(Module):
        def __init__(self):
            self.encoder = Linear(2, 3, rng())
            self.scale = Parameter(np.ones(3))
            self.buffer = Tensor(np.zeros(3))  # not a Parameter: not trained, not saved

    assert [n for n, _ in Net().named_parameters()] == [
        "encoder.weight", "encoder.bias", "scale"]


def test_zero_grad_clears_every_gradient():
    mlp = MLP([3, 4, 2], rng=rng())
    mlp(np.ones((2, 3))).sum().backward()
    assert all(p.grad is not None for p in mlp.parameters())
    mlp.zero_grad()
    assert all(p.grad is None for p in mlp.parameters())


def test_state_dict_is_a_copy_and_round_trips():
    a, b = MLP([3, 4, 2], rng=rng(0)), MLP([3, 4, 2], rng=rng(1))
    state = a.state_dict()
    state["layers.0.bias"][:] = 5.0
    assert np.all(a.layers[0].bias.data == 0)
    b.load_state_dict(a.state_dict())
    x = rng(2).normal(size=(4, 3))
    assert a(x).data.tobytes() == b(x).data.tobytes()


def test_load_state_dict_lists_every_mismatch_and_changes_nothing():
    mlp = MLP([3, 4, 2], rng=rng())
    before = mlp.state_dict()
    state = mlp.state_dict()
    del state["layers.1.bias"]
    state["layers.2.weight"] = np.zeros((2, 2))
    state["layers.0.weight"] = np.zeros((4, 3))
    state["layers.0.bias"] = np.zeros(4, np.float32)
    with pytest.raises(ValueError) as error:
        mlp.load_state_dict(state)
    message = str(error.value)
    assert "missing ['layers.1.bias']" in message
    assert "unexpected ['layers.2.weight']" in message
    assert "layers.0.weight: shape (4, 3), expected (3, 4)" in message
    assert "layers.0.bias: dtype float32, expected float64" in message
    for name, value in mlp.state_dict().items():
        np.testing.assert_array_equal(value, before[name])


def test_inspection_caches_x_z_delta_and_they_give_the_parameter_gradients():
    mlp = MLP([4, 6, 5, 3], rng=rng())
    x = rng(1).normal(size=(8, 4))
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    loss = losses.softmax_cross_entropy(mlp(x, inspect=True), labels)
    loss.backward()
    records = mlp.layer_records
    assert len(records) == 3
    np.testing.assert_array_equal(records[0].x, x)
    for record, layer in zip(records, mlp.layers):
        assert record.z.shape == record.delta.shape == (8, layer.out_features)
        np.testing.assert_allclose(record.x.T @ record.delta, layer.weight.grad, rtol=1e-12,
                                   atol=1e-15)
        np.testing.assert_allclose(record.delta.sum(axis=0), layer.bias.grad, rtol=1e-12,
                                   atol=1e-15)
    # The next layer's input is this layer's activation of z.
    for below, above in zip(records[:-1], records[1:]):
        np.testing.assert_array_equal(above.x, np.tanh(below.z))


def test_output_delta_of_mean_cross_entropy_is_softmax_minus_onehot_over_batch():
    mlp = MLP([4, 3], rng=rng())
    x, labels = rng(1).normal(size=(5, 4)), np.array([0, 2, 1, 1, 0])
    losses.softmax_cross_entropy(mlp(x, inspect=True), labels).backward()
    z = mlp.layer_records[-1].z
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(mlp.layer_records[-1].delta,
                               (p - np.eye(3)[labels]) / 5, rtol=1e-10, atol=1e-15)


def test_delta_before_backward_is_an_error_and_plain_forward_keeps_no_records():
    mlp = MLP([2, 3, 1], rng=rng())
    mlp(np.ones((1, 2)), inspect=True)
    with pytest.raises(RuntimeError, match="after backward"):
        mlp.layer_records[0].delta
    mlp(np.ones((1, 2)))
    assert mlp.layer_records == []
