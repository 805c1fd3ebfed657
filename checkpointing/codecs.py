"""Codecs for kept states and tapes: fewer bytes per number, at the price of rounding error.

A lossy strategy is an exact plan plus a codec (`checkpointing.lossy`): the executor encodes a
state when it snapshots it (or a tape's arrays when it records them) and decodes on restore (or
before the reverse), so recomputation and backpropagation start from the decoded values. The
ledger counts the encoded buffers, byte for byte.

    float16    IEEE half: 2 bytes a number, 11 significant bits, |x| <= 65504 (beyond: inf)
    bfloat16   the top 16 bits of a float32, rounded to nearest even (emulated in NumPy):
               2 bytes, 8 significant bits, float32's range
    int8       symmetric linear quantisation with one float32 scale per tensor (max|x| / 127):
               1 byte a number + 4; the error is at most scale / 2 for every number

Compression of activations for backpropagation is ActNN (Chen et al., 2021) and GACT (Liu et
al., 2022); these are their simplest per-tensor forms. Codecs are pure NumPy.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Callable

import numpy as np


class Encoded:
    """An encoded array: the buffers kept (`arrays`), and the shape and dtype to decode to."""

    __slots__ = ("arrays", "shape", "dtype", "__weakref__")

    def __init__(self, arrays: tuple[np.ndarray, ...], shape: tuple[int, ...], dtype):
        self.arrays, self.shape, self.dtype = arrays, shape, np.dtype(dtype)

    @property
    def nbytes(self) -> int:
        """Bytes of the encoded buffers."""
        return sum(a.nbytes for a in self.arrays)


@dataclass(frozen=True)
class Codec:
    """A per-tensor lossy encoding of float arrays.

    `name`: as used in plans and sweeps; `bytes_per_number`: the encoded width; `extra_bytes`:
    bytes per encoded tensor beyond the numbers (int8's scale).
    """
    name: str
    bytes_per_number: int
    extra_bytes: int = 0

    def encode(self, array: np.ndarray) -> Encoded:
        """`array` (float32 or float64, any shape) in this codec."""
        return Encoded(_ENCODERS[self.name](array), array.shape, array.dtype)

    def decode(self, encoded: Encoded) -> np.ndarray:
        """A fresh array of the original shape and dtype holding the decoded numbers."""
        return _DECODERS[self.name](encoded).reshape(encoded.shape)

    def bound(self, raw_bytes: int, tensors: int = 2) -> int:
        """An upper bound on the encoded bytes of `tensors` arrays of float32 or wider that
        hold `raw_bytes` in all: what a planner may assume without knowing the dtype."""
        return -(-raw_bytes * self.bytes_per_number // 4) + tensors * self.extra_bytes

    def encode_state(self, state: tuple) -> tuple[Encoded, ...]:
        """Each array of a state encoded."""
        return tuple(self.encode(a) for a in state)

    def decode_state(self, encoded: tuple[Encoded, ...]) -> tuple[np.ndarray, ...]:
        """A state decoded into fresh arrays."""
        return tuple(self.decode(e) for e in encoded)


def _f16_encode(a):
    return (a.astype(np.float16),)


def _f16_decode(e):
    return e.arrays[0].astype(e.dtype)


def _bf16_encode(a):
    bits = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)
    # Round to nearest, ties to even: add 0x7FFF plus the lowest bit that survives.
    rounded = bits + (np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1)))
    return ((rounded >> np.uint32(16)).astype(np.uint16),)


def _bf16_decode(e):
    bits = e.arrays[0].astype(np.uint32) << np.uint32(16)
    return bits.view(np.float32).astype(e.dtype)


def _int8_encode(a):
    top = float(np.max(np.abs(a))) if a.size else 0.0
    scale = np.float32(top / 127.0 if top > 0 else 1.0)
    q = np.rint(a / scale)
    np.clip(q, -127, 127, out=q)
    return q.astype(np.int8), np.asarray(scale, dtype=np.float32)


def _int8_decode(e):
    q, scale = e.arrays
    out = q.astype(e.dtype)
    out *= scale.astype(e.dtype)
    return out


_ENCODERS = {"float16": _f16_encode, "bfloat16": _bf16_encode, "int8": _int8_encode}
_DECODERS = {"float16": _f16_decode, "bfloat16": _bf16_decode, "int8": _int8_decode}
CODECS = {"float16": Codec("float16", 2), "bfloat16": Codec("bfloat16", 2),
          "int8": Codec("int8", 1, extra_bytes=4)}


def get_codec(name: str) -> Codec:
    """The codec called `name`, or a ValueError listing the choices."""
    try:
        return CODECS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown codec {name!r}; choose one of {sorted(CODECS)}") from None


class SharedEncoder:
    """Encode arrays once each while they live: a buffer two tapes share (state i+1 is step i's
    output and step i+1's input) is encoded into one `Encoded` both keep, so the ledger counts
    it once. Weak references only: the memo keeps nothing alive and a reused id cannot match."""

    def __init__(self, codec: Codec):
        self.codec = codec
        self._memo: dict[int, tuple[weakref.ref, weakref.ref]] = {}

    def __call__(self, array: np.ndarray) -> Encoded:
        entry = self._memo.get(id(array))
        if entry is not None and entry[0]() is array:
            encoded = entry[1]()
            if encoded is not None:
                return encoded
        encoded = self.codec.encode(array)
        self._memo[id(array)] = (weakref.ref(array), weakref.ref(encoded))
        if len(self._memo) > 64:  # forget entries whose array or encoding is gone
            self._memo = {k: v for k, v in self._memo.items()
                          if v[0]() is not None and v[1]() is not None}
        return encoded


Encoder = Callable[[np.ndarray], Encoded]
