"""How a model's parameters are laid out in `model.safetensors`: PyTorch's names and shapes.

bptt computes y = x W + b with W of shape (in, out); PyTorch's `Linear` stores W as (out, in).
A saved file uses PyTorch's convention, so that `torch.nn.Linear`, `RNNCell`, `LSTMCell` and
`GRUCell` load it with `load_state_dict` after at most a rename of the module prefix:

| bptt parameter | file tensor | shape |
| --- | --- | --- |
| MLP `layers.k.weight` (in, out) | `layers.k.weight` | (out, in) |
| MLP `layers.k.bias` | `layers.k.bias` | (out,) |
| RNN `cell.W_x` (D, G*H) | `cell.weight_ih` | (G*H, D) |
| RNN `cell.W_h` (H, G*H) | `cell.weight_hh` | (G*H, H) |
| rnn/lstm `cell.b` | `cell.bias_ih`, and `cell.bias_hh` = 0 | (G*H,) |
| gru `cell.b_x`, `cell.b_h` | `cell.bias_ih`, `cell.bias_hh` | (3H,) |
| RNN `readout.weight` (H, O) | `readout.weight` | (O, H) |
| RNN `readout.bias` | `readout.bias` | (O,) |

G = 1 (tanh RNN), 4 (LSTM, gates i, f, g, o) or 3 (GRU, gates r, z, n): PyTorch's gate orders.
The tanh RNN and the LSTM have one bias in bptt and two in PyTorch (which adds them); saving
writes bias_hh as zeros and loading adds a non-zero bias_hh to bias_ih. A backward variant's
feedback matrices (`bptt.nn.feedback`, no PyTorch counterpart) keep their bptt names,
`feedback.*`, and shapes.
"""
from __future__ import annotations

import numpy as np

GATES = {"rnn": 1, "lstm": 4, "gru": 3}
FEEDBACK = "feedback."  # a backward variant's matrices: bptt's names and shapes


def expected_tensors(config: dict) -> dict[str, tuple[int, ...]]:
    """name -> shape of every tensor the file of a (checked) config must hold, in file layout."""
    if config["architecture"] == "mlp":
        sizes = config["sizes"]
        shapes = {}
        for k, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            shapes[f"layers.{k}.weight"] = (n_out, n_in)
            shapes[f"layers.{k}.bias"] = (n_out,)
        return shapes
    D, H, n_out = config["input_size"], config["hidden_size"], config["output_size"]
    G = GATES[config["cell"]] * H
    return {"cell.weight_ih": (G, D), "cell.weight_hh": (G, H), "cell.bias_ih": (G,),
            "cell.bias_hh": (G,), "readout.weight": (n_out, H), "readout.bias": (n_out,)}


def to_file_layout(state: dict[str, np.ndarray], config: dict) -> dict[str, np.ndarray]:
    """A model's `state_dict()` in file layout (PyTorch names, (out, in) weights)."""
    feedback = {k: v for k, v in state.items() if k.startswith(FEEDBACK)}
    state = {k: v for k, v in state.items() if not k.startswith(FEEDBACK)}
    return {**_to_file(state, config), **feedback}


def _to_file(state: dict[str, np.ndarray], config: dict) -> dict[str, np.ndarray]:
    if config["architecture"] == "mlp":
        return {name: _transposed(a) if name.endswith(".weight") else a
                for name, a in state.items()}
    cell = config["cell"]
    arrays = {"cell.weight_ih": _transposed(state["cell.W_x"]),
              "cell.weight_hh": _transposed(state["cell.W_h"]),
              "readout.weight": _transposed(state["readout.weight"]),
              "readout.bias": state["readout.bias"]}
    if cell == "gru":
        arrays["cell.bias_ih"], arrays["cell.bias_hh"] = state["cell.b_x"], state["cell.b_h"]
    else:
        arrays["cell.bias_ih"] = state["cell.b"]
        arrays["cell.bias_hh"] = np.zeros_like(state["cell.b"])
    return arrays


def from_file_layout(arrays: dict[str, np.ndarray], config: dict) -> dict[str, np.ndarray]:
    """The inverse of `to_file_layout`: tensors of a file (already checked against
    `expected_tensors`) as the model's `state_dict()`. Bit for bit the saved values."""
    feedback = {k: v for k, v in arrays.items() if k.startswith(FEEDBACK)}
    arrays = {k: v for k, v in arrays.items() if not k.startswith(FEEDBACK)}
    return {**_from_file(arrays, config), **feedback}


def _from_file(arrays: dict[str, np.ndarray], config: dict) -> dict[str, np.ndarray]:
    if config["architecture"] == "mlp":
        return {name: _transposed(a) if name.endswith(".weight") else a
                for name, a in arrays.items()}
    state = {"cell.W_x": _transposed(arrays["cell.weight_ih"]),
             "cell.W_h": _transposed(arrays["cell.weight_hh"]),
             "readout.weight": _transposed(arrays["readout.weight"]),
             "readout.bias": arrays["readout.bias"]}
    if config["cell"] == "gru":
        state["cell.b_x"], state["cell.b_h"] = arrays["cell.bias_ih"], arrays["cell.bias_hh"]
    elif np.any(arrays["cell.bias_hh"]):
        state["cell.b"] = arrays["cell.bias_ih"] + arrays["cell.bias_hh"]  # PyTorch adds them
    else:
        state["cell.b"] = arrays["cell.bias_ih"]  # no addition: keeps -0.0 and every bit
    return state


def _transposed(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a.T)
