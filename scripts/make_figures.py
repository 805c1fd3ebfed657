"""Regenerate every figure of the README's "Figures" section, with the JSON behind each.

Runs scripts/figure_plans.py, figure_memory.py, figure_heatmap.py, figure_pareto.py and
figure_convergence.py in turn (about four minutes on two cores; --quick: seconds, tiny sizes).

    python scripts/make_figures.py             # results/figures/*.png and *.json
"""
from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import click

HERE = Path(__file__).resolve().parent
FIGURES = ("plans", "memory", "heatmap", "pareto", "convergence")


def load(name: str):
    """The click command `main` of scripts/figure_<name>.py."""
    spec = importlib.util.spec_from_file_location(f"figure_{name}", HERE / f"figure_{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


@click.command()
@click.option("--out", type=click.Path(path_type=Path), default=Path("results/figures"),
              show_default=True, help="Folder for the PNGs and their JSON.")
@click.option("--quick", is_flag=True, help="Every script at tiny sizes (for tests).")
def main(out, quick):
    """Run every figure script into --out."""
    for name in FIGURES:
        click.echo(f"== {name}")
        start = time.perf_counter()
        load(name).main(["--out", str(out)] + (["--quick"] if quick else []),
                        standalone_mode=False)
        click.echo(f"   {out / name}.png in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
