"""The copy-memory task (Arjovsky, Shah & Bengio, 2016).

A sequence of `n_symbols` symbols drawn uniformly from {1..8} is shown first, then blanks (0),
then the delimiter (9) and `n_symbols` more blanks. The model must output blanks throughout and
reproduce the symbols, in order, over the last `n_symbols` steps: it has to hold them across the
`delay` = T - 2 * n_symbols steps between the last symbol and the first recall step (the
delimiter is the last of those steps, so delay >= 1; Arjovsky et al.'s "T" is our delay).
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass, field

import numpy as np

from tasks.sequence import SequenceTask, one_hot

BLANK, DELIMITER = 0, 9
N_DATA_SYMBOLS = 8  # symbols 1..8


@dataclass(frozen=True, kw_only=True)
class CopyTask(SequenceTask):
    """Inputs (T, B, 10): one-hot codes 0..9. Targets (T, B) int64 codes 0..8, every step.

    Default: 10 symbols recalled after a delay of 100 steps (T = 120). Metric: accuracy of the
    argmax read-out over the recall steps only, where blanks would otherwise dominate.
    """

    seq_len: int = 120
    n_symbols: int = 10
    name: str = field(default="copy", init=False)
    input_size: int = field(default=10, init=False)
    output_size: int = field(default=N_DATA_SYMBOLS + 1, init=False)
    loss: str = field(default="xent", init=False)
    every_step: bool = field(default=True, init=False)
    metric_name: str = field(default="accuracy", init=False)

    def __post_init__(self):
        n = self.n_symbols
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
            raise ValueError(f"n_symbols must be an int >= 1, got {n!r}")
        super().__post_init__()

    @property
    def min_seq_len(self) -> int:
        return 2 * self.n_symbols + 1  # the symbols, the delimiter, the recall steps

    @property
    def delay(self) -> int:
        """Steps from the last shown symbol to the first recall step, delimiter included."""
        return self.seq_len - 2 * self.n_symbols

    def baseline(self) -> float:
        """1/8: the recall accuracy of guessing the symbols (or of any fixed answer)."""
        return 1 / N_DATA_SYMBOLS

    def _sample(self, rng, batch_size, dtype):
        T, n = self.seq_len, self.n_symbols
        symbols = rng.integers(1, N_DATA_SYMBOLS + 1, size=(n, batch_size))
        codes = np.full((T, batch_size), BLANK, dtype=np.int64)
        codes[:n] = symbols
        codes[T - n - 1] = DELIMITER
        targets = np.full((T, batch_size), BLANK, dtype=np.int64)
        targets[T - n:] = symbols
        return one_hot(codes, self.input_size, dtype), targets

    def _score(self, outputs, targets):
        n = self.n_symbols
        return np.mean(outputs[-n:].argmax(axis=-1) == targets[-n:])
