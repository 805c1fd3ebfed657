"""Predictions with their cached activations, and the backward sweep behind them.

`predict` runs a served model on a batch and keeps what the forward pass computed: every
layer's pre-activation and output (MLP), every time step's state (RNN). `backward_sweep` takes
the gradient of the model's own loss for a target: the deltas (MLP: δ^(l) = ∂L/∂z^(l); RNN:
δh_t = ∂L/∂h_t, and ∂L/∂c_t for an LSTM) and every parameter gradient. The RNN's sweep is the
executor running the `full` plan on the model's chain; the MLP's is the engine's backward
through an inspected forward pass (`MLP(x, inspect=True)`). Both recompute the forward pass
from the recorded inputs: the same operations on the same values, so the activations are
bitwise those of the prediction (tested), and no graph is kept alive between requests.

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
from bptt.engine.losses import softmax_cross_entropy
from bptt.engine.chain import Chain
from bptt.engine.tensor import Tensor, no_grad
from bptt.serve.checkpoints import ServedModel
from checkpointing import Full, execute
from checkpointing.plan import ChainProfile

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
        following = records[k + 1].x if k + 1 < len(records) else record.z
        activations[f"layers.{k}.output"] = following
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
    """The gradient of the model's loss on the prediction's inputs against `target`.

    `target` is batch first: class indices (B,) for an MLP; for an RNN what its loss takes,
    (B, T) indices or (B, T, outputs) floats when it has a loss at every step, (B,) or
    (B, outputs) for the last step only. A ValueError (from the chain's checks) if it does not
    fit.
    """
    model = served.model
    with ENGINE_LOCK:
        for p in model.parameters():
            p.grad = None
        try:
            sweep = _mlp_sweep if served.kind == "mlp" else _rnn_sweep
            loss, deltas, gradients = sweep(model, prediction.inputs, target)
        finally:
            for p in model.parameters():
                p.grad = None
    return Sweep(target, loss, deltas, gradients)


def _mlp_sweep(mlp, x: np.ndarray, labels: np.ndarray):
    logits = mlp(x, inspect=True)
    records, mlp.layer_records = mlp.layer_records, []
    loss = softmax_cross_entropy(logits, labels)
    loss.backward()
    deltas = {f"layers.{k}.pre_activation": r.delta.copy() for k, r in enumerate(records)}
    return loss.item(), deltas, _gradients(mlp)


def _gradients(model) -> dict[str, np.ndarray]:
    """Copies of the parameter gradients, by name; the parameters' own are cleared."""
    gradients = {}
    for name, p in model.named_parameters():
        gradients[name] = np.zeros_like(p.data) if p.grad is None else p.grad.copy()
        p.grad = None
    return gradients


def _rnn_sweep(rnn, x: np.ndarray, target: np.ndarray):
    time_major = np.ascontiguousarray(x.transpose(1, 0, 2))
    if rnn.every_step:
        target = np.moveaxis(target, 1, 0)
    chain = _CarriedGradients(rnn.chain(time_major, np.ascontiguousarray(target)))
    run = execute(Full().plan(ChainProfile.uniform(chain.length)), chain)
    gradients = _gradients(rnn)
    # δh_t = the gradient carried back from the steps after t + step t's own loss gradient
    # (Werbos 1990); what the second part adds to the read-out's gradients is discarded.
    local = _local_loss_gradients(rnn, chain, target)
    names = _state_names(rnn)
    deltas = {}
    for k, name in enumerate(names):
        carried = np.stack(chain.carried(k), axis=1)
        deltas[name] = carried + local if name == "h" else carried
    return run.loss, deltas, gradients


def _local_loss_gradients(rnn, chain: "_CarriedGradients", target: np.ndarray) -> np.ndarray:
    """∂L_t/∂h_t for every step t (B, T, hidden), through the model's own step loss."""
    T = chain.length
    local = np.zeros((chain.inner.batch, T, rnn.hidden_size), rnn.dtype)
    scale = 1.0 / chain.inner.loss_steps
    for t in range(T) if rnn.every_step else (T - 1,):
        h = Tensor(chain.hidden[t], requires_grad=True)
        rnn.step_loss(h, target[t] if rnn.every_step else target, scale).backward()
        local[:, t] = h.grad
    return local


class _CarriedGradients(Chain):
    """A chain that runs `inner` and keeps, for each step t, its state s_{t+1} (h_t) and the
    gradient the reverse sweep carries into it from the steps after t (zero for the last)."""

    def __init__(self, inner):
        self.inner, self.length = inner, inner.length
        self._carried: list = [None] * inner.length
        self.hidden: list = [None] * inner.length

    def initial_state(self):
        return self.inner.initial_state()

    def advance(self, i, state):
        return self.inner.advance(i, state)

    def record(self, i, state):
        tape = self.inner.record(i, state)
        self.hidden[i] = tape.state[0].copy()
        return tape

    def reverse(self, i, tape, grad, with_loss=True, keep=False):
        self._carried[i] = None if grad is None else tuple(g.copy() for g in grad)
        return self.inner.reverse(i, tape, grad, with_loss, keep)

    def carried(self, k: int) -> list[np.ndarray]:
        """Part k of the carried gradient at every step (zeros where nothing was carried)."""
        shape = self.inner.initial_state()[k].shape
        return [np.zeros(shape, self.inner.model.dtype) if g is None else g[k]
                for g in self._carried]

    def profile(self):
        return self.inner.profile()

    def finish(self):
        self.inner.finish()

    def external_arrays(self):
        return self.inner.external_arrays()
