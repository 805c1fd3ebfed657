"""Every `bptt-bench` option works for the chosen task and strategy or is refused by name."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

from bptt.cli import main
from bptt.cli.main import compare
from bptt.cli.options import EVERY_TASK, IRIS_ONLY, SEQUENCE_ONLY, STRATEGY_PARAMETERS
from bptt.training.pretrained import from_pretrained
from bptt.studies.iris_bench import first_batch
from tasks import iris

ADDING = ["--task", "adding", "--seq-len", "12", "--hidden", "6", "--batch", "3", "--steps", "3"]
IRIS = ["--task", "iris", "--epochs", "2"]


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_every_option_says_where_it_applies():
    tables = [set(SEQUENCE_ONLY), set(IRIS_ONLY), set(STRATEGY_PARAMETERS), set(EVERY_TASK)]
    for command in (main, compare):
        for param in command.params:
            homes = [t for t in tables if param.name in t]
            assert len(homes) == 1, f"{command.name} {param.opts}: in {len(homes)} tables"


@pytest.mark.parametrize("args", [
    ["--seq-len", "30"], ["--cell", "gru"], ["--steps", "10"], ["--text", "book.txt"],
    ["--save-grads", "g.safetensors"], ["--state-dir", "s"], ["--state-every", "5"],
    ["--resume", "."],
])
def test_sequence_options_are_refused_for_iris_by_name(args, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for command in ([], ["compare"]):
        if command and args[0] in ("--save-grads", "--state-dir", "--state-every", "--resume"):
            continue  # compare has no such option at all
        result = run(*command, *IRIS, *args)
        assert result.exit_code == 2, result.output
        assert result.output == f"Error: {args[0]} is for sequence tasks, not --task iris" + (
            " (iris trains for --epochs)" if args[0] == "--steps" else "") + "\n"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args", [["--epochs", "3"], ["--layers", "8,8"]])
def test_iris_options_are_refused_for_sequence_tasks_by_name(args):
    result = run(*ADDING, *args)
    assert result.exit_code == 2
    assert result.output.startswith(f"Error: {args[0]} is for --task iris, not --task adding")
    assert result.output.count("\n") == 1


@pytest.mark.parametrize("args, message", [
    (["--slots", "3"], "--slots is a parameter of revolve, and --strategy full does not run it"),
    (["--strategy", "revolve", "--budget", "1MB"],
     "--budget is a parameter of adaptive, and --strategy revolve does not run it"),
    (["--strategy", "checkpoint", "--k1", "2"],
     "--k1 is a parameter of truncated, and --strategy checkpoint does not run it"),
    (["compare", "--strategies", "full,checkpoint", "--slots", "3"],
     "--slots is a parameter of revolve, and --strategies full,checkpoint does not run it"),
])
def test_a_strategy_parameter_for_a_strategy_not_run_is_refused(args, message):
    for task in (ADDING, IRIS):
        command = args[:1] if args[0] == "compare" else []
        result = run(*command, *task, *args[len(command):])
        assert result.exit_code == 2
        assert result.output == f"Error: {message}\n"


def test_plan_refuses_a_parameter_of_another_strategy():
    result = run("plan", "--strategy", "full", "--slots", "5")
    assert result.exit_code == 2
    assert result.output == ("Error: --slots is a parameter of revolve, and --strategy full "
                             "does not run it\n")
    assert run("plan", "--strategy", "revolve", "--slots", "5").exit_code == 0


def test_hidden_and_layers_size_the_iris_mlp(tmp_path):
    for args, sizes in ((["--hidden", "16"], [4, 16, 3]), (["--layers", "32,32"], [4, 32, 32, 3]),
                        ([], [4, 32, 3])):
        out = tmp_path / "r.json"
        result = run(*IRIS, *args, "--json", out, "--save", tmp_path / "m", "--quiet")
        assert result.exit_code == 0, result.output
        report = json.loads(out.read_text())
        assert report["sizes"] == sizes and report["seq_len"] == len(sizes) - 1
        assert from_pretrained(tmp_path / "m").model.sizes == sizes
    result = run(*IRIS, "--hidden", "16", "--layers", "8")
    assert result.exit_code == 2 and "not both" in result.output
    result = run(*IRIS, "--layers", "8,x")
    assert result.exit_code == 2 and "Invalid value for '--layers'" in result.output


def test_optimizer_and_clip_change_an_iris_run(tmp_path):
    losses = {}
    for name, args in (("sgd", []), ("adam", ["--optimizer", "adam", "--lr", "0.01"]),
                       ("clipped", ["--clip", "0.01"])):
        out = tmp_path / f"{name}.json"
        assert run(*IRIS, *args, "--json", out, "--quiet").exit_code == 0
        report = json.loads(out.read_text())
        losses[name] = report["final_train_loss"]
        assert report["optimizer"] == ("adam" if name == "adam" else "sgd")
    assert len(set(losses.values())) == 3
    # unclipped sgd is the library's default recipe
    assert losses["sgd"] == iris.train(iris.load_data(), epochs=2).final.train_loss


def test_a_truncation_shorter_than_the_mlp_warns_before_training_and_layer_0_stays(tmp_path):
    result = run(*IRIS, "--strategy", "truncated", "--save", tmp_path / "m")
    assert result.exit_code == 0, result.output
    warning = ("Warning: truncated(k1=1, k2=1) gives no gradient to layers.0.weight, "
               "layers.0.bias: its window of k2=1 steps is shorter than the chain's 2 steps")
    assert warning in result.stderr
    assert result.stderr.index(warning) < result.stderr.index("training iris")
    trained = from_pretrained(tmp_path / "m").model
    initial, _, _ = first_batch(iris.load_data(), seed=42, batch_size=16)
    np.testing.assert_array_equal(trained.layers[0].weight.data, initial.layers[0].weight.data)
    assert not np.array_equal(trained.layers[1].weight.data, initial.layers[1].weight.data)
    for args in (["--strategy", "truncated", "--k1", "2"], ["--strategy", "checkpoint"]):
        result = run(*IRIS, *args, "--quiet")
        assert result.exit_code == 0 and "Warning" not in result.output


def test_iris_prints_a_compact_epoch_table_and_writes_the_history_as_csv(tmp_path):
    result = run("--task", "iris", "--epochs", "80", "--csv", tmp_path / "h.csv")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    epochs = [int(line.split()[0]) for line in lines[3:12]]
    assert epochs == [1, 10, 20, 30, 40, 50, 60, 70, 80]
    assert lines[12].startswith("strategy")
    csv = (tmp_path / "h.csv").read_text().splitlines()
    assert csv[0] == ("strategy,epoch,train_loss,train_accuracy,test_loss,test_accuracy,step,"
                      "seconds")
    assert len(csv) == 81 and csv[-1].startswith("full,80,")


def test_compare_runs_iris_over_memory_strategies(tmp_path):
    result = run("compare", *IRIS, "--layers", "16,16,16", "--strategies",
                 "full,checkpoint,revolve,truncated", "--slots", "2", "--k1", "4",
                 "--json", tmp_path / "c.json", "--plot", tmp_path / "c.png")
    assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "c.json").read_text())
    assert [r["strategy"] for r in rows] == ["full", "checkpoint", "revolve", "truncated"]
    full = rows[0]
    assert full["forward_steps"] == 4 and full["peak_cache_bytes"] > 0
    for row in rows[1:3]:  # exact: the same run, less memory for more forwards
        assert row["final_train_loss"] == full["final_train_loss"]
        assert row["grad_max_abs_diff_vs_full"] == 0
        assert row["peak_cache_bytes"] < full["peak_cache_bytes"]
        assert row["forward_steps"] > full["forward_steps"]
    assert rows[3]["final_train_loss"] == full["final_train_loss"]  # k2=4 covers the 4 layers
    assert "Warning" not in result.output
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
    assert "full" in result.stdout and "trivial predictor" in result.stdout


def test_sequence_tasks_keep_their_defaults(tmp_path):
    out = tmp_path / "r.json"
    assert run("--task", "adding", "--seq-len", "12", "--steps", "2", "--json", out,
               "--quiet").exit_code == 0
    report = json.loads(out.read_text())
    assert (report["hidden"], report["optimizer"], report["batch"]) == (64, "adam", 32)
