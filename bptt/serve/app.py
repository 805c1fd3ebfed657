"""The HTTP service: FastAPI routes over the loaded checkpoints.

    POST /v1/models/{name}/predict   a batch -> outputs, probabilities, classes (+ request id)
    GET  /v1/models/{name}/last      the last prediction's cached activations;
                                     ?request_id=ID for a given one, ?with_grad=true&target=...
                                     adds the backward sweep's deltas and parameter gradients
    GET  /v1/models                  the loaded models, their configs and model cards
    GET  /healthz                    liveness
    GET  /metrics                    Prometheus counters

Unknown models are 404; bad payloads 422 with the location and what was expected; bodies over
the limit 413. `name` is only ever a key into the models loaded at start-up.
"""
from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import PlainTextResponse
from pydantic import ValidationError

from bptt.serve.checkpoints import ServedModel
from bptt.serve.inference import OutputOverflow, backward_sweep, predict
from bptt.serve.limits import DEFAULT_KEEP, DEFAULT_MAX_BODY_BYTES
from bptt.serve.records import RecentPredictions
from bptt.serve.schemas import (LastResponse, ModelInfo, ModelList, PayloadError,
                                PredictResponse, SequenceRequest, TableRequest, inputs_for,
                                request_model, target_for)
from bptt.serve.telemetry import Counters, RequestLog, TelemetryMiddleware, summarize

PROMETHEUS_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def create_app(models: dict[str, ServedModel], log: RequestLog, *,
               max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
               keep: int = DEFAULT_KEEP) -> TelemetryMiddleware:
    """The service for `models` (by name) as an ASGI application: each request logged to `log`
    (closed at shutdown), bodies over `max_body_bytes` refused, the last `keep` predictions of
    each model kept. The telemetry wraps the whole FastAPI application, so that it logs the
    status that went out, whoever answered (a route, FastAPI's body limit, its error handler).
    `.app` is the FastAPI application."""
    recent = {name: RecentPredictions(keep) for name in models}
    counters = Counters(sorted(models))

    @asynccontextmanager
    async def lifespan(app):
        yield
        log.close()

    # FastAPI's own limit: a declared Content-Length over it is refused before the body is
    # read, a chunked body as soon as it passes it (413).
    app = FastAPI(title="bptt-serve", version="1", lifespan=lifespan,
                  max_body_size=max_body_bytes,
                  description="bptt checkpoints with the cached activations and backward "
                              "sweep of every prediction.")

    def lookup(name: str) -> ServedModel:
        served = models.get(name)
        if served is None:
            raise HTTPException(404, f"unknown model {name[:80]!r}; loaded models: "
                                     f"{sorted(models)}")
        return served

    body_schema = {"requestBody": {"required": True, "content": {"application/json": {
        "schema": {"oneOf": [{"$ref": "#/components/schemas/TableRequest"},
                             {"$ref": "#/components/schemas/SequenceRequest"}]}}}}}

    @app.post("/v1/models/{name}/predict", response_model=PredictResponse,
              openapi_extra=body_schema)
    async def predict_route(name: str, request: Request):
        """Predict a batch: an MLP takes `inputs` (B, features), an RNN (B, T, features)."""
        served = lookup(name)
        try:
            body = request_model(served).model_validate_json(await request.body())
            raw = inputs_for(served, body)
        except ValidationError as error:
            # without the offending input: it may be huge, or a NaN that JSON cannot carry
            raise RequestValidationError([{"type": e["type"], "loc": ("body", *e["loc"]),
                                           "msg": e["msg"]} for e in error.errors()]) from None
        except PayloadError as error:
            raise _unprocessable(error.loc, str(error)) from None
        request_id = request.state.request_id
        try:
            prediction = await run_in_threadpool(predict, served, raw, request_id)
        except OutputOverflow as error:
            raise _unprocessable(("body", "inputs"), str(error)) from None
        recent[name].add(prediction)
        request.state.telemetry.update(
            model=name, batch=len(raw), steps=raw.shape[1] if raw.ndim == 3 else None,
            inputs=summarize(raw),
            activations={k: summarize(v) for k, v in prediction.activations.items()},
            outputs=summarize(prediction.outputs))
        probabilities = prediction.probabilities
        return {"request_id": request_id, "model": name,
                "outputs": prediction.outputs.tolist(),
                "probabilities": None if probabilities is None else probabilities.tolist(),
                "classes": prediction.predicted_classes(served)}

    @app.get("/v1/models/{name}/last", response_model=LastResponse)
    def last_route(name: str, request: Request, request_id: str | None = None,
                   with_grad: bool = False, target: list[str] | None = Query(None)):
        """The last prediction of `name` (or the one of `request_id`, among the recent ones)
        with its activations; `with_grad=true&target=...` adds the backward sweep."""
        served = lookup(name)
        prediction = recent[name].get(request_id)
        if prediction is None:
            which = (f"no prediction {request_id[:80]!r} among the last {keep} of model "
                     f"{name!r}") if request_id else f"model {name!r} has made no prediction yet"
            raise HTTPException(404, which)
        if target is not None and not with_grad:
            raise _unprocessable(("query", "target"), "target is used only with with_grad=true")
        request.state.telemetry.update(model=name, recorded_request_id=prediction.request_id,
                                       with_grad=with_grad)
        sweep = None
        if with_grad:
            if not target:
                raise _unprocessable(("query", "target"), "with_grad=true needs target=...: "
                                     "the class (or value) each prediction should have had")
            steps = prediction.inputs.shape[1] if served.kind == "rnn" else None
            try:
                array = target_for(served, len(prediction.inputs), steps, target)
                sweep = backward_sweep(served, prediction, array)
            except PayloadError as error:
                raise _unprocessable(error.loc, str(error)) from None
            request.state.telemetry["loss"] = sweep.loss
        return {"request_id": prediction.request_id, "model": name,
                "created": prediction.created, "raw_inputs": prediction.raw_inputs.tolist(),
                "inputs": prediction.inputs.tolist(),
                "activations": {k: v.tolist() for k, v in prediction.activations.items()},
                "outputs": prediction.outputs.tolist(),
                "probabilities": None if prediction.probabilities is None
                else prediction.probabilities.tolist(),
                "backward": None if sweep is None else {
                    "target": sweep.target.tolist(), "loss": sweep.loss,
                    "deltas": {k: v.tolist() for k, v in sweep.deltas.items()},
                    "gradients": {k: v.tolist() for k, v in sweep.gradients.items()}}}

    @app.get("/v1/models", response_model=ModelList)
    def models_route():
        """The loaded models: inputs they take, classes, configs and model cards."""
        return {"models": [ModelInfo(name=s.name, kind=s.kind, features=list(s.features),
                                     classes=None if s.classes is None else list(s.classes),
                                     parameters=s.parameter_count(), config=s.config,
                                     model_card=s.card)
                           for s in models.values()]}

    @app.get("/healthz")
    def healthz():
        """Liveness: the service answers and has its models."""
        return {"status": "ok", "models": sorted(models)}

    @app.get("/metrics", response_class=PlainTextResponse)
    def metrics():
        """Request counts by route and status, durations, predicted rows by model."""
        return PlainTextResponse(counters.render(), media_type=PROMETHEUS_TYPE)

    # The request bodies are read by hand (their model depends on the model named in the URL),
    # so their schemas are registered for the OpenAPI document here.
    _register_schemas(app, (TableRequest, SequenceRequest))
    service = TelemetryMiddleware(app, log, counters)
    service.models = sorted(models)
    return service


def _unprocessable(loc: tuple, message: str) -> RequestValidationError:
    return RequestValidationError([{"type": "value_error", "loc": loc, "msg": message}])


def _register_schemas(app: FastAPI, models) -> None:
    build = app.openapi

    def openapi():
        if app.openapi_schema is None:
            schema = build()
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for model in models:
                components[model.__name__] = model.model_json_schema(
                    ref_template="#/components/schemas/{model}")
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi
