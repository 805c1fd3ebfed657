"""Losses as fused Functions: softmax cross-entropy and mean squared error.

Each is one node that caches a single array (the softmax, the difference), stable for any input,
and names the NaN/Inf input when the loss comes out non-finite.
"""
from __future__ import annotations

import math

import numpy as np

from bptt.engine.tensor import Function, Tensor


# --- the nodes ---------------------------------------------------------------------------------
_max, _sum = np.maximum.reduce, np.add.reduce


def non_finite_error(op: str, **arrays: np.ndarray) -> FloatingPointError:
    """The error for a loss that came out NaN/Inf, naming the input that caused it (slow path)."""
    for what, array in arrays.items():
        nan, inf = int(np.isnan(array).sum()), int(np.isinf(array).sum())
        if nan or inf:
            counts = " and ".join(f"{name} at {k} position{'s' if k > 1 else ''}"
                                  for name, k in (("NaN", nan), ("Inf", inf)) if k)
            first = tuple(int(i) for i in np.argwhere(~np.isfinite(array))[0])
            return FloatingPointError(f"{op}: {what} contains {counts} (first at index {first})")
    return FloatingPointError(f"{op}: the loss is not finite although every input is finite "
                              f"(overflow; scale the inputs down)")


class SoftmaxCrossEntropy(Function):
    """Mean over N of -log softmax(logits)[n, labels[n]], fused: stable and one cached array."""

    def forward(self, logits, labels):
        if logits.ndim != 2:
            raise ValueError(f"softmax_cross_entropy: logits must have shape (N, C), "
                             f"got {logits.shape}")
        n, c = logits.shape
        labels = np.asarray(labels)
        if labels.dtype.kind not in "iu":  # signed or unsigned integers (not bool)
            raise TypeError(f"softmax_cross_entropy: labels must be integer class indices, "
                            f"got dtype {labels.dtype}")
        if labels.shape != (n,) or n == 0:
            raise ValueError(f"softmax_cross_entropy: labels must have shape (N,) = ({n},) "
                             f"with N >= 1, got {labels.shape}")
        if labels.min() < 0 or labels.max() >= c:  # two reductions, no temporaries
            bad = (labels < 0) | (labels >= c)
            k = int(np.argmax(bad))
            raise ValueError(f"softmax_cross_entropy: labels must be in [0, {c}), "
                             f"got {labels[k]} at position {k}")
        # The ufuncs' reductions called directly: what .max(), .sum() and .mean() compute
        # (mean is the sum divided by n), without their Python wrappers, which cost as much as
        # the arithmetic on a minibatch.
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            shifted = logits - _max(logits, axis=1, keepdims=True)  # log-sum-exp trick
            log_probs = shifted - np.log(_sum(np.exp(shifted), axis=1, keepdims=True))
            loss = -(_sum(log_probs[np.arange(n), labels]) / n)
        if not math.isfinite(loss):
            raise non_finite_error("softmax_cross_entropy", logits=logits)
        self.save(np.exp(log_probs), labels)
        return np.asarray(loss, dtype=logits.dtype)

    def backward(self, g):
        probs, labels = self.saved
        grad = probs.copy()  # the cache may be reversed again (retain_graph): never edit it
        grad[np.arange(len(labels)), labels] -= 1
        grad *= g / len(labels)
        return grad


class MSELoss(Function):
    """Mean over every element of (pred - target)^2."""

    def forward(self, pred, target):
        if pred.shape != target.shape:
            raise ValueError(f"mse_loss: prediction shape {pred.shape} and target shape "
                             f"{target.shape} differ")
        if pred.size == 0:
            raise ValueError("mse_loss: prediction is empty")
        with np.errstate(invalid="ignore", over="ignore"):
            diff = pred - target
            loss = np.mean(diff * diff)
        if not np.isfinite(loss):
            raise non_finite_error("mse_loss", prediction=pred, target=target)
        self.save(diff, pred.dtype, target.dtype)
        return np.asarray(loss, dtype=diff.dtype)

    def backward(self, g):
        diff, pred_dtype, target_dtype = self.saved
        grad = diff * (2 * g / diff.size)
        return grad.astype(pred_dtype, copy=False), (-grad).astype(target_dtype, copy=False)


# --- the public functions ----------------------------------------------------------------------
def softmax_cross_entropy(logits, labels) -> Tensor:
    """Mean cross-entropy of (N, C) logits against integer labels of shape (N,), in [0, C).

    Fused (log-sum-exp, never overflows) and caches one (N, C) array, the softmax; the gradient is
    (softmax - onehot) / N. Raises FloatingPointError naming where logits are NaN/Inf.
    """
    return SoftmaxCrossEntropy()(logits, labels=labels)


def mse_loss(pred, target) -> Tensor:
    """Mean over every element of (pred - target)^2; shapes must match exactly (no broadcasting,
    which would hide a (N,) vs (N, 1) mix-up). `target` is an ndarray or a Tensor. Raises
    FloatingPointError naming where the inputs are NaN/Inf."""
    return MSELoss()(pred, target)
