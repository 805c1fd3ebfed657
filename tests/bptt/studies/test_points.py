"""Sweep definitions: strategy specs, the product of the axes, and every malformed input."""
import pytest

from bptt.studies.points import SweepError, load_sweep, parse_strategy, points_from_config

BASE = {"strategies": ["full"], "cells": ["rnn"], "seq_lens": [10], "tasks": ["adding"],
        "seeds": [0]}


def test_strategy_specs_parse_into_names_and_parameters():
    assert parse_strategy("full") == ("full", {})
    assert parse_strategy("revolve(slots=8, snapshots=float16)") == (
        "revolve", {"slots": 8, "snapshots": "float16"})
    assert parse_strategy("adaptive(budget=0.1, compress=int8)") == (
        "adaptive", {"budget": 0.1, "compress": "int8"})


@pytest.mark.parametrize("spec, message", [
    ("revolver", "unknown strategy 'revolver'"),
    ("revolve(slot=3)", "revolve takes slots, snapshots, tapes"),
    ("revolve(slots=three)", "slots must be a number"),
    ("full(tapes=fp8)", "unknown codec 'fp8'"),
    ("uoro(seed=1)", "uoro takes no parameters"),
    ("revolve(slots=3", "not of the form"),
])
def test_bad_strategy_specs_are_named(spec, message):
    with pytest.raises(SweepError, match=message.replace("(", r"\(")):
        parse_strategy(spec)


def test_points_are_the_product_of_the_axes_with_compressions_added():
    config = {**BASE, "strategies": ["full", "revolve(slots=4)", "adaptive(budget=0.1)",
                                     "revolve(slots=4, snapshots=int8)"],
              "compressions": ["float16", "int8"], "cells": ["rnn", "gru"],
              "seq_lens": [10, 20], "seeds": [0, 1, 2]}
    points = points_from_config(config)
    specs = sorted({p.strategy for p in points})
    assert specs == sorted(["full", "revolve(slots=4)", "adaptive(budget=0.1)",
                            "revolve(slots=4, snapshots=int8)",
                            "revolve(slots=4, snapshots=float16)",
                            "adaptive(budget=0.1, compress=float16)",
                            "adaptive(budget=0.1, compress=int8)"])
    assert len(points) == len(specs) * 2 * 2 * 3
    assert len(set(points)) == len(points)


@pytest.mark.parametrize("change, message", [
    ({"cells": ["rnn", "transformer"]}, "unknown cell 'transformer'"),
    ({"tasks": ["mnist"]}, "unknown task 'mnist'"),
    ({"strategies": ["fast"]}, "unknown strategy 'fast'"),
    ({"seeds": []}, "seeds must be a non-empty list"),
    ({"seq_lens": [1]}, "seq_lens must be >= 2"),
    ({"steps": 0}, "steps must be a whole number >= 1"),
    ({"lr": -1}, "lr must be a number > 0"),
    ({"compressions": ["fp4"]}, "unknown codec 'fp4'"),
    ({"colour": "red"}, "unknown key 'colour'"),
])
def test_bad_sweep_definitions_are_named(change, message):
    with pytest.raises(SweepError, match=message):
        points_from_config({**BASE, **change}, where="my.toml")


def test_missing_axis_is_named():
    config = dict(BASE)
    del config["cells"]
    with pytest.raises(SweepError, match="missing 'cells'"):
        points_from_config(config)


def test_sweep_files_load_and_bad_ones_are_named(tmp_path):
    good = tmp_path / "sweep.toml"
    good.write_text('[sweep]\nstrategies = ["full", "uoro"]\ncells = ["gru"]\n'
                    'seq_lens = [5]\ntasks = ["copy"]\nseeds = [3]\nsteps = 2\n')
    points = load_sweep(good)
    assert [(p.strategy, p.cell, p.task, p.seed, p.steps) for p in points] == [
        ("full", "gru", "copy", 3, 2), ("uoro", "gru", "copy", 3, 2)]
    bad = tmp_path / "bad.toml"
    bad.write_text("[sweep\nstrategies = ")
    with pytest.raises(SweepError, match="bad.toml is not a valid TOML sweep file"):
        load_sweep(bad)
    with pytest.raises(SweepError, match="cannot read sweep file .*missing.toml"):
        load_sweep(tmp_path / "missing.toml")
