"""`bptt-bench` and the files it reads and writes (issue 18): unusual inputs refused by name,
outputs that never replace what is not a regular file, `-` for standard output, and state
directories owned by one run at a time."""
import json
import os
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from bptt.cli import main
from bptt.training import io

SMALL = ["--task", "adding", "--seq-len", "12", "--hidden", "6", "--batch", "3", "--quiet",
         "--steps", "2"]


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def refused(result, message):
    assert result.exit_code == 2, result.output
    assert message in result.output, result.output
    assert result.output.strip().splitlines()[-1].startswith("Error: ")
    assert "Traceback" not in result.output


# --- unusual files as input ---------------------------------------------------------------------

def test_dev_zero_as_text_is_refused_by_name():
    refused(run(*SMALL, "--task", "text", "--text", "/dev/zero"),
            "/dev/zero: a character device, expected a regular file")


def test_a_fifo_as_text_is_refused_at_once(tmp_path):
    os.mkfifo(tmp_path / "pipe")
    started = time.perf_counter()
    refused(run(*SMALL, "--task", "text", "--text", tmp_path / "pipe"),
            "pipe: a FIFO (named pipe), expected a regular file")
    assert time.perf_counter() - started < 10


def test_deeply_nested_state_json_is_refused_by_name(tmp_path):
    assert run(*SMALL, "--state-dir", tmp_path / "s").exit_code == 0
    (tmp_path / "s" / io.STATE_FILE).write_text("[" * 100_000 + "]" * 100_000)
    refused(run(*SMALL, "--resume", tmp_path / "s"), "training_state.json: not valid JSON "
                                                     "(nested too deeply)")


# --- outputs: never over what is not a regular file ----------------------------------------------

@pytest.mark.parametrize("option", ["--json", "--csv", "--plot", "--save-grads"])
def test_an_output_over_a_device_or_a_fifo_is_refused_before_training(tmp_path, option):
    refused(run(*SMALL, option, "/dev/full"), "/dev/full is a character device; bptt writes "
                                              "only to a new path or over a regular file")
    os.mkfifo(tmp_path / "fifo")
    refused(run(*SMALL, option, tmp_path / "fifo"), "is a FIFO (named pipe); bptt writes only")
    assert not os.path.isfile(tmp_path / "fifo") and os.path.exists(tmp_path / "fifo")


def test_a_failing_write_exits_2_naming_the_file(tmp_path, monkeypatch):
    def replace(src, dst):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "replace", replace)
    refused(run(*SMALL, "--json", tmp_path / "out.json"),
            f"cannot write {tmp_path / 'out.json'}: Input/output error")
    assert list(tmp_path.iterdir()) == []


# --- '-' is standard output ---------------------------------------------------------------------

def test_json_dash_is_standard_output_and_strict_json():
    result = run(*SMALL, "--json", "-")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout, parse_constant=lambda c: pytest.fail(c))
    assert report["task"] == "adding" and len(report["history"]) == 2


def test_csv_dash_is_standard_output_and_the_table_goes_to_stderr(tmp_path):
    result = CliRunner().invoke(main, [*SMALL[:-3], "--steps", "2", "--csv", "-"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "strategy,step,loss,seconds,skipped,grad_norm"
    assert "peak cache" in result.stderr and "peak cache" not in result.stdout


def test_compare_and_plan_write_json_to_standard_output():
    rows = json.loads(run("compare", *SMALL, "--strategies", "full,revolve", "--json",
                          "-").stdout)
    assert [r["strategy"] for r in rows] == ["full", "revolve"]
    counts = json.loads(run("plan", "--seq-len", "10", "--json", "-").stdout)
    assert counts["seq_len"] == 10


@pytest.mark.parametrize("args, message", [
    (["--json", "-", "--csv", "-"], "--json and --csv both ask for standard output ('-')"),
    (["--plot", "-"], "'-' (standard output) is only for text outputs"),
    (["--save-grads", "-"], "'-' (standard output) is only for text outputs"),
    (["--save", "-"], "this option names a directory"),
    (["--state-dir", "-"], "this option names a directory"),
])
def test_dash_is_refused_for_binary_outputs_and_for_two_outputs(tmp_path, monkeypatch, args,
                                                                message):
    monkeypatch.chdir(tmp_path)
    refused(run(*SMALL, *args), message)
    assert list(tmp_path.iterdir()) == []  # no file named '-'


def test_plan_plot_dash_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    refused(run("plan", "--plot", "-"), "'-' (standard output) is only for text outputs")
    refused(run("compare", *SMALL, "--json", "-", "--csv", "-"), "both ask for standard output")
    assert list(tmp_path.iterdir()) == []


# --- state directories: one owner, nothing lost, nothing left ------------------------------------

def test_a_fresh_run_does_not_replace_a_resumable_state(tmp_path):
    state = tmp_path / "s"
    assert run(*SMALL, "--state-dir", state).exit_code == 0
    before = (state / io.STATE_FILE).read_bytes()
    refused(run(*SMALL, "--state-dir", state, "--seed", "7"),
            f"{state} holds a resumable training state; continue it with --resume {state}, "
            f"or pass --overwrite-state")
    assert (state / io.STATE_FILE).read_bytes() == before
    assert run(*SMALL, "--state-dir", state, "--seed", "7", "--overwrite-state").exit_code == 0
    assert json.loads((state / io.STATE_FILE).read_text())["run"]["seed"] == 7
    refused(run(*SMALL, "--overwrite-state"), "--overwrite-state needs --state-dir DIR")


def test_a_state_directory_in_use_is_refused(tmp_path):
    with io.lock_state_dir(tmp_path / "s"):
        refused(run(*SMALL, "--state-dir", tmp_path / "s"), "s is in use by another run")
    assert run(*SMALL, "--state-dir", tmp_path / "s").exit_code == 0


def test_two_concurrent_processes_on_one_state_dir_one_is_refused(tmp_path):
    state = tmp_path / "s"
    args = [sys.executable, "-m", "bptt.cli", "--task", "adding", "--seq-len", "30", "--hidden",
            "8", "--batch", "4", "--quiet", "--state-dir", str(state), "--overwrite-state"]
    # the first run is far too long to finish during the test: it still holds the directory
    # when the second starts, however fast the machine (stopped below)
    first = subprocess.Popen(args + ["--steps", "1000000"], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 60
        while not (state / io.STATE_FILE).exists() and time.time() < deadline:
            time.sleep(0.05)  # the first run holds the lock from before its first save
        second = subprocess.run(args + ["--steps", "400"], capture_output=True, text=True,
                                timeout=120)
        assert first.poll() is None, first.stderr.read()  # the refusal was the lock's
    finally:
        first.kill()
        first.wait(timeout=60)
    assert second.returncode == 2 and "is in use by another run" in second.stderr
    saved = json.loads((state / io.STATE_FILE).read_text())["step"]
    resumed = run(*args[3:12], "--steps", str(saved + 1), "--resume", state)  # still whole
    assert resumed.exit_code == 0, resumed.output


def test_resuming_cleans_what_a_killed_save_left(tmp_path):
    state = tmp_path / "s"
    assert run(*SMALL, "--state-dir", state).exit_code == 0
    (state / ".training_state.json.k1ll3d.tmp").write_bytes(b"{")
    (state / "training_state-00000000deadbeef.safetensors").write_bytes(b"x")
    assert run(*SMALL[:-2], "--steps", "3", "--resume", state).exit_code == 0
    names = sorted(p.name for p in state.iterdir())
    assert len(names) == 2 and names[1] == io.STATE_FILE and ".tmp" not in "".join(names)


@pytest.mark.filterwarnings("always::RuntimeWarning")
def test_skipped_steps_are_null_in_strict_json(tmp_path):
    out = tmp_path / "run.json"
    result = run(*SMALL, "--lr", "1e30", "--clip", "1e30", "--optimizer", "sgd", "--steps", "4",
                 "--on-nan", "skip", "--json", out)
    assert result.exit_code == 0, result.output
    text = out.read_text()
    report = json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in strict JSON"))
    skipped = [h for h in report["history"] if h["skipped"]]
    assert skipped and all(h["loss"] is None or isinstance(h["loss"], float) for h in skipped)
    assert "NaN" not in text and "null" in text
