"""A real sweep on a real Dask LocalCluster of two worker processes: rows stored, resumed,
reproduced bit for bit on another, existing cluster; a worker killed mid-point loses that point
only."""
import os
import signal
import subprocess
import sys
import time

import pytest

pytest.importorskip("distributed")
psutil = pytest.importorskip("psutil")

from bptt.studies.points import points_from_config  # noqa: E402
from bptt.studies.store import Store  # noqa: E402
from bptt.studies.sweep import run_point, run_sweep  # noqa: E402

TINY = {"strategies": ["full", "revolve(slots=3, snapshots=float16)", "full(tapes=int8)",
                       "uoro"],
        "cells": ["rnn", "gru"], "seq_lens": [8], "tasks": ["adding"], "seeds": [0],
        "steps": 3, "hidden": 4, "batch": 2}
TIMES = ("seconds", "train_seconds")


def numbers(store):
    return [{k: v for k, v in row.items() if k not in TIMES} for row in store.rows()]


def test_a_tiny_sweep_runs_on_two_workers_resumes_and_reproduces(tmp_path):
    points = points_from_config(TINY)
    first, second = Store(tmp_path / "a.db"), Store(tmp_path / "b.db")
    started = []
    outcome = run_sweep(points, first, workers=2, on_start=started.append)
    assert started == [8] and outcome.finished == 8 and not outcome.lost
    rows = numbers(first)
    assert len(rows) == 8
    by_strategy = {(r["strategy"], r["cell"]): r for r in rows}
    assert by_strategy[("full", "rnn")]["mean_grad_cosine"] is None
    assert 0.99 < by_strategy[("full(tapes=int8)", "gru")]["mean_grad_cosine"] <= 1
    assert (by_strategy[("revolve(slots=3, snapshots=float16)", "rnn")]["peak_cache_bytes"]
            < by_strategy[("full", "rnn")]["peak_cache_bytes"])
    again = run_sweep(points, first, workers=2)   # everything is there: nothing runs
    assert again.skipped == 8 and again.finished == 0
    from distributed import LocalCluster
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0") as cluster:
        # an existing cluster, used as it is: the same sweep there gives the same numbers
        run_sweep(points, second, scheduler=cluster.scheduler_address)
        assert len(cluster.workers) == 2
    assert numbers(second) == rows
    assert run_point(points[1].params())["losses"] == [
        r for r in rows if r["strategy"] == points[1].strategy
        and r["cell"] == points[1].cell][0]["losses"]


def _worker_processes(parent: int) -> list:
    """The Dask worker processes a sweep started (spawned children running a worker)."""
    found = []
    for child in psutil.Process(parent).children(recursive=True):
        try:
            line = " ".join(child.cmdline())
        except psutil.Error:
            continue
        if "spawn_main" in line or "multiprocessing.forkserver" in line:
            found.append(child)
    return found


def _sweep(tmp_path, db, env):
    args = [sys.executable, "-m", "bptt.cli", "sweep", "--db", str(db), "--workers", "2",
            "--strategies", "full;revolve(slots=4)", "--cells", "rnn,gru",
            "--seq-lens", "400", "--seeds", "0,1", "--steps", "12", "--hidden", "8"]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, cwd=tmp_path)


def _wait_for_rows(db, at_least, proc, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if db.exists():
            try:
                store = Store(db)
                n = len(store.done())
                store.close()
                if n >= at_least:
                    return n
            except Exception:
                pass
        time.sleep(0.2)
    return None


def test_a_killed_worker_loses_its_point_only_and_resume_finishes_it(tmp_path):
    db = tmp_path / "kill.db"
    env = dict(os.environ, DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES="0")
    proc = _sweep(tmp_path, db, env)
    try:
        assert _wait_for_rows(db, 1, proc) is not None, proc.stderr.read() if proc.poll() else ""
        workers = _worker_processes(proc.pid)
        assert workers, "no worker process found"
        workers[0].send_signal(signal.SIGKILL)
        out, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    store = Store(db)
    kept = len(store.done())
    store.close()
    if proc.returncode:  # the point on the killed worker was lost and said so
        assert proc.returncode == 1 and "lost" in err and "run the same command again" in err
        assert 8 - kept == 1  # one point at a time per worker: only its point
    resumed = _sweep(tmp_path, db, dict(os.environ))
    out, err = resumed.communicate(timeout=180)
    assert resumed.returncode == 0, err
    assert f"{kept} already in" in err
    store = Store(db)
    assert len(store.done()) == 8
    assert all(len(r["losses"]) == 12 for r in store.rows())
    store.close()


def test_ctrl_c_keeps_what_is_finished(tmp_path):
    db = tmp_path / "int.db"
    proc = _sweep(tmp_path, db, dict(os.environ))
    try:
        assert _wait_for_rows(db, 1, proc) is not None
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    store = Store(db)
    rows = store.rows()
    store.close()
    if proc.returncode == 0:  # the sweep finished before the signal arrived
        assert len(rows) == 8
        return
    assert proc.returncode == 130, err
    assert "interrupted" in err and "safe in" in err and "Traceback" not in err
    assert rows and all(len(r["losses"]) == 12 for r in rows)
