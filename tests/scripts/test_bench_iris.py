"""scripts/bench_iris.py: bptt's Iris training and the minimal NumPy MLP reach the same accuracy."""
import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_iris.py"


def test_the_iris_overhead_benchmark_compares_two_equal_trainings():
    result = subprocess.run([sys.executable, str(SCRIPT), "--epochs", "3", "--rounds", "1"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    accuracy = dict(re.findall(r"^(\w+): .* test accuracy ([0-9.]+)$", result.stdout, re.M))
    assert set(accuracy) == {"bptt", "numpy"} and accuracy["bptt"] == accuracy["numpy"]
    assert "bptt/numpy" in result.stdout
