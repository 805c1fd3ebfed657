"""Iris (Fisher, 1936): 150 flowers, 4 measurements in cm, 3 species — the MLP sanity task.

Data: the bundled `data/iris.csv` (the Hugging Face `scikit-learn/iris` schema), read through
`datasets` with no network; or the hub copy itself with `source="scikit-learn/iris"`.
Split: a fixed 120/30 permutation from `numpy.random.default_rng(42)`, whatever the run seed;
features standardised with the training set's mean and std. Model: a 4-32-3 tanh MLP (other
hidden widths on request) trained by SGD on the mean softmax cross-entropy. The run seed drives
weight init and batch shuffling only. Trivial predictor: the training set's most frequent class,
`baseline_accuracy(data)` on the test set.
"""
from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence
from urllib.parse import urlparse

import numpy as np

from bptt import no_grad
from bptt.nn import MLP
from checkpointing.plan import ChainProfile
from tasks.classifier import ClassifierRun, EpochRecord, evaluate, train_classifier

CSV_PATH = Path(__file__).parent / "data" / "iris.csv"
FEATURES = ("SepalLengthCm", "SepalWidthCm", "PetalLengthCm", "PetalWidthCm")
CLASSES = ("Iris-setosa", "Iris-versicolor", "Iris-virginica")
SPLIT_SEED = 42
N_TRAIN = 120
HIDDEN = 32
IrisRun = ClassifierRun  # a finished run: the model, the data and its per-epoch history
__all__ = ["EpochRecord", "IrisData", "IrisRun", "evaluate", "load_data", "load_iris", "split",
           "build_model", "baseline_accuracy", "train", "predict_petal_plane"]
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_UPDATE_DOWNLOAD_COUNTS": "0"}


@dataclass(frozen=True)
class IrisData:
    """The standardised split: x_* (n, 4) float64, y_* (n,) int64 class indices into CLASSES.

    `mean` and `std` (4,) are the training-set statistics used to standardise both sets.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    mean: np.ndarray
    std: np.ndarray


def load_iris(source: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """All 150 rows: features (150, 4) float64 in cm and labels (150,) int64.

    `source=None` reads the bundled CSV offline (the HF_* offline variables are given defaults
    before `datasets` is imported, which is when it reads them). A hub dataset name such as
    "scikit-learn/iris" downloads it; without network that fails at once with a ConnectionError.
    Since the variables are process-wide, load from the hub before any bundled load.
    """
    if source is None:
        for name, value in OFFLINE_ENV.items():
            os.environ.setdefault(name, value)
    else:
        _check_hub_reachable(source)
    import datasets  # ~1 s and ~100 MiB: only when data is actually needed

    was_disabled = datasets.utils.are_progress_bars_disabled()
    datasets.disable_progress_bars()  # callers show their own progress
    try:
        if source is None:
            table = datasets.load_dataset("csv", data_files=str(CSV_PATH), split="train")
        else:
            try:
                table = datasets.load_dataset(source, split="train")
            except ConnectionError as error:
                raise ConnectionError(f"cannot load {source!r} from the Hugging Face hub: "
                                      f"{error}; omit source to use the bundled copy") from None
    finally:
        if not was_disabled:
            datasets.enable_progress_bars()
    return _arrays(table, where=str(CSV_PATH) if source is None else source)


def _check_hub_reachable(source: str) -> None:
    # Offline, `load_dataset(name)` retries for ~23 s before failing: find out in 3 s instead.
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on"):
        raise ConnectionError(f"cannot load {source!r} from the Hugging Face hub: HF_HUB_OFFLINE "
                              f"is set (a bundled load sets it by default); omit source to use "
                              f"the bundled copy")
    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        socket.create_connection((endpoint.hostname, endpoint.port or 443), timeout=3).close()
    except OSError as error:
        raise ConnectionError(f"cannot load {source!r} from the Hugging Face hub: "
                              f"{endpoint.hostname} is unreachable ({error}); omit source to "
                              f"use the bundled copy") from None


def _arrays(table, where: str) -> tuple[np.ndarray, np.ndarray]:
    missing = [c for c in (*FEATURES, "Species") if c not in table.column_names]
    if missing:
        raise ValueError(f"{where}: missing columns {missing}")
    # Without dtype= the numpy format silently returns float32.
    columns = table.with_format("numpy", columns=list(FEATURES), dtype=np.float64)[:]
    x = np.column_stack([columns[c] for c in FEATURES])
    species = table.with_format(None)[:]["Species"]
    unknown = sorted(set(species) - set(CLASSES))
    if unknown:
        raise ValueError(f"{where}: unknown species {unknown}; expected {list(CLASSES)}")
    y = np.array([CLASSES.index(s) for s in species], dtype=np.int64)
    return x, y


def split(x: np.ndarray, y: np.ndarray) -> IrisData:
    """The fixed 120/30 split (permutation from default_rng(42)), standardised by train stats."""
    order = np.random.default_rng(SPLIT_SEED).permutation(len(x))
    train, test = order[:N_TRAIN], order[N_TRAIN:]
    mean, std = x[train].mean(axis=0), x[train].std(axis=0)
    return IrisData((x[train] - mean) / std, y[train], (x[test] - mean) / std, y[test], mean, std)


def load_data(source: str | None = None) -> IrisData:
    """`split(*load_iris(source))`."""
    return split(*load_iris(source))


def build_model(rng: np.random.Generator, hidden: Sequence[int] = (HIDDEN,),
                dropout: float = 0.0) -> MLP:
    """The tanh MLP 4-`hidden`-3 (4-32-3 by default), Xavier-initialised from `rng`; `dropout`
    before the head.

    `hidden`: the widths of the hidden layers, e.g. (16,) or (32, 32); the chain of layers the
    memory strategies see has len(hidden) + 1 steps.
    """
    hidden = tuple(hidden)
    if not hidden or any(isinstance(h, bool) or int(h) != h or h < 1 for h in hidden):
        raise ValueError(f"hidden must be one or more layer widths >= 1, got {hidden!r}")
    return MLP([len(FEATURES), *map(int, hidden), len(CLASSES)], "tanh", rng=rng,
               dropout=dropout)


def baseline_accuracy(data: IrisData) -> float:
    """Test accuracy of the trivial predictor: always the training set's most frequent class."""
    majority = np.bincount(data.y_train, minlength=len(CLASSES)).argmax()
    return float(np.mean(data.y_test == majority))


def train(data: IrisData, seed: int = 42, epochs: int = 80, lr: float = 0.1,
          batch_size: int = 16,
          on_epoch: Callable[[EpochRecord], None] | None = None,
          strategy: Callable[[ChainProfile], object] | None = None,
          hidden: Sequence[int] = (HIDDEN,), optimizer: str = "sgd", clip: float | None = None,
          on_nonfinite: str = "stop", backward: str = "backprop",
          measure: Callable[[MLP], object] | None = None, dropout: float = 0.0,
          on_model: Callable[[int, MLP], None] | None = None) -> IrisRun:
    """Train `build_model(hidden)` with minibatch SGD (or `optimizer="adam"`); see
    `tasks.classifier.train_classifier` for the options (memory strategy, clipping, backward
    variant, per-epoch measurement, dropout before the head, `on_model`)."""
    build_model(np.random.default_rng(0), hidden)  # checks `hidden` before any work
    return train_classifier(data, [len(FEATURES), *map(int, hidden), len(CLASSES)], seed=seed,
                            epochs=epochs, lr=lr, batch_size=batch_size, on_epoch=on_epoch,
                            strategy=strategy, backward=backward, measure=measure,
                            optimizer=optimizer, clip=clip, on_nonfinite=on_nonfinite,
                            dropout=dropout, on_model=on_model)


def predict_petal_plane(model: MLP, data: IrisData) -> Callable[[np.ndarray], np.ndarray]:
    """Class predictions over the (petal length, petal width) plane in cm, the two sepal
    features held at their training mean: a function (n, 2) cm -> (n,) class indices."""
    def predict(points: np.ndarray) -> np.ndarray:
        x = np.tile(data.mean, (len(points), 1))
        x[:, 2:] = points
        with no_grad():
            return np.argmax(model((x - data.mean) / data.std).data, axis=1)
    return predict


def principal_axes(data: IrisData) -> np.ndarray:
    """The first two principal axes (2, 4) of the standardised training features (rows of
    unit length, by decreasing variance, each signed so that its largest entry is positive)."""
    _, _, axes = np.linalg.svd(data.x_train - data.x_train.mean(axis=0), full_matrices=False)
    axes = axes[:2]
    return axes * np.sign(axes[np.arange(2), np.argmax(np.abs(axes), axis=1)])[:, None]


def predict_pca_plane(model: MLP, data: IrisData) -> Callable[[np.ndarray], np.ndarray]:
    """Class predictions over the plane of the first two principal components of all four
    standardised features (the other components held at 0): (n, 2) -> (n,) class indices.
    Project standardised points onto the plane with `x @ principal_axes(data).T`."""
    axes = principal_axes(data)
    centre = data.x_train.mean(axis=0)

    def predict(points: np.ndarray) -> np.ndarray:
        with no_grad():
            return np.argmax(model(centre + points @ axes).data, axis=1)
    return predict


def pretrained_config(run: IrisRun, strategy: str = "full") -> dict:
    """What `bptt.training.pretrained.save_pretrained` keeps beside an Iris model: feature and
    class names, the training statistics that standardise raw inputs (cm), the split, the
    recipe (with the memory `strategy` that took the gradients) and the final metrics."""
    final = run.final
    return {"task": "iris", "seed": run.recipe.get("seed"), "features": list(FEATURES),
            "classes": list(CLASSES), "input_mean": run.data.mean.tolist(),
            "input_std": run.data.std.tolist(),
            "data": {"source": "tasks/data/iris.csv (Fisher 1936; the Hugging Face "
                               "scikit-learn/iris schema)",
                     "split": f"{N_TRAIN}/{len(run.data.x_test)} by "
                              f"numpy.random.default_rng({SPLIT_SEED}).permutation(150)",
                     "standardised": "z-score with the training split's mean and std"},
            "training": {**run.recipe, "strategy": strategy},
            "metrics": {"test_accuracy": final.test_accuracy, "test_loss": final.test_loss,
                        "train_accuracy": final.train_accuracy,
                        "train_loss": final.train_loss},
            "intended_use": "Teaching: the backpropagation tutorial's classifier of the three "
                            "Iris species from four measurements in cm. Thirty test flowers "
                            "are a small sample (one flower is 3.3 points of accuracy); not "
                            "for botanical identification."}
