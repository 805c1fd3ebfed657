"""Inspect one forward and backward pass: every layer's (or time step's) cache and delta, as NumPy.

    from bptt.inspect import inspect_batch
    seen = inspect_batch(mlp, x, labels)          # fresh gradients: no zero_grad() needed
    seen.layers[0].input.T @ seen.layers[0].delta  # == mlp.layers[0].weight.grad

For an `MLP` (the chain of layers) each layer l gives x^(l-1) (its input, after dropout for the
head), z^(l) = x^(l-1) W^(l) + b^(l), x^(l) = f(z^(l)) and δ^(l) = ∂L/∂z^(l), L the mean
softmax cross-entropy (the loss the MLP is trained with). For an `RNN` each time step t gives
x_t, the state it read and the state it wrote, the input projection a_t = x_t W_x + b and the
recurrent product u_t = h_{t-1} W_h (their sum is the pre-activation z_t of the tanh and LSTM
cells), ∂L/∂state_{t+1} (the gradient arriving from the future and from the step's own loss)
and δ_t = ∂L/∂a_t (and ∂L/∂u_t, which differs only for the GRU), under any memory strategy: the
result says which steps the plan ran forward more than once (recomputed).

Each inspection starts from fresh gradients (the parameters' `.grad` is cleared first and holds
this batch's gradient afterwards), so a leftover gradient cannot spoil `∂L/∂W = xᵀδ`.
The RNN's arrays other than the cache proper are rebuilt from it after the sweep: a_t and u_t
by the step's two products, δ_t by the cell core's own backward formula
(`bptt.engine.cell_functions`), from the state gradient the engine retained.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bptt.engine import losses
from bptt.engine.chain import Chain
from bptt.engine.tensor import FLOAT_DTYPES
from bptt.nn.linear import MLP
from bptt.nn.rnn import RNN, SequenceChain
from checkpointing.executor import execute
from checkpointing.full import Full

# f'(z) of each MLP activation, written as the textbook states it: the check of δ's recursion
# must not reuse the engine's backward, which it is meant to check.
DERIVATIVES = {"tanh": lambda z: 1 - np.tanh(z) ** 2,
               "sigmoid": lambda z: (s := 1 / (1 + np.exp(-z))) * (1 - s),
               "relu": lambda z: (z > 0).astype(z.dtype)}


@dataclass(frozen=True)
class LayerArrays:
    """Layer l of an inspected MLP batch (B rows): `input` x^(l-1) (B, in) as the layer used
    it, `pre_activation` z^(l) (B, out), `output` x^(l) (B, out; the logits for the last
    layer), `delta` δ^(l) = ∂L/∂z^(l) (B, out), `mask` the dropout scale factors applied to
    the input (None without dropout), and the layer's `weight` (in, out) with the gradients
    `weight_grad` and `bias_grad` this batch gave."""

    name: str
    input: np.ndarray
    pre_activation: np.ndarray
    output: np.ndarray
    delta: np.ndarray
    mask: np.ndarray | None
    weight: np.ndarray
    weight_grad: np.ndarray
    bias_grad: np.ndarray


@dataclass(frozen=True)
class MLPInspection:
    """An MLP's forward and backward on one batch: `loss` (mean cross-entropy, nats) and one
    `LayerArrays` per layer, first to last."""

    loss: float
    activation: str
    layers: tuple[LayerArrays, ...]

    def arrays(self) -> dict[str, np.ndarray]:
        """Every array by name: "layers.0.input", "layers.0.delta", "layers.1.weight_grad"..."""
        return _flat(self.layers, ("input", "pre_activation", "output", "delta",
                                   "weight_grad", "bias_grad"))

    def summary(self) -> list[dict]:
        """One row per layer and array: name, symbol, shape, mean and Frobenius norm."""
        symbols = {"input": "x^(l-1)", "pre_activation": "z^(l)", "output": "x^(l)",
                   "delta": "δ^(l)"}
        return _summary(self.layers, symbols)

    def formula_errors(self) -> dict[str, float]:
        """The largest absolute difference of each backpropagation identity, per layer:
        ∂L/∂W^(l) = x^(l-1)ᵀ δ^(l) and ∂L/∂b^(l) = Σ_batch δ^(l) against the engine's gradients,
        and δ^(l) = (δ^(l+1) W^(l+1)ᵀ) ⊙ mask ⊙ f'(z^(l)) between layers. All near 0 (rounding)."""
        errors = {}
        for k, layer in enumerate(self.layers):
            errors[f"{layer.name}.weight_grad"] = _max_diff(layer.input.T @ layer.delta,
                                                            layer.weight_grad)
            errors[f"{layer.name}.bias_grad"] = _max_diff(layer.delta.sum(axis=0),
                                                          layer.bias_grad)
            if k + 1 < len(self.layers):
                above = self.layers[k + 1]
                back = above.delta @ above.weight.T
                if above.mask is not None:
                    back = back * above.mask
                errors[f"{layer.name}.delta"] = _max_diff(
                    back * DERIVATIVES[self.activation](layer.pre_activation), layer.delta)
        return errors


@dataclass(frozen=True)
class StepArrays:
    """Time step t of an inspected RNN batch (B sequences, hidden H, G = H, 4H or 3H gate
    columns): `x` x_t (B, D); `state_in` and `state_out` the states read and written (tuples of
    (B, H): (h,) or (h, c)); `input_projection` a_t = x_t W_x + b (B, G) and
    `recurrent_product` u_t = h_{t-1} W_h (+ b_h for the GRU) (B, G); `grad_out`
    ∂L/∂state_{t+1}, from later steps and the step's own loss; `grad_in` ∂L/∂state_t;
    `delta_a` = ∂L/∂a_t and `delta_u` = ∂L/∂u_t (the same array except for the GRU, whose
    reset gate acts on u); `forwards` how many times the plan ran this step forward."""

    name: str
    x: np.ndarray
    state_in: tuple[np.ndarray, ...]
    state_out: tuple[np.ndarray, ...]
    input_projection: np.ndarray
    recurrent_product: np.ndarray
    grad_out: tuple[np.ndarray, ...]
    grad_in: tuple[np.ndarray, ...]
    delta_a: np.ndarray
    delta_u: np.ndarray
    forwards: int

    @property
    def pre_activation(self) -> np.ndarray:
        """z_t = a_t + u_t (tanh and LSTM cells; the GRU's candidate uses r ⊙ u instead)."""
        return self.input_projection + self.recurrent_product

    @property
    def delta(self) -> np.ndarray:
        """δ_t = ∂L/∂z_t (= ∂L/∂a_t = ∂L/∂u_t for the tanh and LSTM cells)."""
        return self.delta_a


@dataclass(frozen=True)
class RNNInspection:
    """An RNN's forward and backward on one batch under `strategy`: `loss` (the mean of the
    step losses), one `StepArrays` per time step, the parameter gradients by name, and
    `recomputed`: the steps the plan ran forward more than once (none under `full`)."""

    loss: float
    strategy: str
    steps: tuple[StepArrays, ...]
    grads: dict[str, np.ndarray]
    recomputed: tuple[int, ...]

    def arrays(self) -> dict[str, np.ndarray]:
        """Every array by name: "steps.0.x", "steps.3.delta_a", "steps.3.state_out.0"..."""
        return _flat(self.steps, ("x", "state_in", "state_out", "input_projection",
                                  "recurrent_product", "grad_out", "grad_in", "delta_a",
                                  "delta_u"))

    def summary(self) -> list[dict]:
        """One row per step and array: name, shape, mean and Frobenius norm."""
        return _summary(self.steps, {"x": "x_t", "input_projection": "a_t",
                                     "recurrent_product": "u_t", "delta_a": "∂L/∂a_t",
                                     "delta_u": "∂L/∂u_t"})

    def formula_errors(self, model: RNN) -> dict[str, float]:
        """Largest absolute differences of ∂L/∂W_x = Σ_t x_tᵀ δa_t, ∂L/∂W_h = Σ_t h_{t-1}ᵀ δu_t
        and ∂L/∂b = Σ_t Σ_batch δa_t against the engine's gradients."""
        W_x, W_h, b_x, b_h = model.cell.affine_parameters()
        names = {id(p): n for n, p in model.named_parameters()}
        sums = {W_x: sum(s.x.T @ s.delta_a for s in self.steps),
                W_h: sum(s.state_in[0].T @ s.delta_u for s in self.steps),
                b_x: sum(s.delta_a.sum(axis=0) for s in self.steps)}
        if b_h is not None:
            sums[b_h] = sum(s.delta_u.sum(axis=0) for s in self.steps)
        return {names[id(p)]: _max_diff(v, self.grads[names[id(p)]]) for p, v in sums.items()}


def inspect_batch(model, inputs: np.ndarray, targets: np.ndarray, *, strategy=None,
                  step: int | None = None):
    """Run `model` forward and backward on one batch and return what every layer or time step
    cached, with its delta: an `MLPInspection` for an `MLP` (inputs (B, in), targets class
    indices (B,)), an `RNNInspection` for an `RNN` (inputs (T, B, D), targets as for
    `model.chain`) under `strategy` (default `Full()`).

    Gradients are fresh: every parameter's `.grad` is cleared first and holds this batch's
    gradient afterwards. `step`: a training step, to apply that step's dropout masks (None:
    no dropout). Bad shapes, dtypes or labels are a ValueError or TypeError naming them.
    """
    if isinstance(model, MLP):
        if strategy is not None:
            raise ValueError("an MLP is inspected with every layer cached (strategy=None); "
                             "strategies are for inspecting an RNN's time steps")
        return _inspect_mlp(model, inputs, targets, step)
    if isinstance(model, RNN):
        return _inspect_rnn(model, inputs, targets, strategy or Full(), step)
    raise TypeError(f"inspect_batch inspects an MLP or an RNN, got {type(model).__name__}")


def _inspect_mlp(model: MLP, inputs, labels, step) -> MLPInspection:
    _check_batch(model, inputs, labels)
    model.zero_grad()
    logits = model(inputs, inspect=True, step=step)
    loss = losses.softmax_cross_entropy(logits, labels)
    loss.backward()
    layers = []
    last = len(model.layers) - 1
    for k, (record, layer) in enumerate(zip(model.layer_records, model.layers)):
        mask = None
        if k == last and step is not None and model.dropout.p:
            mask = model.dropout.mask(record.x.shape, record.x.dtype, step, call=k)
        layers.append(LayerArrays(f"layers.{k}", record.x.copy(), record.z.copy(),
                                  record.out.copy(), record.delta.copy(), mask,
                                  layer.weight.data.copy(), layer.weight.grad.copy(),
                                  layer.bias.grad.copy()))
    model.layer_records = []  # no graph kept alive by the model
    return MLPInspection(loss.item(), model.activation, tuple(layers))


def _check_batch(model: MLP, inputs, labels) -> None:
    if not isinstance(inputs, np.ndarray) or inputs.dtype not in FLOAT_DTYPES:
        kind = getattr(inputs, "dtype", type(inputs).__name__)
        raise TypeError(f"inputs must be a float32/float64 array, got {kind}")
    if inputs.dtype != model.dtype:
        raise TypeError(f"inputs have dtype {inputs.dtype} but the model is {model.dtype}")
    if inputs.ndim != 2 or inputs.shape[1] != model.sizes[0] or len(inputs) < 1:
        raise ValueError(f"inputs must have shape (batch >= 1, {model.sizes[0]}), got "
                         f"{inputs.shape}")
    if not np.isfinite(inputs).all():
        raise ValueError("inputs contain NaN or Inf")
    if not isinstance(labels, np.ndarray) or not np.issubdtype(labels.dtype, np.integer):
        kind = getattr(labels, "dtype", type(labels).__name__)
        raise TypeError(f"labels must be an integer array of class indices, got {kind}")
    if labels.shape != (len(inputs),):
        raise ValueError(f"labels must have shape ({len(inputs)},), got {labels.shape}")
    classes = model.sizes[-1]
    if labels.min() < 0 or labels.max() >= classes:
        raise ValueError(f"labels must be class indices in [0, {classes}), got values from "
                         f"{labels.min()} to {labels.max()}")


class _Observed(Chain):
    """A `SequenceChain` seen through: counts each step's forwards, keeps the state gradients
    the engine retains, and the last reversed tape of every step."""

    def __init__(self, inner: SequenceChain):
        self.inner, self.length = inner, inner.length
        self.forwards = [0] * inner.length
        self.seen: dict[int, tuple] = {}

    def initial_state(self):
        return self.inner.initial_state()

    def advance(self, i, state):
        self.forwards[i] += 1
        return self.inner.advance(i, state)

    def record(self, i, state):
        self.forwards[i] += 1
        tape = self.inner.record(i, state)
        for output in tape.outputs:
            if output.creator is not None:
                output.retain_grad()  # the gradient arriving at state i+1, all paths summed
        return tape

    def reverse(self, i, tape, grad, with_loss=True, keep=False):
        state_in = tuple(t.data.copy() for t in tape.inputs)
        state_out = tuple(a.copy() for a in tape.state)
        grad_in = self.inner.reverse(i, tape, grad, with_loss, keep)
        grad_out = tuple(np.zeros_like(o.data) if o.grad is None else o.grad.copy()
                         for o in tape.outputs)
        self.seen[i] = (state_in, state_out, grad_out, tuple(g.copy() for g in grad_in))
        return grad_in

    def profile(self):
        return self.inner.profile()

    def finish(self):
        self.inner.finish()

    def external_arrays(self):
        return self.inner.external_arrays()


def _inspect_rnn(model: RNN, inputs, targets, strategy, step) -> RNNInspection:
    # The engine's graph of each step (not the array-fused chain): its state gradients can be
    # retained. Exact strategies give it the same gradients as `full`, bit for bit.
    chain = _Observed(SequenceChain(model, inputs, targets, step=step))
    model.zero_grad()
    run = execute(strategy.plan(chain.profile()), chain)
    cell = model.cell
    W_x, W_h, b_x, b_h = (None if p is None else p.data for p in cell.affine_parameters())
    steps = []
    for t in range(chain.length):
        if t not in chain.seen:
            raise ValueError(f"{strategy} never reversed step {t}: nothing to inspect there")
        state_in, state_out, grad_out, grad_in = chain.seen[t]
        x = inputs[t]
        a = x @ W_x + b_x
        u = state_in[0] @ W_h if b_h is None else state_in[0] @ W_h + b_h
        _, cache = cell.core.forward(a.copy(), u.copy(), state_in)
        da, du, _ = cell.core.backward(list(grad_out), state_in, cache, np.empty_like(a),
                                       np.empty_like(u) if cell.core.own_du else None)
        steps.append(StepArrays(f"steps.{t}", x.copy(), state_in, state_out, a, u, grad_out,
                                grad_in, da.copy(), du.copy(), chain.forwards[t]))
    grads = {name: np.zeros_like(p.data) if p.grad is None else p.grad.copy()
             for name, p in model.named_parameters()}
    recomputed = tuple(t for t, n in enumerate(chain.forwards) if n > 1)
    return RNNInspection(run.loss, str(strategy), tuple(steps), grads, recomputed)


def _flat(records, fields) -> dict[str, np.ndarray]:
    arrays = {}
    for record in records:
        for field in fields:
            value = getattr(record, field)
            if isinstance(value, tuple):
                arrays.update({f"{record.name}.{field}.{k}": v for k, v in enumerate(value)})
            else:
                arrays[f"{record.name}.{field}"] = value
    return arrays


def _summary(records, symbols: dict[str, str]) -> list[dict]:
    rows = []
    for record in records:
        for field, symbol in symbols.items():
            value = getattr(record, field)
            rows.append({"name": record.name, "array": field, "symbol": symbol,
                         "shape": tuple(value.shape), "mean": float(value.mean()),
                         "norm": float(np.linalg.norm(value))})
    return rows


def _max_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))))


__all__ = ["LayerArrays", "MLPInspection", "RNNInspection", "StepArrays", "inspect_batch"]
