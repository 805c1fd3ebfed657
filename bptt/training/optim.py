"""Optimisers (`SGD` with momentum, `Adam`) and global gradient-norm clipping.

Updates are in place on each parameter's `.data`, in the parameter's dtype. Parameters whose
`.grad` is None (not reached by the last backward) are left alone. `state_dict()` returns plain
data, hyperparameters plus named arrays, so a run can be saved and resumed bit for bit.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
import math
from typing import Iterable

import numpy as np

from bptt.engine.tensor import Tensor


class Optimizer(ABC):
    """Common part: the parameter list, `zero_grad` and per-parameter buffers."""

    buffer_names: tuple[str, ...] = ()

    def __init__(self, params: Iterable[Tensor], lr: float):
        self.params = list(params)
        if not self.params:
            raise ValueError("optimizer got an empty parameter list")
        for p in self.params:
            if not isinstance(p, Tensor) or not p.requires_grad:
                raise TypeError(f"optimizer parameters must be Tensors that require grad, "
                                f"got {p!r}")
        if len({id(p) for p in self.params}) != len(self.params):
            raise ValueError("optimizer got the same parameter more than once")
        self.lr = _positive("lr", lr)
        self.steps = 0
        self.buffers = {name: [np.zeros_like(p.data) for p in self.params]
                        for name in self.buffer_names}

    def zero_grad(self) -> None:
        """Forget every parameter's accumulated gradient."""
        for p in self.params:
            p.zero_grad()

    def step(self) -> None:
        """Apply one update from the current gradients."""
        self.steps += 1
        for k, p in enumerate(self.params):
            if p.grad is not None:
                self._update(k, p)

    @abstractmethod
    def _update(self, k: int, p: Tensor) -> None:
        """Update parameter `p` (number `k`) from its gradient."""

    def hyperparameters(self) -> dict:
        return {"lr": self.lr}

    def state_dict(self) -> dict:
        """{"type", "hyperparameters", "steps", "buffers": {"<name>.<index>": ndarray copy}}."""
        return {"type": type(self).__name__, "hyperparameters": self.hyperparameters(),
                "steps": self.steps,
                "buffers": {f"{name}.{k}": b.copy() for name, bufs in self.buffers.items()
                            for k, b in enumerate(bufs)}}

    def load_state_dict(self, state: dict) -> None:
        """Resume from `state_dict()` output of the same optimiser type over the same parameters.

        Hyperparameters are taken from `state`; a ValueError lists every buffer that is missing,
        unexpected or of the wrong shape or dtype (nothing is changed then).
        """
        if state.get("type") != type(self).__name__:
            raise ValueError(f"state is for optimizer {state.get('type')!r}, "
                             f"not {type(self).__name__}")
        given = state["buffers"]
        expected = {f"{name}.{k}": b for name, bufs in self.buffers.items()
                    for k, b in enumerate(bufs)}
        problems = [f"missing {n}" for n in expected if n not in given]
        problems += [f"unexpected {n}" for n in given if n not in expected]
        for n, b in expected.items():
            if n in given and (np.shape(given[n]) != b.shape
                               or np.asarray(given[n]).dtype != b.dtype):
                problems.append(f"{n}: {np.shape(given[n])} {np.asarray(given[n]).dtype}, "
                                f"expected {b.shape} {b.dtype}")
        if problems:
            raise ValueError("optimizer state does not match: " + "; ".join(problems))
        self._set_hyperparameters(**state["hyperparameters"])
        self.steps = int(state["steps"])
        for n, b in expected.items():
            np.copyto(b, given[n])

    def _set_hyperparameters(self, lr: float) -> None:
        self.lr = _positive("lr", lr)


class SGD(Optimizer):
    """Stochastic gradient descent with (heavy-ball) momentum.

    v ← momentum·v + g;  p ← p − lr·v.  With momentum 0 this is plain p ← p − lr·g (the velocity
    buffer stays zero).
    """

    buffer_names = ("velocity",)

    def __init__(self, params: Iterable[Tensor], lr: float, momentum: float = 0.0):
        super().__init__(params, lr)
        self.momentum = _momentum(momentum)

    def _update(self, k: int, p: Tensor) -> None:
        if self.momentum == 0.0:
            p.data -= self.lr * p.grad
            return
        v = self.buffers["velocity"][k]
        v *= self.momentum
        v += p.grad
        p.data -= self.lr * v

    def hyperparameters(self) -> dict:
        return {"lr": self.lr, "momentum": self.momentum}

    def _set_hyperparameters(self, lr: float, momentum: float) -> None:
        self.lr, self.momentum = _positive("lr", lr), _momentum(momentum)


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015): per-coordinate steps scaled by running gradient moments.

    m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²;  p ← p − lr·m̂ / (√v̂ + eps), with the
    bias-corrected m̂ = m / (1−β1^t), v̂ = v / (1−β2^t) at step t.
    """

    buffer_names = ("m", "v")

    def __init__(self, params: Iterable[Tensor], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        super().__init__(params, lr)
        self.betas, self.eps = _betas(betas), _positive("eps", eps)

    def _update(self, k: int, p: Tensor) -> None:
        beta1, beta2 = self.betas
        m, v = self.buffers["m"][k], self.buffers["v"][k]
        m *= beta1
        m += (1 - beta1) * p.grad
        v *= beta2
        v += (1 - beta2) * p.grad * p.grad
        m_hat = m / (1 - beta1 ** self.steps)
        v_hat = v / (1 - beta2 ** self.steps)
        p.data -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)

    def hyperparameters(self) -> dict:
        return {"lr": self.lr, "betas": list(self.betas), "eps": self.eps}

    def _set_hyperparameters(self, lr: float, betas, eps: float) -> None:
        self.lr, self.betas, self.eps = _positive("lr", lr), _betas(betas), _positive("eps", eps)


def grad_norm(params: Iterable[Tensor]) -> float:
    """The global L2 norm of all the parameters' gradients together, computed in float64
    (parameters without a gradient count as zero). NaN or Inf if a gradient is not finite, so
    a finite norm also says that every gradient is finite (one pass serves both checks)."""
    total = 0.0
    for p in params:
        g = p.grad
        if g is not None:  # the ufunc's own reduce: np.sum's result, without its wrapper
            total += float(_add_reduce(np.square(g, dtype=np.float64), axis=None))
    return math.sqrt(total)


_add_reduce = np.add.reduce


def clip_grad_norm(params: Iterable[Tensor], max_norm: float, norm: float | None = None) -> float:
    """Scale all gradients together so their global L2 norm is at most `max_norm`.

    Returns the norm before clipping (`grad_norm`; pass it as `norm` if it is already known
    for these gradients, to save a pass). The direction of the joint gradient is kept, unlike
    per-element clipping (Pascanu et al., 2013). A non-finite norm is returned without
    touching the gradients, so the caller can see and skip the step.
    """
    max_norm = _positive("max_norm", max_norm)
    params = list(params)
    grads = [p.grad for p in params if p.grad is not None]
    total = grad_norm(params) if norm is None else norm
    if math.isfinite(total) and total > max_norm:
        scale = max_norm / total
        for g in grads:
            g *= scale
    return total


def _positive(what: str, value) -> float:
    value = _number(what, value)
    if not value > 0 or not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number > 0, got {value!r}")
    return value


def _momentum(value) -> float:
    value = _number("momentum", value)
    if not 0.0 <= value < 1.0:
        raise ValueError(f"momentum must be in [0, 1), got {value!r}")
    return value


def _betas(betas) -> tuple[float, float]:
    try:
        beta1, beta2 = (_number("betas", b) for b in betas)
    except (TypeError, ValueError):
        raise ValueError(f"betas must be a pair of numbers in [0, 1), got {betas!r}") from None
    if not (0.0 <= beta1 < 1.0 and 0.0 <= beta2 < 1.0):
        raise ValueError(f"betas must be a pair of numbers in [0, 1), got {betas!r}")
    return beta1, beta2


def _number(what: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{what} must be a number, got {value!r}")
    return float(value)
