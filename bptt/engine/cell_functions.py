"""Fused recurrent steps: one `Function` per cell step, with a hand-written backward.

A cell built from engine operations records about a dozen nodes per step, each caching its
operands; a fused step records one node and caches only what its backward needs. The trade-off:
the formulas below are written by hand, so `tests/bptt/test_cells.py` checks every one of them
against the composed cell in `bptt.nn.cells` (values and gradients to 1e-12) and by gradcheck.

Every cell step is two affine maps and a nonlinear *core*: with the input projection
a = x W_x + b (B, G) and the recurrent product u = h W_h (B, G) (G = H, 4H or 3H), the core maps
(a, u, state) to the next state. A core's `backward` gives the gradients of a and u and the part
of the state's gradient that does not pass through u; the GEMMs around it (dW_x = x^T da,
dW_h = h^T du, dh = du W_h^T) are the same for every cell. The fused `Function`s below run one
whole step; `bptt.nn.rnn.FusedSequenceChain` runs the same cores with the GEMMs taken over blocks
of steps. One formula, one place: both call the cores.

Inputs of the `Function`s are (x, *state, *parameters) as arrays of one dtype; x is (B, D), every
state array is (B, H). The weights are saved too, but they are parameters (leaves), not part of
the cache. Forwards work in place on arrays they have just allocated and save them only once
they are final.
"""
from __future__ import annotations

import functools
import math

import numpy as np

from bptt.engine.losses import non_finite_error
from bptt.engine.tensor import Function


def _affine_grads(need_a: bool, need_w: bool, dz: np.ndarray, a: np.ndarray, w: np.ndarray):
    """(dL/da, dL/dw) for z = a @ w, None where not needed (a GEMM each)."""
    return (dz @ w.T if need_a else None), (a.T @ dz if need_w else None)


# --- the cores: (a, u, state) -> next state -----------------------------------------------------
class RNNCore:
    """h' = tanh(a + u) (Elman, 1990). Cache: h'. da and du are the same array."""

    width = 1        # G = width * H
    state_size = 1
    own_du = False   # du is da

    @staticmethod
    def forward(a, u, state):
        """(next state, cache); `u` is consumed (it becomes h')."""
        u += a
        np.tanh(u, out=u)
        return (u,), (u,)

    @staticmethod
    def backward(dnew, state, cache, da, du=None):
        """(da, du, direct state gradients), writing da into the (B, G) array `da`."""
        (y,) = cache
        np.multiply(y, y, out=da)
        np.subtract(1, da, out=da)
        da *= dnew[0]  # dL/dz = dL/dh' (1 - h'^2)
        return da, da, (None,)


@functools.lru_cache(maxsize=64)
def _gate_affine(kinds: str, B: int, H: int, dtype: np.dtype) -> tuple[np.ndarray, ...]:
    """Constants that run every gate's nonlinearity over the whole (B, G) array at once.

    `kinds` has one letter per gate, "s" (sigmoid) or "t" (tanh). With sigmoid(z) =
    (1 + tanh(z/2)) / 2, both are y = m tanh(m z) + k, m = 1/2 and k = 1/2 for a sigmoid gate,
    m = 1 and k = 0 for a tanh gate; and dy/dz = (alpha - y) y + beta, alpha = 1 and beta = 0
    for a sigmoid gate (y (1 - y)), alpha = 0 and beta = 1 for a tanh gate (1 - y^2). A few
    passes over contiguous arrays instead of several per gate over strided columns, which
    NumPy runs 2-3x slower per element; the constants have the full (B, G) shape because an
    in-place operation with a same-shaped operand is about twice as fast as one that
    broadcasts a row. Returns (m, k, alpha, beta), each (B, G), read-only.
    """
    sigmoid = np.repeat(np.array([c == "s" for c in kinds]), H)
    rows = [np.where(sigmoid, 0.5, 1.0), np.where(sigmoid, 0.5, 0.0), sigmoid, ~sigmoid]
    constants = tuple(np.ascontiguousarray(np.broadcast_to(row.astype(dtype), (B, row.size)))
                      for row in rows)
    for a in constants:
        a.flags.writeable = False
    return constants


def _activate_(gates: np.ndarray, m: np.ndarray, k: np.ndarray) -> np.ndarray:
    """y = m tanh(m z) + k over the whole array, in place (see `_gate_affine`)."""
    gates *= m
    np.tanh(gates, out=gates)
    gates *= m
    gates += k
    return gates


def _activation_grad_(da: np.ndarray, gates: np.ndarray, alpha: np.ndarray,
                      beta: np.ndarray) -> np.ndarray:
    """da *= dy/dz for every gate at once, from the activations y: (alpha - y) y + beta."""
    deriv = np.subtract(alpha, gates)
    deriv *= gates
    deriv += beta
    da *= deriv
    return da


class LSTMCore:
    """[i, f, g, o] = [sigmoid, sigmoid, tanh, sigmoid](a + u); c' = f * c + i * g;
    h' = o * tanh(c') (Hochreiter & Schmidhuber, 1997; Gers et al., 2000). Cache: the four gate
    activations and c' (tanh(c') is recomputed in backward: one tanh of (B, H) instead of keeping
    B x H more numbers per step). da and du are the same array."""

    width = 4
    state_size = 2
    own_du = False
    kinds = "ssts"

    @staticmethod
    def forward(a, u, state):
        h, c = state
        H = h.shape[1]
        m, k, _, _ = _gate_affine(LSTMCore.kinds, h.shape[0], H, u.dtype)
        gates = u
        gates += a
        _activate_(gates, m, k)
        i, f, g, o = (gates[:, j * H:(j + 1) * H] for j in range(4))
        c_new = f * c
        c_new += i * g
        h_new = np.tanh(c_new)
        h_new *= o
        return (h_new, c_new), (gates, c_new)

    @staticmethod
    def backward(dnew, state, cache, da, du=None):
        dh_new, dc_new = dnew
        _, c = state
        gates, c_new = cache
        H = c.shape[1]
        _, _, alpha, beta = _gate_affine(LSTMCore.kinds, c.shape[0], H, gates.dtype)
        i, f, g, o = (gates[:, j * H:(j + 1) * H] for j in range(4))
        di, df, dg, do = (da[:, j * H:(j + 1) * H] for j in range(4))
        tanh_c = np.tanh(c_new)
        np.multiply(dh_new, tanh_c, out=do)  # dL/do, before o's own derivative
        dc = np.multiply(tanh_c, tanh_c, out=tanh_c)
        np.subtract(1, dc, out=dc)
        dc *= o
        dc *= dh_new
        dc += dc_new  # dL/dc' = dL/dh' o (1 - tanh^2 c') + the direct part
        np.multiply(dc, g, out=di)
        np.multiply(dc, c, out=df)
        np.multiply(dc, i, out=dg)
        _activation_grad_(da, gates, alpha, beta)
        return da, da, (None, dc * f)


class GRUCore:
    """With a = x W_x + b_x and u = h W_h + b_h (Cho et al., 2014, PyTorch's formulation):
    r = sigmoid(a_r + u_r), z = sigmoid(a_z + u_z), n = tanh(a_n + r * u_n),
    h' = (1 - z) * n + z * h, computed as n + z * (h - n). Cache: the three gate activations and
    u_n."""

    width = 3
    state_size = 1
    own_du = True
    kinds = "sst"

    @staticmethod
    def forward(a, u, state):
        """`u` is consumed (it becomes the gates); `a` may be a row of a shared projection and
        is never written."""
        (h,) = state
        H = h.shape[1]
        m, k, _, _ = _gate_affine(GRUCore.kinds, h.shape[0], H, u.dtype)
        u_n = u[:, 2 * H:].copy()  # a view would keep all of u alive in the cache
        gates = u
        gates += a
        _activate_(gates, m, k)  # r and z; n's columns are overwritten below
        r, z, n = gates[:, :H], gates[:, H:2 * H], gates[:, 2 * H:]
        np.multiply(r, u_n, out=n)
        n += a[:, 2 * H:]
        np.tanh(n, out=n)
        h_new = h - n
        h_new *= z
        h_new += n
        return (h_new,), (gates, u_n)

    @staticmethod
    def backward(dnew, state, cache, da, du):
        (dh_new,) = dnew
        (h,) = state
        gates, u_n = cache
        H = h.shape[1]
        _, _, alpha, beta = _gate_affine(GRUCore.kinds, h.shape[0], H, gates.dtype)
        r, z, n = gates[:, :H], gates[:, H:2 * H], gates[:, 2 * H:]
        dr, dz, dn = da[:, :H], da[:, H:2 * H], da[:, 2 * H:]
        direct = dh_new * z  # dL/dh through h' = ... + z h
        np.subtract(dh_new, direct, out=dn)  # dL/dn = dL/dh' (1 - z)
        np.subtract(h, n, out=dz)
        dz *= dh_new
        dn_pre = n * n
        np.subtract(1, dn_pre, out=dn_pre)
        dn_pre *= dn  # dL/d(a_n + r u_n)
        np.multiply(dn_pre, u_n, out=dr)  # dL/dr, before r's own derivative
        _activation_grad_(da, gates, alpha, beta)
        np.copyto(du, da)  # the same for r and z, r-scaled for n
        du[:, 2 * H:] *= r
        return da, du, (direct,)


# --- one whole step as one node -----------------------------------------------------------------
class _FusedStep(Function):
    """Inputs (x, *state, W_x, W_h, b_x[, b_h]); a = x W_x + b_x, u = h W_h (+ b_h); outputs
    the core's next state."""

    core = RNNCore

    def forward(self, x, *rest):
        n = self.core.state_size
        state, (W_x, W_h, *biases) = rest[:n], rest[n:]
        a = x @ W_x
        a += biases[0]
        u = state[0] @ W_h
        if len(biases) > 1:
            u += biases[1]
        new_state, cache = self.core.forward(a, u, state)
        self.save(x, *state, W_x, W_h, *cache)
        return new_state if n > 1 else new_state[0]

    def backward(self, *dnew):
        n = self.core.state_size
        x, state, (W_x, W_h), cache = (self.saved[0], self.saved[1:1 + n],
                                       self.saved[1 + n:3 + n], self.saved[3 + n:])
        needs = self.needs_input_grad
        need_x, need_state, (need_wx, need_wh, *need_b) = needs[0], needs[1:1 + n], needs[1 + n:]
        da = np.empty((x.shape[0], W_x.shape[1]), x.dtype)
        du = np.empty_like(da) if self.core.own_du else None
        da, du, direct = self.core.backward(dnew, state, cache, da, du)
        dx, dW_x = _affine_grads(need_x, need_wx, da, x, W_x)
        dh, dW_h = _affine_grads(need_state[0], need_wh, du, state[0], W_h)
        if dh is not None and direct[0] is not None:
            dh += direct[0]
        state_grads = (dh,) + tuple(d if need else None
                                    for d, need in zip(direct[1:], need_state[1:]))
        bias_grads = tuple(g.sum(axis=0) if need else None for g, need in zip((da, du), need_b))
        return (dx, *state_grads, dW_x, dW_h, *bias_grads)


class RNNStep(_FusedStep):
    """h' = tanh(x W_x + h W_h + b) (Elman, 1990). Inputs (x, h, W_x, W_h, b); output h'.

    Cache: x, h and h' (B x (D + 2H) numbers per step).
    """

    core = RNNCore


class LSTMStep(_FusedStep):
    """One LSTM step (Hochreiter & Schmidhuber, 1997, with the forget gate of Gers et al., 2000).

    Inputs (x, h, c, W_x, W_h, b), gate columns ordered i, f, g, o (as PyTorch):
        [i, f, g, o] = [sigmoid, sigmoid, tanh, sigmoid](x W_x + h W_h + b)
        c' = f * c + i * g,   h' = o * tanh(c').
    Outputs (h', c'). Cache: x, h, c, the four gate activations and c' (tanh(c') is recomputed in
    backward: one tanh of (B, H) instead of keeping B x H more numbers per step).
    """

    core = LSTMCore


class GRUStep(_FusedStep):
    """One GRU step (Cho et al., 2014) in PyTorch's formulation, gate columns ordered r, z, n.

    Inputs (x, h, W_x, W_h, b_x, b_h); with a = x W_x + b_x and u = h W_h + b_h:
        r = sigmoid(a_r + u_r),  z = sigmoid(a_z + u_z),  n = tanh(a_n + r * u_n),
        h' = (1 - z) * n + z * h.
    Output h'. Cache: x, h, the three gate activations and u_n (B x (D + 5H) numbers per step).
    """

    core = GRUCore


# --- the read-out and its loss as one node --------------------------------------------------------
_PRODUCT_NUMBERS = 65536  # the most numbers of `readout_errors`' elementwise product at once


def readout_errors(h: np.ndarray, W: np.ndarray, b: np.ndarray,
                   target: np.ndarray) -> np.ndarray:
    """diff = h W + b - target for h (..., H), W (H, O), target (..., O), over any leading axes.

    The bits of each row do not depend on how many rows are computed together, so n steps
    read out at once give exactly the numbers of each step read out alone: with one output
    column the product is an elementwise product and a row sum (a GEMM of one column may
    take another kernel for more rows), taken over chunks of rows so that a window's read-out
    needs no temporary as large as its states; with more columns a stacked matmul, one GEMM
    per leading index.
    """
    if W.shape[1] == 1:
        diff = np.empty(h.shape[:-1] + (1,), np.result_type(h, W))
        rows = h.reshape(-1, h.shape[-1])
        out = diff.reshape(-1, 1)
        step = max(1, _PRODUCT_NUMBERS // rows.shape[1])  # the product's temporary stays small
        for start in range(0, len(rows), step):
            part = slice(start, start + step)
            np.multiply(rows[part], W[:, 0]).sum(axis=-1, keepdims=True, out=out[part])
    else:
        diff = np.matmul(h, W)
    diff += b
    diff -= target
    return diff


def readout_mse_steps(h: np.ndarray, W: np.ndarray, b: np.ndarray, target: np.ndarray,
                      scale: float, guarded: bool = True,
                      first_step: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(losses (n,), diff (n, B, O)) for n steps read out at once: h (n, B, H), target
    (n, B, O); step t's loss is scale * mean((h_t W + b - target_t)^2) over its B x O numbers.

    Raises FloatingPointError naming where the inputs are NaN/Inf, as `mse_loss` does, within
    the first step whose loss is not finite (time step `first_step` + its index, when given).
    `guarded=False` is for a caller that already ignores NumPy's overflow and invalid warnings
    (a chain inside its `session`): entering an `np.errstate` costs about as much as a small
    step's read-out.
    """
    if guarded:
        with np.errstate(invalid="ignore", over="ignore"):  # reported below, naming the input
            return readout_mse_steps(h, W, b, target, scale, False, first_step)
    diff = readout_errors(h, W, b, target)
    flat = diff.reshape(diff.shape[0], -1)
    losses = (flat * flat).sum(axis=1)
    losses *= scale / flat.shape[1]
    if not math.isfinite(losses.max()):  # losses are >= 0: the max is NaN or Inf if any is
        t = int(np.argmax(~np.isfinite(losses)))  # name positions within that step
        with np.errstate(invalid="ignore", over="ignore"):
            prediction = h[t] @ W + b
        error = non_finite_error("mse_loss", prediction=prediction, target=target[t])
        if first_step is not None:
            error = FloatingPointError(f"time step {first_step + t}: {error}")
        raise error
    return losses, diff


def readout_mse(h: np.ndarray, W: np.ndarray, b: np.ndarray, target: np.ndarray,
                scale: float) -> tuple[np.ndarray, np.ndarray]:
    """(loss, diff) for one step, h (B, H): `readout_mse_steps` of a run of one."""
    losses, diff = readout_mse_steps(h[None], W, b, target[None], scale)
    return np.asarray(losses[0]), diff[0]


def readout_mse_grad(diff: np.ndarray, scale: float, g=1.0, out=None) -> np.ndarray:
    """dL/dy for `readout_mse`'s loss L scaled by the upstream gradient `g`: 2 g scale diff / n,
    n = B x O, the numbers of one step; `diff` is one step's (B, O) or n steps' (n, B, O)
    (into `out` if given)."""
    return np.multiply(diff, 2 * scale * g / (diff.shape[-2] * diff.shape[-1]), out=out)


class ReadoutMSE(Function):
    """loss = scale * mean((h W + b - target)^2): a linear read-out and its squared error as
    one node. Inputs (h, W, b, target), h (B, H), W (H, O), b (O,), target (B, O); option
    `scale` (a constant, e.g. 1/T for a mean over T steps).

    Cache: h and diff = h W + b - target (B x (H + O) numbers; the composed read-out keeps the
    same plus the loss's operands). Checked against `mse_loss(h @ W + b, target) * scale`.
    """

    def forward(self, h, W, b, target, scale=1.0):
        if h.ndim != 2 or W.ndim != 2 or h.shape[1] != W.shape[0]:
            raise ValueError(f"readout_mse: shapes {h.shape} and {W.shape} do not align")
        if target.shape != (h.shape[0], W.shape[1]):
            raise ValueError(f"mse_loss: prediction shape {(h.shape[0], W.shape[1])} and target "
                             f"shape {target.shape} differ")
        loss, diff = readout_mse(h, W, b, target, scale)
        self.save(h, W, diff, scale, target.dtype)
        return loss

    def backward(self, g):
        h, W, diff, scale, target_dtype = self.saved
        need_h, need_w, need_b, need_target = self.needs_input_grad
        dy = readout_mse_grad(diff, scale, g)
        dh, dW = _affine_grads(need_h, need_w, dy, h, W)
        return (dh, dW, dy.sum(axis=0) if need_b else None,
                (-dy).astype(target_dtype, copy=False) if need_target else None)
