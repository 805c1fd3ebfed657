"""Predictions keep the forward pass's activations; the backward sweep is the engine's own."""
import numpy as np
import pytest

from bptt.engine.tensor import Tensor
from bptt.nn.layer_chain import LayerChain
from bptt.serve.checkpoints import find_checkpoints
from bptt.serve.inference import OutputOverflow, backward_sweep, predict
from checkpointing import Full, execute
from tasks import iris


@pytest.fixture(scope="module")
def models(checkpoints):
    return find_checkpoints([checkpoints])


def iris_rows():
    data = iris.load_data()
    return data.x_test * data.std + data.mean, data.y_test


def sequences(served, batch=3, seed=0):
    rng = np.random.default_rng(seed)
    steps = served.config["data"]["seq_len"]
    if served.classes is not None:  # one-hot symbols
        return np.eye(len(served.features))[rng.integers(0, len(served.features), (batch, steps))]
    return rng.random((batch, steps, len(served.features)))


def test_mlp_prediction_is_the_checkpoints_and_keeps_every_layer(models):
    served = models["iris"]
    x, _ = iris_rows()
    prediction = predict(served, x, "r")
    assert np.array_equal(prediction.outputs, served.pretrained.outputs(x))
    assert np.allclose(prediction.probabilities.sum(axis=1), 1)
    names = list(prediction.activations)
    assert names == ["layers.0.pre_activation", "layers.0.output", "layers.1.pre_activation",
                     "layers.1.output"]
    z0, a0 = prediction.activations["layers.0.pre_activation"], prediction.activations[
        "layers.0.output"]
    assert z0.shape == (30, 32) and np.array_equal(a0, np.tanh(z0))
    assert np.array_equal(prediction.activations["layers.1.output"], prediction.outputs)
    assert not prediction.outputs.flags.writeable  # a published record cannot change
    assert served.model.layer_records == []  # nothing kept alive on the shared model


def test_rnn_prediction_is_the_checkpoints_and_keeps_every_step(models):
    for name in ("reber", "adding"):
        served = models[name]
        x = sequences(served)
        prediction = predict(served, x, "r")
        time_major = np.ascontiguousarray(x.transpose(1, 0, 2).astype(served.dtype))
        expected = served.pretrained.outputs(time_major).transpose(1, 0, 2)
        assert np.array_equal(prediction.outputs, expected), name
        hidden = served.model.hidden_size
        assert prediction.activations["h"].shape == (3, x.shape[1], hidden)
        assert ("c" in prediction.activations) == (served.model.kind == "lstm")


def test_mlp_sweep_is_the_executors_gradient_and_follows_the_chain_rule(models):
    served = models["iris"]
    x, y = iris_rows()
    prediction = predict(served, x, "r")
    sweep = backward_sweep(served, prediction, y)
    # the same gradient as training takes it: the full plan over the MLP's layers
    chain = LayerChain(served.model, prediction.inputs, y)
    run = execute(Full().plan(chain.profile()), chain)
    for name, p in served.model.named_parameters():
        assert np.array_equal(sweep.gradients[name], p.grad), name
        p.grad = None
    assert sweep.loss == run.loss
    # δ of the logits is (softmax - onehot) / N; one layer down it is δ W^T * tanh'(z)
    d1 = sweep.deltas["layers.1.pre_activation"]
    assert np.allclose(d1, (prediction.probabilities - np.eye(3)[y]) / len(y))
    a0 = prediction.activations["layers.0.output"]
    W1 = served.model.layers[1].weight.data
    assert np.allclose(sweep.deltas["layers.0.pre_activation"], (d1 @ W1.T) * (1 - a0 ** 2))
    assert all(p.grad is None for p in served.model.parameters())  # nothing left behind


def test_mlp_sweep_recomputes_the_cached_activations_bit_for_bit(models):
    served = models["iris"]
    prediction = predict(served, iris_rows()[0], "r")
    served.model(prediction.inputs, inspect=True)  # what the sweep runs, recording a graph
    records, served.model.layer_records = served.model.layer_records, []
    for k, record in enumerate(records):
        assert np.array_equal(record.z, prediction.activations[f"layers.{k}.pre_activation"])


def unrolled_state_gradients(model, x_time_major, targets):
    """∂L/∂h_t (and ∂L/∂c_t) from one backward through the whole recorded graph."""
    chain = model.chain(x_time_major, targets)
    state = tuple(Tensor(a) for a in chain.initial_state())
    states, loss = [], None
    for t in range(chain.length):
        state, step_loss = chain.step(t, state, need_loss=True)
        states.append(tuple(s.retain_grad() for s in state))
        if step_loss is not None:
            loss = step_loss if loss is None else loss + step_loss
    loss.backward()
    for p in model.parameters():
        p.grad = None
    return [np.stack([np.zeros_like(s[k].data) if s[k].grad is None else s[k].grad
                      for s in states], axis=1) for k in range(len(state))]


@pytest.mark.parametrize("name", ["reber", "adding"])
def test_rnn_sweep_is_full_bptt(models, name):
    served = models[name]
    model = served.model
    x = sequences(served, seed=1)
    prediction = predict(served, x, "r")
    rng = np.random.default_rng(2)
    if model.loss == "xent":
        target = rng.integers(0, model.output_size, (3, x.shape[1]))
        time_major_target = np.ascontiguousarray(target.T)
    else:
        target = rng.random((3, model.output_size)).astype(served.dtype)
        time_major_target = target
    sweep = backward_sweep(served, prediction, target)
    time_major = np.ascontiguousarray(prediction.inputs.transpose(1, 0, 2))
    run = execute(Full().plan(model.chain(time_major, time_major_target).profile()),
                  model.chain(time_major, time_major_target))
    for n, p in model.named_parameters():
        # the engine's graph of each step against the fused chain: equal to float32 rounding
        assert np.allclose(sweep.gradients[n], p.grad, rtol=1e-5, atol=1e-8), n
        p.grad = None
    assert np.isclose(sweep.loss, run.loss, rtol=1e-6)
    # ∂L/∂W_x = Σ_t x_tᵀ δa_t: the pre-activation deltas are the ones behind the gradient
    da = sweep.deltas["pre_activation"]
    assert da.shape[:2] == x.shape[:2]
    assert np.allclose(np.einsum("btd,btg->dg", prediction.inputs, da),
                       sweep.gradients["cell.W_x"], rtol=1e-4, atol=1e-7)
    expected = unrolled_state_gradients(model, time_major, time_major_target)
    for k, part in enumerate(("h", "c") if model.kind == "lstm" else ("h",)):
        assert sweep.deltas[part].shape == prediction.activations[part].shape
        assert np.allclose(sweep.deltas[part], expected[k], rtol=1e-4, atol=1e-7), part


def test_inputs_that_overflow_the_model_are_refused(models):
    with pytest.raises(OutputOverflow, match="too large for model 'iris'"):
        predict(models["iris"], np.full((1, 4), 1e308), "r")
