"""Gradient equivalence, for this project's tests and for users' own cells and chains.

Exact strategies must give the *same* gradients as `full`, bit for bit: recomputation runs the
same operations on the same values in the same order, and the reverse sweep accumulates parameter
gradients in the same order (T-1 down to 0) whatever was kept. Use `assert_same_gradients` in your
own pytest suite to check that a chain of yours (any `bptt.engine.chain.Chain`) keeps that promise.
"""
from __future__ import annotations

from typing import Callable, Iterable, Sequence

import numpy as np

from checkpointing.executor import execute
from checkpointing.full import Full


def gradients(strategy, chain, parameters: Sequence) -> tuple[dict[str, np.ndarray], object]:
    """Zero the parameters' gradients, run `strategy` on `chain` once, and return
    ({name or position: gradient copy}, the `Execution`)."""
    for p in parameters:
        p.zero_grad()
    run = execute(strategy.plan(chain.profile()), chain)
    grads = {}
    for k, p in enumerate(parameters):
        key = getattr(p, "name", None) or str(k)
        grads[key if key not in grads else f"{key}.{k}"] = (
            np.zeros_like(p.data) if p.grad is None else p.grad.copy())
    return grads, run


def assert_same_gradients(make_chain: Callable[[], object], parameters: Sequence,
                          strategies: Iterable) -> None:
    """Assert that every strategy gives gradients bitwise equal to `full`'s on the chain.

    `make_chain()` builds a fresh chain each time (a chain may collect input gradients). Compares
    parameter gradients, the gradient of the initial state and the loss with `numpy.array_equal`;
    the AssertionError names the strategy, the parameter and the largest difference.
    """
    reference, ref_run = gradients(Full(), make_chain(), parameters)
    for strategy in strategies:
        grads, run = gradients(strategy, make_chain(), parameters)
        for name, expected in reference.items():
            if not np.array_equal(grads[name], expected):
                diff = np.max(np.abs(grads[name] - expected))
                raise AssertionError(f"{strategy}: gradient of {name!r} differs from full's "
                                     f"(max abs difference {diff:.3g})")
        for k, (a, b) in enumerate(zip(run.initial_grad, ref_run.initial_grad)):
            if not np.array_equal(a, b):
                diff = np.max(np.abs(a - b))
                raise AssertionError(f"{strategy}: gradient of initial state part {k} differs "
                                     f"from full's (max abs difference {diff:.3g})")
        if run.loss != ref_run.loss:
            raise AssertionError(f"{strategy}: loss {run.loss!r} differs from full's "
                                 f"{ref_run.loss!r}")
