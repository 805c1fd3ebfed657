"""`revolve`: binomial checkpointing (Griewank 1992; Griewank & Walther 2000, "Algorithm 799").

With `s` slots (state 0 counting as one) and each step recorded right before it is reversed (one
tape at a time), the fewest non-recording step forwards that reverse T steps is Griewank's

    t(T, s) = r*T - C(s + r, s + 1),   r the least integer with C(s + r, s) >= T,

and Revolve reaches it: advance j steps from a kept state, keep that state, reverse the right part
with one slot fewer, then the left part with all of them. No step is advanced more than r times;
j is read off the binomials, so planning is O(T log T), lazily, with no recursion.

`split_schedule` turns any such tree of "split here" / "record these" decisions into actions; the
adaptive and online strategies use it too.
"""
from __future__ import annotations

from dataclasses import dataclass
from math import comb
from typing import Callable, Hashable, Iterable, Iterator

from checkpointing.plan import (Action, Advance, ChainProfile, Drop, Plan, PlanStats, Record,
                                Restore, Reverse, Snapshot, whole_number)

RECORD, SPLIT = "record", "split"

# A task is (start, stop, key, kept): reverse steps start..stop-1, given the gradient of state
# stop; state start is current or, if `kept`, in a slot (which the task frees). `key` is the
# planner's own description of the memory the task may use (slots left, bytes left, ...).
Task = tuple[int, int, Hashable, bool]
# decide(start, stop, key) returns one of
#   (RECORD, n, rest_key): record steps start..start+n-1 now, keeping their tapes; solve the rest
#                          (start+n, stop, rest_key) then reverse those n steps;
#   (SPLIT, j, right_key, left_key): keep state start, advance j steps, solve
#                          (start+j, stop, right_key), then (start, start+j, left_key).
Decide = Callable[[int, int, Hashable], tuple]


def repetitions(length: int, slots: int) -> int:
    """The least r with C(slots + r, slots) >= length: how often the busiest step runs forward."""
    if length <= 1:
        return 0
    hi = 1
    while comb(slots + hi, slots) < length:
        hi *= 2
    lo = hi // 2  # C(slots + lo, slots) < length, or lo == 0 (C = 1 < length)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if comb(slots + mid, slots) < length:
            lo = mid
        else:
            hi = mid
    return hi


def griewank_minimum(length: int, slots: int) -> int:
    """t(T, s): the fewest non-recording step forwards that reverse `length` steps with `slots`.

    Closed form of Griewank (1992); 0 for a single step, T - 1 once slots >= T - 1 (every state
    but the last is kept), T(T - 1)/2 with one slot.
    """
    length = whole_number("length", length, 1)
    slots = whole_number("slots", slots, 1)
    slots = min(slots, length)
    r = repetitions(length, slots)
    return r * length - comb(slots + r, slots + 1)


def binomial_split(length: int, slots: int) -> int:
    """Where Revolve splits `length` >= 2 steps with `slots` >= 1: an optimal j in 1..length-1.

    t(l, s) grows by r(l) from l - 1 to l, so j + t(length - j, s - 1) + t(j, s) is convex in j
    with slope 1 + r_s(j + 1) - r_{s-1}(length - j). It turns at the left part C(s + r - 1, s)
    (each of its steps runs at most r - 1 more times), or earlier if that would leave the right
    part shorter than C(s + r - 2, s - 1) + 1, where its steps start needing r runs.
    """
    r = repetitions(length, slots)
    return min(comb(slots + r - 1, slots), length - comb(slots + r - 2, slots - 1))


def split_schedule(tasks: Iterable[Task], decide: Decide, current: int) -> Iterator[Action]:
    """The actions for a tree of decisions, walked with an explicit stack (T may be 100,000).

    `tasks` are solved last first (a reverse sweep over consecutive segments lists them in
    chain order); `current` is the state current when the walk starts.
    """
    stack: list = list(tasks)
    while stack:
        task = stack.pop()
        if isinstance(task, Reverse):
            yield task
            continue
        start, stop, key, kept = task
        if current != start:
            yield Restore(start)
            current = start
        kind, n, *keys = decide(start, stop, key)
        if kind == RECORD:
            if kept:
                yield Drop(start)  # the tapes hold what the backward pass needs from it
            for i in range(start, start + n):
                yield Record(i)
            current = start + n
            if start + n == stop:
                for i in reversed(range(start, stop)):
                    yield Reverse(i)
            else:
                stack.extend(Reverse(i) for i in range(start, start + n))
                stack.append((start + n, stop, keys[0], False))
        else:
            if not kept:
                yield Snapshot(start)
            yield Advance(start, start + n)
            current = start + n
            stack.append((start, start + n, keys[1], True))
            stack.append((start + n, stop, keys[0], False))


def binomial_decide(block: int = 1) -> Decide:
    """Revolve's decisions (key: slots the task may use, its own start's included) over blocks.

    With `block` > 1 the chain is cut into blocks of that many steps (the last may be shorter),
    each advanced as one and recorded whole: Revolve over blocks, `block` tapes at a time.
    """
    def decide(start: int, stop: int, slots: int) -> tuple:
        blocks = -(-(stop - start) // block)
        if blocks == 1:
            return RECORD, stop - start, None
        return SPLIT, binomial_split(blocks, slots) * block, slots - 1, slots
    return decide


@dataclass(frozen=True)
class Revolve:
    """Binomial checkpointing: at most `slots` states kept (state 0 included), one tape at a time.

    Runs exactly `griewank_minimum(T, slots)` extra step forwards, the fewest any plan holding
    that many states can: memory O(slots) for recomputation that grows like T * r.
    """
    slots: int
    name = "revolve"

    def __post_init__(self):
        object.__setattr__(self, "slots", whole_number("slots", self.slots, 1))

    def plan(self, profile: ChainProfile) -> Plan:
        """The Revolve schedule for the chain (generated lazily: T may be large)."""
        T = profile.length
        slots = min(self.slots, T)
        decide = binomial_decide()
        return Plan(T, self.name, lambda: split_schedule([(0, T, slots, False)], decide, 0),
                    counts=revolve_counts(T, slots))


def revolve_counts(length: int, slots: int) -> PlanStats:
    """`simulate`'s counts of the Revolve plan under unit sizes, in closed form: T recorded and
    reversed steps, t(T, s) advanced ones, min(s, T - 1) kept states (state T - 1 is recorded,
    never kept), one tape, and the peak of those states, the tape and the current state."""
    states = 0 if length == 1 else min(slots, length - 1)
    advanced = griewank_minimum(length, slots)
    return PlanStats(length, length + advanced, length, advanced, length, states, 1, states + 2)
