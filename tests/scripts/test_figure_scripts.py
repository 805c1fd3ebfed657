"""scripts/make_figures.py --quick runs every figure script end to end; what each one writes."""
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from checkpointing import griewank_minimum

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
FIGURES = ("plans", "memory", "heatmap", "pareto", "convergence")


def load_main(name):
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


@pytest.fixture(scope="module")
def figures(tmp_path_factory):
    out = tmp_path_factory.mktemp("figures") / "nested"  # scripts create their folder
    result = CliRunner().invoke(load_main("make_figures"), ["--quick", "--out", str(out)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return out


def data(figures, name):
    return json.loads((figures / f"{name}.json").read_text())


@pytest.mark.parametrize("name", FIGURES)
def test_every_figure_is_a_png_with_its_json(figures, name):
    assert (figures / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert data(figures, name)


def test_convergence_exact_strategies_follow_full_bit_for_bit(figures):
    rows = data(figures, "convergence")
    losses = {r["strategy"]: [h["loss"] for h in r["history"]] for r in rows}
    assert [r["strategy"] for r in rows] == ["full", "checkpoint", "revolve", "adaptive",
                                             "truncated"]
    for name in ("checkpoint", "revolve", "adaptive"):
        assert losses[name] == losses["full"]
    assert losses["truncated"] != losses["full"]
    assert all("long_range_accuracy" in r for r in rows)


def test_memory_slopes_and_exact_peaks_within_the_prediction(figures):
    memory = data(figures, "memory")
    slopes = {name.split("(")[0].split(" ")[0]: s for name, s in memory["slopes"].items()}
    assert slopes["full"] > 0.9 and 0.4 < slopes["checkpoint"] < 0.6
    for name in ("revolve", "adaptive", "truncated"):
        assert abs(slopes[name]) < 0.05
    assert all(r["peak_cache_bytes"] <= r["predicted_peak_bytes"] for r in memory["rows"])


def test_pareto_points_and_front(figures):
    pareto = data(figures, "pareto")
    rows = pareto["rows"]
    assert {r["strategy"] for r in rows} == {"full", "checkpoint", "revolve", "adaptive"}
    on_front = [r for r in rows if r["on_front"]]
    assert pareto["front"] == [r["label"] for r in sorted(on_front,
                                                          key=lambda r: r["peak_cache_bytes"])]
    lightest = min(rows, key=lambda r: (r["peak_cache_bytes"], r["step_time_s"]))
    assert pareto["front"][0] == lightest["label"]
    assert all(len(r["times_s"]) == pareto["rounds"] for r in rows)


def test_plans_counts_match_griewank_and_adaptive_fits_revolves_budget(figures):
    plans = {p["strategy"]: p for p in data(figures, "plans")["plans"]}
    T = data(figures, "plans")["seq_len"]
    revolve = plans["revolve"]
    assert revolve["forward_steps"] == T + griewank_minimum(T, revolve["peak_states"])
    assert plans["adaptive"]["peak_bytes"] <= revolve["peak_bytes"]
    assert plans["adaptive"]["forward_steps"] <= revolve["forward_steps"]
    assert not plans["truncated"]["exact"] and "Cut(index=0)" in plans["truncated"]["actions"]


def test_heatmap_gradient_vanishes_before_the_loss_step_and_is_zero_after(figures):
    heatmap = data(figures, "heatmap")
    norms, c = np.array(heatmap["grad_norms"]), heatmap["loss_step"]
    assert (norms[:c + 1] > 0).all() and (norms[c + 1:] == 0).all()
    for curve in heatmap["decay"].values():
        assert curve["lags"][0] == 0 and curve["ratios"][0] == pytest.approx(1.0)
    assert heatmap["branch_step"] < c


def test_the_depth_study_script_writes_its_table(tmp_path):
    result = CliRunner().invoke(load_main("study_depth"), ["--quick", "--out", str(tmp_path)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "depth.json").read_text())
    assert {(r["depth"], r["strategy"]) for r in rows} == {
        (d, s) for d in (2, 4) for s in ("full", "checkpoint", "revolve(slots=1)")}
    assert (tmp_path / "depth.md").read_text().count("\n") == 8
    assert "followed full's accuracy curve bit for bit" in result.output


def test_the_iris_animation_is_a_gif_of_two_frames_per_moment(tmp_path):
    from PIL import Image
    result = CliRunner().invoke(load_main("figure_iris_animation"),
                                ["--quick", "--out", str(tmp_path)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "iris_animation.gif") as gif:
        assert gif.format == "GIF" and gif.n_frames == 8  # epochs 0-3, before and after
    moments = json.loads((tmp_path / "iris_animation.json").read_text())
    assert [m["moment"] for m in moments] == [f"epoch {e}" for e in range(4)]
    assert moments[-1]["loss"] < moments[0]["loss"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["iris_animation.gif",
                                                          "iris_animation.json"]
