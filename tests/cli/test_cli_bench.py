"""`bptt-bench` on sequence tasks: the table, the outputs, compare, plan and every bad input."""
import json

import pytest
from click.testing import CliRunner
from safetensors.numpy import load_file

from bptt.training.pretrained import from_pretrained
from bptt.cli import main
from checkpointing import griewank_minimum

SMALL = ["--task", "adding", "--seq-len", "12", "--hidden", "6", "--batch", "3", "--steps", "4"]
REQUIRED = ["strategy", "task", "cell", "seq_len", "hidden", "batch", "seed", "peak_cache_bytes",
            "peak_traced_bytes", "peak_rss_mib", "forward_steps", "step_time_s", "final_loss",
            "grad_max_abs_diff_vs_full", "history"]


def run(*args):
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result


def test_default_job_prints_the_table(tmp_path):
    result = run("--strategy", "checkpoint", *SMALL)
    assert result.exit_code == 0, result.output
    header, rule, row = result.output.strip().splitlines()[-3:]
    for column in ("peak cache", "traced peak", "RSS peak", "forwards", "step time",
                   "final loss", "grad diff vs full"):
        assert column in header
    assert row.startswith("checkpoint") and row.rstrip().endswith(" 0")


@pytest.mark.parametrize("strategy, forwards", [("full", 12), ("checkpoint", 12 + 8),
                                                ("revolve", 12 + griewank_minimum(12, 10))])
def test_json_holds_the_figures(tmp_path, strategy, forwards):
    out = tmp_path / "run.json"
    assert run("--strategy", strategy, *SMALL, "--json", str(out), "--quiet").exit_code == 0
    report = json.loads(out.read_text())
    assert all(k in report for k in REQUIRED)
    assert report["forward_steps"] == forwards and report["seq_len"] == 12
    assert report["grad_max_abs_diff_vs_full"] == 0.0
    assert [h["step"] for h in report["history"]] == [0, 1, 2, 3]
    assert report["peak_traced_bytes"] > 0 and report["peak_rss_mib"] > 10


def test_truncated_differs_from_full_on_the_first_batch(tmp_path):
    out = tmp_path / "run.json"
    assert run("--strategy", "truncated", "--k1", "3", *SMALL, "--json", str(out),
               "--quiet").exit_code == 0
    assert json.loads(out.read_text())["grad_max_abs_diff_vs_full"] > 0


def test_csv_plot_save_and_grads(tmp_path):
    paths = {k: tmp_path / f"out.{k}" for k in ("csv", "png", "safetensors")}
    result = run("--strategy", "revolve", "--slots", "3", *SMALL, "--quiet",
                 "--csv", str(paths["csv"]), "--plot", str(paths["png"]),
                 "--save", str(tmp_path / "model"), "--save-grads", str(paths["safetensors"]))
    assert result.exit_code == 0, result.output
    lines = paths["csv"].read_text().splitlines()
    assert lines[0] == "strategy,step,loss,seconds,skipped,grad_norm" and len(lines) == 5
    assert paths["png"].read_bytes()[:4] == b"\x89PNG"
    pretrained = from_pretrained(tmp_path / "model")
    model = pretrained.model
    assert pretrained.config["task"] == "adding"
    assert pretrained.config["training"]["strategy"] == "revolve"
    assert set(pretrained.config["metrics"]) == {"final_loss", "mse", "trivial predictor"}
    grads = load_file(str(paths["safetensors"]))
    assert grads["inputs"].shape == (12, 3, 2) and grads["targets"].shape == (3, 1)
    names = {n for n, _ in model.named_parameters()}
    assert {k[len("grads."):] for k in grads if k.startswith("grads.")} == names
    assert {k[len("weights."):] for k in grads if k.startswith("weights.")} == names
    assert model.predict(grads["inputs"]).shape == (12, 3, 1)


def test_compare_runs_strategies_side_by_side(tmp_path):
    out = tmp_path / "rows.json"
    result = run("compare", "--strategies", "full,checkpoint,revolve,truncated", *SMALL,
                 "--k1", "4", "--json", str(out), "--plot", str(tmp_path / "c.png"),
                 "--csv", str(tmp_path / "c.csv"))
    assert result.exit_code == 0, result.output
    rows = json.loads(out.read_text())
    assert [r["strategy"] for r in rows] == ["full", "checkpoint", "revolve", "truncated"]
    losses = [[h["loss"] for h in r["history"]] for r in rows]
    # exact strategies train along full's trajectory bit for bit; truncated does not
    assert losses[0] == losses[1] == losses[2] and losses[3] != losses[0]
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
    assert len((tmp_path / "c.csv").read_text().splitlines()) == 5


def test_plan_prints_counts_without_training(tmp_path):
    result = run("plan", "--strategy", "revolve", "--seq-len", "100", "--slots", "5",
                 "--json", "-", "--plot", str(tmp_path / "plan.png"))
    assert result.exit_code == 0, result.output
    counts = json.loads(result.output)
    assert counts["strategy"] == "revolve" and counts["seq_len"] == 100
    assert counts["recorded_steps"] == 100
    assert counts["forward_steps"] == 100 + griewank_minimum(100, 5)
    assert counts["peak_states"] <= 5 and counts["peak_tapes"] >= 1
    assert (tmp_path / "plan.png").read_bytes()[:4] == b"\x89PNG"


def test_iris_runs_with_a_memory_strategy(tmp_path):
    out = tmp_path / "iris.json"
    result = run("--task", "iris", "--strategy", "revolve", "--slots", "1", "--epochs", "3",
                 "--json", str(out), "--quiet")
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["strategy"] == "revolve"


@pytest.mark.parametrize("args, message", [
    (["--strategy", "fast"], "Invalid value for '--strategy'"),
    (["--cell", "elman"], "Invalid value for '--cell'"),
    (["--task", "parity"], "Invalid value for '--task'"),
    (["--strategy", "adaptive", "--budget", "100"], "below the minimum"),
    (["--strategy", "adaptive", "--budget", "ten"], "cannot read 'ten' as a size"),
    (["--strategy", "revolve", "--slots", "0"], "0 is not in the range x>=1"),
    (["--strategy", "truncated", "--k1", "5", "--k2", "2"], "k2 must be a whole number >= k1"),
    (["--task", "text", "--text", "/nonexistent/book.txt"], "/nonexistent/book.txt"),
    (["--seq-len", "1"], "seq_len"),
    (["--lr", "nan"], "must be a finite number > 0"),
    (["--json", "/nonexistent/dir/out.json"], "does not exist"),
    (["compare", "--strategies", "full,fast"], "unknown strategy 'fast'"),
    (["plan", "--strategy", "adaptive", "--budget", "1KB"], "below the minimum"),
])
def test_bad_input_is_one_line_and_exit_code_2(args, message):
    result = CliRunner().invoke(main, (SMALL + args) if args[0] != "plan" else args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert result.output.strip().splitlines()[-1].startswith("Error")


def test_non_utf8_text_is_refused_with_the_file_name(tmp_path):
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("caf\xe9 ".encode("latin-1") * 100)
    result = CliRunner().invoke(main, SMALL + ["--task", "text", "--text", str(bad)])
    assert result.exit_code == 2 and "latin1.txt" in result.output


def test_nan_in_training_stops_naming_the_step():
    result = CliRunner().invoke(main, SMALL + ["--lr", "1e30", "--clip", "1e30",
                                               "--optimizer", "sgd"])
    assert result.exit_code == 2, result.output
    assert "training stopped: step" in result.output


def test_an_explicit_batch_is_kept_for_iris_too(tmp_path):
    out = tmp_path / "iris.json"
    result = run("--task", "iris", "--batch", "32", "--epochs", "1", "--json", str(out),
                 "--quiet")
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["batch"] == 32
    result = run("--task", "iris", "--epochs", "1", "--json", str(out), "--quiet")
    assert json.loads(out.read_text())["batch"] == 16


def test_dropout_on_a_sequence_task_keeps_exact_strategies_exact(tmp_path):
    out = tmp_path / "rows.json"
    result = run("compare", "--strategies", "full,checkpoint,revolve", *SMALL, "--dropout",
                 "0.25", "--json", str(out), "--quiet")
    assert result.exit_code == 0, result.output
    rows = json.loads(out.read_text())
    assert [r["grad_max_abs_diff_vs_full"] for r in rows] == [0.0, 0.0, 0.0]
    assert rows[0]["dropout"] == 0.25
    assert rows[0]["history"] == [dict(h, seconds=rows[0]["history"][k]["seconds"])
                                  for k, h in enumerate(rows[1]["history"])]
    plain = tmp_path / "plain.json"
    assert run(*SMALL, "--json", str(plain), "--quiet").exit_code == 0
    assert json.loads(plain.read_text())["final_loss"] != rows[0]["final_loss"]
    result = run(*SMALL, "--dropout", "1.0")
    assert result.exit_code == 2 and "must be a number in [0, 1), got 1.0" in result.output
