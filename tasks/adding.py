"""The adding problem (Hochreiter & Schmidhuber, 1997), in the form of Le, Jaitly & Hinton (2015).

Each step carries two channels: a number drawn uniformly from [0, 1) and a marker. Exactly two
steps are marked, one in the first half of the sequence and one in the second; the target, read
at the last step only, is the sum of the two marked numbers. The first marker can lie up to
T - 1 steps before the answer, so the task measures how far back gradients reach.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tasks.sequence import SequenceTask


@dataclass(frozen=True, kw_only=True)
class AddingTask(SequenceTask):
    """Inputs (T, B, 2): channel 0 the numbers, channel 1 the markers (two 1s, the rest 0).

    Targets (B, 1) of the input dtype: the sum of the marked numbers. Metric: mean squared
    error of the read-out at the last step.
    """

    seq_len: int = 200
    name: str = field(default="adding", init=False)
    input_size: int = field(default=2, init=False)
    output_size: int = field(default=1, init=False)
    loss: str = field(default="mse", init=False)
    every_step: bool = field(default=False, init=False)
    metric_name: str = field(default="mse", init=False)

    @property
    def min_seq_len(self) -> int:
        return 2  # one marker in each half

    def baseline(self) -> float:
        """1/6: the mse of always answering 1.0, the variance of a sum of two U(0, 1) numbers."""
        return 1 / 6

    def _sample(self, rng, batch_size, dtype):
        T, half = self.seq_len, self.seq_len // 2
        numbers = rng.random((T, batch_size)).astype(dtype)
        first = rng.integers(0, half, size=batch_size)
        second = rng.integers(half, T, size=batch_size)
        markers = np.zeros((T, batch_size), dtype=dtype)
        columns = np.arange(batch_size)
        markers[first, columns] = 1
        markers[second, columns] = 1
        # Summing in the input dtype makes the target exactly the sum a model could form.
        targets = numbers[first, columns] + numbers[second, columns]
        return np.stack([numbers, markers], axis=-1), targets[:, None]

    def _score(self, outputs, targets):
        error = outputs[-1].astype(np.float64) - targets
        return np.mean(error ** 2)
