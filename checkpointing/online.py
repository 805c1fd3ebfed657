"""`adaptive-online`: checkpointing a stream whose length is only known at its end.

The states kept while steps arrive are the places offline Revolve (Griewank & Walther 2000) would
keep for the longest stream that r repetitions can reverse, C(s + r, s) steps with s slots: 0,
then gaps of C(s + r - 1, s), C(s + r - 2, s - 1), ... . When the stream grows past that length,
r goes up by one; the new places begin with 0 and the current step, so all the others are
dropped at once (the thinning of dynamic checkpointing, Wang, Moin & Iaccarino 2009; Stumm &
Walther 2010 refine it). Once the end is known, the segments between kept states are reversed
last first, each by Revolve with the slots the states before it leave free.

Cost: every step is run forward once while streaming (which step is the last cannot be known),
and each segment then needs at most r - 1 more runs per step: in all about one forward sweep more
than offline Revolve with the same slots, often much less.
"""
from __future__ import annotations

from math import comb
from typing import Iterator

from checkpointing.binomial import binomial_decide, split_schedule
from checkpointing.plan import Action, Advance, ChainProfile, Drop, Plan, Snapshot, whole_number


class OnlineCheckpointing:
    """A stream's checkpointing with at most `slots` kept states (state 0 included), one tape.

    Call `forward(i)` as each step i = 0, 1, ... arrives and run the actions it returns, then
    `reverse(T)` once the stream ends after T steps. Memory is bounded by the slots however long
    the stream grows; recomputation is near offline Revolve's. `plan(profile)` gives the same
    actions as one Plan, for a length known in advance (counting, testing, the executor).
    """
    name = "adaptive-online"

    def __init__(self, slots: int):
        self.slots = whole_number("slots", slots, 1)
        self.level = 1           # r: the places suit a stream of up to C(slots + r, slots) steps
        self.kept: list[int] = []
        self.next_at = 0         # where the next state to keep lies, None when all are placed
        self.steps = 0           # steps seen so far
        self.finished = False

    def __repr__(self) -> str:
        return f"OnlineCheckpointing(slots={self.slots})"

    def forward(self, i: int) -> list[Action]:
        """Actions to run as step i arrives: thin the kept states if the stream outgrew them,
        keep state i if it is one of the places, run step i without recording."""
        if self.finished:
            raise ValueError("the stream is already reversed; start a new OnlineCheckpointing")
        if i != self.steps:
            raise ValueError(f"steps arrive in order: expected step {self.steps}, got {i!r}")
        s, actions = self.slots, []
        if i >= comb(s + self.level, s):
            # Longer than C(s + r, s): the places for r + 1 are 0, then i = C(s + r, s), ...
            self.level += 1
            actions += [Drop(k) for k in self.kept[1:]]
            self.kept, self.next_at = self.kept[:1], i if s > 1 else None
        if i == self.next_at:
            actions.append(Snapshot(i))
            self.kept.append(i)
            # the segment from i gets s - n + 1 slots, enough for C(s - n + r, r - 1) steps
            n = len(self.kept)
            self.next_at = i + comb(s - n + self.level, s - n + 1) if n < s else None
        actions.append(Advance(i, i + 1))
        self.steps += 1
        return actions

    def reverse(self, length: int) -> Iterator[Action]:
        """The exact reverse sweep once the stream has ended after `length` steps."""
        if self.finished:
            raise ValueError("the stream is already reversed")
        if length != self.steps or length < 1:
            raise ValueError(f"the stream has {self.steps} steps, got length {length!r}")
        self.finished = True
        kept = self.kept
        # segment n (last first) may use the slots the n states before it leave free
        tasks = [(a, b, self.slots - n, True)
                 for n, (a, b) in enumerate(zip(kept, kept[1:] + [length]))]
        return split_schedule(tasks, binomial_decide(), current=length)

    def plan(self, profile: ChainProfile) -> Plan:
        """All of a fresh stream's actions for `profile.length` steps, as a re-iterable Plan."""
        T, slots = profile.length, self.slots

        def actions() -> Iterator[Action]:
            stream = OnlineCheckpointing(slots)
            for i in range(T):
                yield from stream.forward(i)
            yield from stream.reverse(T)

        return Plan(T, self.name, actions)
