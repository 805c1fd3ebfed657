"""scripts/bench_torch_checkpoint.py at toy sizes: a row per implementation, memories matched,
gradients agreeing with plain autograd and bitwise among bptt's plans."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_torch_checkpoint.py"
IMPLS = ["plain", "torch_checkpoint", "bptt_revolve", "bptt_adaptive", "bptt_adaptive_half"]


def test_the_torch_checkpoint_benchmark_writes_matched_rows(tmp_path):
    out, table = tmp_path / "nested" / "rows.json", tmp_path / "rows.md"
    result = subprocess.run([sys.executable, str(SCRIPT), "--seq-len", "16", "--batch", "4",
                             "--inputs", "3", "--hidden", "8", "--rounds", "1",
                             "--json", str(out), "--markdown", str(table)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    rows = {r["impl"]: r for r in json.loads(out.read_text())}
    assert list(rows) == IMPLS
    for name, row in rows.items():
        assert row["median_s"] > 0 and row["measured_peak_bytes"] > 0, name
        assert row["grad_rel_diff_vs_plain"] <= 1e-5, name
        assert (row["ledger_peak_bytes"] is None) == (not name.startswith("bptt")), name
        if name.startswith("bptt"):
            assert row["bitwise_as_bptt_revolve"] and row["ledger_peak_bytes"] <= row[
                "measured_peak_bytes"], name
    assert rows["torch_checkpoint"]["memory_vs_torch_checkpoint"] == 1.0
    assert rows["bptt_adaptive_half"]["ledger_peak_bytes"] < rows["bptt_adaptive"][
        "ledger_peak_bytes"]
    assert "| bptt_adaptive | Adaptive(budget=" in table.read_text()
    assert "equal memory: adaptive/torch_checkpoint time" in result.stdout
