"""Pieces every chain needs the same way, whatever its framework (NumPy's engine, torch).

The executor talks to a chain only through the chain protocol (`bptt.engine.chain` lists it):
advance, record, reverse, profile, finish, external_arrays and buffers. These functions are the
parts of that protocol two kinds of chain would otherwise each write: a step's sizes as
`ChainProfile` counts them, and the roots and seeds of one step's reverse pass.
"""
from __future__ import annotations

from typing import Hashable, Iterable


def step_sizes(chain, state, tape) -> tuple[int, int]:
    """(bytes of `state`, bytes `tape` keeps alive), as `ChainProfile` counts them, through
    the chain's own `buffers`: each buffer once, the chain's external arrays never, the tape's
    input state in, its output state out (that is the current state, or the next tape's input).
    Chains measure their profile with it by recording one step."""
    external = {b for b, _ in chain.buffers(chain.external_arrays())}
    outputs = {b for b, _ in chain.buffers(tape.state)}
    return (_unique_bytes(chain.buffers(state), external),
            _unique_bytes(chain.buffers(tape.arrays()), external | outputs))


def _unique_bytes(buffers: Iterable[tuple[Hashable, int]], excluded: set) -> int:
    seen, total = set(excluded), 0
    for b, nbytes in buffers:
        if b not in seen:
            seen.add(b)
            total += nbytes
    return total


def reverse_roots(outputs, grad, loss, with_loss: bool) -> tuple[list, list]:
    """The (roots, seeds) a step's reverse pass starts from: each output of state i+1 that
    requires grad, seeded with its part of `grad` (None: the zero gradient of the final state,
    no root), and the step's loss if `with_loss`, seeded with None (one, for a scalar)."""
    roots, seeds = [], []
    if grad is not None:
        for out, g in zip(outputs, grad):
            if out.requires_grad:
                roots.append(out)
                seeds.append(g)
    if with_loss and loss is not None and loss.requires_grad:
        roots.append(loss)
        seeds.append(None)
    return roots, seeds
