"""Chains: what the executor drives. Time becomes depth.

A chain is T steps; step i maps state i to state i+1 and may add a loss. An RNN unrolled over a
sequence is a chain (step = one time step); an MLP is a chain (step = one layer). A memory
strategy only decides which states and tapes are kept, so one executor runs every strategy on
every chain (`checkpointing.execute`).

The executor needs these of a chain, all in `Chain`:
    advance(i, state)                -> next state, computed without recording
    record(i, state)                 -> a tape: the next state plus the cache to reverse step i
    reverse(i, tape, grad, with_loss) -> the gradient of state i; parameter gradients accumulate
    profile()                        -> the sizes a planner needs (`ChainProfile`)
    finish()                         -> called once a plan has run: gradients are complete
    session()                        -> a context manager the executor holds open around a
                                        whole run (default: none), for per-run settings
    external_arrays()                -> arrays that exist whatever the plan: never counted
    buffers(arrays)                  -> (identity, nbytes) of the buffer behind each array,
                                        for the executor's byte count (NumPy here; a chain of
                                        another framework names its own, e.g. torch storages)
    ended(i, state)                  -> only for a stream (length None, `execute_online`):
                                        whether it ends before step i
Optional, for speed (`bptt.nn.fused_chain.FusedSequenceChain`): a chain whose `fuses_runs` is
true gets each window "Record a..b-1, then Reverse b-1..a" as
    record_run(a, b, state)          -> a window tape: `state` (state b), `loss_values` (one
                                        per step) and `arrays()`
    reverse_run(window, grad)        -> the gradient of state a, as the reverses one by one
A tape is a `Tape` (the engine's graph of one step) or any object with its `state`,
`loss_value` and `arrays()`.

`TapedChain` implements them with the engine: a subclass only writes `step`, in Tensor
operations, and recording is the engine's own graph of that one step.
"""
from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from bptt.engine.tensor import Tensor, backward, no_grad, topological_order
from checkpointing.protocol import reverse_roots, step_sizes
from checkpointing.plan import ChainProfile

State = tuple  # a tuple of ndarrays: (h,) for a tanh RNN or GRU, (h, c) for an LSTM


@dataclass
class Tape:
    """What `record(i)` keeps for `reverse(i)`: step i's recorded graph and its outputs."""
    inputs: tuple[Tensor, ...]     # state i, as leaves that collect its gradient
    outputs: tuple[Tensor, ...]    # state i+1
    loss: Tensor | None            # step i's loss, or None for a step without one
    extra_inputs: tuple[Tensor, ...] = ()  # per-step leaves whose gradient the chain collects

    @property
    def state(self) -> State:
        """State i+1 as ndarrays."""
        return tuple(t.data for t in self.outputs)

    @property
    def loss_value(self) -> float:
        """The step's loss as a float (0.0 for a step without loss)."""
        return 0.0 if self.loss is None else float(self.loss.data)

    def arrays(self) -> list[np.ndarray]:
        """Every array this tape keeps alive: the nodes' caches and the step's ends."""
        roots = [t for t in (*self.outputs, self.loss) if t is not None and t.creator is not None]
        found = [t.data for t in (*self.inputs, *self.outputs)]
        for node in topological_order(roots):
            found.extend(a for a in node.saved or () if isinstance(a, np.ndarray))
        return found


class Chain(ABC):
    """A chain of `length` steps driven by the executor. See the module docstring."""

    length: int

    @abstractmethod
    def initial_state(self) -> State:
        """State 0."""

    @abstractmethod
    def advance(self, i: int, state: State) -> State:
        """State i+1 from state i, recording nothing."""

    @abstractmethod
    def record(self, i: int, state: State) -> Tape:
        """Run step i recording what its reverse needs."""

    @abstractmethod
    def reverse(self, i: int, tape: Tape, grad: State | None, with_loss: bool = True,
                keep: bool = False) -> State:
        """Backpropagate step i: from the gradient of state i+1 (None: zero), plus the step's
        own loss if `with_loss`, to the gradient of state i. Parameter gradients accumulate."""

    @abstractmethod
    def profile(self) -> ChainProfile:
        """Sizes of states and tapes per step, for planners."""

    def finish(self) -> None:
        """Called by the executor once a plan has run (or stopped): a chain that defers part of
        its parameter gradients (to add them up over blocks of steps) adds the rest now."""

    def session(self):
        """A context manager the executor enters once around a whole run, before the first
        action and after `finish`: for settings a chain's steps rely on that are too costly
        to set per step (`bptt.nn.rnn.FusedSequenceChain` ignores NumPy's floating-point
        warnings there, its read-out reporting non-finite losses itself). Default: nothing."""
        return contextlib.nullcontext()

    def external_arrays(self) -> list[np.ndarray]:
        """Arrays that exist whatever the strategy (inputs, targets, parameters): not cache.

        By default, every array the chain object holds: its attributes that are ndarrays or
        Tensors, the parameters of any attribute with a `parameters()` method (a model), and
        the same inside lists, tuples and dicts among them. A chain written as the README shows
        (`self.model, self.inputs, self.targets = ...`) is therefore counted right without an
        override: a step's tape refers to its input slice and to the weights, and counting those
        as cache made a small chain's peak look about 20x too large. Override it when the
        chain holds per-run work arrays that should count, or reaches data another way.
        """
        return list(_held_arrays(getattr(self, "__dict__", {}).values()))

    def buffers(self, arrays: Iterable[np.ndarray]) -> list[tuple[int, int]]:
        """(identity, nbytes) of the buffer each array keeps alive: the array that owns its
        data, so that views of one buffer count once in the executor's byte ledger."""
        found = []
        for a in arrays:
            base = a.base
            while isinstance(base, np.ndarray):
                a, base = base, base.base
            found.append((id(a), a.nbytes))
        return found


class TapedChain(Chain):
    """A chain whose steps are written in engine operations; recording is the engine's graph.

    Subclasses implement `step(i, state, need_loss)` returning (next state, loss or None), with
    the state a tuple of Tensors, and `initial_state()`; they may override `recorded_extras(i)`
    to expose per-step input leaves whose gradients they collect in `collect_input_grads`.
    """

    @abstractmethod
    def step(self, i: int, state: tuple[Tensor, ...], need_loss: bool):
        """Step i in Tensor operations: returns (tuple of next-state Tensors, loss Tensor|None)."""

    def advance(self, i: int, state: State) -> State:
        with no_grad():
            outputs, _ = self.step(i, tuple(Tensor(a) for a in state), need_loss=False)
        return tuple(t.data for t in outputs)

    def record(self, i: int, state: State) -> Tape:
        inputs = tuple(Tensor(a, requires_grad=True) for a in state)
        outputs, loss = self.step(i, inputs, need_loss=True)
        return Tape(inputs, tuple(outputs), loss, self.recorded_extras(i))

    def recorded_extras(self, i: int) -> tuple[Tensor, ...]:
        """Leaves made by the last `step(i)` whose gradients the chain collects (default none)."""
        return ()

    def reverse(self, i: int, tape: Tape, grad: State | None, with_loss: bool = True,
                keep: bool = False) -> State:
        roots, seeds = reverse_roots(tape.outputs, grad, tape.loss, with_loss)
        for leaf in (*tape.inputs, *tape.extra_inputs):
            leaf.grad = None  # a kept tape reversed again must not add to its last gradient
        if roots:
            backward(roots, seeds, retain_graph=keep)
        self.collect_input_grads(i, tape.extra_inputs)
        return tuple(np.zeros_like(leaf.data) if leaf.grad is None else leaf.grad
                     for leaf in tape.inputs)

    def collect_input_grads(self, i: int, extras: Sequence[Tensor]) -> None:
        """Called after each reverse with the step's extra leaves (default: nothing to collect)."""

    def profile(self) -> ChainProfile:
        """Sizes measured by recording step 0 (override for chains whose steps differ)."""
        return ChainProfile.uniform(self.length, *self.measure_step(0, self.initial_state()))

    def measure_step(self, i: int, state: State) -> tuple[int, int]:
        """(state bytes, tape bytes) of step i from state `state`, by recording it once.

        The tape's bytes include its input state and exclude its output state, as
        `ChainProfile` counts them: the output is the current state, or the next tape's input.
        """
        return step_sizes(self, state, self.record(i, state))


def _held_arrays(values, depth: int = 3):
    """The ndarrays among `values`: arrays, Tensors' data, models' parameters, and those in
    lists, tuples and dicts, looked into `depth` levels deep (no other objects are entered)."""
    for value in values:
        if isinstance(value, np.ndarray):
            yield value
        elif isinstance(value, Tensor):
            yield value.data
        elif callable(getattr(value, "parameters", None)):
            yield from (p.data for p in value.parameters())
        elif depth > 0 and isinstance(value, (list, tuple, dict)):
            yield from _held_arrays(value.values() if isinstance(value, dict) else value,
                                    depth - 1)
