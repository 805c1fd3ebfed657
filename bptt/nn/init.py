"""Weight initialisation from a seeded `numpy.random.Generator`.

Values are drawn in float64 and then cast, so the same generator state gives the same weights bit
for bit on every machine, and a float32 model holds the float32 rounding of its float64 twin.
"""
from __future__ import annotations

import numpy as np


def xavier_uniform(fan_in: int, fan_out: int, rng: np.random.Generator,
                   dtype=np.float64) -> np.ndarray:
    """A (fan_in, fan_out) array from U(-a, a), a = sqrt(6 / (fan_in + fan_out)).

    Keeps the activation and gradient variances roughly constant through tanh/sigmoid layers
    (Glorot & Bengio, 2010).
    """
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return _generator(rng).uniform(-limit, limit, size=(fan_in, fan_out)).astype(dtype)


def he_normal(fan_in: int, fan_out: int, rng: np.random.Generator,
              dtype=np.float64) -> np.ndarray:
    """A (fan_in, fan_out) array from N(0, 2 / fan_in): variance-preserving for ReLU layers
    (He et al., 2015)."""
    std = np.sqrt(2.0 / fan_in)
    return _generator(rng).normal(0.0, std, size=(fan_in, fan_out)).astype(dtype)


INITIALISERS = {"xavier": xavier_uniform, "he": he_normal}


def initialiser(name: str):
    """The initialiser called `name` ("xavier" or "he"), or a ValueError listing the choices."""
    try:
        return INITIALISERS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown init {name!r}; choose one of {sorted(INITIALISERS)}") from None


def _generator(rng) -> np.random.Generator:
    # A bare int or the legacy global state would make runs depend on hidden state: refuse them.
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator (e.g. np.random.default_rng(0)), "
                        f"got {type(rng).__name__}")
    return rng
