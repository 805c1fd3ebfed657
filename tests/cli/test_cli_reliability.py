"""`bptt-bench` when things go wrong: interrupted and resumed runs, repeated runs in other
processes, failed writes, and bad input, which always ends in one `Error:` line, exit code 2
and no output files."""
import json
import os
import pathlib
import subprocess
import sys

import pytest
from click.testing import CliRunner
from safetensors.numpy import load_file

from bptt.training import io
from bptt.training.pretrained import WEIGHTS_FILE
from bptt.cli import main

SMALL = ["--task", "adding", "--seq-len", "12", "--hidden", "6", "--batch", "3", "--quiet"]


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def ok(*args):
    result = run(*args)
    assert result.exit_code == 0, result.output
    return result


def history(path):
    """(step, loss, skipped, grad norm) of every step, floats exactly (NaN, written as null,
    equal to NaN). The file must be strict JSON."""
    def number(x):
        return float("nan").hex() if x is None else float(x).hex()

    return [(h["step"], number(h["loss"]), h["skipped"], number(h["grad_norm"]))
            for h in strict_load(path)["history"]]


def strict_load(path):
    def refuse(name):
        raise ValueError(f"{path} holds {name}: not strict JSON")
    return json.loads(path.read_text(), parse_constant=refuse)


def weights_bytes(directory):
    return (directory / WEIGHTS_FILE).read_bytes()


# --- --state-dir and --resume -------------------------------------------------------------------

@pytest.fixture
def straight(tmp_path):
    """An uninterrupted 6-step run: its JSON and saved weights."""
    ok(*SMALL, "--steps", 6, "--json", tmp_path / "straight.json", "--save", tmp_path / "straight")
    return tmp_path / "straight.json", tmp_path / "straight"


def test_an_interrupted_run_resumed_ends_bit_for_bit_as_an_uninterrupted_one(tmp_path, straight):
    state = tmp_path / "state"
    ok(*SMALL, "--steps", 4, "--state-dir", state, "--state-every", 2)  # "interrupted" at 4
    assert sorted(p.name for p in state.iterdir())[1:] == ["training_state.json"]
    assert json.loads((state / "training_state.json").read_text())["step"] == 4
    ok(*SMALL, "--steps", 6, "--resume", state, "--json", tmp_path / "resumed.json",
       "--save", tmp_path / "resumed")
    assert history(tmp_path / "resumed.json") == history(straight[0])
    assert weights_bytes(tmp_path / "resumed") == weights_bytes(straight[1])
    assert json.loads((state / "training_state.json").read_text())["step"] == 6


def test_a_run_may_resume_with_another_exact_strategy_and_into_another_directory(tmp_path,
                                                                                 straight):
    ok(*SMALL, "--steps", 3, "--state-dir", tmp_path / "a", "--strategy", "checkpoint")
    ok(*SMALL, "--steps", 6, "--resume", tmp_path / "a", "--state-dir", tmp_path / "b",
       "--strategy", "revolve", "--slots", 2, "--save", tmp_path / "resumed")
    assert weights_bytes(tmp_path / "resumed") == weights_bytes(straight[1])
    assert json.loads((tmp_path / "a" / "training_state.json").read_text())["step"] == 3
    assert json.loads((tmp_path / "b" / "training_state.json").read_text())["step"] == 6


@pytest.mark.filterwarnings("always:step .* the update was not applied:RuntimeWarning")
def test_a_nan_stop_saves_the_state_and_resuming_with_skip_matches_a_skipping_run(tmp_path):
    wild = [*SMALL, "--lr", "1e30", "--clip", "1e30", "--optimizer", "sgd", "--steps", 4]
    result = run(*wild, "--state-dir", tmp_path / "state")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert f"saved in {tmp_path / 'state'}: continue with --resume {tmp_path / 'state'}" \
        in result.output
    skipped = ok(*wild, "--resume", tmp_path / "state", "--on-nan", "skip", "--json",
                 tmp_path / "r.json")
    warned = skipped.output.strip().splitlines()
    assert warned and all(line.startswith("Warning: step ") for line in warned)
    ok(*wild, "--on-nan", "skip", "--json", tmp_path / "s.json")
    assert history(tmp_path / "r.json") == history(tmp_path / "s.json")
    assert any(h[2] for h in history(tmp_path / "s.json"))


@pytest.fixture
def state(tmp_path):
    ok(*SMALL, "--steps", 2, "--state-dir", tmp_path / "state")
    return tmp_path / "state"


def arrays_path(state):
    return state / json.loads((state / io.STATE_FILE).read_text())["arrays"]


def corrupt(state):
    arrays_path(state).write_bytes(b"\x00" * 40)


@pytest.mark.parametrize("args, message", [
    (["--hidden", 8], "hidden: saved 6, now 8"),
    (["--cell", "gru"], "cell: saved 'rnn', now 'gru'"),
    (["--task", "reber"], "task: saved 'adding', now 'reber'"),
    (["--seed", 1], "seed: saved 42, now 1"),
    (["--strategy", "truncated"], "strategy: saved {'name': 'full'}, now {'name': 'truncated',"),
    (["--steps", 1], "is at step 2, past --steps 1; ask for at least 2 steps"),
])
def test_resuming_a_different_run_names_what_differs(state, args, message):
    result = run(*SMALL, "--steps", 4, "--resume", state, *args)
    assert result.exit_code == 2, result.output
    assert message in result.output and result.output.startswith("Error: ")


# --- several processes, same bits ---------------------------------------------------------------

def test_two_processes_with_the_same_seed_write_identical_histories_and_weights(tmp_path):
    outputs = []
    for k, hash_seed in enumerate(("1", "2")):  # hash randomisation must not matter
        out = tmp_path / f"run{k}"
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        subprocess.run([sys.executable, "-m", "bptt.cli", "--task", "reber", "--seq-len", "20",
                        "--hidden", "8", "--batch", "4", "--steps", "5", "--strategy", "revolve",
                        "--slots", "3", "--quiet", "--json", f"{out}.json", "--save", out,
                        "--save-grads", f"{out}.grads.safetensors"],
                       check=True, env=env, capture_output=True, timeout=120)
        outputs.append(out)
    first, second = outputs
    assert history(pathlib.Path(f"{first}.json")) == history(pathlib.Path(f"{second}.json"))
    assert weights_bytes(first) == weights_bytes(second)
    a, b = (load_file(f"{out}.grads.safetensors") for out in outputs)
    assert a.keys() == b.keys() and all(a[k].tobytes() == b[k].tobytes() for k in a)


# --- failed writes --------------------------------------------------------------------------------

@pytest.mark.parametrize("option, name", [("--json", "out.json"), ("--csv", "out.csv"),
                                          ("--save-grads", "g.safetensors"),
                                          ("--plot", "out.png"), ("--save", "model"),
                                          ("--state-dir", "state")])
def test_a_write_failing_midway_leaves_no_partial_file_and_no_temporary(tmp_path, monkeypatch,
                                                                        option, name):
    def fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", fsync)
    result = run(*SMALL, "--steps", 2, option, tmp_path / name)
    assert result.exit_code == 2, result.output
    assert "No space left on device" in result.output and "Traceback" not in result.output
    leftovers = [p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file()]
    assert leftovers == []


# --- bad input: one line, exit code 2, nothing written -----------------------------------------

def _text(tmp_path, content: bytes, name="book.txt"):
    path = tmp_path / name
    path.write_bytes(content)
    return path


BAD = [  # (arguments, or a function of tmp_path giving them; what the message must say)
    (["--seq-len", "0"], "0 is not in the range x>=1"),
    (["--batch", "0"], "0 is not in the range x>=1"),
    (["--hidden", "-3"], "-3 is not in the range x>=1"),
    (["--steps", "0"], "0 is not in the range x>=1"),
    (["--strategy", "revolve", "--slots", "-2"], "-2 is not in the range x>=1"),
    (["--strategy", "truncated", "--k1", "0"], "0 is not in the range x>=1"),
    (["--strategy", "checkpoint", "--segment", "0"], "0 is not in the range x>=1"),
    (["--strategy", "adaptive", "--budget", "0"], "a size must be a finite number of bytes >= 1"),
    (["--strategy", "adaptive", "--budget", "-5MB"], "a size must be a finite number of bytes"),
    (["--strategy", "adaptive", "--budget", "1e400"], "a size must be a finite number of bytes"),
    (["--strategy", "adaptive", "--budget", "5 parsecs"], "cannot read '5 parsecs' as a size"),
    (["--clip", "0"], "must be a finite number > 0, got 0.0"),
    (["--clip", "inf"], "must be a finite number > 0, got inf"),
    (["--lr", "-1"], "must be a finite number > 0, got -1.0"),
    (["--optimizer", "rmsprop"], "Invalid value for '--optimizer'"),
    (["--on-nan", "ignore"], "Invalid value for '--on-nan'"),
    (["--text", "book.txt"], "--text is only for --task text"),
    (lambda d: ["--task", "text", "--text", d], "is a directory, expected a UTF-8 file"),
    (lambda d: ["--task", "text", "--text", _text(d, b"")], "book.txt' is empty"),
    (lambda d: ["--task", "text", "--text", _text(d, b"too short")],
     "has 9 characters, but seq_len=12 needs at least 13"),
    (lambda d: ["--json", d], "is a directory, expected a file path"),
    (lambda d: ["--save", _text(d, b"x", "taken")], "exists and is not a directory"),
    (lambda d: ["--resume", d / "nowhere"], "nowhere does not exist; expected a directory "
                                            "written with --state-dir"),
    (lambda d: ["--resume", _text(d, b"x", "state.safetensors")],
     "state.safetensors is a file; expected the directory given to --state-dir"),
    (lambda d: ["--resume", d], "holds no saved training state"),
    (["--state-every", "3"], "--state-every needs --state-dir DIR (or --resume DIR)"),
    (["--state-every", "0"], "0 is not in the range x>=1"),
    (lambda d: ["--task", "iris", "--state-dir", d / "s"],
     "is for sequence tasks, not --task iris"),
    # resources checked before they are spent (issue 10): refused at once, nothing allocated
    (["--hidden", "100000000"], "this run needs an estimated 177.64 PiB (weights and gradients"),
    (["--seq-len", "1000000000"], "(evaluation batch 1.40 TiB, batches 44.70 GiB"),
    (["--seq-len", "20000000", "--batch", "1", "--max-memory", "1000GB"],
     "a chain of 20,000,000 steps is past the longest bptt plans (10,000,000 steps)"),
    (["--batch", "1000000000"], "more than the"),
    (["--steps", "100000000000000"], "estimated 35.53 PiB (history 35.53 PiB"),
    (["--strategy", "revolve", "--max-memory", "10KB"], "more than the 9.77 KiB limit"),
    (["--max-memory", "lots"], "cannot read 'lots' as a size"),
]


@pytest.mark.parametrize("args, message", BAD, ids=[str(k) for k in range(len(BAD))])
def test_bad_input_is_one_error_line_with_exit_code_2_and_writes_nothing(tmp_path, monkeypatch,
                                                                         args, message):
    monkeypatch.chdir(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    args = args(work) if callable(args) else args
    outputs = [[option, tmp_path / name] for option, name in (("--json", "out.json"),
                                                              ("--save", "model"))
               if option not in args]
    before = sorted(tmp_path.rglob("*"))
    result = run(*SMALL, "--steps", 2, *args, *sum(outputs, []))
    assert result.exit_code == 2, result.output
    assert message in result.output, result.output
    lines = result.output.strip().splitlines()
    assert lines[-1].startswith("Error: ") and "Traceback" not in result.output
    assert sorted(tmp_path.rglob("*")) == before


@pytest.mark.parametrize("damage, message", [
    (corrupt, "its contents do not match the SHA-256 recorded in"),
    (lambda s: arrays_path(s).unlink(), "file not found (named in"),
    (lambda s: (s / io.STATE_FILE).write_text("{"), "training_state.json: not valid JSON"),
])
def test_a_damaged_state_passed_to_resume_is_named_and_nothing_is_written(state, tmp_path,
                                                                          damage, message):
    damage(state)
    before = sorted(tmp_path.rglob("*"))
    result = run(*SMALL, "--steps", 4, "--resume", state, "--json", tmp_path / "out.json")
    assert result.exit_code == 2 and message in result.output, result.output
    assert result.output.count("\n") == 1 and result.output.startswith("Error: ")
    assert sorted(tmp_path.rglob("*")) == before


def test_an_unreadable_text_file_is_named(tmp_path, monkeypatch):
    path = _text(tmp_path, b"some text " * 20)
    real = os.open

    def open_(name, *args, **kwargs):
        if os.fspath(name) == str(path):
            raise PermissionError(13, "Permission denied", str(name))
        return real(name, *args, **kwargs)

    monkeypatch.setattr(os, "open", open_)
    result = run(*SMALL, "--steps", 2, "--task", "text", "--text", path)
    assert result.exit_code == 2, result.output
    assert f"{path}: cannot read it (Permission denied)" in result.output, result.output


@pytest.mark.parametrize("strategy", [[], ["--strategy", "truncated"],
                                      ["--strategy", "checkpoint"],
                                      ["--strategy", "revolve", "--slots", "1"],
                                      ["--strategy", "adaptive"]])
def test_one_step_sequences_and_a_batch_of_one_train(tmp_path, strategy):
    out = tmp_path / "run.json"
    ok("--task", "reber", "--seq-len", 1, "--batch", 1, "--hidden", 3, "--steps", 2, "--quiet",
       *strategy, "--json", out)
    report = json.loads(out.read_text())
    assert report["seq_len"] == 1 and report["batch"] == 1 and len(report["history"]) == 2
    assert report["grad_max_abs_diff_vs_full"] == 0.0


def test_an_absurdly_large_budget_means_full(tmp_path):
    ok(*SMALL, "--steps", 2, "--strategy", "adaptive", "--budget", "1000000GB", "--json",
       tmp_path / "a.json")
    ok(*SMALL, "--steps", 2, "--json", tmp_path / "f.json")
    adaptive, full = (json.loads((tmp_path / n).read_text()) for n in ("a.json", "f.json"))
    assert adaptive["params"]["budget"] == 10**15
    assert adaptive["forward_steps"] == full["forward_steps"] == 12
    assert adaptive["peak_cache_bytes"] == full["peak_cache_bytes"]
    assert history(tmp_path / "a.json") == history(tmp_path / "f.json")
