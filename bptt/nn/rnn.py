"""A recurrent model (cell + linear readout + loss) and its unrolling as a chain of time steps."""
from __future__ import annotations

import numpy as np

from bptt import functions as F
from bptt.chain import TapedChain
from bptt.nn.cells import make_cell
from bptt.nn.linear import Linear
from bptt.nn.module import Module
from bptt.tensor import FLOAT_DTYPES, Tensor, no_grad

LOSSES = ("mse", "xent")


class RNN(Module):
    """A recurrent cell read out linearly at each step: y_t = h_t @ W_y + b_y.

    `cell`: "rnn" (tanh Elman), "lstm" or "gru". `loss`: "mse" (targets are floats of shape
    (..., B, output_size)) or "xent" (softmax cross-entropy; targets are class indices of shape
    (..., B)). `every_step`: a loss on every step (targets (T, B, ...)) or on the last step only
    (targets (B, ...)). The objective is the mean of the step losses, so its scale does not grow
    with T. `fused`: one fused node per cell step (fast) or the cell built from engine operations.
    """

    def __init__(self, cell: str, input_size: int, hidden_size: int, output_size: int,
                 rng: np.random.Generator, dtype=np.float32, loss: str = "mse",
                 every_step: bool = True, fused: bool = True):
        if loss not in LOSSES:
            raise ValueError(f"unknown loss {loss!r}; choose one of {list(LOSSES)}")
        self.cell = make_cell(cell, input_size, hidden_size, rng, dtype=dtype, fused=fused)
        self.readout = Linear(hidden_size, output_size, rng, dtype=dtype)
        self.kind, self.loss, self.every_step = cell, loss, every_step
        self.input_size, self.hidden_size, self.output_size = input_size, hidden_size, output_size
        self.dtype = np.dtype(dtype)

    def config(self) -> dict:
        """Constructor arguments as JSON-ready data (what `bptt.io` saves beside the weights)."""
        return {"architecture": "rnn", "cell": self.kind, "input_size": self.input_size,
                "hidden_size": self.hidden_size, "output_size": self.output_size,
                "dtype": self.dtype.name, "loss": self.loss, "every_step": self.every_step}

    @classmethod
    def from_config(cls, config: dict, rng: np.random.Generator | None = None) -> "RNN":
        """An RNN built from `config()` output (weights freshly drawn from `rng`)."""
        return cls(config["cell"], config["input_size"], config["hidden_size"],
                   config["output_size"], rng or np.random.default_rng(0),
                   dtype=np.dtype(config["dtype"]), loss=config["loss"],
                   every_step=config["every_step"])

    def chain(self, inputs: np.ndarray, targets: np.ndarray,
              input_grad: bool = False) -> "SequenceChain":
        """The unrolled model on one batch, as a chain of T time steps for the executor."""
        return SequenceChain(self, inputs, targets, input_grad=input_grad)

    def step_loss(self, h: Tensor, target: np.ndarray, scale: float) -> Tensor:
        """The loss of one read-out step, already divided by the number of loss steps."""
        y = self.readout(h)
        if self.loss == "mse":
            return F.mse_loss(y, target) * scale
        return F.softmax_cross_entropy(y, target) * scale

    def predict(self, inputs: np.ndarray) -> np.ndarray:
        """Read-outs at every step, (T, B, output_size), computed without recording."""
        chain = SequenceChain(self, inputs, None)
        state, outputs = chain.initial_state(), []
        with no_grad():
            for t in range(chain.length):
                state = chain.advance(t, state)
                outputs.append(self.readout(Tensor(state[0])).data)
        return np.stack(outputs)


class SequenceChain(TapedChain):
    """An `RNN` unrolled over a batch of sequences: step t maps state t to state t+1.

    inputs: (T, B, D) floats of the model's dtype. targets: see `RNN`; None for prediction only.
    With `input_grad`, the gradient with respect to the inputs is collected in `self.input_grad`
    (T, B, D) as the steps are reversed.
    """

    def __init__(self, model: RNN, inputs: np.ndarray, targets: np.ndarray | None,
                 input_grad: bool = False):
        self.model = model
        self.inputs = _check_inputs(inputs, model)
        self.length, batch = self.inputs.shape[:2]
        self.batch = batch
        self.targets = None if targets is None else _check_targets(targets, model, self.inputs)
        self.loss_steps = self.length if model.every_step else 1
        self.input_grad = np.zeros_like(self.inputs) if input_grad else None
        self._extras: tuple[Tensor, ...] = ()

    def initial_state(self):
        return self.model.cell.initial_state(self.batch)

    def external_arrays(self):
        return ([self.inputs] + ([] if self.targets is None else [self.targets])
                + [p.data for p in self.model.parameters()])

    def step(self, i, state, need_loss):
        x = Tensor(self.inputs[i], requires_grad=self.input_grad is not None)
        self._extras = (x,) if self.input_grad is not None else ()
        state = self.model.cell(x, state)
        loss = None
        if need_loss and self.targets is not None and (self.model.every_step
                                                       or i == self.length - 1):
            target = self.targets[i] if self.model.every_step else self.targets
            loss = self.model.step_loss(self.model.cell.hidden(state), target,
                                        1.0 / self.loss_steps)
        return state, loss

    def recorded_extras(self, i):
        return self._extras

    def collect_input_grads(self, i, extras):
        if self.input_grad is not None and extras and extras[0].grad is not None:
            self.input_grad[i] += extras[0].grad


def _check_inputs(inputs, model: RNN) -> np.ndarray:
    if not isinstance(inputs, np.ndarray) or inputs.dtype not in FLOAT_DTYPES:
        kind = getattr(inputs, "dtype", type(inputs).__name__)
        raise TypeError(f"inputs must be a float32/float64 array, got {kind}")
    if inputs.ndim != 3 or inputs.shape[2] != model.input_size:
        raise ValueError(f"inputs must have shape (T, B, {model.input_size}), got {inputs.shape}")
    if inputs.shape[0] < 1 or inputs.shape[1] < 1:
        raise ValueError(f"inputs need T >= 1 steps and a batch >= 1, got shape {inputs.shape}")
    if inputs.dtype != model.dtype:
        raise TypeError(f"inputs have dtype {inputs.dtype} but the model is {model.dtype}")
    if not np.isfinite(inputs).all():
        bad = np.argwhere(~np.isfinite(inputs))[0]
        raise ValueError(f"inputs contain NaN or Inf (first at index {tuple(int(i) for i in bad)})")
    return inputs


def _check_targets(targets, model: RNN, inputs: np.ndarray) -> np.ndarray:
    T, B = inputs.shape[:2]
    lead = (T, B) if model.every_step else (B,)
    shape = lead + ((model.output_size,) if model.loss == "mse" else ())
    if not isinstance(targets, np.ndarray) or targets.shape != shape:
        got = getattr(targets, "shape", type(targets).__name__)
        raise ValueError(f"targets must have shape {shape}, got {got}")
    if model.loss == "xent" and not np.issubdtype(targets.dtype, np.integer):
        raise TypeError(f"cross-entropy targets must be class indices (integers), "
                        f"got dtype {targets.dtype}")
    if model.loss == "mse" and targets.dtype != model.dtype:
        raise TypeError(f"targets have dtype {targets.dtype} but the model is {model.dtype}")
    return targets
