"""How far a backward variant is from the true gradient: angles measured on a probe batch.

For an MLP, per layer l: the angle between the variant's update ΔW^(l) = x^(l-1)ᵀ δ̃^(l) and the
true gradient x^(l-1)ᵀ δ^(l), between the feedback matrix B^(l) and (W^(l))ᵀ, and between the
error signals δ̃^(l) and δ^(l) (with their relative distance ‖δ̃ - δ‖ / ‖δ‖). The true δ is the
reverse sweep's; `bptt.nn.lagrangian` gives the same numbers as the multipliers λ^(l).
For an RNN, per weight: the angle between the variant's gradient and BPTT's on one batch.
Angles are in degrees: 0 is the same direction, 90 orthogonal.
"""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np

from bptt.engine import losses
from bptt.engine.tensor import Tensor
from bptt.nn.feedback import DirectError, layer_forward
from bptt.nn.linear import ACTIVATIONS, MLP
from bptt.nn.module import Module
from checkpointing.executor import execute
from checkpointing.full import Full


def angle(a: np.ndarray, b: np.ndarray) -> float:
    """The angle in degrees between a and b as flat vectors (NaN if either is zero)."""
    a, b = np.ravel(a).astype(np.float64), np.ravel(b).astype(np.float64)
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        return float("nan")
    a, b = a / na, b / nb  # 2 atan2(|a - b|, |a + b|): accurate near 0 and 180, unlike arccos
    return float(np.degrees(2 * np.arctan2(np.linalg.norm(a - b), np.linalg.norm(a + b))))


def relative_distance(a: np.ndarray, b: np.ndarray) -> float:
    """‖a - b‖ / ‖b‖ (NaN if b is zero)."""
    scale = np.linalg.norm(b)
    return float(np.linalg.norm(a - b) / scale) if scale else float("nan")


@contextmanager
def without_feedback(model: Module):
    """The model as plain backprop for the duration (its feedback detached, then restored)."""
    feedback = getattr(model, "feedback", None)
    if feedback is not None:
        del model.feedback
    try:
        yield model
    finally:
        if feedback is not None:
            model.feedback = feedback


def error_signals(mlp: MLP, x: np.ndarray, labels: np.ndarray):
    """(δ per layer, ΔW per layer) of the model's own backward variant on (x, labels): the
    pre-activation errors (batch, width_l) and the weight updates x^(l-1)ᵀ δ^(l) (in, out).

    The weights' `.grad` is left as it was.
    """
    saved = [layer.weight.grad for layer in mlp.layers]
    for layer in mlp.layers:
        layer.weight.grad = None
    h, zs, direct = Tensor(x), [], DirectError()
    for k in range(len(mlp.layers)):
        z = layer_forward(mlp, k, h, direct).retain_grad()
        zs.append(z)
        h = z if k == len(mlp.layers) - 1 else ACTIVATIONS[mlp.activation](z)
    losses.softmax_cross_entropy(h, labels).backward()
    updates = [layer.weight.grad.copy() for layer in mlp.layers]
    for layer, grad in zip(mlp.layers, saved):
        layer.weight.grad = grad
    return [z.grad for z in zs], updates


def mlp_alignment(mlp: MLP, x: np.ndarray, labels: np.ndarray) -> list[dict]:
    """Per layer: `update_angle` (variant's ΔW vs the true gradient), `feedback_angle` (B vs
    Wᵀ; None where B has another shape, dfa's hidden layers, or there is no feedback path),
    `signal_angle` and `signal_distance` (δ̃ vs δ). Degrees; JSON-ready."""
    deltas, updates = error_signals(mlp, x, labels)
    with without_feedback(mlp):
        true_deltas, true_updates = error_signals(mlp, x, labels)
    feedback = getattr(mlp, "feedback", None)
    rows = []
    for index, layer in enumerate(mlp.layers):
        matrix = None
        if feedback is not None and index >= 1:
            matrix = feedback.matrix(str(index))
        W_T = layer.weight.data.T
        rows.append({
            "layer": index,
            "update_angle": angle(updates[index], true_updates[index]),
            "feedback_angle": (angle(matrix, W_T) if matrix is not None
                               and matrix.shape == W_T.shape else (0.0 if feedback is None
                                                                   and index >= 1 else None)),
            "signal_angle": angle(deltas[index], true_deltas[index]),
            "signal_distance": relative_distance(deltas[index], true_deltas[index]),
        })
    return rows


def rnn_gradient_angles(model: Module, inputs: np.ndarray, targets: np.ndarray) -> dict:
    """{parameter name: angle between the variant's gradient and BPTT's} on one batch,
    both taken with the `full` plan (every exact plan gives the same gradients)."""
    def gradients():
        model.zero_grad()
        chain = model.chain(inputs, targets)
        execute(Full().plan(chain.profile()), chain)
        grads = {n: p.grad.copy() for n, p in model.named_parameters()
                 if p.grad is not None and not n.startswith("feedback.")}
        model.zero_grad()
        return grads

    own = gradients()
    with without_feedback(model):
        true = gradients()
    return {name: angle(own[name], true[name]) for name in true}
