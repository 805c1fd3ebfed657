"""The depth study: exact plans hold less and follow full's curve bit for bit."""
import pytest

from bptt.studies.depth import depth_study, markdown_table
from tasks import iris


@pytest.fixture(scope="module")
def rows():
    return depth_study((2, 5), width=8, epochs=2, data=iris.load_data())


def test_every_exact_plan_follows_fulls_accuracy_curve_and_holds_less_when_deep(rows):
    assert [(r.depth, r.strategy) for r in rows] == [
        (d, s) for d in (2, 5) for s in ("full", "checkpoint", "revolve(slots=1)")]
    by = {(r.depth, r.strategy): r for r in rows}
    for r in rows:
        assert len(r.test_accuracy) == 2 and r.final_accuracy == r.test_accuracy[-1]
        assert r.same_as_full is (None if r.strategy == "full" else True)
    deep_full = by[(5, "full")]
    assert by[(5, "checkpoint")].peak_cache_bytes < deep_full.peak_cache_bytes
    assert by[(5, "revolve(slots=1)")].peak_cache_bytes < by[(5, "checkpoint")].peak_cache_bytes
    assert deep_full.forwards_per_batch == 5
    assert by[(5, "revolve(slots=1)")].forwards_per_batch == 15  # 5 + 4 + 3 + 2 + 1


def test_the_table_has_a_line_per_run_with_ratios_to_full(rows):
    lines = markdown_table(rows).splitlines()
    assert len(lines) == 2 + len(rows)
    assert "| 5 | revolve(slots=1) |" in lines[-1] and "yes, bit for bit" in lines[-1]
    assert "| 1.00 |" in lines[2]


@pytest.mark.parametrize("kwargs, message", [({"strategies": ("checkpoint",)}, "include 'full'"),
                                             ({"strategies": ("full", "x")}, "come from"),
                                             ({"depths": (0,)}, "integer >= 1, got 0")])
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        depth_study(**kwargs, epochs=1)
