"""A recurrent model (cell + linear readout + loss); its unrolling as a chain of time steps is
`SequenceChain` (engine operations) or `FusedSequenceChain` (fused cores on arrays)."""
from __future__ import annotations

import numpy as np

from bptt.engine import losses
from bptt.engine.cell_functions import ReadoutMSE
from bptt.nn.cells import make_cell
from bptt.nn.dropout import Dropout
from bptt.nn.fused_chain import FusedSequenceChain
from bptt.nn.linear import Linear
from bptt.nn.module import Module
from bptt.nn.sequence_chain import SequenceChain
from bptt.engine.tensor import Tensor, no_grad

__all__ = ["RNN", "SequenceChain", "FusedSequenceChain", "LOSSES"]

LOSSES = ("mse", "xent")


class RNN(Module):
    """A recurrent cell read out linearly at each step: y_t = h_t @ W_y + b_y.

    `cell`: "rnn" (tanh Elman), "lstm" or "gru". `loss`: "mse" (targets are floats of shape
    (..., B, output_size)) or "xent" (softmax cross-entropy; targets are class indices of shape
    (..., B)). `every_step`: a loss on every step (targets (T, B, ...)) or on the last step only
    (targets (B, ...)). The objective is the mean of the step losses, so its scale does not grow
    with T. `fused`: one fused node per cell step and one for the read-out and its squared
    error (fast; chains run them on arrays, see `FusedSequenceChain`) or the step built from
    engine operations (the reference). `dropout` > 0 puts a `Dropout` between the cell and the
    read-out (h_t is dropped on its way to the loss, not on its way to the next step), active
    in chains built with a training `step`; its seed is drawn from `rng` after the weights.
    """

    def __init__(self, cell: str, input_size: int, hidden_size: int, output_size: int,
                 rng: np.random.Generator, dtype=np.float32, loss: str = "mse",
                 every_step: bool = True, fused: bool = True, dropout: float = 0.0):
        if loss not in LOSSES:
            raise ValueError(f"unknown loss {loss!r}; choose one of {list(LOSSES)}")
        self.cell = make_cell(cell, input_size, hidden_size, rng, dtype=dtype, fused=fused)
        self.readout = Linear(hidden_size, output_size, rng, dtype=dtype)
        self.dropout = Dropout(dropout, seed=int(rng.integers(2 ** 63)) if dropout else 0)
        self.kind, self.loss, self.every_step = cell, loss, every_step
        self.input_size, self.hidden_size, self.output_size = input_size, hidden_size, output_size
        self.dtype = np.dtype(dtype)

    def config(self) -> dict:
        """Constructor arguments as JSON-ready data (what `bptt.training.io` saves beside the
        weights)."""
        config = {"architecture": "rnn", "cell": self.kind, "input_size": self.input_size,
                  "hidden_size": self.hidden_size, "output_size": self.output_size,
                  "dtype": self.dtype.name, "loss": self.loss, "every_step": self.every_step}
        if self.dropout.p:
            config["dropout"] = self.dropout.p
        return config

    @classmethod
    def from_config(cls, config: dict, rng: np.random.Generator | None = None) -> "RNN":
        """An RNN built from `config()` output (weights freshly drawn from `rng`)."""
        return cls(config["cell"], config["input_size"], config["hidden_size"],
                   config["output_size"], rng or np.random.default_rng(0),
                   dtype=np.dtype(config["dtype"]), loss=config["loss"],
                   every_step=config["every_step"], dropout=config.get("dropout", 0.0))

    def chain(self, inputs: np.ndarray, targets: np.ndarray, input_grad: bool = False,
              step: int | None = None) -> "SequenceChain":
        """The unrolled model on one batch, as a chain of T time steps for the executor.

        `step`: the training step, which keys the dropout masks (None: no dropout). With
        dropout the steps run as engine graphs (`SequenceChain`) rather than on arrays.
        """
        fused = self.cell.fused and (step is None or not self.dropout.p)
        kind = FusedSequenceChain if fused else SequenceChain
        return kind(self, inputs, targets, input_grad=input_grad, step=step)

    def forward(self, *args, **kwargs):
        """An RNN is unrolled, not called: see `chain` and `predict`."""
        raise TypeError("an RNN is not called: use model.chain(inputs, targets) to train it "
                        "with a memory strategy, model.predict(inputs) for its read-outs")

    def step_loss(self, h: Tensor, target: np.ndarray, scale: float) -> Tensor:
        """The loss of one read-out step, already divided by the number of loss steps."""
        if self.loss == "mse" and self.cell.fused:
            return ReadoutMSE()(h, self.readout.weight, self.readout.bias, target, scale=scale)
        y = self.readout(h)
        if self.loss == "mse":
            return losses.mse_loss(y, target) * scale
        return losses.softmax_cross_entropy(y, target) * scale

    def predict(self, inputs: np.ndarray) -> np.ndarray:
        """Read-outs at every step, (T, B, output_size), computed without recording."""
        chain = self.chain(inputs, None)
        state, outputs = chain.initial_state(), []
        with no_grad():
            for t in range(chain.length):
                state = chain.advance(t, state)
                outputs.append(self.readout(Tensor(state[0])).data)
        return np.stack(outputs)
