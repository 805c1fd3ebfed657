"""Checkpoints to serve, written by `bptt-bench --save` (the layout the service loads)."""
import shutil

import pytest
from click.testing import CliRunner

pytest.importorskip("fastapi")

from bptt.cli import main as bench  # noqa: E402
from bptt.serve.main import build_app  # noqa: E402

# Small, quick recipes: the service is what is tested here, not the training.
RECIPES = {
    "iris": ["--task", "iris", "--epochs", "40"],
    "reber": ["--task", "reber", "--seq-len", "12", "--hidden", "8", "--steps", "20"],
    "adding": ["--task", "adding", "--cell", "lstm", "--seq-len", "10", "--hidden", "6",
               "--steps", "5"],
}


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory):
    """A directory holding the iris, reber (tanh RNN, softmax read-out at every step) and
    adding (LSTM, regression at the last step) checkpoints."""
    root = tmp_path_factory.mktemp("checkpoints")
    for name, recipe in RECIPES.items():
        result = CliRunner().invoke(bench, [*recipe, "--quiet", "--save", str(root / name)])
        assert result.exit_code == 0, result.output
    return root


@pytest.fixture
def model_dir(checkpoints, tmp_path):
    """A private copy of the checkpoints (for tests that damage or add files)."""
    return shutil.copytree(checkpoints, tmp_path / "models")


@pytest.fixture
def log_file(tmp_path):
    return tmp_path / "requests.jsonl"


@pytest.fixture
def client(checkpoints, log_file):
    from fastapi.testclient import TestClient
    with TestClient(build_app([checkpoints], log_file)) as client:
        yield client
