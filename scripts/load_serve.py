"""Latency and throughput of single Iris predictions from a real `bptt-serve` (one worker).

Starts the server in a child process on 127.0.0.1 (pinned to `--server-cpu`), trains an Iris
checkpoint for it first unless `--checkpoint` names one, and sends bounded loops of requests,
each one row (a test-set flower, in cm), from this process (pinned to `--client-cpu`) over
keep-alive connections with the standard library's `http.client` (the lightest client, so
that the figures are the server's more than the client's):
  - latency: `--requests` sequential requests on one connection; p50/p95/p99 of the round
    trip, and of the server's own time from its telemetry log (`latency_ms`);
  - throughput: `--clients` threads, each on its own connection, for `--seconds` s (or
    `--requests` requests in all, whichever ends first); predictions per second.
Traffic goes to the loopback interface only, and the server is always stopped.

    python scripts/load_serve.py                     # prints a Markdown table
    python scripts/load_serve.py --json results/load_serve.json
"""
from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import click
import numpy as np

from bptt.serve.process import HOST, ServerProcess
from bptt.training.files import atomic_write_json

TARGET_P50_MS, TARGET_RATE = 2.0, 500.0


def train_checkpoint(directory: Path) -> Path:
    """An Iris checkpoint in `directory`/iris, trained with bptt-bench's recipe (about 1 s)."""
    path = directory / "iris"
    subprocess.run([sys.executable, "-m", "bptt.cli", "--task", "iris", "--quiet", "--save",
                    str(path)], check=True)
    return path


def test_rows() -> list[list[float]]:
    """The Iris test split in cm: the payloads."""
    from tasks import iris
    data = iris.load_data()
    return (data.x_test * data.std + data.mean).tolist()


def send(connection: http.client.HTTPConnection, body: bytes) -> None:
    connection.request("POST", "/v1/models/iris/predict", body,
                       {"Content-Type": "application/json"})
    response = connection.getresponse()
    payload = response.read()
    if response.status != 200:
        raise RuntimeError(f"status {response.status}: {payload[:200]!r}")


def latencies(port: int, bodies: list[bytes], count: int) -> list[float]:
    """Round-trip seconds of `count` sequential requests on one connection."""
    connection = http.client.HTTPConnection(HOST, port, timeout=10)
    times = []
    try:
        for k in range(count):
            start = time.perf_counter()
            send(connection, bodies[k % len(bodies)])
            times.append(time.perf_counter() - start)
    finally:
        connection.close()
    return times


def throughput(port: int, bodies: list[bytes], clients: int, seconds: float,
               limit: int) -> tuple[int, float]:
    """(requests answered, seconds) with `clients` threads for at most `seconds` or `limit`."""
    done, lock, stop = [0], threading.Lock(), time.perf_counter() + seconds
    errors = []

    def client(k: int) -> None:
        connection = http.client.HTTPConnection(HOST, port, timeout=10)
        try:
            while time.perf_counter() < stop:
                with lock:
                    if done[0] >= limit:
                        return
                    done[0] += 1
                send(connection, bodies[(k + done[0]) % len(bodies)])
        except Exception as error:  # reported after the run
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise RuntimeError(f"{len(errors)} clients failed, first: {errors[0]}")
    return done[0], elapsed


def server_latencies(log_file: Path, first_request: int, count: int) -> list[float]:
    """The server's own `latency_ms` (as seconds) for the predictions counted from
    `first_request` (0-based, over every predict line in the log)."""
    lines = [json.loads(line) for line in log_file.read_text().splitlines()]
    predicts = [r["latency_ms"] / 1e3 for r in lines if r["route"].endswith("/predict")]
    return predicts[first_request:first_request + count]


def percentiles(seconds: list[float]) -> dict[str, float]:
    a = np.asarray(seconds) * 1e3
    return {f"p{q}_ms": float(np.percentile(a, q)) for q in (50, 95, 99)}


@click.command()
@click.option("--checkpoint", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="An Iris checkpoint directory (default: train one now).")
@click.option("--requests", default=3000, show_default=True,
              help="Sequential requests timed, and the cap of the throughput phase.")
@click.option("--warmup", default=300, show_default=True)
@click.option("--clients", default=2, show_default=True, help="Threads of the throughput phase.")
@click.option("--seconds", default=10.0, show_default=True, help="Cap of the throughput phase.")
@click.option("--server-cpu", default=1, show_default=True, type=int)
@click.option("--client-cpu", default=0, show_default=True, type=int)
@click.option("--json", "json_path", type=click.Path(path_type=Path))
def main(checkpoint, requests, warmup, clients, seconds, server_cpu, client_cpu, json_path):
    """Measure single-prediction latency and throughput of bptt-serve with one worker."""
    os.sched_setaffinity(0, {client_cpu})
    with tempfile.TemporaryDirectory(prefix="load-serve-") as work:
        work = Path(work)
        checkpoint = checkpoint or train_checkpoint(work)
        bodies = [json.dumps({"inputs": [row]}).encode() for row in test_rows()]
        log_file = work / "requests.jsonl"
        with ServerProcess([checkpoint], log_file=log_file, cpu=server_cpu) as server:
            latencies(server.port, bodies, warmup)
            round_trips = latencies(server.port, bodies, requests)
            answered, elapsed = throughput(server.port, bodies, clients, seconds, requests)
        inside = server_latencies(log_file, warmup, requests)
    rate = answered / elapsed
    row = {"requests": requests, "warmup": warmup, "clients": clients,
           "round_trip": percentiles(round_trips), "server": percentiles(inside),
           "throughput_requests": answered, "throughput_seconds": elapsed,
           "predictions_per_s": rate, "server_cpu": server_cpu, "client_cpu": client_cpu}
    p50 = row["round_trip"]["p50_ms"]
    click.echo("| measure | p50 | p95 | p99 |\n|---|---|---|---|")
    for name, key in (("round trip (client)", "round_trip"), ("inside the server", "server")):
        q = row[key]
        click.echo(f"| {name} | {q['p50_ms']:.3f} ms | {q['p95_ms']:.3f} ms | "
                   f"{q['p99_ms']:.3f} ms |")
    click.echo(f"\nthroughput: {rate:.0f} predictions/s ({answered} requests of one row in "
               f"{elapsed:.2f} s, {clients} client threads)")
    click.echo(f"targets: p50 <= {TARGET_P50_MS} ms: {'met' if p50 <= TARGET_P50_MS else 'NOT met'}"
               f" ({p50:.3f}); >= {TARGET_RATE:.0f}/s: "
               f"{'met' if rate >= TARGET_RATE else 'NOT met'} ({rate:.0f})")
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(json_path, row)


if __name__ == "__main__":
    main()
