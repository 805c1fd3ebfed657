"""Bad input at the API refused at the boundary, naming the value and what was expected; and
the edge sizes that must work (one step, a batch of one, a budget larger than anything)."""
import numpy as np
import pytest

from bptt.nn.rnn import RNN
from bptt.training.optim import Adam
from bptt.training.train import make_optimizer, train_step
from checkpointing import (Adaptive, Full, OnlineCheckpointing, Periodic, Revolve, Truncated,
                           assert_same_gradients, execute, execute_online, gradients)


def model(loss="mse", dtype=np.float32):
    return RNN("gru", 2, 3, 4 if loss == "xent" else 1, np.random.default_rng(0), dtype=dtype,
               loss=loss)


X = np.zeros((4, 3, 2), np.float32)
Y = np.zeros((4, 3, 1), np.float32)


@pytest.mark.parametrize("inputs, targets, error, message", [
    (np.zeros((4, 3, 3), np.float32), Y, ValueError,
     r"inputs must have shape \(T, B, 2\), got \(4, 3, 3\)"),
    (np.zeros((4, 3), np.float32), Y, ValueError,
     r"inputs must have shape \(T, B, 2\), got \(4, 3\)"),
    (np.zeros((0, 3, 2), np.float32), Y[:0], ValueError,
     r"inputs need T >= 1 steps and a batch >= 1, got shape \(0, 3, 2\)"),
    (np.zeros((4, 0, 2), np.float32), Y[:, :0], ValueError,
     r"inputs need T >= 1 steps and a batch >= 1, got shape \(4, 0, 2\)"),
    (np.zeros((4, 3, 2), np.int64), Y, TypeError,
     r"inputs must be a float32/float64 array, got int64"),
    (np.zeros((4, 3, 2), np.float16), Y, TypeError,
     r"inputs must be a float32/float64 array, got float16"),
    ([[[0.0, 0.0]]], Y, TypeError, r"inputs must be a float32/float64 array, got list"),
    (np.zeros((4, 3, 2), np.float64), Y, TypeError,
     r"inputs have dtype float64 but the model is float32"),
    (X, np.zeros((4, 3, 2), np.float32), ValueError,
     r"targets must have shape \(4, 3, 1\), got \(4, 3, 2\)"),
    (X, Y[:3], ValueError, r"targets must have shape \(4, 3, 1\), got \(3, 3, 1\)"),
    (X, Y.astype(np.float64), TypeError, r"targets have dtype float64 but the model is float32"),
    (X, Y.astype(np.int32), TypeError, r"targets have dtype int32 but the model is float32"),
])
def test_a_batch_that_does_not_fit_the_model_is_refused_at_the_chain(inputs, targets, error,
                                                                     message):
    with pytest.raises(error, match=message):
        model().chain(inputs, targets)


def test_cross_entropy_targets_must_be_class_indices():
    with pytest.raises(TypeError, match=r"cross-entropy targets must be class indices "
                                        r"\(integers\), got dtype float32"):
        model("xent").chain(X, np.zeros((4, 3), np.float32))


def test_a_class_index_out_of_range_stops_the_step_and_changes_nothing():
    m = model("xent")
    targets = np.zeros((4, 3), np.int64)
    targets[2, 1] = 4
    chain = m.chain(X, targets)
    before = {n: p.data.tobytes() for n, p in m.named_parameters()}
    optimizer = Adam(m.parameters(), lr=0.1)
    with pytest.raises(ValueError, match=r"labels must be in \[0, 4\), got 4 at position 1"):
        train_step(Full().plan(chain.profile()), chain, m.parameters(), optimizer)
    assert {n: p.data.tobytes() for n, p in m.named_parameters()} == before
    assert optimizer.steps == 0


def every_strategy(profile):
    return [Full(), Truncated(1), Periodic(), Periodic(1), Revolve(1), Revolve(5),
            Adaptive(Adaptive.minimum_budget(profile)), Adaptive(10**30),
            OnlineCheckpointing(1)]


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("T, B", [(1, 1), (1, 4), (5, 1)])
def test_one_step_and_a_batch_of_one_work_with_every_strategy(cell, T, B):
    m = RNN(cell, 2, 3, 1, np.random.default_rng(0), dtype=np.float64)
    rng = np.random.default_rng(1)
    inputs, targets = rng.standard_normal((T, B, 2)), rng.standard_normal((T, B, 1))
    profile = m.chain(inputs, targets).profile()
    strategies = every_strategy(profile)
    assert_same_gradients(lambda: m.chain(inputs, targets), m.parameters(),
                          [s for s in strategies if not isinstance(s, Truncated)])
    reference, _ = gradients(Full(), m.chain(inputs, targets), m.parameters())
    for p in m.parameters():
        p.zero_grad()
    execute_online(OnlineCheckpointing(1), m.chain(inputs, targets))
    assert all(np.array_equal(p.grad, reference[p.name]) for p in m.parameters())
    if T == 1:  # a one-step window is the whole sequence
        truncated, _ = gradients(Truncated(1), m.chain(inputs, targets), m.parameters())
        assert all(np.array_equal(truncated[k], reference[k]) for k in reference)
    optimizer = Adam(m.parameters(), lr=0.01)
    result = train_step(Revolve(1).plan(profile), m.chain(inputs, targets), m.parameters(),
                        optimizer)
    assert not result.skipped and optimizer.steps == 1


def test_an_absurdly_large_budget_is_full():
    m = model()
    profile = m.chain(X, Y).profile()
    assert list(Adaptive(10**30).plan(profile)) == list(Full().plan(profile))
    run = execute(Adaptive(10**30).plan(profile), m.chain(X, Y))
    assert run.stats.forward_steps == 4


@pytest.mark.parametrize("make, message", [
    (lambda: Truncated(True), "k1 must be a whole number >= 1, got True"),
    (lambda: Truncated(2, True), "k2 must be a whole number >= k1 = 2"),
    (lambda: Periodic(True), "segment must be a whole number >= 1, got True"),
    (lambda: RNN("rnn", 2, 3, 1, np.random.default_rng(0), loss="hinge"),
     r"unknown loss 'hinge'; choose one of \['mse', 'xent'\]"),
    (lambda: make_optimizer("rmsprop", model().parameters(), 0.1),
     r"unknown optimizer 'rmsprop'; choose one of \['adam', 'sgd'\]"),
    (lambda: train_step(Full().plan(model().chain(X, Y).profile()), model().chain(X, Y),
                        model().parameters(), None, on_nonfinite="ignore"),
     r"on_nonfinite must be one of \['stop', 'skip'\], got 'ignore'"),
    (lambda: execute(Full().plan(model().chain(X, Y).profile()), model().chain(X[:3], Y[:3])),
     "the plan is for 4 steps but the chain has 3"),
])
def test_senseless_options_are_refused_by_name(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_calling_an_rnn_says_how_to_use_it():
    model = RNN("rnn", 2, 3, 1, np.random.default_rng(0))
    with pytest.raises(TypeError, match=r"model\.chain\(inputs, targets\).*model\.predict"):
        model(np.zeros((4, 2, 2), np.float32))


@pytest.mark.parametrize("make, expected", [
    (lambda: Revolve(np.int64(3)).slots, 3),
    (lambda: Periodic(np.int32(4)).segment, 4),
    (lambda: Truncated(np.int64(2), np.uint8(3)).k2, 3),
    (lambda: Adaptive(np.int64(4096)).budget, 4096),
    (lambda: OnlineCheckpointing(np.int16(5)).slots, 5),
])
def test_numpy_integers_are_whole_numbers(make, expected):
    value = make()
    assert value == expected and type(value) is int  # stored as a plain int: JSON-ready


@pytest.mark.parametrize("make", [lambda: Revolve(np.float64(3.0)), lambda: Revolve(np.True_),
                                  lambda: Revolve(3.0), lambda: Periodic(np.bool_(True))])
def test_numpy_floats_and_booleans_are_not_whole_numbers(make):
    with pytest.raises(ValueError, match="must be a whole number >= 1, got"):
        make()


def test_numpy_integer_plans_match_int_plans():
    profile = model().chain(X, Y).profile()
    assert list(Revolve(np.int64(2)).plan(profile)) == list(Revolve(2).plan(profile))


@pytest.mark.parametrize("data, kind", [(["1", "2"], "<U1"), ([True, False], "bool"),
                                        ((b"1",), "|S1"), ([None], "object")])
def test_tensor_refuses_lists_that_are_not_numbers(data, kind):
    from bptt import Tensor
    with pytest.raises(TypeError, match=f"tensor data must hold numbers, got a .* of {kind}"):
        Tensor(data)
