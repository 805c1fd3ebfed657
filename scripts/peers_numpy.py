"""Hand-written NumPy BPTT for the tanh RNN, LSTM and GRU, and the GEMM floor of bptt's step.

The references of `bench_peers.py`: each takes the weights by bptt's names (W_x (D, G), W_h
(H, G), biases (G,), readout.weight (H, O), readout.bias (O,), G = H, 4H or 3H), the inputs X
(T, B, D) and targets Y (T, B, O), and returns (loss, {name: gradient}) for the mean squared
read-out error over every step. Written as a practitioner would write the fastest plain NumPy:
the input projection as one GEMM over the whole sequence, the recurrence loop, the read-out and
every weight gradient as one GEMM at the end. The cell formulas are PyTorch's (LSTM gates
i, f, g, o; GRU gates r, z, n with the reset gate after the recurrent product).

`gemm_floor` times the matrix products bptt's own full step runs, in its shapes, and nothing
else: what is left of a step once every elementwise operation and all Python are gone.
"""
from __future__ import annotations

import numpy as np


def _sigmoid(z: np.ndarray) -> np.ndarray:
    """In place; 1/(1+e^-z) via tanh, which never overflows."""
    z *= 0.5
    np.tanh(z, out=z)
    z *= 0.5
    z += 0.5
    return z


def _readout(hs: np.ndarray, W_y, b_y, Y) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """(loss, dy (T*B, O), dH (T, B, H) = dy W_y^T, out (T*B, H)) for the mean squared error."""
    T, B, H = hs.shape[0] - 1, hs.shape[1], hs.shape[2]
    out = hs[1:].reshape(T * B, H)
    diff = out @ W_y
    diff += b_y
    diff -= Y.reshape(T * B, -1)
    loss = float(np.mean(diff * diff))
    dy = diff * (2 / diff.size)
    if dy.shape[1] == 1:  # an outer product: 3-4x faster than a GEMM of inner size 1
        dH = dy * W_y.T
    else:
        dH = dy @ W_y.T
    return loss, dy, dH.reshape(T, B, H), out


def _grads(X, hs, dA, dU, dy, out, names) -> dict:
    """The weight gradients as one GEMM each: dW_x = X^T dA, dW_h = h^T dU, biases, read-out."""
    T, B, D = X.shape
    H = hs.shape[2]
    dA, dU = dA.reshape(T * B, -1), dU.reshape(T * B, -1)
    grads = {"cell.W_x": X.reshape(T * B, D).T @ dA,
             "cell.W_h": hs[:-1].reshape(T * B, H).T @ dU,
             "readout.weight": out.T @ dy, "readout.bias": dy.sum(axis=0)}
    if "cell.b" in names:
        grads["cell.b"] = dA.sum(axis=0)
    else:
        grads["cell.b_x"], grads["cell.b_h"] = dA.sum(axis=0), dU.sum(axis=0)
    return grads


def numpy_rnn(w: dict, X: np.ndarray, Y: np.ndarray) -> tuple[float, dict]:
    """Tanh RNN. Keeps every hidden state (T+1, B, H) and one (T, B, H) work array that holds
    the input projection forward and the pre-activation gradients backward."""
    W_x, W_h, b = w["cell.W_x"], w["cell.W_h"], w["cell.b"]
    T, B, D = X.shape
    H = W_h.shape[0]
    A = (X.reshape(T * B, D) @ W_x).reshape(T, B, H)
    A += b
    hs = np.empty((T + 1, B, H), X.dtype)
    hs[0] = 0
    for t in range(T):
        h = np.matmul(hs[t], W_h, out=hs[t + 1])
        h += A[t]
        np.tanh(h, out=h)
    loss, dy, dZ, out = _readout(hs, w["readout.weight"], w["readout.bias"], Y)
    W_hT = np.ascontiguousarray(W_h.T)
    dh = np.zeros((B, H), X.dtype)
    for t in range(T - 1, -1, -1):
        dz = dZ[t]
        dz += dh
        y = hs[t + 1]
        dz *= 1 - y * y
        dh = dz @ W_hT
    return loss, _grads(X, hs, dZ, dZ, dy, out, w)


def numpy_lstm(w: dict, X: np.ndarray, Y: np.ndarray) -> tuple[float, dict]:
    """LSTM. Keeps h and c (T+1, B, H) each and the gate activations (T, B, 4H), which hold the
    input projection first and the pre-activation gradients at the end."""
    W_x, W_h, b = w["cell.W_x"], w["cell.W_h"], w["cell.b"]
    T, B, D = X.shape
    H = W_h.shape[0]
    Z = (X.reshape(T * B, D) @ W_x).reshape(T, B, 4 * H)
    Z += b
    hs = np.empty((T + 1, B, H), X.dtype)
    cs = np.empty((T + 1, B, H), X.dtype)
    hs[0] = cs[0] = 0
    for t in range(T):
        z = Z[t]
        z += hs[t] @ W_h
        _sigmoid(z[:, :2 * H])
        np.tanh(z[:, 2 * H:3 * H], out=z[:, 2 * H:3 * H])
        _sigmoid(z[:, 3 * H:])
        c = np.multiply(z[:, H:2 * H], cs[t], out=cs[t + 1])
        c += z[:, :H] * z[:, 2 * H:3 * H]
        h = np.tanh(c, out=hs[t + 1])
        h *= z[:, 3 * H:]
    loss, dy, dH, out = _readout(hs, w["readout.weight"], w["readout.bias"], Y)
    W_hT = np.ascontiguousarray(W_h.T)
    dh_next = np.zeros((B, H), X.dtype)
    dc_next = np.zeros((B, H), X.dtype)
    for t in range(T - 1, -1, -1):
        z = Z[t]
        i, f, g, o = z[:, :H], z[:, H:2 * H], z[:, 2 * H:3 * H], z[:, 3 * H:]
        dh = dH[t]
        dh += dh_next
        tanh_c = np.tanh(cs[t + 1])
        dc = dh * o
        dc *= 1 - tanh_c * tanh_c
        dc += dc_next
        do = dh * tanh_c
        do *= o * (1 - o)
        di = dc * g
        di *= i * (1 - i)
        df = dc * cs[t]
        df *= f * (1 - f)
        dg = dc * i
        dg *= 1 - g * g
        dc_next = dc * f
        z[:, :H], z[:, H:2 * H], z[:, 2 * H:3 * H], z[:, 3 * H:] = di, df, dg, do
        dh_next = z @ W_hT
    return loss, _grads(X, hs, Z, Z, dy, out, w)


def numpy_gru(w: dict, X: np.ndarray, Y: np.ndarray) -> tuple[float, dict]:
    """GRU. Keeps h (T+1, B, H), the gates r, z, n (T, B, 3H) over the input projection's
    array (turned into dL/da backward) and u_n (T, B, H); dL/du is one more (T, B, 3H)."""
    W_x, W_h, b_x, b_h = w["cell.W_x"], w["cell.W_h"], w["cell.b_x"], w["cell.b_h"]
    T, B, D = X.shape
    H = W_h.shape[0]
    A = (X.reshape(T * B, D) @ W_x).reshape(T, B, 3 * H)
    A += b_x
    hs = np.empty((T + 1, B, H), X.dtype)
    Un = np.empty((T, B, H), X.dtype)
    hs[0] = 0
    for t in range(T):
        a = A[t]
        u = hs[t] @ W_h
        u += b_h
        rz = a[:, :2 * H]
        rz += u[:, :2 * H]
        _sigmoid(rz)
        Un[t] = u[:, 2 * H:]
        n = a[:, 2 * H:]
        n += a[:, :H] * Un[t]
        np.tanh(n, out=n)
        h = np.subtract(hs[t], n, out=hs[t + 1])
        h *= a[:, H:2 * H]
        h += n  # (1 - z) n + z h = n + z (h - n)
    loss, dy, dH, out = _readout(hs, w["readout.weight"], w["readout.bias"], Y)
    W_hT = np.ascontiguousarray(W_h.T)
    dU = np.empty_like(A)
    dh_next = np.zeros((B, H), X.dtype)
    for t in range(T - 1, -1, -1):
        a = A[t]
        r, z, n = a[:, :H], a[:, H:2 * H], a[:, 2 * H:]
        dh = dH[t]
        dh += dh_next
        dn = dh * (1 - z)
        dn *= 1 - n * n
        dz = dh * (hs[t] - n)
        dz *= z * (1 - z)
        dr = dn * Un[t]
        dr *= r * (1 - r)
        direct = dh * z
        du = dU[t]
        du[:, 2 * H:] = dn * r
        du[:, :H], du[:, H:2 * H] = dr, dz
        a[:, :H], a[:, H:2 * H], a[:, 2 * H:] = dr, dz, dn  # r, z, n are spent
        dh_next = du @ W_hT
        dh_next += direct
    return loss, _grads(X, hs, A, dU, dy, out, w)


NUMPY_CELLS = {"rnn": numpy_rnn, "lstm": numpy_lstm, "gru": numpy_gru}


def gemm_floor(cell: str, T: int, B: int, D: int, H: int, block: int, dtype=np.float32,
               matmul=np.matmul, array=np.asarray):
    """A step that runs only the matrix products of bptt's full step for `cell`, in its shapes:
    per block of `block` steps the input projection, per step h W_h forward and du W_h^T
    backward, per block the gradients of W_x and W_h (the one-column read-out products and bias
    sums are left out: they are not GEMMs). `matmul`/`array` let torch run the same products."""
    G = {"rnn": 1, "lstm": 4, "gru": 3}[cell] * H
    rng = np.random.default_rng(0)

    def make(*shape):
        return array(rng.standard_normal(shape).astype(dtype))

    x, W_x, h, W_h, du, W_hT = (make(block * B, D), make(D, G), make(B, H), make(H, G),
                                make(B, G), make(G, H))
    hb, dub = make(H, block * B), make(block * B, G)
    xT = make(D, block * B)

    def step():
        for start in range(0, T, block):
            matmul(x, W_x)
            for _ in range(min(block, T - start)):
                matmul(h, W_h)
        for start in range(0, T, block):
            for _ in range(min(block, T - start)):
                matmul(du, W_hT)
            matmul(xT, dub)
            matmul(hb, dub)
    return step
