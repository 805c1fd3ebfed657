"""scripts/bench_peers.py on a short sequence: its rows, its table, gradients that agree."""
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_peers.py"
BPTT = ["bptt_full", "bptt_checkpoint", "bptt_revolve", "bptt_adaptive", "numpy_full"]
TORCH = ["torch_rnn", "torch_loop", "torch_checkpoint"]


def test_the_peer_benchmark_writes_a_row_per_implementation_with_agreeing_gradients(tmp_path):
    out, table = tmp_path / "nested" / "peers.json", tmp_path / "peers.md"
    # its own process: the script pins BLAS threads before NumPy loads
    result = subprocess.run([sys.executable, str(SCRIPT), "--seq-len", "20", "--rounds", "1",
                             "--json", str(out), "--markdown", str(table)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    rows = json.loads(out.read_text())
    has_torch = importlib.util.find_spec("torch") is not None
    assert [r["impl"] for r in rows] == BPTT + (TORCH if has_torch else [])
    for row in rows:
        assert row["seq_len"] == 20 and row["median_s"] > 0
        assert row["grad_rel_diff_vs_float64"] < 1e-4, row["impl"]
        assert (row["peak_traced_bytes"] is None) == row["impl"].startswith("torch")
    numpy = next(r for r in rows if r["impl"] == "numpy_full")
    assert numpy["ratio_vs_numpy_full"] == 1.0
    assert "| 20 | bptt_full |" in table.read_text()
    assert "T=20: time full/numpy" in result.stdout
