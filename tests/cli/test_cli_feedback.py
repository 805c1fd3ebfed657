"""bptt-bench --backward and compare --backwards."""
import json

import pytest
from click.testing import CliRunner

from bptt.cli import main
from bptt.training.pretrained import from_pretrained
from tasks import iris


def invoke(*args):
    return CliRunner().invoke(main, list(args))


def errors(result):
    return [line for line in result.output.splitlines() if line.startswith("Error:")]


def test_iris_trains_with_a_backward_variant(tmp_path):
    path = tmp_path / "run.json"
    result = invoke("--task", "iris", "--backward", "fa", "--epochs", "3", "--json", str(path),
                    "--save", str(tmp_path / "model"))
    assert result.exit_code == 0, result.output
    assert "backward fa" in result.stdout
    report = json.loads(path.read_text())
    assert report["backward"] == "fa"
    run = iris.train(iris.load_data(), seed=42, epochs=3, backward="fa")
    assert report["final_train_loss"] == run.final.train_loss
    # The feedback matrices come back with the weights.
    loaded = from_pretrained(tmp_path / "model").model
    assert loaded.feedback.B_1.data.tobytes() == run.model.feedback.B_1.data.tobytes()


def test_a_sequence_task_trains_with_a_backward_variant(tmp_path):
    path = tmp_path / "run.json"
    result = invoke("--task", "adding", "--seq-len", "50", "--steps", "3", "--hidden", "8",
                    "--backward", "kp", "--strategy", "checkpoint", "--json", str(path),
                    "--quiet")
    assert result.exit_code == 0, result.output
    assert json.loads(path.read_text())["backward"] == "kp"


def test_compare_backwards_on_iris_writes_json_and_plot(tmp_path):
    path, plot = tmp_path / "cmp.json", tmp_path / "cmp.png"
    result = invoke("compare", "--backwards", "backprop,fa,sign", "--task", "iris", "--seeds",
                    "0-1", "--epochs", "2", "--json", str(path), "--plot", str(plot))
    assert result.exit_code == 0, result.output
    for text in ("backprop", "fa", "sign", "gap (pp)", "±"):
        assert text in result.stdout
    report = json.loads(path.read_text())
    assert [r["backward"] for r in report["rows"]] == ["backprop", "fa", "sign"]
    assert report["seeds"] == [0, 1]
    assert len(report["rows"][1]["runs"][0]["history"][0]["alignment"]) == 2
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compare_backwards_on_a_sequence_task(tmp_path):
    plot = tmp_path / "seq.png"
    result = invoke("compare", "--backwards", "backprop,dfa", "--task", "adding", "--seq-len",
                    "50", "--steps", "2", "--hidden", "8", "--plot", str(plot))
    assert result.exit_code == 0, result.output
    assert "cell.W_h start/end" in result.stdout and plot.exists()


@pytest.mark.parametrize("args, message", [
    (["--task", "iris", "--backward", "bp"], "Invalid value for '--backward': 'bp'"),
    (["compare", "--backwards", "backprop,bp", "--task", "iris"],
     "unknown backward variant 'bp'"),
    (["compare", "--backwards", "fa", "--task", "iris", "--seeds", "9-1"], "seeds must be"),
    (["compare", "--backwards", "fa", "--task", "adding", "--seeds", "0-1"],
     "--seeds averages iris and digits runs"),
    (["compare", "--seeds", "0-1"], "--seeds is for compare --backwards"),
    (["--task", "iris", "--backward", "dfa", "--strategy", "truncated"],
     "backward variant 'dfa' cannot run under the truncated strategy"),
    (["--task", "digits"], "--task digits runs in the weight-transport study"),
])
def test_bad_backward_input_is_one_error_line(args, message, tmp_path):
    path = tmp_path / "out.json"
    result = invoke(*args, "--json", str(path))
    assert result.exit_code == 2, result.output
    assert len(errors(result)) == 1 and message in errors(result)[0], result.output
    assert not path.exists()
