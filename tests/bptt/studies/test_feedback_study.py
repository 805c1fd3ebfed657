import numpy as np
import pytest

from bptt.studies.feedback import (compare_classifier, compare_sequence, lambda_distances,
                                   parse_seeds, parse_variants)
from bptt.training.train import SequenceSetup
from tasks import iris
from tasks.adding import AddingTask


def test_seeds_and_variants_parse_or_are_refused():
    assert parse_seeds("0-3,7") == [0, 1, 2, 3, 7]
    for bad in ("", "3-1", "a", "-2"):
        with pytest.raises(ValueError, match="seeds must be like 0-9"):
            parse_seeds(bad)
    assert parse_variants("backprop, fa") == ["backprop", "fa"]
    with pytest.raises(ValueError, match="unknown backward variant 'bp'"):
        parse_variants("backprop,bp")


def test_backprops_distance_to_lambda_is_zero():
    run = iris.train(iris.load_data(), seed=0, epochs=2)
    data = run.data
    rows = lambda_distances(run.model, data.x_train[:10], data.y_train[:10])
    assert all(r["distance"] < 1e-12 for r in rows)


def test_a_reduced_iris_study_reports_every_variant():
    result = compare_classifier(iris.train, iris.load_data(), ["backprop", "fa", "kp"], [0, 1],
                                epochs=3)
    rows = {r["backward"]: r for r in result["rows"]}
    assert rows["backprop"]["gap_to_backprop"] == 0
    fa = rows["fa"]
    assert fa["gap_to_backprop"] == pytest.approx(
        100 * (fa["mean_test_accuracy"] - rows["backprop"]["mean_test_accuracy"]))
    assert len(fa["runs"]) == 2 and len(fa["runs"][0]["history"]) == 3
    first = fa["runs"][0]["history"][0]["alignment"]
    assert first[0]["update_angle"] > 1 and first[1]["feedback_angle"] > 1
    assert fa["lambda"][0]["distance"] > 0.01 and rows["backprop"]["lambda"][0]["distance"] < 1e-9


def test_a_reduced_sequence_study_reports_metric_and_angles():
    setup = SequenceSetup(task=AddingTask(seq_len=50), hidden=16, batch=8, steps=3)
    result = compare_sequence(setup, ["backprop", "fa", "dfa"])
    rows = {r["backward"]: r for r in result["rows"]}
    assert np.isfinite(rows["dfa"]["metric"]) and rows["backprop"]["gap_to_backprop"] == 0
    assert rows["backprop"]["angles_end"]["cell.W_h"] == pytest.approx(0, abs=1e-3)
    assert rows["fa"]["angles_start"]["cell.W_h"] > 1


@pytest.mark.slow
def test_on_iris_the_best_rule_without_weight_transport_is_within_one_point():
    variants = ["backprop", "fa", "dfa", "sign", "kp", "hebbian"]
    result = compare_classifier(iris.train, iris.load_data(), variants, range(10))
    rows = {r["backward"]: r for r in result["rows"]}
    assert max(rows[v]["gap_to_backprop"] for v in variants[1:]) > -1.0
