"""`truncated`: truncated BPTT(k1, k2) (Williams & Peng, 1990). Cheap, and the gradient is biased.

Every k1 steps, the losses of those k1 steps are backpropagated k2 steps into the past and the
gradient is cut there. With k1 = k2 = k this is the familiar chunked form: the sequence runs in
chunks of k, the state is carried forward and its gradient is cut at each chunk boundary. Peak
memory is k2 tapes and no step is recomputed; dependencies longer than k2 steps are not learned.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from checkpointing.plan import Action, ChainProfile, Cut, Plan, Record, Reverse, whole_number


@dataclass(frozen=True)
class Truncated:
    """TBPTT(k1, k2): windows end every k1 steps; each reverses the last k2 steps (k2 >= k1).

    The gradient is the sum over windows of the gradient of that window's step losses, with the
    state k2 - k1 steps before the window's first step treated as a constant (k2 steps before its
    end; a shorter last window reaches back as far beyond its start as the others).
    """
    k1: int
    k2: int | None = None
    name = "truncated"

    def __post_init__(self):
        k1 = whole_number("k1", self.k1, 1)
        try:
            k2 = whole_number("k2", k1 if self.k2 is None else self.k2, k1)
        except ValueError:
            raise ValueError(f"k2 must be a whole number >= k1 = {k1} (each window "
                             f"backpropagates the losses of its k1 steps), "
                             f"got {self.k2!r}") from None
        object.__setattr__(self, "k1", k1)
        object.__setattr__(self, "k2", k2)

    def plan(self, profile: ChainProfile) -> Plan:
        """Record forward; at each window end reverse k2 steps, keeping the tapes the next needs."""
        T, k1, k2 = profile.length, self.k1, self.k2
        ends = [min(e, T) for e in range(k1, T + k1, k1)]

        def actions() -> Iterator[Action]:
            for w, end in enumerate(ends):
                own = ends[w - 1] if w else 0  # this window's losses are those of steps own..end-1
                last = w == len(ends) - 1
                next_start = max(0, end - (k2 - k1))  # where the next window reaches back to
                for i in range(own, end):
                    yield Record(i)
                start = max(0, own - (k2 - k1))
                # Every tape held now is >= start: the previous window kept only what this
                # one reaches back to, so Reverse alone frees all that is no longer needed.
                for i in reversed(range(start, end)):
                    yield Reverse(i, with_loss=i >= own, keep=not last and i >= next_start)
                if start > 0 or not last:
                    yield Cut(start)

        return Plan(T, self.name, actions, exact=False)
