"""Cache everything vs checkpoint the hidden layers, MLP depth 2 to 16 on Iris: the table.

`bptt.studies.depth.depth_study` on the Iris recipe (width 32, SGD lr 0.1, batch 16, 80 epochs,
seed 42) for full, checkpoint (sqrt(L) segments) and revolve with one slot; writes the rows as
JSON (per-epoch test accuracy included) and the Markdown table, and prints the table.

    taskset -c 1 python scripts/study_depth.py          # results/depth/depth.{json,md}, ~30 s
    python scripts/study_depth.py --quick               # depths 2 and 4, 3 epochs
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from bptt.studies.depth import depth_study, markdown_table
from bptt.training.files import atomic_write_bytes, atomic_write_json


@click.command()
@click.option("--depths", default="2,4,8,16", show_default=True,
              help="Comma-separated numbers of linear layers.")
@click.option("--width", default=32, show_default=True, help="Units per hidden layer.")
@click.option("--epochs", default=80, show_default=True)
@click.option("--seed", default=42, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=Path("results/depth"),
              show_default=True, help="Folder for depth.json and depth.md.")
@click.option("--quick", is_flag=True, help="Depths 2 and 4, 3 epochs: a smoke run for tests.")
def main(depths, width, epochs, seed, out, quick):
    """Train each depth under each strategy; write and print the table."""
    chosen = [2, 4] if quick else [int(d) for d in depths.split(",") if d.strip()]
    rows = depth_study(chosen, width=width, epochs=3 if quick else epochs, seed=seed)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "depth.json", [dataclasses.asdict(r) for r in rows])
    table = markdown_table(rows)
    atomic_write_bytes(out / "depth.md", (table + "\n").encode())
    click.echo(table)
    lost = [r for r in rows if r.same_as_full is False]
    click.echo("every exact plan followed full's accuracy curve bit for bit" if not lost else
               f"DIFFERENT from full: {[(r.depth, r.strategy) for r in lost]}")


if __name__ == "__main__":
    main()
