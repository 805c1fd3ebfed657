"""An `RNN` unrolled over a batch of sequences as a chain of time steps, in engine operations,
and the checks of the batches it is given."""
from __future__ import annotations

import numpy as np

from bptt.engine.chain import TapedChain
from bptt.engine.tensor import FLOAT_DTYPES, Tensor
from checkpointing.plan import ChainProfile


class SequenceChain(TapedChain):
    """An `RNN` unrolled over a batch of sequences: step t maps state t to state t+1.

    inputs: (T, B, D) floats of the model's dtype. targets: see `RNN`; None for prediction only.
    With `input_grad`, the gradient with respect to the inputs is collected in `self.input_grad`
    (T, B, D) as the steps are reversed. `step`: the training step keying dropout's mask of
    time step t (call t), so a recomputed time step draws its mask again.
    """

    def __init__(self, model, inputs: np.ndarray, targets: np.ndarray | None,
                 input_grad: bool = False, step: int | None = None):
        self.model = model
        self.training_step = step
        self.inputs = check_inputs(inputs, model)
        self.length, batch = self.inputs.shape[:2]
        self.batch = batch
        self.targets = None if targets is None else check_targets(targets, model, self.inputs)
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
            h = self.model.dropout(self.model.cell.hidden(state), step=self.training_step,
                                   call=i)
            loss = self.model.step_loss(h, target, 1.0 / self.loss_steps)
        return state, loss

    def recorded_extras(self, i):
        return self._extras

    def profile(self):
        """Uniform sizes; with a loss on the last step only, that step's larger tape for all
        (an overestimate of the other steps by the loss's cache, so that plans still fit)."""
        profile = super().profile()
        if self.model.every_step or self.targets is None or self.length == 1:
            return profile
        last = self.measure_step(self.length - 1, self.initial_state())[1]
        return ChainProfile.uniform(self.length, profile.state_bytes[0],
                                    max(profile.tape_bytes[0], last))

    def collect_input_grads(self, i, extras):
        if self.input_grad is not None and extras and extras[0].grad is not None:
            self.input_grad[i] += extras[0].grad


def all_finite(array: np.ndarray) -> bool:
    """No NaN or Inf in `array`, without a temporary as large as it (min and max propagate NaN;
    an Inf is the min or the max): a sequence's check must not cost memory that grows with T."""
    return bool(np.isfinite(array.min()) and np.isfinite(array.max()))


def check_inputs(inputs, model) -> np.ndarray:
    """`inputs` if they are a finite (T, B, D) array of the model's float dtype; otherwise a
    TypeError or ValueError naming what is wrong (dtype, shape, the first NaN/Inf)."""
    if not isinstance(inputs, np.ndarray) or inputs.dtype not in FLOAT_DTYPES:
        kind = getattr(inputs, "dtype", type(inputs).__name__)
        raise TypeError(f"inputs must be a float32/float64 array, got {kind}")
    if inputs.ndim != 3 or inputs.shape[2] != model.input_size:
        raise ValueError(f"inputs must have shape (T, B, {model.input_size}), got {inputs.shape}")
    if inputs.shape[0] < 1 or inputs.shape[1] < 1:
        raise ValueError(f"inputs need T >= 1 steps and a batch >= 1, got shape {inputs.shape}")
    if inputs.dtype != model.dtype:
        raise TypeError(f"inputs have dtype {inputs.dtype} but the model is {model.dtype}")
    if not all_finite(inputs):
        bad = np.argwhere(~np.isfinite(inputs))[0]
        raise ValueError(f"inputs contain NaN or Inf (first at index {tuple(int(i) for i in bad)})")
    return inputs


def check_targets(targets, model, inputs: np.ndarray) -> np.ndarray:
    """`targets` if they fit the model's loss and the inputs' (T, B): (T, B, O) or (B, O)
    finite floats for mse, (T, B) or (B,) class indices for xent; otherwise a clear error."""
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
    if model.loss == "mse" and not all_finite(targets):
        bad = np.argwhere(~np.isfinite(targets))[0]
        raise ValueError(f"targets contain NaN or Inf (first at index "
                         f"{tuple(int(i) for i in bad)})")
    return targets
