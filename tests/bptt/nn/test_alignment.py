import numpy as np
import pytest

from bptt.nn import MLP, RNN
from bptt.nn.alignment import angle, mlp_alignment, relative_distance, rnn_gradient_angles
from bptt.nn.feedback import attach_feedback


def test_angles_and_distances():
    assert angle(np.array([1.0, 0]), np.array([0, 2.0])) == pytest.approx(90)
    assert angle(np.array([1.0, 1]), np.array([2.0, 2])) == pytest.approx(0, abs=1e-6)
    assert angle(np.array([1.0, 0]), np.array([-1.0, 0])) == pytest.approx(180)
    assert np.isnan(angle(np.zeros(2), np.ones(2)))
    assert relative_distance(np.array([1.0, 1]), np.array([1.0, 0])) == pytest.approx(1)


def make(variant):
    rng = np.random.default_rng(0)
    return attach_feedback(MLP([4, 9, 8, 3], "tanh", rng=rng), variant, rng)


def test_backprop_is_aligned_with_itself_and_fa_is_not():
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((30, 4)), rng.integers(0, 3, 30)
    exact = mlp_alignment(make("backprop"), x, y)
    assert all(row["update_angle"] == pytest.approx(0, abs=1e-5) for row in exact)
    fa = mlp_alignment(make("fa"), x, y)
    assert fa[-1]["update_angle"] == pytest.approx(0, abs=1e-5)  # the output layer is exact
    assert fa[0]["update_angle"] > 10 and fa[1]["feedback_angle"] > 10
    dfa = mlp_alignment(make("dfa"), x, y)
    assert dfa[1]["feedback_angle"] is None  # (n_out, width): not comparable with W^T


def test_rnn_angles_are_zero_for_bptt_and_name_every_weight():
    rng = np.random.default_rng(0)
    model = RNN("rnn", 2, 6, 1, rng, dtype=np.float64)
    data = np.random.default_rng(1)
    inputs, targets = data.standard_normal((5, 3, 2)), data.standard_normal((5, 3, 1))
    assert all(a == pytest.approx(0, abs=1e-5)
               for a in rnn_gradient_angles(model, inputs, targets).values())
    attach_feedback(model, "fa", rng)
    angles = rnn_gradient_angles(model, inputs, targets)
    assert set(angles) == {"cell.W_x", "cell.W_h", "cell.b", "readout.weight", "readout.bias"}
    assert angles["cell.W_h"] > 1 and angles["readout.weight"] == pytest.approx(0, abs=1e-5)
