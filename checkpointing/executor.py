"""One executor for every plan and every chain.

`execute(plan, chain)` checks the plan with `simulate` first (an invalid plan is rejected before
any step runs), then carries out its actions on the chain, holding exactly the states and tapes
the plan says, and counting the bytes they keep alive: the exact peak cache of the training step.
`execute_online(policy, chain)` does the same for a policy that decides as the steps arrive.
A lossy plan (`checkpointing.lossy.LossyPlan`) carries codecs too: a slot is encoded on
Snapshot and decoded on Restore, a tape encoded on Record and decoded before its Reverse, and
the ledger counts the encoded buffers (`checkpointing.lossy.CodecHooks`).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, Hashable, Iterable, Iterator

import numpy as np

from checkpointing.lossy import CodecHooks
from checkpointing.plan import (Advance, ChainProfile, Cut, Discard, Drop, Plan, PlanStats,
                                Record, Replay, Restore, Reverse, Snapshot, simulate)


@dataclass(frozen=True)
class Execution:
    """The outcome of one executed plan.

    loss: the sum of the step losses whose gradient was taken; initial_grad: gradient of the
    objective with respect to state 0 (a tuple like the state); stats: the plan's counts;
    peak_cache_bytes: the most bytes held at once by kept states, tapes and the current state,
    each buffer counted once (parameters and inputs excluded).
    """
    loss: float
    initial_grad: tuple
    stats: PlanStats
    peak_cache_bytes: int


class _Ledger:
    """Bytes held, each buffer counted once however many held things share it.

    `buffers` is the chain's: it names the memory buffer behind each array (NumPy: the array
    that owns the data; torch: the tensor's storage) as an (identity, nbytes) pair, so views
    of one buffer are one entry and the count stays exact whatever the framework.
    """

    def __init__(self, buffers: Callable[[Iterable], Iterable[tuple[Hashable, int]]],
                 external: Iterable):
        self.buffers = buffers
        self.external = {i for i, _ in buffers(external)}
        self.count: dict[Hashable, int] = {}
        self.size: dict[Hashable, int] = {}
        self.holders: dict[tuple, set[Hashable]] = {}
        self.bytes = self.peak = 0

    def hold(self, key: tuple, arrays: Iterable) -> None:
        ids = set()  # a window's thousands of arrays: membership must not scan a list
        count, size, external = self.count, self.size, self.external
        added = 0
        for i, nbytes in self.buffers(arrays):
            if i in external or i in ids:
                continue
            ids.add(i)
            n = count.get(i)
            if n is None:
                size[i] = nbytes
                added += nbytes
                count[i] = 1
            else:
                count[i] = n + 1
        self.holders[key] = ids
        if added:
            self.bytes += added
            if self.bytes > self.peak:
                self.peak = self.bytes

    def release(self, key: tuple) -> None:
        count, size = self.count, self.size
        freed = 0
        for i in self.holders.pop(key):
            n = count[i] - 1
            if n:
                count[i] = n
            else:
                freed += size.pop(i)
                del count[i]
        self.bytes -= freed


def execute_online(policy, chain, profile: ChainProfile | None = None) -> Execution:
    """Run an online policy on `chain`, telling it of each step as it arrives and of the length
    only at the end: `policy.forward(i)` for i = 0, 1, ..., then `policy.reverse(T)`.

    For sequences whose length is not known in advance (`checkpointing.OnlineCheckpointing`):
    memory stays bounded by the policy's slots however long the chain, and the gradient is
    exact. Each action is checked just before it runs (the plan does not exist beforehand).

    A chain whose `length` is None is a stream (a `while not done` loop): before each step i
    the executor asks `chain.ended(i, state)` with state i, and the first True ends it after i
    steps (`Execution.stats.length`). A stream's sizes are not known beforehand, so its
    `stats` count states and tapes as one unit each.
    """
    T = chain.length
    if T is None and profile is not None:
        raise ValueError("a stream (chain.length None) has no profile beforehand; pass none")
    replay = Replay(T or 1, profile or ChainProfile.uniform(T or 1), exact=True)
    run = _Run(chain)

    def actions():
        i = 0
        while i < T if T is not None else not chain.ended(i, run.current):
            if i >= replay.T:
                replay.grow(i + 1)
            yield from policy.forward(i)
            i += 1
        if i == 0:
            raise ValueError("the stream ended before its first step: chain.ended(0, state 0) "
                             "is true, and there is nothing to differentiate")
        yield from policy.reverse(i)

    with _session(chain):
        try:
            for k, action in enumerate(actions()):
                replay.apply(k, action)
                run.do(action)
            return run.result(replay.finish())
        finally:
            _finish(chain)


def execute(plan: Plan, chain, profile: ChainProfile | None = None) -> Execution:
    """Run `plan` on `chain`: one forward and backward pass, parameter gradients accumulated.

    Raises `PlanError` (before running any step) if the plan is invalid for this chain. Without
    a `profile` the check is `plan.check()`, made once per plan (plans do not change).
    """
    if plan.length != chain.length:
        raise ValueError(f"the plan is for {plan.length} steps but the chain has {chain.length}")
    stats = plan.check() if profile is None else simulate(plan, profile=profile)
    with _session(chain):
        try:
            return _Run(chain, getattr(plan, "compression", None)).run(plan, stats)
        finally:
            _finish(chain)


def _session(chain):
    """The chain's context for one whole run (`Chain.session`), or none for chains without."""
    session = getattr(chain, "session", None)
    return contextlib.nullcontext() if session is None else session()


def _finish(chain) -> None:
    finish = getattr(chain, "finish", None)  # chains not derived from `Chain` need not have it
    if finish is not None:
        finish()


class _Run:
    """The executor's registers: current state, slots, tapes and the gradient being carried."""

    def __init__(self, chain, compression=None):
        self.chain = chain
        self.codecs = CodecHooks(compression)
        self.packing = self.codecs.tape_codec is not None  # tapes encoded and decoded
        self.ledger = _Ledger(chain.buffers, chain.external_arrays())
        self.current = chain.initial_state()
        self.slots: dict[int, tuple] = {}
        self.tapes: dict[int, object] = {}
        self.grad = None  # gradient of the state after the next step to reverse; None is zero
        self.initial_grad = None
        self.loss = 0.0
        self.ledger.hold(("current",), self.current)

    def _set_current(self, state) -> None:
        self.ledger.release(("current",))
        self.current = state
        self.ledger.hold(("current",), state)

    def run(self, plan: Plan, stats: PlanStats) -> Execution:
        handlers = _HANDLERS
        fuse = getattr(self.chain, "fuses_runs", False) and not self.packing
        for action in (_windowed(plan) if fuse else plan):
            handlers[type(action)](self, action)
        return self.result(stats)

    def do(self, action) -> None:
        """Carry out one (already checked) action."""
        _HANDLERS[type(action)](self, action)

    def _record(self, action: Record) -> None:
        tape = self.chain.record(action.index, self.current)
        self.tapes[action.index] = tape
        state = tape.state
        if self.packing:
            self.codecs.pack_tape(tape)
        self.ledger.hold(("tape", action.index), tape.arrays())
        self._set_current(state)

    def _advance(self, action: Advance) -> None:
        state, advance = self.current, self.chain.advance
        for i in range(action.start, action.stop):
            state = advance(i, state)
        self._set_current(state)

    def _snapshot(self, action: Snapshot) -> None:
        kept = self.codecs.encode_state(action.index, self.current)
        self.slots[action.index] = kept
        self.ledger.hold(("slot", action.index), self.codecs.buffers(kept))

    def _restore(self, action: Restore) -> None:
        self._set_current(self.codecs.decode_state(self.slots[action.index]))

    def _drop(self, action: Drop) -> None:
        del self.slots[action.index]
        self.ledger.release(("slot", action.index))

    def _discard(self, action: Discard) -> None:
        del self.tapes[action.index]
        self.ledger.release(("tape", action.index))

    def _cut(self, action: Cut) -> None:
        self.grad = None

    def _window(self, window: "_Window") -> None:
        """Record and reverse window.start..stop-1 in two chain calls: the same states,
        losses, gradients and bytes as its Record and Reverse actions one by one."""
        chain, key = self.chain, ("window", window.start)
        run = chain.record_run(window.start, window.stop, self.current)
        self.ledger.hold(key, run.arrays())
        self._set_current(run.state)
        for drop in window.drops:
            self._drop(drop)
        for value in reversed(run.loss_values):  # added in the order the reverses add them
            self.loss += value
        self.grad = chain.reverse_run(run, self.grad)
        self.ledger.release(key)
        if window.start == 0:
            self._reached_start()

    def result(self, stats: PlanStats) -> Execution:
        """The outcome, once every action has run."""
        self.ledger.release(("current",))
        initial = self.initial_grad
        if initial is None:
            initial = tuple(np.zeros_like(a) for a in self.chain.initial_state())
        return Execution(self.loss, initial, stats, self.ledger.peak)

    def _reverse(self, action: Reverse) -> None:
        i = action.index
        tape = self.tapes[i]
        if action.with_loss:
            self.loss += tape.loss_value
        if self.packing:
            self.codecs.unpack_tape(tape)
        self.grad = self.chain.reverse(i, tape, self.grad, action.with_loss, action.keep)
        if not action.keep:
            del self.tapes[i]
            self.ledger.release(("tape", i))
        elif self.packing and self.codecs.pack_tape(tape):  # kept for another pass: re-encoded
            self.ledger.release(("tape", i))
            self.ledger.hold(("tape", i), tape.arrays())
        if i == 0:
            self._reached_start()

    def _reached_start(self) -> None:
        """Every reverse that reaches state 0 adds to its gradient (truncated BPTT)."""
        self.initial_grad = self.grad if self.initial_grad is None else tuple(
            a + b for a, b in zip(self.initial_grad, self.grad))


# Each action type's handler: one table lookup per action, not a chain of tests (at small
# shapes the executor's own per-step cost is a visible share of the step).
_HANDLERS = {Record: _Run._record, Reverse: _Run._reverse, Advance: _Run._advance,
             Snapshot: _Run._snapshot, Restore: _Run._restore, Drop: _Run._drop,
             Discard: _Run._discard, Cut: _Run._cut}


@dataclass(frozen=True)
class _Window:
    """Record(start), ..., Record(stop - 1), the `drops` (slots no longer needed), then at
    once Reverse(stop - 1), ..., Reverse(start), each with its loss and not kept: what a chain
    that `fuses_runs` does in two calls (`record_run`, `reverse_run`)."""
    start: int
    stop: int
    drops: tuple = ()


_HANDLERS[_Window] = _Run._window


_WINDOWED_MEMO = 100_000  # the most items of a plan's windowed actions kept for its next run


def _windowed(plan: Plan) -> Iterable:
    """`_windows(plan)`, remembered on the plan after its first complete run unless longer
    than `_WINDOWED_MEMO` items: a training loop runs one plan at every step, and grouping
    its actions again costs about a microsecond per action (full's 2T actions become one
    window)."""
    memo = plan._memo
    kept = memo.get("windows")
    return kept if kept is not None else _remembering(plan, memo)


def _remembering(plan: Plan, memo: dict) -> Iterator:
    kept = None if memo.get("windows_too_long") else []
    for item in _windows(plan):
        if kept is not None:
            kept.append(item)
            if len(kept) > _WINDOWED_MEMO:
                kept, memo["windows_too_long"] = None, True
        yield item
    if kept is not None:
        memo["windows"] = tuple(kept)


def _windows(actions: Iterable) -> Iterator:
    """The actions, each window of two or more steps recorded and at once reversed whole
    (slots may be dropped in between) replaced by one `_Window`; everything else (single
    steps, kept or loss-free reverses, windows interrupted or partly reversed) passes through
    unchanged, in order."""
    it = iter(actions)
    action = next(it, None)
    while action is not None:
        if type(action) is not Record:
            yield action
            action = next(it, None)
            continue
        records = [action]
        action = next(it, None)
        while type(action) is Record and action.index == records[-1].index + 1:
            records.append(action)
            action = next(it, None)
        drops = []  # `checkpoint` drops a segment's slot once the segment is recorded
        while type(action) is Drop:
            drops.append(action)
            action = next(it, None)
        reverses = []
        expected = records[-1].index
        while (len(reverses) < len(records) and type(action) is Reverse
               and action.index == expected and action.with_loss and not action.keep):
            reverses.append(action)
            expected -= 1
            action = next(it, None)
        if len(records) > 1 and len(reverses) == len(records):
            yield _Window(records[0].index, records[-1].index + 1, tuple(drops))
        else:
            yield from records
            yield from drops
            yield from reverses
