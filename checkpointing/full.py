"""`full`: record every step, then reverse them all. No recomputation, memory linear in T."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from checkpointing.plan import Action, ChainProfile, Plan, Record, Reverse


@dataclass(frozen=True)
class Full:
    """Keep every step's tape: T forwards, peak memory of T tapes. The reference gradient."""
    name = "full"

    def plan(self, profile: ChainProfile) -> Plan:
        """The plan for a chain: Record(0..T-1), then Reverse(T-1..0)."""
        T = profile.length

        def actions() -> Iterator[Action]:
            for i in range(T):
                yield Record(i)
            for i in reversed(range(T)):
                yield Reverse(i)

        return Plan(T, self.name, actions)
