"""Lossy strategies: an exact plan whose kept states or tapes are stored through a codec.

    Compressed(Revolve(10), snapshots="float16")   Revolve's schedule, slots kept as float16
    Compressed(Full(), tapes="int8")               every tape kept, its arrays as int8 (ActNN-like)
    Adaptive(budget, compress="float16")           see `checkpointing.adaptive`: mixes exact and
                                                   compressed slots to fit the budget

The schedule is the inner strategy's, unchanged and checked as exact; what makes the gradient
approximate is that recomputation restarts from a *decoded* state (the error of one encoding,
carried through the recomputed segment) and backpropagation reads decoded caches. The forward
sweep itself always continues from the exact state: only what is kept is encoded. The trade-off:
each compressed slot costs 1/2 (float16, bfloat16) or about 1/4 (int8) of an exact one, so a
budget holds 2-4x more slots and recomputes less, for a gradient that is no longer `full`'s.
Training reports the gradient's cosine and relative error against `full` per step.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from checkpointing.codecs import Codec, SharedEncoder, get_codec
from checkpointing.plan import (Advance, ChainProfile, Discard, Drop, Plan, Record, Restore,
                                Reverse, Snapshot)


@dataclass(frozen=True)
class Compression:
    """Which kept things a plan encodes: plain data, printed with the plan.

    `snapshots`: codec name for kept states (None: exact); `exact_snapshots`: state indices kept
    exact all the same (a budget that has room for them); `tapes`: codec name for recorded
    tapes' arrays (None: exact).
    """
    snapshots: str | None = None
    tapes: str | None = None
    exact_snapshots: frozenset = frozenset()

    def __post_init__(self):
        for name in (self.snapshots, self.tapes):
            if name is not None:
                get_codec(name)
        object.__setattr__(self, "exact_snapshots", frozenset(self.exact_snapshots))

    def snapshot_codec(self, index: int) -> Codec | None:
        """The codec that state `index` is kept with when snapshotted, None if exact."""
        if self.snapshots is None or index in self.exact_snapshots:
            return None
        return get_codec(self.snapshots)

    def tape_codec(self) -> Codec | None:
        """The codec of recorded tapes, None if exact."""
        return None if self.tapes is None else get_codec(self.tapes)

    @property
    def lossless(self) -> bool:
        """Nothing is encoded: the plan is exact."""
        return self.snapshots is None and self.tapes is None


@dataclass(frozen=True)
class LossyPlan(Plan):
    """A `Plan` whose kept states or tapes go through codecs (`compression`); the executor
    encodes and decodes them. The action stream is checked like an exact plan's."""
    compression: Compression = field(default_factory=Compression)


@dataclass(frozen=True)
class Compressed:
    """Any strategy's schedule with its kept states (`snapshots`) and/or tapes (`tapes`) stored
    through a codec ("float16", "bfloat16", "int8"): fewer bytes for the same recomputation,
    an approximate gradient. Give at least one of the two."""
    inner: object
    snapshots: str | None = None
    tapes: str | None = None
    lossy = True

    def __post_init__(self):
        if self.snapshots is None and self.tapes is None:
            raise ValueError("Compressed needs a codec for snapshots or tapes (or both), "
                             "got neither")
        Compression(self.snapshots, self.tapes)  # names checked here, at the boundary

    @property
    def name(self) -> str:
        parts = [f"snapshots={self.snapshots}"] * (self.snapshots is not None) + \
                [f"tapes={self.tapes}"] * (self.tapes is not None)
        return f"{self.inner.name}[{','.join(parts)}]"

    def plan(self, profile: ChainProfile) -> LossyPlan:
        """The inner strategy's plan with this compression."""
        inner = self.inner.plan(profile)
        return LossyPlan(inner.length, self.name, inner.actions, inner.exact,
                         compression=Compression(self.snapshots, self.tapes))


def compressed_peak(plan, profile: ChainProfile, compression: Compression) -> int:
    """The peak bytes of a (valid) plan when its snapshots are encoded as `compression` says,
    counted as the executor's ledger counts them, with the codec's `bound` for encoded states.

    An exact slot shares its buffer with the current state after `Snapshot` or `Restore`; an
    encoded slot never does (restoring decodes into a fresh state). Tapes are counted at the
    profile's sizes (tape codecs are not planned for). With no codec this is `simulate`'s peak.
    """
    T = profile.length

    def state(i):
        return profile.state_bytes[min(i, T - 1)]

    slots: dict[int, int] = {}
    tapes: dict[int, int] = {}
    current, shared = 0, False
    held = state(0)
    peak = held
    for a in plan:
        kind = type(a)
        before = 0 if shared else state(current)
        if kind is Advance:
            current, shared = a.stop, False
        elif kind is Record:
            tapes[a.index] = profile.tape_bytes[a.index]
            held += tapes[a.index]
            current, shared = a.index + 1, False
        elif kind is Snapshot:
            codec = compression.snapshot_codec(a.index)
            size = state(a.index) if codec is None else codec.bound(state(a.index))
            slots[a.index] = size
            held += size
            shared = codec is None
        elif kind is Restore:
            current = a.index
            shared = compression.snapshot_codec(a.index) is None
        elif kind is Drop:
            held -= slots.pop(a.index)
            if a.index == current:
                shared = False
        elif (kind is Reverse and not a.keep) or kind is Discard:
            held -= tapes.pop(a.index)
        held += (0 if shared else state(current)) - before
        peak = max(peak, held)
    return peak


class CodecHooks:
    """The executor's side of a `Compression`: encode on snapshot and record, decode on restore
    and before a reverse. With no compression every hook is the identity (exact plans run as
    before, bit for bit)."""

    def __init__(self, compression: Compression | None):
        self.compression = compression
        tape_codec = None if compression is None else compression.tape_codec()
        self.tape_codec = tape_codec
        self._encode = None if tape_codec is None else SharedEncoder(tape_codec)

    def encode_state(self, index: int, state: tuple):
        """What a slot keeps of `state`: the state itself, or its encoding (a `_Kept`)."""
        codec = None if self.compression is None else self.compression.snapshot_codec(index)
        return state if codec is None else _Kept(codec, codec.encode_state(state))

    @staticmethod
    def buffers(kept) -> list:
        """The arrays a slot holds, for the ledger."""
        if isinstance(kept, _Kept):
            return [a for e in kept.encoded for a in e.arrays]
        return list(kept)

    @staticmethod
    def decode_state(kept) -> tuple:
        """The state to continue from: the kept state, or a fresh decoding of it."""
        return kept.codec.decode_state(kept.encoded) if isinstance(kept, _Kept) else kept

    def pack_tape(self, tape) -> bool:
        """Encode a recorded tape's arrays in place (True), or leave it (False: no tape codec).
        The tape must offer `compress(encode)` and `decompress(decode)`."""
        if self._encode is None:
            return False
        compress = getattr(tape, "compress", None)
        if compress is None:
            raise TypeError(f"tapes of type {type(tape).__name__} cannot be compressed (they "
                            f"have no compress/decompress); use snapshot compression instead")
        compress(self._encode)
        return True

    def unpack_tape(self, tape) -> None:
        """Decode a packed tape's arrays in place, before its reverse."""
        if self._encode is not None:
            tape.decompress(self.tape_codec.decode)


@dataclass(frozen=True)
class _Kept:
    codec: Codec
    encoded: tuple
