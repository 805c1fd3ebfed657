"""The figure functions: each writes a valid PNG from plain data; the numbers they report."""
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, strategies as st

from bptt.plots import curves as plots, plans as plan_plots
from checkpointing import Adaptive, Full, Periodic, Revolve, Truncated
from checkpointing.plan import ChainProfile

PNG = b"\x89PNG\r\n\x1a\n"


def is_png(path) -> bool:
    return path.read_bytes()[:8] == PNG


def history(losses):
    return [{"step": k, "loss": v, "seconds": 0.1 * (k + 1), "skipped": False}
            for k, v in enumerate(losses)]


def row(strategy, losses, **params):
    return {"strategy": strategy, "params": params, "task": "reber", "seq_len": 20,
            "cell": "rnn", "hidden": 8, "metric_name": "legal accuracy", "metric": 0.9,
            "history": history(losses)}


def test_importing_plots_does_not_import_matplotlib():
    code = "import sys, bptt.plots.curves; assert 'matplotlib' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_training_curves_mark_bitwise_identical_runs(tmp_path):
    exact = [1.0, 0.7, 0.5, 0.45]
    rows = [row("full", exact), row("checkpoint", exact), row("revolve", exact, slots=3),
            row("truncated", [1.0, 0.8, 0.6, 0.55], k1=4, k2=4)]
    assert plots._identical_to(rows, [[h["loss"] for h in r["history"]] for r in rows]) == \
        [None, "full", "full", None]
    plots.plot_training_curves(tmp_path / "c.png", rows, title="t", notes=["a", "", "b", "c"])
    assert is_png(tmp_path / "c.png")


def test_fitted_slope_recovers_the_exponent():
    T = np.array([30, 100, 300, 1000])
    assert plots.fitted_slope(T, 5 * T) == pytest.approx(1.0)
    assert plots.fitted_slope(T, 7 * np.sqrt(T)) == pytest.approx(0.5)
    assert plots.fitted_slope(T, [9] * 4) == pytest.approx(0.0, abs=1e-12)


def test_fitted_slope_needs_two_lengths():
    with pytest.raises(ValueError, match="at least two distinct lengths"):
        plots.fitted_slope([100, 100], [1, 2])


def test_memory_scaling_returns_the_slopes_in_its_legend(tmp_path):
    rows = [{"label": name, "seq_len": T, "peak_cache_bytes": f(T)}
            for T in (30, 300, 3000) for name, f in (("full", lambda T: 1000 * T),
                                                     ("revolve", lambda T: 8000))]
    slopes = plots.plot_memory_scaling(tmp_path / "m.png", rows)
    assert slopes == pytest.approx({"full": 1.0, "revolve": 0.0}, abs=1e-9)
    assert is_png(tmp_path / "m.png")


def test_pareto_front_keeps_only_undominated_points():
    points = [(10, 5), (1, 9), (5, 5), (5, 6), (2, 9), (12, 1)]
    assert plots.pareto_front(points) == [1, 2, 5]


@given(st.lists(st.tuples(st.integers(0, 20), st.integers(0, 20)), min_size=1, max_size=30))
def test_pareto_front_is_exactly_the_undominated_points(points):
    front = set(plots.pareto_front(points))

    def dominated(i):
        return any(q[0] <= points[i][0] and q[1] <= points[i][1] and q != points[i]
                   for q in points)
    for i in range(len(points)):
        if i in front:
            assert not dominated(i)
        else:  # dominated, or a duplicate of a point already on the front
            assert dominated(i) or any(points[j] == points[i] for j in front)


def test_pareto_plot_returns_the_time_front(tmp_path):
    rows = [{"strategy": s, "tag": tag, "seq_len": 100, "peak_cache_bytes": m,
             "step_time_s": t, "forward_steps": f}
            for s, tag, m, t, f in (("full", "", 10_000, 1.0, 100),
                                    ("revolve", "s=2", 500, 2.0, 400),
                                    ("checkpoint", "k=10", 2_000, 1.1, 190),
                                    ("checkpoint", "k=5", 3_000, 1.2, 195))]
    assert plots.plot_pareto(tmp_path / "p.png", rows) == [1, 2, 0]
    assert is_png(tmp_path / "p.png")


def test_plan_diagrams_draw_every_kind_of_action(tmp_path):
    profile = ChainProfile.uniform(12, 100, 300)
    plans = [(s.name, s.plan(profile)) for s in (Full(), Periodic(), Revolve(3),
                                                 Adaptive(1500), Truncated(3, 5))]
    plan_plots.plot_plans(tmp_path / "plans.png", plans, profile, title="twelve steps")
    plan_plots.plot_plan(tmp_path / "plan.png", Revolve(2).plan(ChainProfile.uniform(7)))
    assert is_png(tmp_path / "plans.png") and is_png(tmp_path / "plan.png")


def test_state_gradient_heatmaps(tmp_path):
    rng = np.random.default_rng(0)
    states = np.tanh(rng.standard_normal((30, 6)))
    grads = np.zeros((30, 6))
    grads[:21] = 0.5 ** np.arange(21)[::-1, None] * rng.standard_normal((21, 6))
    plots.plot_state_gradients(tmp_path / "h.png", states, grads, loss_step=20,
                               marks=[("branch", 12)], decay={"model": ([0, 1, 2], [1, .5, .25])},
                               lag_range=(1, 2), title="t")
    plots.plot_state_gradients(tmp_path / "h2.png", states, grads, loss_step=20)
    assert is_png(tmp_path / "h.png") and is_png(tmp_path / "h2.png")
