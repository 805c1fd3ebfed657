"""Backward variants: what each forms, that none reads the weights above it, and that they
compose with every exact memory strategy."""
import numpy as np
import pytest

from bptt import Tensor
from bptt.engine import losses
from bptt.nn import MLP, RNN
from bptt.nn.feedback import (VARIANTS, DirectError, attach_feedback, layer_forward,
                              trainable_parameters, variant_of)
from bptt.nn.layer_chain import LayerChain
from bptt.training.optim import SGD
from bptt.training.train import train_step
from checkpointing import Adaptive, Full, Periodic, Revolve, assert_same_gradients, execute

NON_TRANSPORT = [v for v in VARIANTS if v != "backprop"]


def mlp(variant, sizes=(4, 7, 6, 3), seed=0):
    rng = np.random.default_rng(seed)
    return attach_feedback(MLP(list(sizes), "tanh", rng=rng), variant, rng)


def batch(sizes=(4, 7, 6, 3), n=5, seed=1):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, sizes[0])), rng.integers(0, sizes[-1], n)


def weight_grads(model, x, y, poison=None):
    """Forward a graph, optionally overwrite every weight in place, then backward."""
    model.zero_grad()
    h, direct = Tensor(x), DirectError()
    for k in range(len(model.layers)):
        z = layer_forward(model, k, h, direct)
        h = z if k == len(model.layers) - 1 else z.tanh()
    loss = losses.softmax_cross_entropy(h, y)
    if poison is not None:
        for layer in model.layers:
            layer.weight.data[...] = poison(layer.weight.data)
    loss.backward()
    return [layer.weight.grad.copy() for layer in model.layers]


def test_an_unknown_variant_is_refused_by_name():
    with pytest.raises(ValueError, match="unknown backward variant 'bp'; choose one of"):
        mlp("bp")


@pytest.mark.parametrize("variant", NON_TRANSPORT)
def test_no_variant_reads_the_weights_above_in_backward(variant):
    x, y = batch()
    clean = weight_grads(mlp(variant), x, y)
    poisoned = weight_grads(mlp(variant), x, y, poison=lambda w: np.full_like(w, np.nan))
    for a, b in zip(clean, poisoned):
        np.testing.assert_array_equal(a, b)


def test_backprop_does_read_them_so_the_poison_test_can_fail():
    x, y = batch()
    poisoned = weight_grads(mlp("backprop"), x, y, poison=lambda w: np.full_like(w, np.nan))
    assert np.isnan(poisoned[0]).all() and np.isfinite(poisoned[-1]).all()


def test_sign_reads_only_the_signs():
    model = mlp("sign")
    before = model.feedback.matrix("1").copy()
    np.testing.assert_array_equal(before, np.sign(model.layers[1].weight.data).T
                                  * np.sqrt(2 / 13))
    model.layers[1].weight.data *= np.random.default_rng(3).uniform(0.1, 10,
                                                                    model.layers[1].weight.shape)
    np.testing.assert_array_equal(model.feedback.matrix("1"), before)


class NoTranspose(np.ndarray):
    """A weight whose transpose cannot be taken; every ufunc returns plain arrays."""

    @property
    def T(self):
        raise AssertionError("the backward read W^T")

    def transpose(self, *axes):
        raise AssertionError("the backward read W^T")

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        inputs = [i.view(np.ndarray) if isinstance(i, NoTranspose) else i for i in inputs]
        return getattr(ufunc, method)(*inputs, **kwargs)


def rnn(variant, cell="rnn", seed=0, T=6, every_step=True, dtype=np.float64):
    rng = np.random.default_rng(seed)
    model = RNN(cell, 3, 5, 2, rng, dtype=dtype, every_step=every_step)
    attach_feedback(model, variant, rng)
    data = np.random.default_rng(seed + 1)
    inputs = data.standard_normal((T, 4, 3)).astype(dtype)
    targets = data.standard_normal((T, 4, 2) if every_step else (4, 2)).astype(dtype)
    return model, inputs, targets


@pytest.mark.parametrize("variant", VARIANTS)
def test_no_rnn_variant_transposes_the_recurrent_or_readout_weights(variant):
    model, inputs, targets = rnn(variant)
    for p in (model.cell.W_h, model.readout.weight):
        p.data = p.data.view(NoTranspose)
    chain = model.chain(inputs, targets)
    if variant == "backprop":
        with pytest.raises(AssertionError, match="read W"):
            execute(Full().plan(chain.profile()), chain)
    else:
        execute(Full().plan(chain.profile()), chain)
        assert np.isfinite(model.cell.W_h.grad).all()


def test_feedback_equal_to_the_transposes_is_backprop():
    x, y = batch()
    exact = weight_grads(mlp("backprop"), x, y)
    model = mlp("fa")
    for name, B in model.feedback.matrices().items():
        B.data[...] = model.layers[int(name)].weight.data.T
    for a, b in zip(weight_grads(model, x, y), exact):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_rnn_feedback_equal_to_the_transposes_is_bptt(cell):
    model, inputs, targets = rnn("fa", cell)
    model.feedback.B_W_h.data[...] = model.cell.W_h.data.T
    model.feedback.B_readout.data[...] = model.readout.weight.data.T
    chain = model.chain(inputs, targets)
    execute(Full().plan(chain.profile()), chain)
    got = {n: p.grad.copy() for n, p in model.named_parameters() if p.grad is not None}
    del model.feedback
    model.zero_grad()
    chain = model.chain(inputs, targets)
    execute(Full().plan(chain.profile()), chain)
    for n, p in model.named_parameters():
        np.testing.assert_allclose(got[n], p.grad, rtol=1e-12, atol=1e-14)


def test_dfa_projects_the_output_error_to_every_hidden_layer():
    x, y = batch()
    model = mlp("dfa")
    grads = weight_grads(model, x, y)
    W = [layer.weight.data for layer in model.layers]
    b = [layer.bias.data for layer in model.layers]
    h1 = np.tanh(x @ W[0] + b[0])
    h2 = np.tanh(h1 @ W[1] + b[1])
    logits = h2 @ W[2] + b[2]
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    p[np.arange(len(y)), y] -= 1
    e = p / len(y)
    d2 = (e @ model.feedback.B_2.data) * (1 - h2 ** 2)
    d1 = (e @ model.feedback.B_1.data) * (1 - h1 ** 2)
    np.testing.assert_allclose(grads[1], h1.T @ d2, rtol=1e-12)
    np.testing.assert_allclose(grads[0], x.T @ d1, rtol=1e-12)


def test_dfa_through_time_sends_the_sum_of_later_readout_errors():
    model, inputs, targets = rnn("dfa", "rnn", T=4)
    chain = model.chain(inputs, targets)
    execute(Full().plan(chain.profile()), chain)
    W_x, W_h, b = (p.data for p in (model.cell.W_x, model.cell.W_h, model.cell.b))
    W_y, b_y, B = model.readout.weight.data, model.readout.bias.data, model.feedback.B_readout.data
    hs = [np.zeros((4, 5))]
    for t in range(4):
        hs.append(np.tanh(inputs[t] @ W_x + hs[-1] @ W_h + b))
    errors = [2 * (hs[t + 1] @ W_y + b_y - targets[t]) / targets[t].size / 4 for t in range(4)]
    dW_h = sum(hs[t].T @ (sum(errors[t:]) @ B * (1 - hs[t + 1] ** 2)) for t in range(4))
    np.testing.assert_allclose(model.cell.W_h.grad, dW_h, rtol=1e-12)


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_exact_strategy_gives_fulls_gradient_on_the_mlp(variant):
    model = mlp(variant, sizes=(4, 6, 6, 5, 3))
    x, y = batch(sizes=(4, 6, 6, 5, 3))
    assert_same_gradients(lambda: LayerChain(model, x, y), model.parameters(),
                          [Periodic(2), Revolve(2), Adaptive(10 ** 9)])


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_every_exact_strategy_gives_fulls_gradient_through_time(variant, cell):
    model, inputs, targets = rnn(variant, cell, T=11, dtype=np.float32)
    profile = model.chain(inputs, targets).profile()
    budget = Adaptive.minimum_budget(profile) * 2
    assert_same_gradients(lambda: model.chain(inputs, targets), model.parameters(),
                          [Periodic(), Revolve(3), Adaptive(budget)])


def test_kp_learns_b_by_ws_update_and_the_difference_decays():
    model = mlp("kp")
    x, y = batch()
    params = trainable_parameters(model)
    assert any(p is model.feedback.B_1 for p in params)
    before = model.feedback.B_1.data - model.layers[1].weight.data.T
    chain = LayerChain(model, x, y)
    train_step(Full().plan(chain.profile()), chain, params, SGD(params, lr=0.1),
               feedback=model.feedback)
    np.testing.assert_array_equal(model.feedback.B_1.grad, model.layers[1].weight.grad.T)
    after = model.feedback.B_1.data - model.layers[1].weight.data.T
    np.testing.assert_allclose(after, (1 - model.feedback.decay) * before, rtol=1e-12,
                               atol=1e-15)


def test_hebbian_learns_b_locally_outside_the_optimiser():
    model = mlp("hebbian")
    x, y = batch()
    params = trainable_parameters(model)
    assert not any(p is model.feedback.B_1 for p in params)
    B0 = model.feedback.B_1.data.copy()
    chain = LayerChain(model, x, y)
    train_step(Full().plan(chain.profile()), chain, params, SGD(params, lr=0.1),
               feedback=model.feedback)
    local = model.layers[1].weight.grad.T  # δᵀ x: the two quantities at B's ends
    fb = model.feedback
    np.testing.assert_allclose(fb.B_1.data, (1 - fb.hebbian_decay) * B0 - fb.hebbian_lr * local,
                               rtol=1e-12)


def test_fixed_feedback_is_not_trained():
    model = mlp("fa")
    assert len(trainable_parameters(model)) == len(model.parameters()) - 2
    assert variant_of(model) == "fa" and variant_of(mlp("backprop")) == "backprop"


def test_a_variant_needs_a_fused_rnn():
    model = RNN("rnn", 2, 4, 1, np.random.default_rng(0), fused=False)
    with pytest.raises(ValueError, match="runs on fused cells"):
        attach_feedback(model, "fa", np.random.default_rng(0))


def test_feedback_matrices_of_the_wrong_shape_are_refused_on_load():
    state = mlp("fa").state_dict()
    state["feedback.B_1"] = np.zeros((2, 2))
    with pytest.raises(ValueError, match=r"feedback.B_1: shape \(2, 2\), expected \(6, 7\)"):
        mlp("fa").load_state_dict(state)


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_layer_chain_on_arrays_forms_the_same_errors_as_the_graph(variant):
    model = mlp(variant)
    x, y = batch()
    expected = weight_grads(model, x, y)
    model.zero_grad()
    chain = LayerChain(model, x, y)
    execute(Full().plan(chain.profile()), chain)
    for layer, g in zip(model.layers, expected):
        np.testing.assert_allclose(layer.weight.grad, g, rtol=1e-12, atol=1e-15)
