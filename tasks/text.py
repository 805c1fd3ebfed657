"""Character-level language modelling on a UTF-8 text file (Elman, 1990; Sutskever et al., 2011).

The vocabulary is the file's distinct characters (Unicode code points) in sorted order. A batch
is B windows of T + 1 characters starting at uniformly drawn offsets: the model reads
characters t and predicts character t + 1 at every step. Without a path the task uses the
package's own short essay, `data/tiny_text.txt`, so it runs offline and out of the box.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from bptt.training.files import read_regular_file
from tasks.sequence import SequenceTask, one_hot

BUILT_IN = "tiny_text.txt"
MAX_TEXT_BYTES = 256 * 2**20  # one-hot encoded, a text is T x B x V floats per batch anyway


def read_text(path: str | os.PathLike | None = None) -> str:
    """The text of the UTF-8 file at `path`, or of the built-in text when `path` is None.

    Raises FileNotFoundError or IsADirectoryError for a bad path, and ValueError for an empty
    file, bytes that are not UTF-8 (naming the file and the byte offset), or a path that is not
    a regular file (a FIFO, a device) or holds more than `MAX_TEXT_BYTES`.
    """
    if path is None:
        where = f"built-in {BUILT_IN}"
        data = (resources.files("tasks") / "data" / BUILT_IN).read_bytes()
    else:
        where = os.fspath(path)
        if Path(path).is_dir():
            raise IsADirectoryError(f"text path '{where}' is a directory, expected a UTF-8 file")
        if not Path(path).exists():
            raise FileNotFoundError(f"text file '{where}' does not exist")
        data = read_regular_file(path, MAX_TEXT_BYTES)  # not a FIFO, not /dev/zero
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"text file '{where}' is not UTF-8: byte 0x{data[error.start]:02x} "
                         f"at byte offset {error.start}") from None
    if not text:
        raise ValueError(f"text file '{where}' is empty")
    return text


@dataclass(frozen=True, kw_only=True)
class TextTask(SequenceTask):
    """Inputs (T, B, V): one-hot characters. Targets (T, B) int64: the next character's code.

    V = `len(vocab)`. Metric: bits per character, the mean cross-entropy of the softmax of the
    read-outs in bits, over every step.
    """

    seq_len: int = 100
    path: str | os.PathLike | None = None
    name: str = field(default="text", init=False)
    input_size: int = field(default=0, init=False)  # set from the file's vocabulary
    output_size: int = field(default=0, init=False)
    loss: str = field(default="xent", init=False)
    every_step: bool = field(default=True, init=False)
    metric_name: str = field(default="bpc", init=False)
    text: str = field(init=False, repr=False, compare=False)
    vocab: str = field(init=False, repr=False, compare=False)
    codes: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        super().__post_init__()
        text = read_text(self.path)
        if len(text) < self.seq_len + 1:
            where = BUILT_IN if self.path is None else os.fspath(self.path)
            raise ValueError(f"text file '{where}' has {len(text)} characters, but "
                             f"seq_len={self.seq_len} needs at least {self.seq_len + 1}")
        points = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        alphabet = np.unique(points)  # sorted code points: the order of sorted(set(text))
        vocab = "".join(map(chr, alphabet))
        object.__setattr__(self, "text", text)
        object.__setattr__(self, "vocab", vocab)
        object.__setattr__(self, "codes", np.searchsorted(alphabet, points).astype(np.int64))
        object.__setattr__(self, "input_size", len(vocab))
        object.__setattr__(self, "output_size", len(vocab))

    def encode(self, text: str) -> np.ndarray:
        """Characters of `text` as int64 codes into `vocab`."""
        index = {c: i for i, c in enumerate(self.vocab)}
        unknown = sorted(set(text) - set(index))
        if unknown:
            raise ValueError(f"characters not in the vocabulary: {unknown}")
        return np.array([index[c] for c in text], dtype=np.int64)

    def decode(self, codes) -> str:
        """The string of the int codes `codes` into `vocab`."""
        return "".join(self.vocab[int(c)] for c in np.ravel(codes))

    def baseline(self) -> float:
        """The unigram entropy of the text in bits: the bpc of predicting character
        frequencies and ignoring context."""
        p = np.bincount(self.codes, minlength=self.output_size) / len(self.codes)
        p = p[p > 0]
        return float(-(p * np.log2(p)).sum())

    def _sample(self, rng, batch_size, dtype):
        T = self.seq_len
        starts = rng.integers(0, len(self.codes) - T, size=batch_size)
        windows = self.codes[starts + np.arange(T + 1)[:, None]]
        return one_hot(windows[:-1], self.input_size, dtype), windows[1:]

    def _score(self, outputs, targets):
        logits = outputs.astype(np.float64)
        top = logits.max(axis=-1, keepdims=True)
        log_norm = np.log(np.exp(logits - top).sum(axis=-1)) + top[..., 0]
        picked = np.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
        return np.mean(log_norm - picked) / np.log(2)
