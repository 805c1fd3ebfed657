"""The README's `bptt-bench` examples reach the figures it states (comparisons with fewer
strategies, to stay fast). The commands are read from the README itself, so they cannot drift."""
import json
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from bptt.cli import main

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_commands() -> list[list[str]]:
    """Every `bptt-bench ...` command in the README's code blocks, continuation lines joined,
    `$ ` prompts and comments dropped, as argument lists without the program name."""
    text = README.read_text(encoding="utf-8").replace("\\\n", " ")
    commands, in_code = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            in_code = not in_code
            continue
        line = line.removeprefix("$ ").split("#")[0].strip()
        if in_code and line.startswith("bptt-bench "):
            commands.append(shlex.split(line)[1:])
    return commands


def find(*words) -> list[str]:
    matches = [c for c in readme_commands() if all(w in c for w in words)]
    assert matches, f"no README command with {words}"
    return matches[0]


def with_option(args: list[str], option: str, value: str | None) -> list[str]:
    """`args` with `option`'s value replaced (None: the option removed), or added."""
    args = list(args)
    if option in args:
        k = args.index(option)
        del args[k:k + 2]
    return args + ([option, value] if value is not None else [])


def invoke(args, tmp_path):
    args = with_option(with_option(args, "--plot", None), "--json", str(tmp_path / "r.json"))
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return json.loads((tmp_path / "r.json").read_text()), result


def test_the_readme_adding_comparison_separates_full_from_truncation(tmp_path):
    args = find("compare", "adding")
    assert "--k1" in args and args[args.index("--k1") + 1] == "3"
    args = with_option(with_option(args, "--strategies", "full,truncated"), "--slots", None)
    rows, result = invoke(args, tmp_path)
    full, truncated = rows
    trivial = 1 / 6
    assert full["metric"] < 0.02 < 0.1 < truncated["metric"]  # README: 0.003 and 0.162
    assert round(full["metric"], 3) == 0.003 and round(truncated["metric"], 3) == 0.162
    assert truncated["metric"] > 0.9 * trivial
    assert "trivial predictor 0.1667" in result.stdout


def test_the_readme_iris_command_learns(tmp_path):
    report, result = invoke(find("--task", "iris", "--hidden", "16"), tmp_path)
    assert report["sizes"] == [4, 16, 3]
    assert report["test_accuracy"] == pytest.approx(29 / 30)  # README: 0.967
    assert report["baseline_accuracy"] == pytest.approx(0.2)
    assert "trivial predictor 0.2" in result.stdout


def test_the_readme_iris_comparison_saves_memory_exactly(tmp_path):
    args = find("compare", "iris")
    rows, _ = invoke(with_option(with_option(args, "--strategies", "full,revolve"), "--k1", None),
                     tmp_path)
    full, revolve = rows
    # README: 40.75 KiB, 6 forwards against 24.00 KiB, 14 forwards; the same final loss
    assert (full["peak_cache_bytes"], full["forward_steps"]) == (41728, 6)
    assert (revolve["peak_cache_bytes"], revolve["forward_steps"]) == (24576, 14)
    assert revolve["final_train_loss"] == full["final_train_loss"]
    assert round(full["final_train_loss"], 4) == 0.0608
