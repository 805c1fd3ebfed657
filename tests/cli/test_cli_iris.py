import json

import numpy as np
import pytest
from click.testing import CliRunner

from bptt.cli import main
from bptt.training.pretrained import from_pretrained
from tasks import iris


def invoke(*args):
    return CliRunner().invoke(main, ["--task", "iris", *args])


def test_trains_and_prints_a_summary():
    result = invoke("--task", "iris", "--epochs", "3")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("iris: MLP 4-32-3 (a chain of 2 layers), seed 42, 3 epochs")
    assert "trivial predictor 0.2" in lines[0]
    assert lines[1].split() == ["epoch", "train", "loss", "train", "acc", "test", "loss",
                                "test", "acc"]
    assert [line.split()[0] for line in lines[3:6]] == ["1", "2", "3"]  # every epoch of 3
    assert lines[6].split()[:4] == ["strategy", "peak", "cache", "traced"]
    assert lines[8].split()[0] == "full" and lines[8].split()[-1] == "0"
    assert "training iris" in result.stderr  # the progress bar, plain without a TTY


def test_quiet_prints_nothing():
    result = invoke("--epochs", "2", "--quiet")
    assert result.exit_code == 0 and result.output == ""


def test_json_report_holds_the_figures_and_the_history(tmp_path):
    path = tmp_path / "report.json"
    result = invoke("--task", "iris", "--epochs", "4", "--seed", "1", "--lr", "0.05",
                    "--batch", "8", "--json", str(path), "--quiet")
    assert result.exit_code == 0, result.output
    report = json.loads(path.read_text())
    assert {"task", "strategy", "seed", "test_accuracy", "test_loss", "final_train_loss",
            "history"} <= set(report)
    assert (report["task"], report["strategy"], report["seed"]) == ("iris", "full", 1)
    assert (report["epochs"], report["lr"], report["batch"]) == (4, 0.05, 8)
    assert len(report["history"]) == 4
    assert {"train_loss", "train_accuracy", "test_loss", "test_accuracy"} <= \
        set(report["history"][0])
    assert report["test_accuracy"] == report["history"][-1]["test_accuracy"]
    # The CLI runs the same computation as the library.
    run = iris.train(iris.load_data(), seed=1, epochs=4, lr=0.05, batch_size=8)
    assert report["final_train_loss"] == run.final.train_loss


def test_plot_writes_a_png(tmp_path):
    path = tmp_path / "curves.png"
    result = invoke("--epochs", "2", "--plot", str(path), "--quiet")
    assert result.exit_code == 0, result.output
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_saved_model_loads_back_with_identical_predictions(tmp_path):
    result = invoke("--epochs", "3", "--seed", "2", "--save", str(tmp_path / "model"),
                    "--quiet")
    assert result.exit_code == 0, result.output
    pretrained = from_pretrained(tmp_path / "model")
    loaded, config = pretrained.model, pretrained.config
    assert config["task"] == "iris" and config["sizes"] == [4, 32, 3]
    data = iris.load_data()
    np.testing.assert_array_equal(config["input_mean"], data.mean)
    run = iris.train(data, seed=2, epochs=3)
    assert loaded(data.x_test).data.tobytes() == run.model(data.x_test).data.tobytes()
    assert config["metrics"]["test_accuracy"] == run.final.test_accuracy
    assert config["training"] == {**run.recipe, "strategy": "full"}
    raw = data.x_test * data.std + data.mean  # cm, as a user has them
    assert np.mean(pretrained.predict(raw) == data.y_test) == run.final.test_accuracy
    card = (tmp_path / "model" / "README.md").read_text()
    assert f"| test_accuracy | {run.final.test_accuracy:.6g} |" in card


@pytest.mark.parametrize("args, message", [
    (["--task", "mnist"], "Invalid value for '--task': 'mnist' is not one of"),
    (["--epochs", "0"], "Invalid value for '--epochs'"),
    (["--lr", "-0.1"], "Invalid value for '--lr': must be a finite number > 0, got -0.1"),
    (["--lr", "nan"], "Invalid value for '--lr'"),
    (["--batch", "0"], "Invalid value for '--batch'"),
    (["--seed", "-1"], "Invalid value for '--seed'"),
])
def test_bad_values_are_one_line_usage_errors(args, message):
    result = invoke(*args)
    assert result.exit_code == 2
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and message in errors[0]
    assert "Traceback" not in result.output


def test_unwritable_outputs_are_rejected_before_training(tmp_path):
    missing = tmp_path / "no" / "such" / "dir"
    for option, path in (("--json", missing / "r.json"), ("--plot", missing / "p.png"),
                         ("--json", tmp_path)):
        result = invoke(option, str(path))
        assert result.exit_code == 2, result.output
        assert f"Invalid value for '{option}'" in result.output
        assert "training" not in result.output
    (tmp_path / "file").write_text("")
    result = invoke("--save", str(tmp_path / "file"))
    assert result.exit_code == 2
    assert "exists and is not a directory" in result.output
    result = invoke("--save", str(tmp_path / "file" / "model"))
    assert result.exit_code == 2
    assert "is not a writable directory" in result.output


def test_a_write_that_fails_after_training_is_a_usage_error(tmp_path, monkeypatch):
    def refuse(path, data):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("bptt.training.files.atomic_write_bytes", refuse)
    result = invoke("--epochs", "1", "--quiet", "--json", str(tmp_path / "r.json"))
    assert result.exit_code == 2
    assert "cannot write" in result.output and "Permission denied" in result.output
    assert "Traceback" not in result.output


def test_dropout_trains_the_same_under_every_exact_strategy_and_is_saved(tmp_path):
    reports = []
    for strategy in ("full", "checkpoint", "revolve"):
        path = tmp_path / f"{strategy}.json"
        result = invoke("--epochs", "3", "--dropout", "0.3", "--strategy", strategy, "--json",
                        str(path), "--quiet", "--save", str(tmp_path / strategy))
        assert result.exit_code == 0, result.output
        reports.append(json.loads(path.read_text()))
    assert reports[0]["dropout"] == 0.3
    curves = [[{k: v for k, v in h.items() if k != "seconds"} for h in r["history"]]
              for r in reports]
    assert curves[0] == curves[1] == curves[2]
    plain = iris.train(iris.load_data(), epochs=3)
    assert [r.train_loss for r in plain.history] != [h["train_loss"]
                                                     for h in reports[0]["history"]]
    pretrained = from_pretrained(tmp_path / "full")
    assert pretrained.config["dropout"] == 0.3
    assert pretrained.config["training"]["dropout"] == 0.3


@pytest.mark.parametrize("value", ["1", "1.5", "-0.1", "nan"])
def test_dropout_outside_zero_one_is_refused(value):
    result = invoke("--dropout", value)
    assert result.exit_code == 2
    assert "Invalid value for '--dropout': must be a number in [0, 1), got" in result.output
