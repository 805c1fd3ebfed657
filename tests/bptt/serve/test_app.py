"""Every route through FastAPI's TestClient, with the payloads it must refuse and why."""
import json
import threading

import numpy as np
import pytest

from bptt.serve.limits import MAX_BATCH
from tasks import iris

SETOSA = [5.1, 3.5, 1.4, 0.2]
VIRGINICA = [6.7, 3.0, 5.2, 2.3]
REBER_STEP = [1, 0, 0, 0, 0, 0, 0]


def post(client, name, body):
    if isinstance(body, (bytes, str)):
        return client.post(f"/v1/models/{name}/predict", content=body,
                           headers={"content-type": "application/json"})
    return client.post(f"/v1/models/{name}/predict", json=body)


def error_of(response, status=422):
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    return detail[0] if isinstance(detail, list) else detail


def test_predict_returns_classes_and_probabilities(client):
    response = post(client, "iris", {"inputs": [SETOSA, VIRGINICA]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == "iris" and body["classes"] == ["Iris-setosa", "Iris-virginica"]
    assert np.allclose(np.sum(body["probabilities"], axis=1), 1)
    assert np.shape(body["outputs"]) == (2, 3)
    assert response.headers["x-request-id"] == body["request_id"]


def test_predict_matches_the_checkpoint_on_the_whole_test_set(client, checkpoints):
    from bptt.training.pretrained import from_pretrained
    data = iris.load_data()
    raw = (data.x_test * data.std + data.mean).tolist()
    body = post(client, "iris", {"inputs": raw}).json()
    expected = from_pretrained(checkpoints / "iris").predict(np.array(raw))
    assert body["classes"] == [iris.CLASSES[k] for k in expected]


def test_named_features_may_come_in_any_order(client):
    names = ["PetalWidthCm", "PetalLengthCm", "SepalWidthCm", "SepalLengthCm"]
    shuffled = post(client, "iris", {"inputs": [SETOSA[::-1]], "features": names}).json()
    plain = post(client, "iris", {"inputs": [SETOSA]}).json()
    assert shuffled["outputs"] == plain["outputs"]


def test_rnn_predict_gives_a_class_per_step(client):
    body = post(client, "reber", {"inputs": [[REBER_STEP] * 5, [REBER_STEP] * 5]}).json()
    assert np.shape(body["probabilities"]) == (2, 5, 7)
    assert np.shape(body["classes"]) == (2, 5)
    body = post(client, "adding", {"inputs": [[[0.5, 1.0]] * 4]}).json()
    assert np.shape(body["outputs"]) == (1, 4, 1)
    assert body["probabilities"] is None and body["classes"] is None


@pytest.mark.parametrize("body, loc, message", [
    ({}, ["body", "inputs"], "Field required"),
    ({"inputs": []}, ["body", "inputs"], "at least 1 item"),
    ({"inputs": [[]]}, ["body", "inputs", 0], "at least 1 item"),
    ({"inputs": [["5.1", 3.5, 1.4, 0.2]]}, ["body", "inputs", 0, 0], "valid number"),
    ({"inputs": [[True, 3.5, 1.4, 0.2]]}, ["body", "inputs", 0, 0], "valid number"),
    ({"inputs": [[None, 3.5, 1.4, 0.2]]}, ["body", "inputs", 0, 0], "valid number"),
    ({"inputs": SETOSA}, ["body", "inputs", 0], "valid array"),
    ({"inputs": [SETOSA], "extra": 1}, ["body", "extra"], "Extra inputs are not permitted"),
    ({"inputs": [SETOSA, SETOSA[:3]]}, ["body", "inputs", 1],
     "row 1 has 3 values; model 'iris' takes 4 features (SepalLengthCm, SepalWidthCm, "
     "PetalLengthCm, PetalWidthCm)"),
    ({"inputs": [SETOSA], "features": ["a", "b", "c", "d"]}, ["body", "features"],
     "got ['a', 'b', 'c', 'd'], unknown ['a', 'b', 'c', 'd']"),
    ({"inputs": [SETOSA], "features": ["SepalLengthCm"] * 4}, ["body", "features"],
     "name each of the 4 features of model 'iris' once"),
    ({"inputs": [SETOSA] * (MAX_BATCH + 1)}, ["body", "inputs"],
     f"at most {MAX_BATCH} items"),
    ({"inputs": [[1e308] * 4]}, ["body", "inputs"], "too large for model 'iris'"),
])
def test_bad_payloads_are_422_with_the_place_and_the_reason(client, body, loc, message):
    error = error_of(post(client, "iris", body))
    assert error["loc"] == loc and message in error["msg"], error


@pytest.mark.parametrize("text", ['{"inputs": [[NaN, 3.5, 1.4, 0.2]]}',
                                  '{"inputs": [[Infinity, 3.5, 1.4, 0.2]]}',
                                  '{"inputs": [[-Infinity, 3.5, 1.4, 0.2]]}'])
def test_non_finite_numbers_are_422(client, text):
    error = error_of(post(client, "iris", text))
    assert error["loc"] == ["body", "inputs", 0, 0] and "finite number" in error["msg"]


@pytest.mark.parametrize("text", ["", "not json", '{"inputs": [[1, 2, 3, 4]]', "[1, 2]"])
def test_bodies_that_are_not_a_json_object_are_422(client, text):
    assert post(client, "iris", text).status_code == 422


@pytest.mark.parametrize("body, loc, message", [
    ({"inputs": [[REBER_STEP] * 3, [REBER_STEP] * 2]}, ["body", "inputs", 1],
     "sequence 1 has 2 steps, sequence 0 has 3; one batch has one length"),
    ({"inputs": [[REBER_STEP, REBER_STEP[:6]]]}, ["body", "inputs", 0, 1],
     "step 1 of sequence 0 has 6 values; model 'reber' takes 7 features (B, T, S, X, P, V, E)"),
    ({"inputs": [REBER_STEP]}, ["body", "inputs", 0, 0], "valid array"),
])
def test_bad_sequences_are_422(client, body, loc, message):
    error = error_of(post(client, "reber", body))
    assert error["loc"] == loc and message in error["msg"], error


@pytest.mark.parametrize("path", ["/v1/models/nope/predict", "/v1/models/..%2F..%2Fetc/predict",
                                  "/v1/models/%2e%2e/predict", "/v1/models/iris%00/predict",
                                  "/v1/models/iris/../iris/predict"])
def test_unknown_models_and_paths_in_the_name_are_404(client, path):
    response = client.post(path, json={"inputs": [SETOSA]})
    if "/../" not in path:  # the client itself resolves a literal /../
        assert response.status_code == 404, (path, response.text)
    assert client.get(path.replace("predict", "last")).status_code in (200, 404)


def test_unknown_model_404_names_the_loaded_ones(client):
    detail = error_of(post(client, "nope", {"inputs": [SETOSA]}), 404)
    assert detail == "unknown model 'nope'; loaded models: ['adding', 'iris', 'reber']"


def test_bodies_over_the_limit_are_413_declared_or_streamed(checkpoints, log_file):
    from fastapi.testclient import TestClient

    from bptt.serve.main import build_app
    body = json.dumps({"inputs": [SETOSA] * 60}).encode()
    assert 1000 < len(body)
    with TestClient(build_app([checkpoints], log_file, max_body_bytes=1000)) as client:
        assert post(client, "iris", body).status_code == 413  # Content-Length over the limit

        def chunks():  # no Content-Length: refused once the bytes pass the limit
            yield body[:600]
            yield body[600:]
        response = client.post("/v1/models/iris/predict", content=chunks(),
                               headers={"content-type": "application/json"})
        assert response.status_code == 413
        assert post(client, "iris", {"inputs": [SETOSA]}).status_code == 200
    statuses = [json.loads(line)["status"] for line in log_file.read_text().splitlines()]
    assert statuses == [413, 413, 200]


def test_last_returns_the_cached_activations_of_the_last_prediction(client):
    assert error_of(client.get("/v1/models/iris/last"), 404) == \
        "model 'iris' has made no prediction yet"
    first = post(client, "iris", {"inputs": [SETOSA]}).json()
    second = post(client, "iris", {"inputs": [VIRGINICA, SETOSA]}).json()
    last = client.get("/v1/models/iris/last").json()
    assert last["request_id"] == second["request_id"]
    assert last["raw_inputs"] == [VIRGINICA, SETOSA]
    assert last["outputs"] == second["outputs"] and last["backward"] is None
    assert np.shape(last["activations"]["layers.0.pre_activation"]) == (2, 32)
    mean = np.mean(last["inputs"], axis=0)  # standardised with the training statistics
    assert np.all(np.abs(mean) < 3)
    older = client.get("/v1/models/iris/last", params={"request_id": first["request_id"]})
    assert older.json()["raw_inputs"] == [SETOSA]
    assert error_of(client.get("/v1/models/iris/last", params={"request_id": "f" * 32}),
                    404).startswith("no prediction 'ffff")


def test_last_with_grad_gives_deltas_and_gradients_for_a_target(client):
    post(client, "iris", {"inputs": [SETOSA, VIRGINICA]})
    body = client.get("/v1/models/iris/last", params=[
        ("with_grad", "true"), ("target", "Iris-setosa"), ("target", "2")]).json()
    backward = body["backward"]
    assert backward["target"] == [0, 2] and backward["loss"] > 0
    assert np.shape(backward["deltas"]["layers.1.pre_activation"]) == (2, 3)
    assert np.shape(backward["gradients"]["layers.0.weight"]) == (4, 32)
    wrong = client.get("/v1/models/iris/last", params={"with_grad": "true",
                                                       "target": "Iris-virginica"}).json()
    assert wrong["backward"]["target"] == [2, 2]  # one value for every row
    assert wrong["backward"]["loss"] > backward["loss"]


def test_last_with_grad_for_sequences(client):
    post(client, "reber", {"inputs": [[REBER_STEP] * 3] * 2})
    targets = [("target", s) for s in "TPSTPS"]
    body = client.get("/v1/models/reber/last", params=[("with_grad", "true"), *targets]).json()
    assert body["backward"]["target"] == [[1, 4, 2], [1, 4, 2]]
    assert np.shape(body["backward"]["deltas"]["h"]) == (2, 3, 8)
    post(client, "adding", {"inputs": [[[0.5, 1.0]] * 4]})
    body = client.get("/v1/models/adding/last", params={"with_grad": "true",
                                                        "target": "1.25"}).json()
    assert body["backward"]["target"] == [[1.25]]
    assert set(body["backward"]["deltas"]) == {"h", "c", "pre_activation"}
    assert np.shape(body["backward"]["deltas"]["pre_activation"]) == (1, 4, 4 * 6)  # 4 gates


@pytest.mark.parametrize("model, params, message", [
    ("iris", {"with_grad": "true"}, "with_grad=true needs target="),
    ("iris", {"target": "0"}, "target is used only with with_grad=true"),
    ("iris", {"with_grad": "true", "target": "Iris-rosa"}, "not a class of model 'iris'"),
    ("iris", {"with_grad": "true", "target": "3"}, "an index in [0, 3)"),
    ("iris", {"with_grad": "true", "target": ["0", "1", "2"]},
     "target needs 2 values for the last prediction of model 'iris' (shape [2]"),
    ("adding", {"with_grad": "true", "target": "nan"}, "'nan' is not a finite number"),
    ("adding", {"with_grad": "true", "target": "one"}, "'one' is not a finite number"),
])
def test_bad_targets_are_422(client, model, params, message):
    inputs = [SETOSA, VIRGINICA] if model == "iris" else [[[0.5, 1.0]] * 4]
    post(client, model, {"inputs": inputs})
    error = error_of(client.get(f"/v1/models/{model}/last", params=params))
    assert error["loc"] == ["query", "target"] and message in error["msg"], error
    assert error_of(client.get("/v1/models/iris/last", params={"with_grad": "maybe"}))


def test_models_lists_configs_and_model_cards(client):
    models = {m["name"]: m for m in client.get("/v1/models").json()["models"]}
    assert sorted(models) == ["adding", "iris", "reber"]
    assert models["iris"]["features"][0] == "SepalLengthCm"
    assert models["iris"]["parameters"] == 4 * 32 + 32 + 32 * 3 + 3
    assert models["iris"]["config"]["sizes"] == [4, 32, 3]
    assert "## Intended use" in models["iris"]["model_card"]
    assert models["adding"]["kind"] == "rnn" and models["adding"]["classes"] is None


def test_healthz(client):
    assert client.get("/healthz").json() == {"status": "ok",
                                             "models": ["adding", "iris", "reber"]}


def test_metrics_count_requests_and_predictions(client):
    post(client, "iris", {"inputs": [SETOSA, VIRGINICA]})
    post(client, "iris", {"inputs": [SETOSA]})
    post(client, "iris", {"inputs": []})
    response = client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    lines = set(response.text.splitlines())
    route = "/v1/models/{name}/predict"
    assert f'bptt_serve_requests_total{{method="POST",route="{route}",status="200"}} 2' in lines
    assert f'bptt_serve_requests_total{{method="POST",route="{route}",status="422"}} 1' in lines
    assert 'bptt_serve_predictions_total{model="iris"} 3' in lines
    assert f'bptt_serve_request_duration_seconds_count{{route="{route}"}} 3' in lines
    assert f'bptt_serve_request_duration_seconds_bucket{{route="{route}",le="+Inf"}} 3' in lines


def test_one_json_line_per_request_with_its_id(client, log_file):
    ids = [post(client, "iris", {"inputs": [SETOSA]}).headers["x-request-id"],
           post(client, "iris", {"inputs": [[1, 2]]}).headers["x-request-id"],
           client.get("/healthz").headers["x-request-id"]]
    records = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert [r["request_id"] for r in records] == ids
    ok, bad, health = records
    assert ok["status"] == 200 and ok["model"] == "iris" and ok["batch"] == 1
    assert ok["inputs"]["max"] == 5.1 and ok["latency_ms"] > 0
    assert set(ok["activations"]) == {"layers.0.pre_activation", "layers.0.output",
                                      "layers.1.pre_activation", "layers.1.output"}
    assert set(ok["activations"]["layers.0.output"]) == {"mean", "std", "min", "max"}
    assert bad["status"] == 422 and "activations" not in bad
    assert health["route"] == "/healthz"


def test_the_log_rotates_by_size(checkpoints, tmp_path):
    from fastapi.testclient import TestClient

    from bptt.serve.main import build_app
    log = tmp_path / "requests.jsonl"
    with TestClient(build_app([checkpoints], log, log_max_bytes=2000, log_backups=2)) as client:
        for _ in range(20):
            post(client, "iris", {"inputs": [SETOSA]})
    files = sorted(tmp_path.glob("requests.jsonl*"))
    assert [f.name for f in files] == ["requests.jsonl", "requests.jsonl.1", "requests.jsonl.2"]
    for f in files:
        assert f.stat().st_size <= 2000
        assert all(json.loads(line)["status"] == 200 for line in f.read_text().splitlines())


def test_concurrent_requests_keep_their_own_records(client):
    rng = np.random.default_rng(0)
    payloads = [rng.uniform(1, 7, (1 + k % 3, 4)).round(2).tolist() for k in range(24)]
    answers = [None] * len(payloads)

    def send(k):
        answers[k] = post(client, "iris", {"inputs": payloads[k]}).json()

    threads = [threading.Thread(target=send, args=(k,)) for k in range(len(payloads))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len({a["request_id"] for a in answers}) == len(payloads)
    for payload, answer in zip(payloads, answers):
        record = client.get("/v1/models/iris/last",
                            params={"request_id": answer["request_id"]}).json()
        assert record["raw_inputs"] == payload and record["outputs"] == answer["outputs"]
        alone = post(client, "iris", {"inputs": payload}).json()
        assert alone["outputs"] == answer["outputs"]  # what it gives with no one else around
