"""scripts/bench_peers.py on a short sequence for every cell: its rows, its table, gradients that
agree across implementations (bptt, hand-written NumPy, torch)."""
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_peers.py"
BPTT = ["bptt_full", "bptt_checkpoint", "bptt_revolve", "bptt_adaptive", "numpy_full"]


def test_the_peer_benchmark_writes_a_row_per_cell_and_implementation_with_agreeing_gradients(
        tmp_path):
    out, table = tmp_path / "nested" / "peers.json", tmp_path / "peers.md"
    # its own process: the script pins BLAS threads before NumPy loads
    result = subprocess.run([sys.executable, str(SCRIPT), "--cells", "rnn,lstm,gru",
                             "--seq-len", "12", "--rounds", "1", "--hidden", "16", "--batch", "2",
                             "--json", str(out), "--markdown", str(table)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    rows = json.loads(out.read_text())
    has_torch = importlib.util.find_spec("torch") is not None
    for cell in ("rnn", "lstm", "gru"):
        torch = [f"torch_{cell}", "torch_loop", "torch_checkpoint"] if has_torch else []
        floors = ["gemm_floor"] + (["gemm_floor_torch"] if has_torch else [])
        found = [r for r in rows if r["cell"] == cell]
        assert [r["impl"] for r in found] == BPTT + torch + floors
        for row in found:
            assert row["seq_len"] == 12 and row["median_s"] > 0 and row["us_per_step"] > 0
            if row["impl"].startswith("gemm_floor"):
                assert row["grad_rel_diff_vs_float64"] is None
            else:
                assert row["grad_rel_diff_vs_float64"] < 1e-4, (cell, row["impl"])
                assert (row["peak_traced_bytes"] is None) == row["impl"].startswith("torch")
        numpy = next(r for r in found if r["impl"] == "numpy_full")
        assert numpy["ratio_vs_numpy_full"] == 1.0
        assert f"| {cell} | 12 | bptt_full |" in table.read_text()
        assert f"{cell} T=12: bptt_full/torch_{cell}" in result.stdout
        assert f"{cell} T=12: largest relative gradient difference" in result.stdout


def test_the_peer_benchmark_refuses_an_unknown_cell():
    result = subprocess.run([sys.executable, str(SCRIPT), "--cells", "rnn,elman"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "elman" in result.stderr
