"""The report's arithmetic: smoothed curves, the group's target, steps-to-target ratios."""
import pytest

from bptt.studies.convergence import smooth, steps_to_target, target_loss
from bptt.studies.report import summary, table, to_markdown


def test_smoothing_is_bias_corrected_and_steps_count_from_one():
    assert smooth([2.0, 2.0, 2.0]) == pytest.approx([2.0, 2.0, 2.0])
    assert target_loss([1.0, 0.5, 0.0]) == pytest.approx(0.2)
    assert steps_to_target([1.0, 0.5, 0.1], 0.2) == 3
    assert steps_to_target([1.0, 0.5], 0.2) is None


def row(strategy, losses, seed=0, peak=100, **extra):
    return {"task": "adding", "cell": "rnn", "seq_len": 10, "seed": seed, "strategy": strategy,
            "losses": losses, "smoothed": smooth(losses), "peak_cache_bytes": peak,
            "full_peak_bytes": 100, "final_loss": losses[-1], "metric": 0.0,
            "forward_steps": 10, "mean_grad_cosine": None, "mean_grad_rel_error": None, **extra}


def test_ratios_are_against_the_groups_full_run_and_collapse_is_not_reached():
    full = [1.0] + [0.1] * 29
    rows = [row("full", full), row("slow", [1.0] * 10 + [0.1] * 20, peak=25),
            row("stuck", [1.0] * 30, peak=10), row("full", full, seed=1),
            row("slow", [1.0] * 10 + [0.1] * 20, seed=1, peak=25)]
    records = {(r["strategy"], r["seed"]): r for r in table(rows)}
    assert records[("full", 0)]["steps_ratio"] == 1
    assert records[("slow", 0)]["steps_ratio"] > 1.05
    assert records[("stuck", 0)]["steps_to_target"] is None
    assert records[("slow", 0)]["saved_fraction"] == 0.75
    means = {m["strategy"]: m for m in summary(list(records.values()))}
    assert means["full"]["within"] == 2 and means["slow"]["within"] == 0
    assert means["stuck"]["reached"] == 0 and means["stuck"]["steps_ratio"] is None
    text = to_markdown(list(means.values()))
    assert "| 10 | `stuck` | 10 | 90.0% |" in text
