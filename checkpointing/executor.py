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

from dataclasses import dataclass
from typing import Callable, Hashable, Iterable

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
        self.holders: dict[tuple, list[Hashable]] = {}
        self.bytes = self.peak = 0

    def hold(self, key: tuple, arrays: Iterable) -> None:
        ids = []
        count, external = self.count, self.external
        for i, nbytes in self.buffers(arrays):
            if i in external or i in ids:
                continue
            ids.append(i)
            n = count.get(i, 0)
            if n == 0:
                self.size[i] = nbytes
                self.bytes += nbytes
            count[i] = n + 1
        self.holders[key] = ids
        if self.bytes > self.peak:
            self.peak = self.bytes

    def release(self, key: tuple) -> None:
        count = self.count
        for i in self.holders.pop(key):
            n = count[i] - 1
            if n:
                count[i] = n
            else:
                self.bytes -= self.size.pop(i)
                del count[i]


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
    try:
        return _Run(chain, getattr(plan, "compression", None)).run(plan, stats)
    finally:
        _finish(chain)


def _finish(chain) -> None:
    finish = getattr(chain, "finish", None)  # chains not derived from `Chain` need not have it
    if finish is not None:
        finish()


class _Run:
    """The executor's registers: current state, slots, tapes and the gradient being carried."""

    def __init__(self, chain, compression=None):
        self.chain = chain
        self.codecs = CodecHooks(compression)
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
        for action in plan:
            self.do(action)
        return self.result(stats)

    def do(self, action) -> None:
        """Carry out one (already checked) action."""
        chain, kind = self.chain, type(action)
        if kind is Record:
            tape = chain.record(action.index, self.current)
            self.tapes[action.index] = tape
            state = tape.state
            self.codecs.pack_tape(tape)
            self.ledger.hold(("tape", action.index), tape.arrays())
            self._set_current(state)
        elif kind is Reverse:
            self._reverse(action)
        elif kind is Advance:
            state = self.current
            for i in range(action.start, action.stop):
                state = chain.advance(i, state)
            self._set_current(state)
        elif kind is Snapshot:
            kept = self.codecs.encode_state(action.index, self.current)
            self.slots[action.index] = kept
            self.ledger.hold(("slot", action.index), self.codecs.buffers(kept))
        elif kind is Restore:
            self._set_current(self.codecs.decode_state(self.slots[action.index]))
        elif kind is Drop:
            del self.slots[action.index]
            self.ledger.release(("slot", action.index))
        elif kind is Discard:
            del self.tapes[action.index]
            self.ledger.release(("tape", action.index))
        elif kind is Cut:
            self.grad = None

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
        self.codecs.unpack_tape(tape)
        self.grad = self.chain.reverse(i, tape, self.grad, action.with_loss, action.keep)
        if action.keep and self.codecs.pack_tape(tape):  # kept for another pass: re-encoded
            self.ledger.release(("tape", i))
            self.ledger.hold(("tape", i), tape.arrays())
        if not action.keep:
            del self.tapes[i]
            self.ledger.release(("tape", i))
        if i == 0:  # every window that reaches state 0 adds to its gradient (truncated BPTT)
            self.initial_grad = self.grad if self.initial_grad is None else tuple(
                a + b for a, b in zip(self.initial_grad, self.grad))
