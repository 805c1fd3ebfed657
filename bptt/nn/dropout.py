"""`Dropout` whose masks are a pure function of (seed, step, call): recomputation redraws them.

Inverted dropout (Srivastava et al., 2014): in training each unit is kept with probability
1 - p and scaled by 1 / (1 - p), so that evaluation (no mask) needs no rescaling.

Checkpointing recomputes forwards; a mask drawn from a generator's stream would differ on the
second forward (the stream has moved on) and an "exact" plan would silently compute another
function's gradient. Here the mask is counter-based (Salmon et al., 2011, "Parallel random
numbers: as easy as 1, 2, 3"): the Philox-4x64 generator keyed by `seed` is started at the
counter (0, 0, call, step), so the uniform numbers behind a mask depend on nothing but
(seed, step, call) and the mask's shape. `step` is the training iteration, `call` which use
within it (the layer, or the time step of a sequence): the same forward run twice, in any
order, draws the same mask. Distinct (step, call) pairs start 2^128 blocks apart, so their
numbers never overlap.
"""
from __future__ import annotations

import math

import numpy as np

from bptt.engine.tensor import Tensor
from bptt.nn.module import Module

MAX_SEED = 2 ** 128 - 1  # Philox-4x64's key
MAX_INDEX = 2 ** 64 - 1  # one word of its counter


class Dropout(Module):
    """Zero each entry of x (any shape) with probability `p` and scale the rest by 1/(1-p).

    `p` in [0, 1); 0 is the identity. `seed` (an integer in [0, 2^128)) keys the masks. Called
    with a `step` (and `call`, default 0) it draws the mask of that (seed, step, call); called
    without a step (evaluation, prediction) it is the identity. The trade-off: about 20 us per
    mask to restart the generator at its counter, in exchange for masks that any recomputation
    reproduces bit for bit.
    """

    def __init__(self, p: float, seed: int = 0):
        if (isinstance(p, bool) or not isinstance(p, (int, float, np.floating, np.integer))
                or not math.isfinite(p) or not 0 <= p < 1):
            raise ValueError(f"dropout p must be a number in [0, 1), got {p!r}")
        self.p = float(p)
        self.seed = _check_index("dropout seed", seed, MAX_SEED)
        self._bits = np.random.Philox(key=self.seed)
        self._draw = np.random.Generator(self._bits)
        self._start = self._bits.state

    def mask(self, shape: tuple[int, ...], dtype, step: int, call: int = 0) -> np.ndarray:
        """The scale factors (0 or 1/(1-p)) of (seed, step, call) for an array of `shape`."""
        step = _check_index("dropout step", step, MAX_INDEX)
        call = _check_index("dropout call", call, MAX_INDEX)
        start = self._start
        self._bits.state = {**start, "state": {"counter": np.array([0, 0, call, step], np.uint64),
                                               "key": start["state"]["key"]},
                            "buffer_pos": 4, "has_uint32": 0, "uinteger": 0}
        uniform = self._draw.random(shape, dtype=np.dtype(dtype).type)
        keep = uniform >= self.p
        return keep.astype(dtype) * np.asarray(1.0 / (1.0 - self.p), dtype)

    def forward(self, x, step: int | None = None, call: int = 0) -> Tensor:
        """x with the mask of (seed, step, call) applied; x itself without a step or if p = 0."""
        x = x if isinstance(x, Tensor) else Tensor(x)
        if step is None or self.p == 0:
            return x
        return x * self.mask(x.shape, x.dtype, step, call)

    def __repr__(self) -> str:
        return f"Dropout(p={self.p}, seed={self.seed})"


def _check_index(what: str, value, limit: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not (
            0 <= value <= limit):
        raise ValueError(f"{what} must be an integer in [0, {limit}], got {value!r}")
    return int(value)
