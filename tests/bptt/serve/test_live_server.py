"""A real `bptt-serve` process on 127.0.0.1 and a free port, called over HTTP with httpx."""
import json
from concurrent.futures import ThreadPoolExecutor

import pytest

httpx = pytest.importorskip("httpx")

from bptt.serve.process import ServerProcess  # noqa: E402

SETOSA = [5.1, 3.5, 1.4, 0.2]


def test_a_real_server_answers_every_route_and_stops(checkpoints, tmp_path):
    log_file = tmp_path / "requests.jsonl"
    server = ServerProcess([checkpoints], log_file=log_file, start_timeout=60)
    with server, httpx.Client(base_url=server.url, timeout=10) as client:
        assert server.url.startswith("http://127.0.0.1:")
        assert client.get("/healthz").json()["models"] == ["adding", "iris", "reber"]
        answer = client.post("/v1/models/iris/predict", json={"inputs": [SETOSA]})
        assert answer.status_code == 200 and answer.json()["classes"] == ["Iris-setosa"]
        assert client.post("/v1/models/iris/predict", json={"inputs": [[1]]}).status_code == 422
        assert client.post("/v1/models/nope/predict", json={"inputs": [SETOSA]}).status_code \
            == 404

        # concurrent clients, each reading back its own record by its request id
        payloads = [[[4.0 + k / 10, 3.0, 1.5 + k / 5, 0.3]] for k in range(16)]
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(
                lambda p: client.post("/v1/models/iris/predict", json={"inputs": p}).json(),
                payloads))
        for payload, answer_k in zip(payloads, answers):
            record = client.get("/v1/models/iris/last",
                                params={"request_id": answer_k["request_id"]}).json()
            assert record["raw_inputs"] == payload

        swept = client.get("/v1/models/reber/last",
                           params={"with_grad": "true", "target": "B"})
        assert swept.status_code == 404  # reber has not predicted yet
        assert "+Inf" in client.get("/metrics").text
        assert len(client.get("/v1/models").json()["models"]) == 3
    assert server.process.returncode is not None  # stopped
    records = [json.loads(line) for line in log_file.read_text().splitlines()]
    # one line per request: the start-up check of /healthz, then each of this test's
    assert len(records) == 1 + 1 + 3 + 16 + 16 + 1 + 1 + 1
    assert records[2]["request_id"] == answer.headers["x-request-id"]


def test_a_server_that_cannot_start_reports_why(tmp_path):
    with pytest.raises(RuntimeError, match="exited with code 2: .*Error: .*does not exist"):
        with ServerProcess([tmp_path / "nowhere"], log_file=tmp_path / "log.jsonl"):
            pass
