"""`bptt-bench` checks a run's memory before spending it (issue 10) and keeps its own memory
bounded by the strategy: the reference gradient is another exact plan, not full (issue 18)."""
import json
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from bptt.cli import main
from bptt.training.resources import sequence_profile
from bptt.training.train import SequenceSetup
from tasks import make_task

SMALL = ["--task", "adding", "--seq-len", "12", "--hidden", "6", "--batch", "3", "--quiet"]


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.mark.parametrize("args", [["--strategy", "full", "--seq-len", "1000000000"],
                                  ["--strategy", "revolve", "--seq-len", "1000000000"]])
def test_plan_of_a_billion_steps_is_refused_at_once(args):
    started = time.perf_counter()
    result = run("plan", *args)
    assert time.perf_counter() - started < 5
    assert result.exit_code == 2 and result.output.startswith("Error: a chain of "
                                                              "1,000,000,000 steps is past")
    assert result.output.count("\n") == 1


def test_plan_counts_a_huge_hidden_size_without_allocating_it():
    result = run("plan", "--strategy", "revolve", "--seq-len", "100", "--slots", "10",
                 "--hidden", "100000000", "--json", "-")
    assert result.exit_code == 0, result.output
    counts = json.loads(result.output)
    assert counts["state_bytes"] == 32 * 10**8 * 4  # batch x hidden x float32
    small = json.loads(run("plan", "--strategy", "revolve", "--seq-len", "100", "--slots", "10",
                           "--hidden", "64", "--json", "-").output)
    assert small["state_bytes"] == 32 * 64 * 4


@pytest.mark.parametrize("args, message", [
    (["--hidden", "100000000"], "this run needs an estimated"),
    (["--strategies", "revolve,checkpoint", "--max-memory", "10KB"], "more than the 9.77 KiB "
                                                                     "limit"),
])
def test_compare_checks_memory_before_anything_runs(tmp_path, args, message):
    result = run("compare", *SMALL, "--steps", "2", *args, "--json", tmp_path / "rows.json")
    assert result.exit_code == 2 and message in result.output, result.output
    assert result.output.startswith("Error: ") and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args, message", [
    (["--epochs", "100000000000000"], "ask for fewer --epochs"),
    (["--hidden", "1000000000"], "weights and gradients 119.21 GiB"),
    (["--layers", "1000000,1000000"], "weights and gradients 14.55 TiB"),
    (["--max-memory", "1KB"], "history 46.88 KiB"),
])
@pytest.mark.parametrize("command", [[], ["compare", "--strategies", "full,checkpoint"]])
def test_iris_checks_memory_before_anything_runs(tmp_path, command, args, message):
    result = run(*command, "--task", "iris", "--quiet", *args, "--json", tmp_path / "out.json")
    assert result.exit_code == 2 and message in result.output, result.output
    assert result.output.startswith("Error: this run needs an estimated")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("strategy, reference", [(["--strategy", "full"], "full"),
                                                 (["--strategy", "revolve"], "checkpoint"),
                                                 (["--strategy", "checkpoint"],
                                                  "revolve(slots=10)"),
                                                 (["--strategy", "truncated"], "checkpoint")])
def test_the_reference_gradient_is_an_exact_plan_named_in_the_row(tmp_path, strategy,
                                                                  reference):
    out = tmp_path / "row.json"
    result = run(*SMALL, "--steps", "2", *strategy, "--json", out)
    assert result.exit_code == 0, result.output
    row = json.loads(out.read_text())
    assert row["grad_reference"] == reference
    assert (row["grad_max_abs_diff_vs_full"] == 0.0) == (row["strategy"] != "truncated")


def _peak_rss_kib(seq_len: int) -> int:
    code = ("import resource, sys; from bptt.cli import main\n"
            "try:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
    done = subprocess.run([sys.executable, "-c", code, "--task", "adding", "--strategy",
                           "revolve", "--slots", "20", "--hidden", "64", "--batch", "32",
                           "--steps", "1", "--quiet", "--seq-len", str(seq_len)],
                          capture_output=True, text=True, timeout=300, check=True)
    return int(done.stdout.split()[-1])


def test_the_cli_peak_rss_under_revolve_does_not_grow_with_full_tapes():
    """From T = 500 to 4,000 the process grows by the batches (linear in T: about 11 MB, the
    evaluation batch of 128 sequences most of it), not by the 28 MB of tapes full would hold:
    before the fix, the reference gradient was full's and the peak grew by 33 MB."""
    short, long = 500, 4000
    grown_kib = _peak_rss_kib(long) - _peak_rss_kib(short)
    tape = sequence_profile(SequenceSetup(task=make_task("adding", seq_len=long), hidden=64,
                                          batch=32)).tape_bytes[0]
    full_growth_kib = (long - short) * tape / 1024
    assert full_growth_kib > 25_000  # the test can tell: full's tapes would add > 25 MB
    assert grown_kib < 0.6 * full_growth_kib, (grown_kib, full_growth_kib)
