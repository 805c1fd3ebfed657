"""`bptt-bench sweep` and `bptt-bench report`: outputs, and one `Error:` line for bad input."""
import sqlite3

import pytest
from click.testing import CliRunner

from bptt.cli import main
from bptt.studies.store import Store

pytest.importorskip("distributed")


def run(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def error_line(result):
    lines = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert "Traceback" not in result.output
    return lines[0]


@pytest.mark.parametrize("content, message", [
    ("[sweep\n", "is not a valid TOML sweep file"),
    ('strategies = ["full", "magic"]\ncells = ["rnn"]\nseq_lens = [4]\ntasks = ["adding"]\n'
     'seeds = [0]\n', "unknown strategy 'magic'"),
    ('strategies = ["full"]\ncells = ["elman"]\nseq_lens = [4]\ntasks = ["adding"]\n'
     'seeds = [0]\n', "unknown cell 'elman'"),
])
def test_bad_sweep_files_are_one_error_line(tmp_path, content, message):
    path = tmp_path / "s.toml"
    path.write_text(content)
    line = error_line(run("sweep", str(path), "--db", str(tmp_path / "s.db")))
    assert message in line and "s.toml" in line


def test_bad_options_and_databases_are_one_error_line(tmp_path):
    db = str(tmp_path / "s.db")
    assert "give a sweep file" in error_line(run("sweep", "--db", db))
    assert "--seeds must be comma-separated" in error_line(
        run("sweep", "--db", db, "--strategies", "full", "--seeds", "one"))
    Store(db).close()
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE meta SET value = '0.0.0' WHERE name = 'version'")
    assert "written by bptt 0.0.0" in error_line(run("sweep", "--db", db, "--strategies", "full"))
    assert "does not exist" in error_line(run("report", str(tmp_path / "none.db")))
    empty = tmp_path / "empty.db"
    Store(empty).close()
    assert "no finished points" in error_line(run("report", str(empty)))


def test_an_unreachable_scheduler_is_one_error_line(tmp_path):
    line = error_line(run("sweep", "--db", str(tmp_path / "s.db"), "--strategies", "full",
                          "--seq-lens", "4", "--steps", "1", "--scheduler", "tcp://127.0.0.1:1"))
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:1" in line
    assert Store(tmp_path / "s.db").done() == set()


def test_sweep_then_report_writes_figures_csv_and_summary(tmp_path):
    db, out = tmp_path / "s.db", tmp_path / "report"
    result = run("sweep", "--db", str(db), "--strategies", "full;revolve(slots=3);uoro",
                 "--compressions", "float16", "--cells", "rnn,lstm", "--seq-lens", "6,12",
                 "--steps", "4", "--hidden", "4", "--batch", "2", "--workers", "2")
    assert result.exit_code == 0, result.output
    assert "done: 16 run, 0 skipped, 16 points" in result.output
    result = run("report", str(db), "--out", str(out))
    assert result.exit_code == 0, result.output
    for name in ("table.csv", "summary.md", "pareto_steps.png", "pareto_metric.png",
                 "gradient_error.png"):
        assert (out / name).stat().st_size > 0
    csv_lines = (out / "table.csv").read_text().splitlines()
    assert len(csv_lines) == 17 and csv_lines[0].startswith("task,cell,seq_len,seed,strategy")
    summary = (out / "summary.md").read_text()
    assert "## adding, lstm" in summary and "`revolve(slots=3, snapshots=float16)`" in summary
