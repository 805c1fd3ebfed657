"""Backpropagation as the multipliers of a constrained problem (LeCun 1988).

Training an MLP minimises ℓ(z^(L)) subject to the layer equations z^(l) = x^(l-1) W^(l) + b^(l),
x^(l) = f(z^(l)). With one multiplier vector λ^(l) per constraint the Lagrangian is

    𝓛 = ℓ(z^(L)) + Σ_l λ^(l) · (x^(l-1) W^(l) + b^(l) - z^(l)),

and its stationarity in the pre-activations gives, per sample,

    ∂𝓛/∂z^(L) = 0:  λ^(L) = ∂ℓ/∂z^(L)
    ∂𝓛/∂z^(l) = 0:  λ^(l) = f'(z^(l)) ⊙ (W^(l+1) λ^(l+1))      (l < L, columns)

`lagrange_multipliers` solves these conditions as one linear system per sample (every λ
stacked, `numpy.linalg.solve`), not by a backward recursion: that the solution equals the
δ^(l) = ∂ℓ/∂z^(l) of the reverse sweep is then a theorem the tests check (to 1e-12 in float64),
and a backward variant's error signal can be measured against λ.
"""
from __future__ import annotations

import numpy as np

from bptt.nn.linear import MLP

DERIVATIVES = {  # f'(z) from z
    "tanh": lambda z: 1 - np.tanh(z) ** 2,
    "sigmoid": lambda z: (s := 1 / (1 + np.exp(-z))) * (1 - s),
    "relu": lambda z: (z > 0).astype(z.dtype),
}


def pre_activations(mlp: MLP, x: np.ndarray) -> list[np.ndarray]:
    """z^(l) (batch, width_l) for every layer, computed with NumPy from the weights."""
    zs, h = [], x
    for k, layer in enumerate(mlp.layers):
        z = h @ layer.weight.data + layer.bias.data
        zs.append(z)
        if k < len(mlp.layers) - 1:
            h = {"tanh": np.tanh, "relu": lambda v: np.maximum(v, 0),
                 "sigmoid": lambda v: 1 / (1 + np.exp(-v))}[mlp.activation](z)
    return zs


def lagrange_multipliers(mlp: MLP, x: np.ndarray, labels: np.ndarray,
                         chunk: int = 16) -> list[np.ndarray]:
    """λ^(l) (batch, width_l) for every layer, for the mean softmax cross-entropy on
    (x (batch, in), labels (batch,) class indices), by solving the stationarity conditions.

    Per sample the system has N = Σ width_l unknowns (A λ = r with A = I minus the
    f'(z^(l)) W^(l+1) blocks above the diagonal, r = (0, ..., ∂ℓ/∂z^(L))); `chunk` samples
    are solved at once (memory: chunk x N² numbers).
    """
    zs = pre_activations(mlp, x)
    batch = x.shape[0]
    widths = [z.shape[1] for z in zs]
    offsets = np.concatenate([[0], np.cumsum(widths)])
    N = int(offsets[-1])
    logits = zs[-1]
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(batch), labels] -= 1
    top = p / batch  # ∂ℓ/∂z^(L) of the mean cross-entropy
    derivative = DERIVATIVES[mlp.activation]
    solved = np.empty((batch, N), x.dtype)
    for start in range(0, batch, chunk):
        rows = slice(start, min(batch, start + chunk))
        n = rows.stop - rows.start
        A = np.broadcast_to(np.eye(N, dtype=x.dtype), (n, N, N)).copy()
        # l is the layer index of the docstring's equations (λ^(l), W^(l+1)), hence the name.
        for l in range(len(zs) - 1):  # noqa: E741
            block = derivative(zs[l][rows])[:, :, None] * mlp.layers[l + 1].weight.data
            A[:, offsets[l]:offsets[l + 1], offsets[l + 1]:offsets[l + 2]] = -block
        r = np.zeros((n, N, 1), x.dtype)
        r[:, offsets[-2]:, 0] = top[rows]
        solved[rows] = np.linalg.solve(A, r)[:, :, 0]
    return [solved[:, offsets[l]:offsets[l + 1]] for l in range(len(zs))]  # noqa: E741
