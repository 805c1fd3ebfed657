"""scripts/load_serve.py on a few requests: it starts a server, measures, stops it."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "load_serve.py"


def test_the_load_script_reports_latency_and_throughput(tmp_path):
    out = tmp_path / "load.json"
    result = subprocess.run([sys.executable, str(SCRIPT), "--requests", "40", "--warmup", "5",
                             "--seconds", "2", "--json", str(out)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    row = json.loads(out.read_text())
    assert row["throughput_requests"] > 0 and row["predictions_per_s"] > 0
    assert 0 < row["server"]["p50_ms"] <= row["round_trip"]["p50_ms"]
    assert "| round trip (client) |" in result.stdout and "targets:" in result.stdout
