"""Fused recurrent steps: one `Function` per cell step, with a hand-written backward.

A cell built from engine operations records about a dozen nodes per step, each caching its
operands; a fused step records one node and caches only what its backward needs. The trade-off:
the formulas below are written by hand, so `tests/bptt/test_cells.py` checks every one of them
against the composed cell in `bptt.nn.cells` (values and gradients to 1e-12) and by gradcheck.

Inputs are (x, *state, *parameters) as arrays of one dtype; x is (B, D), every state array is
(B, H). The weights are saved too, but they are parameters (leaves), not part of the cache.
Forwards work in place on arrays they have just allocated and save them only once they are final.
"""
from __future__ import annotations

import numpy as np

from bptt.tensor import Function


def _sigmoid_(z: np.ndarray) -> np.ndarray:
    """The logistic function of `z`, in place: 1/(1+e^-z) = (1 + tanh(z/2)) / 2.

    The tanh form never overflows and needs no temporary array (the engine's `Sigmoid` keeps
    two branches instead); both agree to rounding.
    """
    z *= 0.5
    np.tanh(z, out=z)
    z *= 0.5
    z += 0.5
    return z


def _sigmoid_grad(dy: np.ndarray, y: np.ndarray) -> np.ndarray:
    """dL/dz for y = sigmoid(z), from dL/dy."""
    return dy * y * (1 - y)


def _tanh_grad(dy: np.ndarray, y: np.ndarray) -> np.ndarray:
    """dL/dz for y = tanh(z), from dL/dy."""
    return dy * (1 - y * y)


def _affine_grads(need_a: bool, need_w: bool, dz: np.ndarray, a: np.ndarray, w: np.ndarray):
    """(dL/da, dL/dw) for z = a @ w, None where not needed (a GEMM each)."""
    return (dz @ w.T if need_a else None), (a.T @ dz if need_w else None)


class RNNStep(Function):
    """h' = tanh(x W_x + h W_h + b) (Elman, 1990). Inputs (x, h, W_x, W_h, b); output h'.

    Cache: x, h and h' (B x (D + 2H) numbers per step).
    """

    def forward(self, x, h, W_x, W_h, b):
        y = x @ W_x
        y += h @ W_h
        y += b
        np.tanh(y, out=y)
        self.save(x, h, W_x, W_h, y)
        return y

    def backward(self, dy):
        x, h, W_x, W_h, y = self.saved
        need_x, need_h, need_wx, need_wh, need_b = self.needs_input_grad
        dz = _tanh_grad(dy, y)
        dx, dW_x = _affine_grads(need_x, need_wx, dz, x, W_x)
        dh, dW_h = _affine_grads(need_h, need_wh, dz, h, W_h)
        return dx, dh, dW_x, dW_h, (dz.sum(axis=0) if need_b else None)


class LSTMStep(Function):
    """One LSTM step (Hochreiter & Schmidhuber, 1997, with the forget gate of Gers et al., 2000).

    Inputs (x, h, c, W_x, W_h, b), gate columns ordered i, f, g, o (as PyTorch):
        [i, f, g, o] = [sigmoid, sigmoid, tanh, sigmoid](x W_x + h W_h + b)
        c' = f * c + i * g,   h' = o * tanh(c').
    Outputs (h', c'). Cache: x, h, c, the four gate activations and c' (tanh(c') is recomputed in
    backward: one tanh of (B, H) instead of keeping B x H more numbers per step).
    """

    def forward(self, x, h, c, W_x, W_h, b):
        H = h.shape[1]
        gates = x @ W_x
        gates += h @ W_h
        gates += b
        _sigmoid_(gates[:, :2 * H])
        np.tanh(gates[:, 2 * H:3 * H], out=gates[:, 2 * H:3 * H])
        _sigmoid_(gates[:, 3 * H:])
        i, f, g, o = (gates[:, k * H:(k + 1) * H] for k in range(4))
        c_new = f * c
        c_new += i * g
        h_new = np.tanh(c_new)
        h_new *= o
        self.save(x, h, c, W_x, W_h, gates, c_new)
        return h_new, c_new

    def backward(self, dh_new, dc_new):
        x, h, c, W_x, W_h, gates, c_new = self.saved
        need_x, need_h, need_c, need_wx, need_wh, need_b = self.needs_input_grad
        H = h.shape[1]
        i, f, g, o = (gates[:, k * H:(k + 1) * H] for k in range(4))
        tanh_c = np.tanh(c_new)
        dc = _tanh_grad(dh_new * o, tanh_c)
        dc += dc_new
        dz = np.empty_like(gates)
        dz[:, :H] = _sigmoid_grad(dc * g, i)
        dz[:, H:2 * H] = _sigmoid_grad(dc * c, f)
        dz[:, 2 * H:3 * H] = _tanh_grad(dc * i, g)
        dz[:, 3 * H:] = _sigmoid_grad(dh_new * tanh_c, o)
        dx, dW_x = _affine_grads(need_x, need_wx, dz, x, W_x)
        dh, dW_h = _affine_grads(need_h, need_wh, dz, h, W_h)
        return (dx, dh, (dc * f if need_c else None), dW_x, dW_h,
                (dz.sum(axis=0) if need_b else None))


class GRUStep(Function):
    """One GRU step (Cho et al., 2014) in PyTorch's formulation, gate columns ordered r, z, n.

    Inputs (x, h, W_x, W_h, b_x, b_h); with a = x W_x + b_x and u = h W_h + b_h:
        r = sigmoid(a_r + u_r),  z = sigmoid(a_z + u_z),  n = tanh(a_n + r * u_n),
        h' = (1 - z) * n + z * h.
    Output h'. Cache: x, h, the three gate activations and u_n (B x (D + 5H) numbers per step).
    """

    def forward(self, x, h, W_x, W_h, b_x, b_h):
        H = h.shape[1]
        gates = x @ W_x
        gates += b_x
        u = h @ W_h
        u += b_h
        gates[:, :2 * H] += u[:, :2 * H]
        _sigmoid_(gates[:, :2 * H])
        u_n = u[:, 2 * H:].copy()  # a view would keep all of u alive in the cache
        r, z, n = gates[:, :H], gates[:, H:2 * H], gates[:, 2 * H:]
        n += r * u_n
        np.tanh(n, out=n)
        h_new = 1 - z
        h_new *= n
        h_new += z * h
        self.save(x, h, W_x, W_h, gates, u_n)
        return h_new

    def backward(self, dh_new):
        x, h, W_x, W_h, gates, u_n = self.saved
        need_x, need_h, need_wx, need_wh, need_bx, need_bh = self.needs_input_grad
        H = h.shape[1]
        r, z, n = gates[:, :H], gates[:, H:2 * H], gates[:, 2 * H:]
        da = np.empty_like(gates)  # gradient of a = x W_x + b_x
        da[:, 2 * H:] = _tanh_grad(dh_new * (1 - z), n)
        da[:, :H] = _sigmoid_grad(da[:, 2 * H:] * u_n, r)
        da[:, H:2 * H] = _sigmoid_grad(dh_new * (h - n), z)
        du = da.copy()  # gradient of u = h W_h + b_h: the same for r and z, r-scaled for n
        du[:, 2 * H:] *= r
        dx, dW_x = _affine_grads(need_x, need_wx, da, x, W_x)
        dh, dW_h = _affine_grads(need_h, need_wh, du, h, W_h)
        if need_h:
            dh += dh_new * z
        return (dx, dh, dW_x, dW_h, (da.sum(axis=0) if need_bx else None),
                (du.sum(axis=0) if need_bh else None))
