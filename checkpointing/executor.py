"""One executor for every plan and every chain.

`execute(plan, chain)` checks the plan with `simulate` first (an invalid plan is rejected before
any step runs), then carries out its actions on the chain, holding exactly the states and tapes
the plan says, and counting the bytes they keep alive: the exact peak cache of the training step.
`execute_online(policy, chain)` does the same for a policy that decides as the steps arrive.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np

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
    """Bytes held, each buffer counted once however many held things share it."""

    def __init__(self, external: Iterable[np.ndarray]):
        self.external = {id(_buffer(a)) for a in external}
        self.count: dict[int, int] = {}
        self.size: dict[int, int] = {}
        self.holders: dict[tuple, list[int]] = {}
        self.bytes = self.peak = 0

    def hold(self, key: tuple, arrays: Iterable[np.ndarray]) -> None:
        ids = []
        count, external = self.count, self.external
        for a in arrays:
            b = a if a.base is None else _buffer(a)
            i = id(b)
            if i in external or i in ids:
                continue
            ids.append(i)
            n = count.get(i, 0)
            if n == 0:
                self.size[i] = b.nbytes
                self.bytes += b.nbytes
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


def _buffer(array: np.ndarray) -> np.ndarray:
    while isinstance(array.base, np.ndarray):
        array = array.base
    return array


def execute_online(policy, chain, profile: ChainProfile | None = None) -> Execution:
    """Run an online policy on `chain`, telling it of each step as it arrives and of the length
    only at the end: `policy.forward(i)` for i = 0, 1, ..., then `policy.reverse(T)`.

    For sequences whose length is not known in advance (`checkpointing.OnlineCheckpointing`):
    memory stays bounded by the policy's slots however long the chain, and the gradient is
    exact. Each action is checked just before it runs (the plan does not exist beforehand).
    """
    T = chain.length
    replay = Replay(T, profile or ChainProfile.uniform(T), exact=True)
    run = _Run(chain)

    def actions():
        for i in range(T):
            yield from policy.forward(i)
        yield from policy.reverse(T)

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
        return _Run(chain).run(plan, stats)
    finally:
        _finish(chain)


def _finish(chain) -> None:
    finish = getattr(chain, "finish", None)  # chains not derived from `Chain` need not have it
    if finish is not None:
        finish()


class _Run:
    """The executor's registers: current state, slots, tapes and the gradient being carried."""

    def __init__(self, chain):
        self.chain = chain
        self.ledger = _Ledger(chain.external_arrays())
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
            self.ledger.hold(("tape", action.index), tape.arrays())
            self._set_current(tape.state)
        elif kind is Reverse:
            self._reverse(action)
        elif kind is Advance:
            state = self.current
            for i in range(action.start, action.stop):
                state = chain.advance(i, state)
            self._set_current(state)
        elif kind is Snapshot:
            self.slots[action.index] = self.current
            self.ledger.hold(("slot", action.index), self.current)
        elif kind is Restore:
            self._set_current(self.slots[action.index])
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
        self.grad = self.chain.reverse(i, tape, self.grad, action.with_loss, action.keep)
        if not action.keep:
            del self.tapes[i]
            self.ledger.release(("tape", i))
        if i == 0:  # every window that reaches state 0 adds to its gradient (truncated BPTT)
            self.initial_grad = self.grad if self.initial_grad is None else tuple(
                a + b for a, b in zip(self.initial_grad, self.grad))
