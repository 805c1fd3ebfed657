"""Checking analytic gradients against central finite differences.

    from bptt import gradcheck
    gradcheck(lambda x, w: (x @ w).tanh(), [rng.normal(size=(3, 4)), rng.normal(size=(4, 2))])

`fn` may return a tensor of any shape: it is reduced to the scalar sum(w * fn(...)) with a fixed
random w, so that every output element is weighted differently and a gradient sent to the wrong
element is caught (a sum with equal weights would miss it). Costs two evaluations of `fn` per input
element: use small inputs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from bptt.engine.tensor import Tensor, no_grad


@dataclass(frozen=True)
class GradcheckResult:
    """What a passing `gradcheck` compared: `elements` input elements, worst errors seen.

    Always true, so `assert gradcheck(...)` reads naturally.
    """

    elements: int
    max_abs_error: float
    max_rel_error: float

    def __bool__(self) -> bool:
        return True


def gradcheck(fn: Callable[..., Tensor], inputs: Sequence, eps: float = 1e-6,
              atol: float = 1e-6, rtol: float = 1e-4, seed_grad_rng: int = 0) -> GradcheckResult:
    """Compare the gradients `backward` gives for `fn` with central finite differences.

    Args:
        fn: takes one Tensor per input, returns a Tensor of any shape (deterministic: no fresh
            randomness between calls).
        inputs: float64 ndarrays or Tensors (their data is copied, never modified). float32 is
            refused: its rounding error swamps a finite difference.
        eps: the finite-difference step; numeric = (f(x + eps) - f(x - eps)) / (2 eps).
        atol, rtol: an element passes when |analytic - numeric| <= atol + rtol * |numeric|.
        seed_grad_rng: seed of the random weights that reduce a non-scalar output to a scalar.

    Returns a `GradcheckResult` (true). Raises AssertionError at the worst mismatching element,
    naming the input index, element index, both values and the largest absolute and relative
    errors; TypeError for inputs that are not float64 or an `fn` that does not return a Tensor.
    """
    arrays = [_float64_copy(k, x) for k, x in enumerate(inputs)]
    leaves = [Tensor(a.copy(), requires_grad=True) for a in arrays]
    out = fn(*leaves)
    if not isinstance(out, Tensor):
        raise TypeError(f"gradcheck: fn must return a Tensor, got {type(out).__name__}")
    weights = np.random.default_rng(seed_grad_rng).standard_normal(out.shape)
    if out.requires_grad:  # otherwise fn ignores its inputs: every gradient is zero
        out.backward(weights)
    analytic = [np.zeros_like(a) if t.grad is None else t.grad for a, t in zip(arrays, leaves)]

    def objective() -> float:
        with no_grad():
            return float(np.sum(weights * fn(*[Tensor(a) for a in arrays]).data))

    worst_abs = worst_rel = 0.0
    for k, array in enumerate(arrays):
        numeric = np.empty_like(array)
        flat = array.reshape(-1)  # a view: editing it perturbs the input fn sees
        for j in range(flat.size):
            original = flat[j]
            flat[j] = original + eps
            upper = objective()
            flat[j] = original - eps
            lower = objective()
            flat[j] = original
            numeric.reshape(-1)[j] = (upper - lower) / (2 * eps)
        with np.errstate(all="ignore"):  # NaN and Inf are reported as mismatches, not warned
            error = np.abs(analytic[k] - numeric)
            relative = error / np.maximum(np.abs(numeric), np.finfo(np.float64).tiny)
            bad = ~(error <= atol + rtol * np.abs(numeric))
        worst_abs, worst_rel = max(worst_abs, _max(error)), max(worst_rel, _max(relative))
        if bad.any():
            score = np.where(bad, np.nan_to_num(error, nan=np.inf), -1.0)
            at = np.unravel_index(int(np.argmax(score)), array.shape)
            raise AssertionError(
                f"gradcheck: input {k} element {tuple(int(i) for i in at)}: analytic "
                f"{float(analytic[k][at])!r}, numeric {float(numeric[at])!r}; "
                f"{int(bad.sum())} of {array.size} elements mismatch; max abs error "
                f"{worst_abs:.3e}, max rel error {worst_rel:.3e} (atol={atol}, rtol={rtol})")
    return GradcheckResult(sum(a.size for a in arrays), worst_abs, worst_rel)


def _max(errors: np.ndarray) -> float:
    """The largest error, NaN counted as infinite (0 for an empty input)."""
    return float(np.nan_to_num(errors, nan=np.inf).max(initial=0.0))


def _float64_copy(k: int, value) -> np.ndarray:
    array = value.data if isinstance(value, Tensor) else value
    if not isinstance(array, np.ndarray):
        raise TypeError(f"gradcheck: input {k} must be a float64 ndarray or Tensor, "
                        f"got {type(value).__name__}")
    if array.dtype != np.float64:
        raise TypeError(f"gradcheck: input {k} has dtype {array.dtype}; finite differences need "
                        f"float64 (float32 rounding swamps the difference)")
    return np.array(array, dtype=np.float64, copy=True)
