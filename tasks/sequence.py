"""The sequence-task interface shared by the trainer and every benchmark task.

A task is a frozen description (length, sizes, loss) plus a batch sampler driven only by the
`numpy.random.Generator` it is given (same seed, same batch, bit for bit), a metric on the
model's read-outs and the metric of a trivial predictor to compare against.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
import numbers
from dataclasses import dataclass

import numpy as np

LOSSES = ("mse", "xent")


@dataclass(frozen=True, kw_only=True)
class SequenceTask(ABC):
    """A task for a recurrent model read out at every step.

    inputs (T, B, D) floats, T = `seq_len`, D = `input_size`. Targets: floats of shape
    (..., O) for loss "mse", int64 class indices in [0, O) for loss "xent"; the leading
    dimensions are (T, B) when `every_step`, else (B,) for the last step only.
    Subclasses set the descriptive fields and implement `_sample`, `_score` and `baseline`.
    """

    name: str
    seq_len: int
    input_size: int
    output_size: int
    loss: str
    every_step: bool
    metric_name: str

    def __post_init__(self):
        seq_len = self.seq_len
        if isinstance(seq_len, bool) or not isinstance(seq_len, numbers.Integral):
            raise TypeError(f"seq_len must be an int, got {seq_len!r}")
        object.__setattr__(self, "seq_len", int(seq_len))
        if self.seq_len < self.min_seq_len:
            raise ValueError(f"seq_len for task {self.name!r} must be >= {self.min_seq_len}, "
                             f"got {self.seq_len}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {list(LOSSES)}, got {self.loss!r}")

    @property
    def min_seq_len(self) -> int:
        """The shortest sequence the task can be posed on (steps)."""
        return 1

    def target_shape(self, batch_size: int) -> tuple[int, ...]:
        """The shape of the targets of a batch of `batch_size` sequences."""
        lead = (self.seq_len, batch_size) if self.every_step else (batch_size,)
        return lead + ((self.output_size,) if self.loss == "mse" else ())

    def batch(self, rng: np.random.Generator, batch_size: int,
              dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
        """A fresh batch drawn from `rng`: inputs (T, B, D) of `dtype` and the targets.

        Targets have `target_shape(batch_size)`: `dtype` floats for "mse", int64 for "xent".
        """
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) \
                or batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
        dtype = np.dtype(dtype)
        if dtype.kind != "f":
            raise ValueError(f"dtype must be a floating-point type, got {dtype}")
        return self._sample(rng, int(batch_size), dtype)

    def metric(self, outputs: np.ndarray, targets: np.ndarray) -> float:
        """The task's `metric_name` for read-outs `outputs` (T, B, O) against a batch's targets.

        Outputs are raw read-outs (logits for "xent" tasks); each task uses the steps it scores.
        """
        return float(self._score(*self._validated(outputs, targets)))

    def _validated(self, outputs, targets) -> tuple[np.ndarray, np.ndarray]:
        """(outputs, targets) as arrays, checked against each other and the task."""
        outputs, targets = np.asarray(outputs), np.asarray(targets)
        if targets.ndim != len(self.target_shape(1)):
            raise ValueError(f"targets must have shape {self.target_shape(1)} with any batch "
                             f"size B=1, 2, ..., got {targets.shape}")
        batch_size = targets.shape[1] if self.every_step else targets.shape[0]
        expected = self.target_shape(batch_size)
        if targets.shape != expected:
            raise ValueError(f"targets must have shape {expected}, got {targets.shape}")
        if self.loss == "xent":
            if not np.issubdtype(targets.dtype, np.integer):
                raise ValueError(f"targets must be integer class indices, got {targets.dtype}")
            if targets.size and not 0 <= targets.min() <= targets.max() < self.output_size:
                raise ValueError(f"targets must be class indices in [0, {self.output_size}), "
                                 f"got values in [{targets.min()}, {targets.max()}]")
        expected = (self.seq_len, batch_size, self.output_size)
        if outputs.shape != expected:
            raise ValueError(f"outputs must have shape (T, B, O) = {expected}, "
                             f"got {outputs.shape}")
        return outputs, targets

    @abstractmethod
    def baseline(self) -> float:
        """The metric of the task's trivial predictor (stated by each task)."""

    @abstractmethod
    def _sample(self, rng: np.random.Generator, batch_size: int,
                dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
        """(inputs, targets) of one batch, drawn from `rng` only."""

    @abstractmethod
    def _score(self, outputs: np.ndarray, targets: np.ndarray) -> float:
        """The metric on validated outputs and targets."""


def one_hot(codes: np.ndarray, size: int, dtype) -> np.ndarray:
    """Integer codes (...) as one-hot vectors (..., size) of `dtype`."""
    return np.eye(size, dtype=dtype)[codes]
