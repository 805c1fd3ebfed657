"""`checkpoint`: keep every k-th state, recompute one segment at a time (Chen et al., 2016).

With k = ceil(sqrt(T)) the peak is about sqrt(T) states plus one segment's k tapes, for about
T extra step forwards: memory O(sqrt T) for roughly one more forward sweep.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

from checkpointing.plan import (Action, Advance, ChainProfile, Drop, Plan, Record, Restore,
                                Reverse, Snapshot, whole_number)


@dataclass(frozen=True)
class Periodic:
    """Snapshot states 0, k, 2k, ...; in the backward sweep re-record each segment, last first.

    `segment`: k, the steps between kept states; None means ceil(sqrt(T)). The last segment is
    recorded during the first sweep already, so it is never run twice.
    """
    segment: int | None = None
    name = "checkpoint"

    def __post_init__(self):
        if self.segment is not None:
            object.__setattr__(self, "segment", whole_number("segment", self.segment, 1))

    def segment_length(self, length: int) -> int:
        """k for a chain of `length` steps."""
        return self.segment if self.segment is not None else max(1, math.isqrt(length - 1) + 1)

    def plan(self, profile: ChainProfile) -> Plan:
        """Forward sweep keeping every k-th state, then one recorded segment at a time."""
        T = profile.length
        k = min(self.segment_length(T), T)
        starts = list(range(0, T, k))

        def actions() -> Iterator[Action]:
            for a, b in zip(starts, starts[1:]):
                yield Snapshot(a)
                yield Advance(a, b)
            for i in range(starts[-1], T):
                yield Record(i)
            for a in reversed(starts):
                b = min(a + k, T)
                if a != starts[-1]:
                    yield Restore(a)
                    for i in range(a, b):
                        yield Record(i)
                    yield Drop(a)
                for i in reversed(range(a, b)):
                    yield Reverse(i)

        return Plan(T, self.name, actions)
