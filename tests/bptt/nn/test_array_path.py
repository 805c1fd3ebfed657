"""The MLP on arrays (`MLP.affine`, `MLP.logits`) and the chain of its layers: the same bits as
the engine's graph, and the arrays a chain names as external follow the model it is given."""
import numpy as np
import pytest

from bptt import no_grad
from bptt.nn import MLP, Parameter
from bptt.nn.layer_chain import LayerChain
from checkpointing import Full, Revolve, execute


def model(activation="tanh", dtype=np.float64, dropout=0.0, sizes=(4, 16, 8, 3)):
    return MLP(list(sizes), activation, rng=np.random.default_rng(3), dtype=dtype,
               dropout=dropout)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("activation", ["tanh", "relu", "sigmoid"])
def test_logits_on_arrays_are_the_graphs_forward_bit_for_bit(activation, dtype):
    mlp = model(activation, dtype, dropout=0.5)  # evaluation: no step, so no dropout
    x = np.random.default_rng(1).standard_normal((7, 4)).astype(dtype)
    with no_grad():
        expected = mlp(x).data
    logits = mlp.logits(x)
    assert logits.dtype == dtype and logits.tobytes() == expected.tobytes()
    assert mlp.layer_records == []  # nothing recorded, no graph


def test_logits_and_affine_refuse_input_of_the_wrong_shape_or_dtype():
    mlp = model()
    with pytest.raises(ValueError, match=r"expects input of shape \(batch, 4\), got \(5, 3\)"):
        mlp.logits(np.zeros((5, 3)))
    with pytest.raises(TypeError, match="layer 0: input has dtype float32 but the MLP is "
                                        "float64"):
        mlp.logits(np.zeros((5, 4), np.float32))
    with pytest.raises(TypeError, match="layer 1: input has dtype float32"):
        mlp.affine(1, np.zeros((5, 16), np.float32))


def test_a_chain_given_the_parameters_names_the_same_arrays_and_takes_the_same_gradient():
    mlp = model(dropout=0.25)
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((6, 4)), rng.integers(0, 3, 6)
    walked = LayerChain(mlp, x, y, step=4)
    given = LayerChain(mlp, x, y, step=4, parameters=mlp.parameters())
    assert [id(a) for a in given.external_arrays()] == [id(a) for a in walked.external_arrays()]
    results = []
    for chain in (walked, given):
        for p in mlp.parameters():
            p.zero_grad()
        run = execute(Revolve(slots=1).plan(chain.profile()), chain)
        results.append((run.loss, run.peak_cache_bytes, [p.grad.copy() for p in mlp.parameters()]))
    (loss_a, peak_a, grads_a), (loss_b, peak_b, grads_b) = results
    assert loss_a == loss_b and peak_a == peak_b
    assert all(np.array_equal(a, b) for a, b in zip(grads_a, grads_b))


def test_a_chain_follows_a_replaced_parameter():
    mlp = model()
    x, y = np.ones((2, 4)), np.array([0, 2])
    before = LayerChain(mlp, x, y).advance(0, (x,))[0]
    new = Parameter(mlp.layers[0].weight.data * 2, name="weight")
    mlp.layers[0].weight = new
    chain = LayerChain(mlp, x, y)
    assert any(a is new.data for a in chain.external_arrays())
    assert not np.array_equal(chain.advance(0, (x,))[0], before)
    for p in mlp.parameters():
        p.zero_grad()
    execute(Full().plan(chain.profile()), chain)
    assert new.grad is not None  # the gradient lands on the parameter the model has now
