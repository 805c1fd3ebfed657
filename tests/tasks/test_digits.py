import numpy as np
import pytest

pytest.importorskip("sklearn")

from tasks import digits  # noqa: E402


@pytest.fixture(scope="module")
def data():
    return digits.load_data()


def test_the_split_is_fixed_stratified_and_disjoint(data):
    sizes = (len(data.y_train), len(data.y_val), len(data.y_test))
    assert sum(sizes) == 1797 and sizes[2] == pytest.approx(360, abs=5)
    for labels in (data.y_train, data.y_val, data.y_test):
        share = np.bincount(labels, minlength=10) / len(labels)
        assert np.all(np.abs(share - 0.1) < 0.02)
    rows = {tuple(r) for r in data.x_test}
    assert not rows & {tuple(r) for r in data.x_val}  # images differ across the splits
    again = digits.load_data()
    np.testing.assert_array_equal(again.y_test, data.y_test)
    assert 0 <= data.x_train.min() and data.x_train.max() <= 1


def test_tuning_sees_validation_in_place_of_test(data):
    tuning = data.for_tuning()
    np.testing.assert_array_equal(tuning.x_test, data.x_val)


def test_one_epoch_of_the_deep_mlp_learns(data):
    run = digits.train(data, seed=0, epochs=1, backward="fa")
    assert run.model.sizes == [64, 256, 256, 10]
    assert run.final.test_accuracy > 0.5
