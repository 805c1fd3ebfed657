"""The figure functions: each writes a valid PNG from plain data; the numbers they report."""
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, strategies as st

from bptt.plots import curves as plots, memory as memory_plots, plans as plan_plots
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
    assert memory_plots.fitted_slope(T, 5 * T) == pytest.approx(1.0)
    assert memory_plots.fitted_slope(T, 7 * np.sqrt(T)) == pytest.approx(0.5)
    assert memory_plots.fitted_slope(T, [9] * 4) == pytest.approx(0.0, abs=1e-12)


def test_fitted_slope_needs_two_lengths():
    with pytest.raises(ValueError, match="at least two distinct lengths"):
        memory_plots.fitted_slope([100, 100], [1, 2])


def test_memory_scaling_returns_the_slopes_in_its_legend(tmp_path):
    rows = [{"label": name, "seq_len": T, "peak_cache_bytes": f(T)}
            for T in (30, 300, 3000) for name, f in (("full", lambda T: 1000 * T),
                                                     ("revolve", lambda T: 8000))]
    slopes = memory_plots.plot_memory_scaling(tmp_path / "m.png", rows)
    assert slopes == pytest.approx({"full": 1.0, "revolve": 0.0}, abs=1e-9)
    assert is_png(tmp_path / "m.png")


def test_pareto_front_keeps_only_undominated_points():
    points = [(10, 5), (1, 9), (5, 5), (5, 6), (2, 9), (12, 1)]
    assert memory_plots.pareto_front(points) == [1, 2, 5]


@given(st.lists(st.tuples(st.integers(0, 20), st.integers(0, 20)), min_size=1, max_size=30))
def test_pareto_front_is_exactly_the_undominated_points(points):
    front = set(memory_plots.pareto_front(points))

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
    assert memory_plots.plot_pareto(tmp_path / "p.png", rows) == [1, 2, 0]
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


def _tag_boxes(ax):
    renderer = ax.figure.canvas.get_renderer()
    return [t.get_window_extent(renderer) for t in ax.texts if t.get_text()]


def _overlaps(a, b):
    return min(a.x1, b.x1) > max(a.x0, b.x0) and min(a.y1, b.y1) > max(a.y0, b.y0)


def test_pareto_tags_never_overlap_even_in_a_dense_cluster(tmp_path, monkeypatch):
    # the README's crowded 400 KiB - 1 MiB cluster: twelve points within a factor 2.5
    rng = np.random.default_rng(0)
    rows = [{"strategy": name, "peak_cache_bytes": 4e5 * 2.5 ** rng.random(),
             "step_time_s": 0.05 + 0.01 * rng.random(), "forward_steps": 2000 + k,
             "seq_len": 1000, "tag": f"{name[0]}={k}"}
            for k, name in enumerate(["checkpoint", "revolve", "adaptive"] * 4)]
    rows.append({"strategy": "full", "peak_cache_bytes": 8e6, "step_time_s": 0.047,
                 "forward_steps": 1000, "seq_len": 1000, "tag": "full"})
    figures = []
    monkeypatch.setattr(memory_plots, "save_png", lambda fig, path: figures.append(fig))
    memory_plots.plot_pareto(tmp_path / "p.png", rows)
    for ax in figures[0].axes[:2]:
        boxes = _tag_boxes(ax)
        assert len(boxes) == len(rows)
        for i, a in enumerate(boxes):
            assert not any(_overlaps(a, b) for b in boxes[i + 1:]), ax.get_title()


def test_place_labels_keeps_labels_off_each_other_and_off_the_markers():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4, 3))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    points = [(1 + 0.01 * k, 1 + 0.01 * (k % 3)) for k in range(8)] + [(2, 2)]
    ax.scatter(*zip(*points))
    ax.set(xlim=(0.5, 2.5), ylim=(0.5, 2.5))
    fig.canvas.draw()
    labels = memory_plots.place_labels(ax, points, [f"point {k}" for k in range(9)], ["k"] * 9,
                                       avoid=points)
    renderer = fig.canvas.get_renderer()
    boxes = [label.get_window_extent(renderer) for label in labels]
    for i, a in enumerate(boxes):
        assert not any(_overlaps(a, b) for b in boxes[i + 1:])
    for x, y in ax.transData.transform(points):
        assert not any(b.x0 < x < b.x1 and b.y0 < y < b.y1 for b in boxes)


def test_an_animation_needs_moments_and_leaves_no_temporary(tmp_path):
    from bptt.inspect import inspect_batch
    from bptt.nn import MLP
    from bptt.plots.animation import animate_inspections

    with pytest.raises(ValueError, match="at least one"):
        animate_inspections(tmp_path / "a.gif", [])
    mlp = MLP([2, 3, 2], rng=np.random.default_rng(0))
    seen = inspect_batch(mlp, np.ones((4, 2)), np.array([0, 1, 0, 1]))
    assert animate_inspections(tmp_path / "a.gif", [("one", seen), ("two", seen)]) == 4
    assert [p.name for p in tmp_path.iterdir()] == ["a.gif"]
