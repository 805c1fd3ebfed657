"""scripts/bench_plans.py at a small T: a row per strategy, counts that match simulate."""
import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_plans.py"


def test_the_planning_benchmark_writes_a_row_per_strategy(tmp_path):
    out = tmp_path / "nested" / "plans.json"
    result = subprocess.run([sys.executable, str(SCRIPT), "--seq-len", "100", "--json", str(out)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    rows = json.loads(out.read_text())
    assert [r["strategy"].split("(")[0] for r in rows] == ["Full", "Periodic", "Truncated",
                                                           "Revolve"]
    full = rows[0]
    assert full["actions"] == 200 and full["forward_steps"] == 100
    assert all(r["actions"] > 0 and r["replay_us_per_action"] >= 0 for r in rows)
    assert rows[3]["forward_steps"] > 100  # Revolve recomputes


def test_a_bad_length_is_refused():
    result = subprocess.run([sys.executable, str(SCRIPT), "--seq-len", "0"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "--seq-len" in result.stderr
