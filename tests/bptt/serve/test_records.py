"""Recent predictions: bounded, by request id, "last" the last one added."""
import numpy as np
import pytest

from bptt.serve.inference import Prediction
from bptt.serve.records import RecentPredictions


def record(request_id):
    x = np.zeros((1, 1))
    return Prediction(request_id, "m", 0.0, x, x, {}, x, None)


def test_the_oldest_go_first_and_last_is_the_newest():
    recent = RecentPredictions(capacity=2)
    assert recent.get() is None
    for k in "abc":
        recent.add(record(k))
    assert recent.get().request_id == "c"
    assert recent.get("a") is None and recent.get("b").request_id == "b"


def test_capacity_must_be_positive():
    with pytest.raises(ValueError, match="capacity must be >= 1, got 0"):
        RecentPredictions(0)
