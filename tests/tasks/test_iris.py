import csv
import sys
import time

import numpy as np
import pytest

from tasks import iris


@pytest.fixture(scope="module")
def raw():
    return iris.load_iris()


@pytest.fixture(scope="module")
def data(raw):
    return iris.split(*raw)


def test_loads_the_bundled_csv_through_datasets_as_float64(raw):
    x, y = raw
    assert "datasets" in sys.modules
    assert x.shape == (150, 4) and x.dtype == np.float64
    assert y.shape == (150,) and y.dtype == np.int64
    with open(iris.CSV_PATH, newline="") as f:
        rows = list(csv.DictReader(f))
    # Exactly the decimal values of the file (a float32 detour would change them).
    np.testing.assert_array_equal(x, [[float(r[c]) for c in iris.FEATURES] for r in rows])
    np.testing.assert_array_equal(y, [iris.CLASSES.index(r["Species"]) for r in rows])
    assert np.bincount(y).tolist() == [50, 50, 50]


def test_hub_source_fails_fast_and_clearly_when_offline():
    start = time.perf_counter()
    with pytest.raises(ConnectionError, match="cannot load 'scikit-learn/iris'.*bundled copy"):
        iris.load_iris(source="scikit-learn/iris")
    assert time.perf_counter() - start < 1.0


def test_hub_source_fails_fast_when_the_hub_is_unreachable(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # discard port: nothing listens
    with pytest.raises(ConnectionError, match="127.0.0.1 is unreachable.*bundled copy"):
        iris.load_iris(source="scikit-learn/iris")


def test_split_is_a_fixed_120_30_partition(raw, data):
    again = iris.split(*raw)
    assert data.x_train.shape == (120, 4) and data.x_test.shape == (30, 4)
    for name in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(data, name), getattr(again, name))
    # Train then test rows are the file's rows in the order of the rng-42 permutation.
    x, y = raw
    order = np.random.default_rng(42).permutation(150)
    restored = np.vstack([data.x_train, data.x_test]) * data.std + data.mean
    np.testing.assert_allclose(restored, x[order], rtol=1e-13)
    np.testing.assert_array_equal(np.concatenate([data.y_train, data.y_test]), y[order])


def test_standardisation_uses_training_statistics_only(raw, data):
    x, _ = raw
    order = np.random.default_rng(42).permutation(150)
    np.testing.assert_allclose(data.mean, x[order[:120]].mean(axis=0), rtol=1e-15)
    np.testing.assert_allclose(data.std, x[order[:120]].std(axis=0), rtol=1e-15)
    np.testing.assert_allclose(data.x_train.mean(axis=0), 0, atol=1e-14)
    np.testing.assert_allclose(data.x_train.std(axis=0), 1, rtol=1e-14)
    assert not np.allclose(data.x_test.mean(axis=0), 0, atol=1e-3)


def test_training_is_reproducible_and_records_every_epoch(data):
    seen = []
    a = iris.train(data, seed=3, epochs=3, on_epoch=seen.append)
    b = iris.train(data, seed=3, epochs=3)
    assert [r.epoch for r in a.history] == [1, 2, 3] and seen == a.history
    assert a.history == b.history
    for (_, p), (_, q) in zip(a.model.named_parameters(), b.model.named_parameters()):
        assert p.data.tobytes() == q.data.tobytes()
    c = iris.train(data, seed=4, epochs=3)
    assert c.history != a.history


def test_initial_weights_do_not_depend_on_the_number_of_epochs(data):
    a = iris.build_model(np.random.default_rng(7).spawn(2)[0])
    b = iris.build_model(np.random.default_rng(7).spawn(2)[0])
    assert a.state_dict()["layers.0.weight"].tobytes() == \
        b.state_dict()["layers.0.weight"].tobytes()
    assert [layer.weight.shape for layer in a.layers] == [(4, 32), (32, 3)]


def test_train_validates_epochs_and_batch(data):
    with pytest.raises(ValueError, match="epochs and batch_size must be >= 1"):
        iris.train(data, epochs=0)


def test_petal_plane_predictions_are_class_indices(data):
    run = iris.train(data, seed=0, epochs=2)
    predict = iris.predict_petal_plane(run.model, data)
    classes = predict(np.array([[1.4, 0.2], [5.5, 2.0]]))
    assert classes.shape == (2,) and set(classes.tolist()) <= {0, 1, 2}


@pytest.mark.slow
def test_seed_42_reaches_at_least_93_percent_test_accuracy(data):
    run = iris.train(data, seed=42, epochs=80, lr=0.1, batch_size=16)
    assert len(run.history) == 80
    assert run.final.test_accuracy >= 0.93
    assert run.final.train_loss < run.history[0].train_loss


def test_the_pca_plane_predictions_agree_with_the_model_on_points_in_that_plane():
    data = iris.load_data()
    model = iris.build_model(np.random.default_rng(0))
    axes = iris.principal_axes(data)
    np.testing.assert_allclose(axes @ axes.T, np.eye(2), atol=1e-12)
    centred = data.x_train - data.x_train.mean(axis=0)
    variances = np.var(centred @ axes.T, axis=0)
    assert variances[0] > variances[1] > np.var(centred @ np.linalg.svd(centred)[2][2])
    points = data.x_test @ axes.T
    inside = data.x_train.mean(axis=0) + points @ axes
    expected = np.argmax(model(inside).data, axis=1)
    np.testing.assert_array_equal(iris.predict_pca_plane(model, data)(points), expected)


def test_a_classifier_run_is_estimated_from_its_sizes_and_refused_when_too_large():
    from bptt.training.resources import InsufficientMemory, check_fits
    from tasks.classifier import run_estimate

    small = run_estimate((4, 32, 3), samples=150, batch_size=16, epochs=80, optimizer="sgd")
    weights = 8 * (4 * 32 + 32 + 32 * 3 + 3)
    assert small.parts["weights and gradients"] == 2 * weights
    assert run_estimate((4, 32, 3), 150, 16, 80, "adam").parts["optimiser state"] == 2 * weights
    check_fits(small, limit=10**9)  # an ordinary run fits
    huge = run_estimate((4, 10**8, 3), samples=150, batch_size=16, epochs=80, optimizer="sgd")
    with pytest.raises(InsufficientMemory, match="more than"):
        check_fits(huge, limit=10**9)


def test_evaluation_on_arrays_gives_the_graphs_numbers_bit_for_bit(data):
    from bptt import no_grad
    from bptt.engine import losses
    from tasks.classifier import evaluate
    model = iris.build_model(np.random.default_rng(5), dropout=0.3)
    for x, y in ((data.x_train, data.y_train), (data.x_test, data.y_test)):
        with no_grad():
            logits = model(x)
            loss = losses.softmax_cross_entropy(logits, y).item()
        accuracy = float(np.mean(np.argmax(logits.data, axis=1) == y))
        assert evaluate(model, x, y) == (loss, accuracy)
