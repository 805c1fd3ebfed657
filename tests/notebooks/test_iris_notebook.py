"""notebooks/iris_backprop.ipynb runs top to bottom, offline, in under a minute, and is stored
without outputs. Its own cells assert the figures it shows (accuracy >= 0.93, every identity,
identical predictions after reloading, sympy against backward to 1e-12, exact plans equal)."""
import json
import re
import time
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "iris_backprop.ipynb"


def code_cells():
    return [c for c in json.loads(NOTEBOOK.read_text())["cells"] if c["cell_type"] == "code"]


def test_the_notebook_is_stored_without_outputs():
    for cell in code_cells():
        assert cell["outputs"] == [] and cell["execution_count"] is None


def test_the_notebook_uses_the_public_api_only():
    source = "\n".join("".join(c["source"]) for c in code_cells())
    assert not re.search(r"\bimport _|\._[a-z]", source), "a private name is used"


def test_the_notebook_runs_top_to_bottom_in_under_a_minute(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    pytest.importorskip("sympy")  # the notebook extra
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the notebook chooses inline
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    started = time.perf_counter()
    nbclient.NotebookClient(notebook, timeout=60, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    seconds = time.perf_counter() - started
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs)
    assert "final test accuracy" in text and "identical under every exact strategy" in text
    assert sum(1 for o in outputs if "image/png" in o.get("data", {})) >= 2  # the curves, ...
    assert seconds < 60, f"the notebook took {seconds:.1f} s"
