"""PyTorch peers of `bench_peers.py` for the tanh RNN, LSTM and GRU, from bptt's weights.

For each cell:
  torch_<cell>        torch.nn.RNN / nn.LSTM / nn.GRU with autograd, the read-out applied to the
                      whole output sequence at once (as users write it)
  torch_loop          a manual loop over `unbind` of the input projection (one GEMM)
  torch_checkpoint    torch.utils.checkpoint (use_reentrant=False) over ceil(sqrt T)-step
                      segments of that loop, read-out and loss inside each segment
Each returns (loss, {bptt weight name: gradient as ndarray}). Torch is imported only here.
"""
from __future__ import annotations

import math


def torch_steps(cell: str, weights: dict, inputs, targets) -> dict:
    """The torch implementations for `cell` on (inputs, targets), or {} without torch."""
    try:
        import torch
    except ImportError:
        return {}
    torch.set_num_threads(1)
    X, Y = torch.from_numpy(inputs), torch.from_numpy(targets)
    T, B, D = inputs.shape
    H = weights["cell.W_h"].shape[0]
    names = list(weights)
    w = {name: torch.tensor(a, requires_grad=True) for name, a in weights.items()}
    module = {"rnn": lambda: torch.nn.RNN(D, H, nonlinearity="tanh"),
              "lstm": lambda: torch.nn.LSTM(D, H), "gru": lambda: torch.nn.GRU(D, H)}[cell]()
    b_x = w["cell.b"] if cell != "gru" else w["cell.b_x"]
    with torch.no_grad():
        module.weight_ih_l0.copy_(w["cell.W_x"].T)
        module.weight_hh_l0.copy_(w["cell.W_h"].T)
        module.bias_ih_l0.copy_(b_x)
        if cell == "gru":
            module.bias_hh_l0.copy_(w["cell.b_h"])
        else:
            module.bias_hh_l0.zero_()
    zeros = torch.zeros(B, H)
    k = math.isqrt(T - 1) + 1  # checkpoint's segment, ceil(sqrt T)

    def zero():
        for t in (*w.values(), *module.parameters()):
            t.grad = None

    def grads(keys=names):
        return {name: w[name].grad.numpy() for name in keys}

    def readout_loss(hs, target):
        diff = hs @ w["readout.weight"] + w["readout.bias"] - target
        return (diff * diff).sum()

    def torch_module():
        zero()
        state = (zeros.unsqueeze(0), zeros.unsqueeze(0)) if cell == "lstm" else zeros.unsqueeze(0)
        out, _ = module(X, state)
        loss = readout_loss(out, Y) / Y.numel()
        loss.backward()
        g = grads(("readout.weight", "readout.bias"))
        g["cell.W_x"] = module.weight_ih_l0.grad.T.numpy()
        g["cell.W_h"] = module.weight_hh_l0.grad.T.numpy()
        if cell == "gru":
            g["cell.b_x"], g["cell.b_h"] = (module.bias_ih_l0.grad.numpy(),
                                            module.bias_hh_l0.grad.numpy())
        else:
            g["cell.b"] = module.bias_ih_l0.grad.numpy()
        return float(loss.detach()), g

    def rnn_step(a, state):
        return (torch.tanh(a + state[0] @ w["cell.W_h"]),)

    def lstm_step(a, state):
        h, c = state
        i, f, g, o = (a + h @ w["cell.W_h"]).chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c

    def gru_step(a, state):
        h = state[0]
        u = h @ w["cell.W_h"] + w["cell.b_h"]
        r = torch.sigmoid(a[:, :H] + u[:, :H])
        z = torch.sigmoid(a[:, H:2 * H] + u[:, H:2 * H])
        n = torch.tanh(a[:, 2 * H:] + r * u[:, 2 * H:])
        return ((1 - z) * n + z * h,)

    one_step = {"rnn": rnn_step, "lstm": lstm_step, "gru": gru_step}[cell]

    def recurrence(state, x):
        A = x @ w["cell.W_x"] + b_x
        hs = []
        for a in A.unbind(0):
            state = one_step(a, state)
            hs.append(state[0])
        return state, torch.stack(hs)

    def initial():
        return (zeros, zeros) if cell == "lstm" else (zeros,)

    def torch_loop():
        zero()
        _, hs = recurrence(initial(), X)
        loss = readout_loss(hs, Y) / Y.numel()
        loss.backward()
        return float(loss.detach()), grads()

    def segment(x, target, *state):
        state, hs = recurrence(state, x)
        return (readout_loss(hs, target), *state)

    def torch_checkpoint():
        zero()
        state, total = initial(), 0.0
        for start in range(0, T, k):
            part, *state = torch.utils.checkpoint.checkpoint(
                segment, X[start:start + k], Y[start:start + k], *state, use_reentrant=False)
            total = total + part
        loss = total / Y.numel()
        loss.backward()
        return float(loss.detach()), grads()

    return {f"torch_{cell}": torch_module, "torch_loop": torch_loop,
            "torch_checkpoint": torch_checkpoint}


def torch_gemm(step_factory):
    """`step_factory(matmul=..., array=...)` run with torch's matmul on torch tensors (MKL), or
    None without torch: the same GEMM floor under the other BLAS."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(1)
    return step_factory(matmul=torch.matmul, array=torch.from_numpy)
