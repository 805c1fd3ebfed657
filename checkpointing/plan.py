"""Plans: what a memory strategy decides, as plain data that can be printed, checked and counted.

A chain has `length` T steps; state i is the input of step i (state 0 is the initial state, state
T the final one). A plan is a stream of actions over those indices, in the words of the Revolve
papers (Griewank & Walther 2000) made plain:

    Advance(i, j)   run steps i..j-1 forward without recording; the current state becomes j
    Snapshot(i)     keep the current state i in a slot          (Revolve: takeshot)
    Restore(i)      make the kept state i current again          (Revolve: restore)
    Drop(i)         free the slot holding state i
    Record(i)       run step i forward recording its tape; the current state becomes i+1
    Reverse(i)      backpropagate through step i's tape, giving the gradient of state i
                    (Revolve: firsturn/youturn); frees the tape unless `keep`
    Discard(i)      free a tape kept by Reverse(i, keep=True)
    Cut(i)          drop the gradient flowing into state i (a truncated-BPTT boundary)

`simulate` replays a plan without running a single step: it rejects invalid plans with the
action at fault, and counts forwards, slots, tapes and bytes. Every strategy is tested by it.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Sequence


class PlanError(ValueError):
    """A plan that cannot run: it reads a state or tape it does not hold, or misses a step."""


@dataclass(frozen=True)
class Advance:
    """Run steps `start`..`stop`-1 forward without recording."""
    start: int
    stop: int


@dataclass(frozen=True)
class Snapshot:
    """Keep the current state (which must be state `index`) in a slot."""
    index: int


@dataclass(frozen=True)
class Restore:
    """Make the kept state `index` the current state."""
    index: int


@dataclass(frozen=True)
class Drop:
    """Free the slot holding state `index`."""
    index: int


@dataclass(frozen=True)
class Record:
    """Run step `index` forward, recording its tape (the cache its backward needs)."""
    index: int


@dataclass(frozen=True)
class Reverse:
    """Backpropagate through step `index`'s tape into the gradient of state `index`.

    `with_loss`: add the gradient of the step's own loss (False when a truncated window passes
    through a step whose loss an earlier window already counted). `keep`: keep the tape for
    another pass (overlapping truncated windows) instead of freeing it.
    """
    index: int
    with_loss: bool = True
    keep: bool = False


@dataclass(frozen=True)
class Discard:
    """Free the tape of step `index`, kept by an earlier `Reverse(index, keep=True)`."""
    index: int


@dataclass(frozen=True)
class Cut:
    """Drop the gradient flowing into state `index`: the truncation boundary of truncated BPTT."""
    index: int


Action = Advance | Snapshot | Restore | Drop | Record | Reverse | Discard | Cut


class Repeat(Sequence[int]):
    """`value` repeated `length` times, in O(1) memory (the sizes of a uniform chain)."""

    def __init__(self, value: int, length: int):
        self.value, self.length = value, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self.value] * len(range(*i.indices(self.length)))
        if not -self.length <= i < self.length:
            raise IndexError(f"index {i} out of range for length {self.length}")
        return self.value


def whole_number(name: str, value, least: int, unit: str = "") -> int:
    """`value` as a plain int if it is a whole number >= `least`, else a ValueError naming it.

    Any integer type is accepted (Python's, NumPy's `np.int64`, anything with `__index__`);
    booleans and floats are refused, even 3.0: a count given as a float is usually a bug.
    `unit` ("bytes", "steps") goes into the message.
    """
    expected = f"{name} must be a whole number{' of ' + unit if unit else ''} >= {least}"
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        raise ValueError(f"{expected}, got {value!r}")
    try:
        number = operator.index(value)
    except TypeError:
        raise ValueError(f"{expected}, got {value!r}") from None
    if number < least:
        raise ValueError(f"{expected}, got {value!r}")
    return number


@dataclass(frozen=True)
class ChainProfile:
    """What a planner may know about a chain before running it.

    `state_bytes[i]`: bytes of state i (i = 0..T-1); `tape_bytes[i]`: bytes that `Record(i)`
    keeps alive, its input state i included and its output state i+1 excluded (that one is the
    current state, or the next tape's input, and is counted there); `forward_cost[i]`: relative
    cost of running step i forward (1 if unknown). With these, `simulate` counts a chain of
    recorded steps exactly, and a recorded step whose input is also kept in a slot once too often.
    """
    length: int
    state_bytes: Sequence[int]
    tape_bytes: Sequence[int]
    forward_cost: Sequence[float] | None = None

    def __post_init__(self):
        try:
            object.__setattr__(self, "length", whole_number("length", self.length, 1))
        except ValueError:
            raise ValueError(f"a chain needs at least one step (a whole number), got length "
                             f"{self.length!r}") from None
        for name in ("state_bytes", "tape_bytes", "forward_cost"):
            values = getattr(self, name)
            if values is not None and len(values) != self.length:
                raise ValueError(f"{name} has {len(values)} entries for a chain of "
                                 f"{self.length} steps")

    @classmethod
    def uniform(cls, length: int, state_bytes: int = 1, tape_bytes: int = 1) -> "ChainProfile":
        """A chain whose steps all have the same sizes (an RNN over time)."""
        return cls(length, Repeat(state_bytes, length), Repeat(tape_bytes, length))

    def cost(self, i: int) -> float:
        """Relative forward cost of step i."""
        return 1.0 if self.forward_cost is None else self.forward_cost[i]


@dataclass(frozen=True)
class Plan:
    """A strategy's schedule for one chain: a re-iterable stream of actions.

    `actions` is either a sequence (kept as a tuple: a plan does not change once made) or a
    zero-argument callable returning a fresh iterator of the same actions each time, so a plan
    for 100,000 steps need not exist in memory all at once.

    `counts`: the plan's `simulate` counts under unit sizes, when its strategy knows them in
    closed form (Revolve); `check()` then returns them without a replay, which would cost
    about as much as generating the actions once more (seconds at T = 10^6). A strategy that
    passes them is tested against `simulate` over a grid of lengths and slots.
    """
    length: int
    strategy: str
    actions: Sequence[Action] | Callable[[], Iterator[Action]]
    exact: bool = True
    counts: "PlanStats | None" = field(default=None, repr=False, compare=False)
    _stats: "PlanStats | None" = field(default=None, init=False, repr=False, compare=False)
    _memo: dict = field(default_factory=dict, init=False, repr=False, compare=False)  # executor's

    def __post_init__(self):
        if not callable(self.actions):
            object.__setattr__(self, "actions", tuple(self.actions))
        if self.counts is not None:
            object.__setattr__(self, "_stats", self.counts)

    def __iter__(self) -> Iterator[Action]:
        return iter(self.actions()) if callable(self.actions) else iter(self.actions)

    def check(self) -> "PlanStats":
        """`simulate(self)` with unit sizes, replayed once and remembered (or the closed-form
        `counts`): a training loop runs the same plan at every step, and a replay costs as much
        as a few steps of a long chain."""
        if self._stats is None:
            object.__setattr__(self, "_stats", simulate(self))
        return self._stats

    def describe(self) -> str:
        """The plan one action per line, for reading and for docs."""
        return "\n".join(str(a) for a in self)


@dataclass(frozen=True)
class PlanStats:
    """What a plan costs, counted without running it.

    forward_steps: every step forward, recording or not (T for `full`);
    recorded_steps: forwards that record a tape; advanced_steps: forwards that do not;
    reversed_steps: backward passes through a tape; peak_states: most states kept in slots at
    once; peak_tapes: most tapes held at once; peak_bytes: most bytes of slots, tapes and the
    current state at once, from the profile's sizes.
    """
    length: int
    forward_steps: int
    recorded_steps: int
    advanced_steps: int
    reversed_steps: int
    peak_states: int
    peak_tapes: int
    peak_bytes: int


def simulate(plan: Plan | Iterable[Action], length: int | None = None,
             profile: ChainProfile | None = None, exact: bool | None = None) -> PlanStats:
    """Replay `plan` on bookkeeping alone; raise `PlanError` at the first action that cannot run.

    Checks that every action reads only what is held, that every step's loss gradient is added
    exactly once, that nothing is left held at the end, and, for an exact plan, that the steps are
    reversed exactly once each, in order T-1..0, with no cut.
    """
    if isinstance(plan, Plan):
        length = plan.length if length is None else length
        exact = plan.exact if exact is None else exact
    if length is None:
        raise ValueError("simulate needs the chain length for a bare action stream")
    exact = True if exact is None else exact
    profile = profile or ChainProfile.uniform(length)
    if profile.length != length:
        raise ValueError(f"profile is for {profile.length} steps, plan for {length}")
    return Replay(length, profile, exact).run(plan)


class Replay:
    """The bookkeeping of one replay: `apply` each action in turn, then `finish`.

    `simulate` runs it over a whole plan; the executor's online mode runs it action by action,
    checking each before it is carried out. Each action's handler books its own bytes (the
    current state counts unless it is also in a slot), so that a replay costs about a
    microsecond per action: planning T = 10^6 steps must not cost more than running them.
    """

    def __init__(self, length: int, profile: ChainProfile, exact: bool):
        self.T, self.profile, self.exact = length, profile, exact
        self.current: int = 0
        self.slots: set[int] = set()
        self.tapes: set[int] = set()
        self.grad_at: int | None = None  # None: a zero gradient, as for the final state
        self.loss_seeded = bytearray(length)
        self.next_exact_reverse = length - 1
        sizes = profile.state_bytes
        # A uniform chain's sizes are one number: no indexing per action.
        self._state_size = sizes.value if isinstance(sizes, Repeat) else None
        tapes = profile.tape_bytes
        self._tape_size = tapes.value if isinstance(tapes, Repeat) else None
        self.bytes = self._state_bytes(0)
        self.recorded = self.advanced = self.reversed = 0
        self.peak_states = self.peak_tapes = 0
        self.peak_bytes = self.bytes
        self._handlers = {Advance: self._advance, Snapshot: self._snapshot,
                          Restore: self._restore, Drop: self._drop, Record: self._record,
                          Reverse: self._reverse, Discard: self._discard, Cut: self._cut}

    def _state_bytes(self, i: int) -> int:
        # State T (after the last step) is as large as the state before it.
        if self._state_size is not None:
            return self._state_size
        return self.profile.state_bytes[min(i, self.T - 1)]

    def _tape_bytes(self, i: int) -> int:
        return self._tape_size if self._tape_size is not None else self.profile.tape_bytes[i]

    def _current_bytes(self, i: int) -> int:
        """Bytes the current state adds when it is state i (none if i is also kept)."""
        return 0 if i in self.slots else self._state_bytes(i)

    def _fail(self, k: int, action: Action, why: str):
        raise PlanError(f"action {k} {action}: {why}")

    def _index(self, k, action, i, top):
        if not 0 <= i < top:
            self._fail(k, action, f"index {i} outside 0..{top - 1}")

    def grow(self, length: int) -> None:
        """Lengthen the chain to `length` steps: a stream whose end is not known yet grows one
        step at a time (`execute_online`). The new steps have the sizes of step 0."""
        if length < self.T:
            raise ValueError(f"a replay can only grow: it has {self.T} steps, got {length}")
        profile = self.profile
        self.profile = ChainProfile.uniform(length, profile.state_bytes[0],
                                            profile.tape_bytes[0])
        self.loss_seeded.extend(bytes(length - self.T))
        self.next_exact_reverse += length - self.T
        self.T = length

    def run(self, plan) -> PlanStats:
        handlers = self._handlers
        k = -1
        for k, action in enumerate(plan):
            handler = handlers.get(type(action))
            if handler is None:
                raise PlanError(f"action {k}: {action!r} is not a plan action")
            handler(k, action)
            if self.bytes > self.peak_bytes:
                self.peak_bytes = self.bytes
        return self.finish()

    def apply(self, k: int, action: Action) -> None:
        """Check and book action number `k`; PlanError if it cannot run."""
        handler = self._handlers.get(type(action))
        if handler is None:
            raise PlanError(f"action {k}: {action!r} is not a plan action")
        handler(k, action)
        if self.bytes > self.peak_bytes:
            self.peak_bytes = self.bytes

    def finish(self) -> PlanStats:
        """Check that the plan left nothing undone; its counts."""
        self._finish()
        return PlanStats(self.T, self.recorded + self.advanced, self.recorded, self.advanced,
                         self.reversed, self.peak_states, self.peak_tapes, self.peak_bytes)

    def _need_current(self, k, action, i):
        if self.current != i:
            self._fail(k, action, f"the current state is {self.current}, not {i}")

    def _advance(self, k, a: Advance):
        start, stop = a.start, a.stop
        if not 0 <= start < self.T:
            self._index(k, a, start, self.T)
        if not start < stop <= self.T:
            self._fail(k, a, f"stop must be in {start + 1}..{self.T}")
        if self.current != start:
            self._need_current(k, a, start)
        self.bytes += self._current_bytes(stop) - self._current_bytes(start)
        self.current = stop
        self.advanced += stop - start

    def _snapshot(self, k, a: Snapshot):
        i = a.index
        if self.current != i:
            self._need_current(k, a, i)
        if i in self.slots:
            self._fail(k, a, f"state {i} is already kept")
        self.slots.add(i)  # the current state's bytes now count as the slot's
        if len(self.slots) > self.peak_states:
            self.peak_states = len(self.slots)

    def _restore(self, k, a: Restore):
        if a.index not in self.slots:
            self._fail(k, a, f"state {a.index} is not kept")
        self.bytes -= self._current_bytes(self.current)
        self.current = a.index

    def _drop(self, k, a: Drop):
        i = a.index
        if i not in self.slots:
            self._fail(k, a, f"state {i} is not kept")
        self.slots.remove(i)
        if self.current != i:  # a current state i keeps its bytes, now as the current one
            self.bytes -= self._state_bytes(i)

    def _record(self, k, a: Record):
        i = a.index
        if not 0 <= i < self.T:
            self._index(k, a, i, self.T)
        if self.current != i:
            self._need_current(k, a, i)
        tapes = self.tapes
        if i in tapes:
            self._fail(k, a, f"step {i} already has a tape")
        tapes.add(i)
        if len(tapes) > self.peak_tapes:
            self.peak_tapes = len(tapes)
        self.bytes += (self._tape_bytes(i) + self._current_bytes(i + 1)
                       - self._current_bytes(i))
        self.current = i + 1
        self.recorded += 1

    def _reverse(self, k, a: Reverse):
        i = a.index
        if not 0 <= i < self.T:
            self._index(k, a, i, self.T)
        if i not in self.tapes:
            self._fail(k, a, f"step {i} has no tape")
        if self.grad_at is not None and self.grad_at != i + 1:
            self._fail(k, a, f"the gradient held is that of state {self.grad_at}, "
                             f"not of state {i + 1}")
        if a.with_loss:
            if self.loss_seeded[i]:
                self._fail(k, a, f"step {i}'s loss gradient was already added")
            self.loss_seeded[i] = 1
        if self.exact:
            if i != self.next_exact_reverse or not a.with_loss:
                self._fail(k, a, f"an exact plan reverses each step once, in order; "
                                 f"expected Reverse({self.next_exact_reverse})")
            self.next_exact_reverse -= 1
        if not a.keep:
            self.tapes.remove(i)
            self.bytes -= self._tape_bytes(i)
        self.grad_at = i
        self.reversed += 1

    def _discard(self, k, a: Discard):
        if a.index not in self.tapes:
            self._fail(k, a, f"step {a.index} has no tape")
        self.tapes.remove(a.index)
        self.bytes -= self._tape_bytes(a.index)

    def _cut(self, k, a: Cut):
        if self.exact:
            self._fail(k, a, "an exact plan never cuts the gradient")
        if self.grad_at != a.index:
            self._fail(k, a, f"the gradient held is that of state {self.grad_at}, "
                             f"not of state {a.index}")
        self.grad_at = None

    def _finish(self):
        if self.loss_seeded.count(0):
            missing = [i for i, seeded in enumerate(self.loss_seeded) if not seeded]
            raise PlanError(f"the plan never adds the loss gradient of step(s) "
                            f"{_brief(missing)}")
        if self.tapes:
            raise PlanError(f"the plan ends holding tapes of step(s) {_brief(sorted(self.tapes))}")
        if self.slots:
            raise PlanError(f"the plan ends holding state(s) {_brief(sorted(self.slots))}")
        if self.exact and self.grad_at != 0:
            raise PlanError(f"an exact plan ends with the gradient of state 0, "
                            f"not of state {self.grad_at}")


def _brief(indices: list[int]) -> str:
    shown = ", ".join(map(str, indices[:8]))
    return shown + (f", ... ({len(indices)} in all)" if len(indices) > 8 else "")
