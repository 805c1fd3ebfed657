"""What the service accepts and returns: pydantic models, and the checks against a served model.

Validation has two stages, both at the boundary and both reported as 422 with the location of
the bad value: pydantic checks the structure (a body with `inputs` and optionally `features`,
nothing else; finite JSON numbers, not strings or booleans; 1 to `MAX_BATCH` rows; 1 to
`MAX_STEPS` steps), then `inputs_for` checks it against the model the URL names (feature count
and names, one sequence length per batch) and returns the array. A `PayloadError` carries the
location and the message for the second stage.
"""
from __future__ import annotations

from typing import Annotated, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from bptt.serve.checkpoints import ServedModel
from bptt.serve.limits import MAX_BATCH, MAX_STEPS

Finite = Annotated[float, Field(strict=True, allow_inf_nan=False)]
Row = Annotated[list[Finite], Field(min_length=1)]
Sequence = Annotated[list[Row], Field(min_length=1, max_length=MAX_STEPS)]


class PayloadError(ValueError):
    """A request that is well formed but does not fit the model: `loc` says where (a tuple of
    keys and indices, as pydantic's), the message what was expected."""

    def __init__(self, loc: tuple, message: str):
        super().__init__(message)
        self.loc = loc


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")
    features: list[str] | None = Field(
        None, description="The name of each input column, in the order of the rows; any order "
                          "of the model's features (GET /v1/models lists them). Default: the "
                          "model's order.")


class TableRequest(_Request):
    """A batch for an MLP: `inputs` (batch, features), raw measurements (Iris: cm)."""

    inputs: Annotated[list[Row], Field(min_length=1, max_length=MAX_BATCH)]


class SequenceRequest(_Request):
    """A batch for an RNN: `inputs` (batch, steps, features), every sequence of one length."""

    inputs: Annotated[list[Sequence], Field(min_length=1, max_length=MAX_BATCH)]


def request_model(served: ServedModel) -> type[_Request]:
    """The request body the model takes."""
    return TableRequest if served.kind == "mlp" else SequenceRequest


def inputs_for(served: ServedModel, request: _Request) -> np.ndarray:
    """The request's inputs as a float64 array of the model's shape, columns in the model's
    feature order. A PayloadError names the first row or sequence that does not fit."""
    order = _column_order(served, request.features)
    n = len(served.features)
    width = f"{n} features ({', '.join(served.features)})"
    if served.kind == "mlp":
        for i, row in enumerate(request.inputs):
            if len(row) != n:
                raise PayloadError(("body", "inputs", i), f"row {i} has {len(row)} values; "
                                   f"model {served.name!r} takes {width}")
    else:
        steps = len(request.inputs[0])
        for i, sequence in enumerate(request.inputs):
            if len(sequence) != steps:
                raise PayloadError(("body", "inputs", i), f"sequence {i} has {len(sequence)} "
                                   f"steps, sequence 0 has {steps}; one batch has one length")
            for t, row in enumerate(sequence):
                if len(row) != n:
                    raise PayloadError(("body", "inputs", i, t), f"step {t} of sequence {i} has "
                                       f"{len(row)} values; model {served.name!r} takes {width}")
    x = np.array(request.inputs, dtype=np.float64)
    return x if order is None else x[..., order]


def _column_order(served: ServedModel, features: list[str] | None) -> list[int] | None:
    if features is None or list(features) == list(served.features):
        return None
    if len(features) != len(served.features) or set(features) != set(served.features):
        unknown = sorted(set(features) - set(served.features))
        raise PayloadError(("body", "features"), f"features must name each of the "
                           f"{len(served.features)} features of model {served.name!r} once "
                           f"({', '.join(served.features)}); got {list(features)[:20]}"
                           + (f", unknown {unknown[:20]}" if unknown else ""))
    return [features.index(name) for name in served.features]


def target_for(served: ServedModel, batch: int, steps: int | None,
               values: list[str]) -> np.ndarray:
    """The `target` query values as the array `backward_sweep` takes, batch first.

    Classifiers take class names or indices, regressions numbers; as many as the loss has
    targets (B for an MLP, B x T for an RNN with a loss at every step, B for the last step
    only, times the outputs for "mse"), in row-major order, or one value for all of them.
    """
    model = served.model
    if served.kind == "mlp":
        shape = (batch,)
    else:
        shape = (batch, steps) if model.every_step else (batch,)
        if model.loss == "mse":
            shape += (model.output_size,)
    count = int(np.prod(shape))
    if len(values) not in (1, count):
        raise PayloadError(("query", "target"), f"target needs {count} values for the last "
                           f"prediction of model {served.name!r} (shape {list(shape)}, "
                           f"row-major) or one value for all, got {len(values)}")
    if served.classes is None:
        parsed = [_number(v) for v in values]
        dtype = model.dtype
    else:
        parsed = [_class_index(served, v) for v in values]
        dtype = np.int64
    return np.broadcast_to(np.array(parsed, dtype=dtype), (count,)).reshape(shape).copy()


def _number(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not np.isfinite(number):
        raise PayloadError(("query", "target"), f"target {value!r} is not a finite number")
    return number


def _class_index(served: ServedModel, value: str) -> int:
    if value in served.classes:
        return served.classes.index(value)
    if value.isdigit() and int(value) < len(served.classes):
        return int(value)
    raise PayloadError(("query", "target"), f"target {value!r} is not a class of model "
                       f"{served.name!r}: give one of {list(served.classes)} or an index in "
                       f"[0, {len(served.classes)})")


class PredictResponse(BaseModel):
    """The prediction of one batch. Batch first; for an RNN every step has its own output."""

    request_id: str = Field(description="Also the X-Request-ID header; GET .../last?request_id=")
    model: str
    outputs: list[Any] = Field(description="Read-outs: logits of a classifier, values of a "
                                           "regression; (B, outputs) or (B, T, outputs)")
    probabilities: list[Any] | None = Field(description="softmax(outputs), classifiers only")
    classes: list[Any] | None = Field(description="The most probable class name; (B,) or (B, T)")


class BackwardSweep(BaseModel):
    """The gradient of the model's loss against `target` at the recorded prediction."""

    target: list[Any]
    loss: float = Field(description="The model's loss: mean cross-entropy (nats) or mean "
                                    "squared error")
    deltas: dict[str, list[Any]] = Field(
        description="MLP: layers.{l}.pre_activation δ = ∂L/∂z (B, width); RNN: h (and c) "
                    "∂L/∂h_t (B, T, hidden), from later steps and step t's own loss, and "
                    "pre_activation ∂L/∂a_t (B, T, gates x hidden)")
    gradients: dict[str, list[Any]] = Field(
        description="∂L/∂parameter by the model's parameter names and shapes (bptt's layout: "
                    "weights (in, out), not model.safetensors' transposed PyTorch layout)")


class LastResponse(BaseModel):
    """A recorded prediction with its cached activations, and the backward sweep if asked."""

    request_id: str
    model: str
    created: float = Field(description="Unix time of the prediction (s)")
    raw_inputs: list[Any] = Field(description="As sent, columns in the model's order")
    inputs: list[Any] = Field(description="As the model saw them (standardised if trained so)")
    activations: dict[str, list[Any]] = Field(
        description="MLP: layers.{l}.pre_activation and layers.{l}.output (B, width); RNN: h "
                    "(and c for an LSTM), the state after each step (B, T, hidden)")
    outputs: list[Any]
    probabilities: list[Any] | None
    backward: BackwardSweep | None = Field(description="With ?with_grad=true&target=...")


class ModelInfo(BaseModel):
    """A loaded model: what it takes and returns, its config and model card."""

    name: str
    kind: str = Field(description="mlp: inputs (B, features); rnn: inputs (B, T, features)")
    features: list[str]
    classes: list[str] | None
    parameters: int
    config: dict[str, Any]
    model_card: str | None


class ModelList(BaseModel):
    models: list[ModelInfo]
