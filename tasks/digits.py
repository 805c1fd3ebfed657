"""Handwritten digits (the UCI optdigits test set bundled with scikit-learn, Alpaydin & Kaynak
1998): 1,797 images of 8x8 pixels with 17 grey levels, classes 0-9 — a deeper MLP case.

Data: `sklearn.datasets.load_digits` (shipped inside scikit-learn: no network), the `digits`
extra. Split: fixed and stratified, from `numpy.random.default_rng(SPLIT_SEED)` whatever the run
seed — per class, 20% test, then 20% of the rest as a validation set carved from training (any
tuning is done on it, never on test), the remainder training. Pixels are scaled to [0, 1] by
the 16 grey levels (a fixed scale: no statistic of any split is used). Model: 64-256-256-10
tanh MLP trained by SGD on the mean softmax cross-entropy (`tasks.classifier`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from bptt.nn import MLP
from tasks.classifier import ClassifierRun, EpochRecord, train_classifier

SPLIT_SEED = 42
TEST_FRACTION = 0.2
VALIDATION_FRACTION = 0.2
SIZES = (64, 256, 256, 10)
#: The recipe, chosen on the validation split with backprop (see the README's
#: "Learning without weight transport").
EPOCHS, LR, BATCH = 40, 0.1, 32


@dataclass(frozen=True)
class DigitsData:
    """The split: x_* (n, 64) float64 in [0, 1], y_* (n,) int64 digits 0-9. `x_test`/`y_test`
    are the held-out test set; `x_val`/`y_val` the validation set carved from training."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    def for_tuning(self) -> "DigitsData":
        """The same data with validation in the place of test: what tuning may look at."""
        return DigitsData(self.x_train, self.y_train, self.x_val, self.y_val,
                          self.x_val, self.y_val)


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """All 1,797 images (1797, 64) float64 grey levels 0-16 and labels (1797,) int64."""
    try:
        from sklearn.datasets import load_digits as sklearn_digits
    except ImportError:
        raise ImportError("the digits task needs scikit-learn: pip install 'bptt[digits]'") \
            from None
    bunch = sklearn_digits()
    return bunch.data.astype(np.float64), bunch.target.astype(np.int64)


def split(x: np.ndarray, y: np.ndarray) -> DigitsData:
    """The fixed stratified train/validation/test split (see the module docstring)."""
    rng = np.random.default_rng(SPLIT_SEED)
    parts = {"train": [], "val": [], "test": []}
    for label in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == label))
        n_test = int(round(TEST_FRACTION * len(members)))
        rest = members[n_test:]
        n_val = int(round(VALIDATION_FRACTION * len(rest)))
        parts["test"].append(members[:n_test])
        parts["val"].append(rest[:n_val])
        parts["train"].append(rest[n_val:])
    index = {k: np.sort(np.concatenate(v)) for k, v in parts.items()}
    x = x / 16.0
    return DigitsData(x[index["train"]], y[index["train"]], x[index["val"]], y[index["val"]],
                      x[index["test"]], y[index["test"]])


def load_data() -> DigitsData:
    """`split(*load_digits())`."""
    return split(*load_digits())


def train(data: DigitsData, seed: int = 0, epochs: int = EPOCHS, lr: float = LR,
          batch_size: int = BATCH, backward: str = "backprop",
          on_epoch: Callable[[EpochRecord], None] | None = None,
          strategy=None, measure: Callable[[MLP], object] | None = None,
          feedback_options: dict | None = None) -> ClassifierRun:
    """Train the 64-256-256-10 tanh MLP on the training split; test figures are on `x_test`
    (pass `data.for_tuning()` to see validation there instead)."""
    return train_classifier(data, SIZES, seed=seed, epochs=epochs, lr=lr,
                            batch_size=batch_size, on_epoch=on_epoch, strategy=strategy,
                            backward=backward, measure=measure,
                            feedback_options=feedback_options)
