"""The Dockerfile: its structure, and the build-time training command it runs, run here.

There is no Docker engine on the machines that run this suite, so the image itself is not built;
what the image would do at build time (train and save the checkpoint it serves) is run as the
Dockerfile spells it, and the result is served.
"""
import json
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[3]
DOCKERFILE = ROOT / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def test_a_slim_python_base_and_a_non_root_user_that_serves():
    steps = instructions()
    assert steps[0][0] == "FROM" and re.fullmatch(r"python:3\.\d+-slim", steps[0][1])
    last = {kind: i for i, (kind, _) in enumerate(steps)}
    assert steps[last["USER"]][1] not in ("root", "0") and last["CMD"] > last["USER"]
    assert any(kind == "RUN" and 'pip install ".[serve]"' in rest for kind, rest in steps)
    cmd = json.loads(steps[last["CMD"]][1])  # exec form: no shell between
    assert cmd[:2] == ["bptt-serve", "/home/bptt/models"] and "0.0.0.0" in cmd


def test_the_image_copies_every_installed_package():
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"]
    copied = {rest.split()[0] for kind, rest in instructions() if kind == "COPY"}
    assert {p.split(".")[0] for p in packages} <= copied
    assert {"pyproject.toml", "README.md"} <= {w for kind, rest in instructions()
                                               if kind == "COPY" for w in rest.split()[:-1]}


def test_the_build_time_training_makes_the_checkpoint_the_image_serves(tmp_path):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from bptt.serve.main import build_app
    from tasks import iris

    runs = [rest for kind, rest in instructions() if kind == "RUN" and "bptt-bench" in rest]
    assert len(runs) == 1
    command = shlex.split(runs[0].split("&&")[0])
    assert command[0] == "bptt-bench" and "--save" in command
    saved = command[command.index("--save") + 1]
    assert Path(saved).parent == Path("/home/bptt/models")  # what CMD serves
    command[command.index("--save") + 1] = str(tmp_path / "models" / Path(saved).name)
    subprocess.run([sys.executable, "-m", "bptt.cli", *command[1:]], check=True, timeout=300)

    with TestClient(build_app([tmp_path / "models"], tmp_path / "log.jsonl")) as client:
        info = client.get("/v1/models").json()["models"]
        assert [m["name"] for m in info] == ["iris"]
        data = iris.load_data()
        raw = (data.x_test * data.std + data.mean).tolist()
        classes = client.post("/v1/models/iris/predict", json={"inputs": raw}).json()["classes"]
    accuracy = np.mean([iris.CLASSES.index(c) for c in classes] == data.y_test)
    assert accuracy == info[0]["config"]["metrics"]["test_accuracy"] >= 0.9
