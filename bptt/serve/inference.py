"""Predictions with their cached activations, and the backward sweep behind them.

`predict` runs a served model on a batch and keeps what the forward pass computed: every
layer's pre-activation and output (MLP), every time step's state (RNN). `backward_sweep` takes
the gradient of the model's own loss for a target: the deltas (MLP: δ^(l) = ∂L/∂z^(l); RNN:
∂L/∂h_t, ∂L/∂c_t for an LSTM, and ∂L/∂a_t of the cell's pre-activation) and every parameter
gradient, by `bptt.inspect.inspect_batch` (the RNN under the executor's `full` plan). It
recomputes the forward pass from the recorded inputs, so no graph is kept alive between
requests; the recomputed activations agree with the prediction's (tested).

`ENGINE_LOCK` serialises every use of the engine by the service: its grad mode (`no_grad`) is
process-wide, an inspected forward writes the model's `layer_records`, and a sweep accumulates
into the model's shared parameter gradients. The GIL serialises this NumPy work on small arrays
anyway, so with one worker the lock costs no throughput.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np

from bptt.engine.functions import softmax
from bptt.engine.tensor import Tensor, no_grad
from bptt.inspect import inspect_batch
from bptt.serve.checkpoints import ServedModel

ENGINE_LOCK = threading.Lock()


class OutputOverflow(ValueError):
    """The inputs are finite but so large that the model's activations or outputs are not."""


@dataclass(frozen=True)
class Prediction:
    """One prediction, as kept for `GET /v1/models/{name}/last`; its arrays are read-only.

    Batch first: `raw_inputs` as sent and `inputs` as the model saw them (standardised when the
    checkpoint says so): (B, features) for an MLP, (B, T, features) for an RNN. `activations`
    by name: "layers.{l}.pre_activation" z^(l) and "layers.{l}.output" (B, width) for an MLP;
    "h" (and "c" for an LSTM) (B, T, hidden), state after each step, for an RNN. `outputs` are
    the read-outs (logits for a classifier), `probabilities` their softmax (None for "mse").
    `created` is the Unix time of the prediction (s).
    """

    request_id: str
    model: str
    created: float
    raw_inputs: np.ndarray
    inputs: np.ndarray
    activations: dict[str, np.ndarray]
    outputs: np.ndarray
    probabilities: np.ndarray | None

    def predicted_classes(self, served: ServedModel) -> list | None:
        """Class names of the largest probability: (B,) for an MLP, (B, T) for an RNN."""
        if self.probabilities is None:
            return None
        return np.asarray(served.classes, dtype=object)[self.probabilities.argmax(-1)].tolist()


@dataclass(frozen=True)
class Sweep:
    """The backward sweep of a prediction for `target`: the loss (the model's own: mean
    cross-entropy or mean squared error, nats or squared output units), `deltas` shaped like
    the activations they differentiate, and `gradients` by parameter name, shaped like it."""

    target: np.ndarray
    loss: float
    deltas: dict[str, np.ndarray]
    gradients: dict[str, np.ndarray]


def predict(served: ServedModel, raw_inputs: np.ndarray, request_id: str) -> Prediction:
    """Run `served` on `raw_inputs` (already validated: finite, of the model's shape) and keep
    its activations. An OutputOverflow if the activations or outputs are not finite."""
    with ENGINE_LOCK, no_grad(), np.errstate(over="ignore", invalid="ignore"):
        inputs = served.model_inputs(raw_inputs)
        if served.kind == "mlp":
            outputs, activations = _mlp_forward(served.model, inputs)
        else:
            outputs, activations = _rnn_forward(served.model, inputs)
        probabilities = None
        if served.classes is not None:
            probabilities = softmax(Tensor(outputs), axis=-1).data
    for name, array in (("standardised inputs", inputs), *activations.items(),
                        ("outputs", outputs)):
        if not np.isfinite(array).all():
            raise OutputOverflow(f"the inputs are too large for model {served.name!r}: its "
                                 f"{name} overflow to inf or nan")
    arrays = [raw_inputs, inputs, outputs, probabilities, *activations.values()]
    for array in arrays:
        if array is not None:
            array.flags.writeable = False
    return Prediction(request_id, served.name, time.time(), raw_inputs, inputs, activations,
                      outputs, probabilities)


def _mlp_forward(mlp, x: np.ndarray):
    logits = mlp(x, inspect=True)
    records, mlp.layer_records = mlp.layer_records, []
    activations = {}
    for k, record in enumerate(records):
        activations[f"layers.{k}.pre_activation"] = record.z
        activations[f"layers.{k}.output"] = record.out
    return logits.data, activations


def _rnn_forward(rnn, x: np.ndarray):
    chain = rnn.chain(np.ascontiguousarray(x.transpose(1, 0, 2)), None)
    state, states, outputs = chain.initial_state(), [], []
    try:
        for t in range(chain.length):
            state = chain.advance(t, state)
            states.append(state)
            outputs.append(rnn.readout(Tensor(state[0])).data)
    finally:
        chain.finish()
    activations = {name: np.stack([s[k] for s in states], axis=1)
                   for k, name in enumerate(_state_names(rnn))}
    return np.stack(outputs, axis=1), activations


def _state_names(rnn) -> tuple[str, ...]:
    return ("h", "c") if rnn.kind == "lstm" else ("h",)


def backward_sweep(served: ServedModel, prediction: Prediction, target: np.ndarray) -> Sweep:
    """The gradient of the model's loss on the prediction's inputs against `target`, through
    `bptt.inspect.inspect_batch` (an RNN under the `full` plan).

    `target` is batch first: class indices (B,) for an MLP; for an RNN what its loss takes,
    (B, T) indices or (B, T, outputs) floats when it has a loss at every step, (B,) or
    (B, outputs) for the last step only. Deltas: MLP "layers.{l}.pre_activation" δ^(l)
    (B, width); RNN "h" (and "c") ∂L/∂h_t (B, T, hidden), from the later steps and step t's
    own loss, and "pre_activation" ∂L/∂a_t (B, T, gates x hidden), the cell's pre-activation.
    """
    model = served.model
    with ENGINE_LOCK:
        try:
            if served.kind == "mlp":
                seen = inspect_batch(model, prediction.inputs, target)
                deltas = {f"{layer.name}.pre_activation": layer.delta for layer in seen.layers}
                gradients = {name: p.grad.copy() for name, p in model.named_parameters()}
            else:
                time_major = np.ascontiguousarray(prediction.inputs.transpose(1, 0, 2))
                if model.every_step:
                    target = np.ascontiguousarray(np.moveaxis(target, 1, 0))
                seen = inspect_batch(model, time_major, target)
                if model.every_step:
                    target = np.moveaxis(target, 0, 1)
                deltas = {name: np.stack([s.grad_out[k] for s in seen.steps], axis=1)
                          for k, name in enumerate(_state_names(model))}
                deltas["pre_activation"] = np.stack([s.delta_a for s in seen.steps], axis=1)
                gradients = seen.grads
        finally:
            model.zero_grad()  # the shared model keeps no request's gradient
    return Sweep(target, seen.loss, deltas, gradients)
