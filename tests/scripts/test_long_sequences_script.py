"""scripts/long_sequences.py on short lengths: its rows, and memory that does not follow T."""
import importlib.util
import json
from pathlib import Path

from click.testing import CliRunner

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "long_sequences.py"


def test_the_long_sequence_script_writes_bounded_peaks_for_both_strategies(tmp_path):
    spec = importlib.util.spec_from_file_location("long_sequences", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "nested" / "long.json"
    result = CliRunner().invoke(module.main, ["--lengths", "300,900", "--slots", "4",
                                              "--steps", "2", "--json", str(out)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "| revolve(slots=4) | 900 |" in result.output
    rows = json.loads(out.read_text())
    assert [(r["strategy"], r["seq_len"]) for r in rows] == [
        ("revolve", 300), ("adaptive", 300), ("revolve", 900), ("adaptive", 900)]
    for r in rows:
        assert r["peak_cache_bytes"] <= r["planned_peak_bytes"] == rows[0]["planned_peak_bytes"]
        assert r["input_bytes"] == 32 * r["seq_len"] + 16 and len(r["losses"]) == 2
    assert rows[1]["losses"] == rows[0]["losses"]  # both exact: the same trajectory
    assert all(r["traced_growth_bytes_per_step"] < 16 for r in rows[2:])
