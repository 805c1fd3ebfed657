"""Loss against training step and against wall-clock time, per strategy, on a long-range task.

A tanh RNN (hidden 64, Adam lr 3e-3, batch 32, 400 steps, seed 42) learns next-symbol
prediction on the embedded Reber grammar at T=200 (Hochreiter & Schmidhuber 1997) with full,
checkpoint, revolve and adaptive -- exact, so their loss curves are the same bit for bit -- and
with truncated BPTT whose window k=4 is shorter than the grammar's long-range lag (the repeated
branch symbol comes 6 to dozens of steps after the first), so it follows another trajectory and
misses that symbol more often. Runs through `bptt.studies.bench.benchmark`, the rows
`bptt-bench compare` prints; adds the long-range accuracy on a held-out batch. Writes
convergence.png and convergence.json (the rows with their histories) into --out. About a minute
on two cores.

    python scripts/figure_convergence.py        # results/figures/convergence.{png,json}
"""
from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from bptt.studies.bench import benchmark, first_batch_gradients, label
from bptt.training.files import atomic_write_json
from bptt.plots.curves import plot_training_curves
from bptt.training.train import SequenceSetup
from checkpointing import Adaptive, Full, Periodic, Revolve, Truncated, simulate
from tasks import make_task


@click.command()
@click.option("--seq-len", default=200, show_default=True)
@click.option("--steps", default=400, show_default=True, help="Training steps.")
@click.option("--hidden", default=64, show_default=True)
@click.option("--k", default=4, show_default=True, help="truncated's window (k1 = k2).")
@click.option("--slots", default=10, show_default=True, help="revolve's slots.")
@click.option("--seed", default=42, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=Path("results/figures"),
              show_default=True, help="Folder for convergence.png and convergence.json.")
@click.option("--quick", is_flag=True, help="T=20, 6 steps, hidden 8, for tests.")
def main(seq_len, steps, hidden, k, slots, seed, out, quick):
    """Train with every strategy on the same seed and batches; plot the loss curves."""
    if quick:
        seq_len, steps, hidden, slots = 20, 6, 8, 3
    task = make_task("reber", seq_len=seq_len)
    setup = SequenceSetup(task=task, hidden=hidden, steps=steps, seed=seed)
    model, inputs, targets = setup.first_batch()
    profile = model.chain(inputs, targets).profile()
    full_bytes = simulate(Full().plan(profile), profile=profile).peak_bytes
    budget = max(full_bytes // 10, Adaptive.minimum_budget(profile))
    strategies = [Full(), Periodic(), Revolve(slots), Adaptive(budget), Truncated(k)]
    reference = first_batch_gradients(setup, Full())[3]
    evaluation = task.batch(np.random.default_rng(seed + 1), 256)
    rows = []
    for strategy in strategies:
        row, run, _ = benchmark(setup, strategy, reference)
        row["long_range_accuracy"] = task.long_range_accuracy(
            run.model.predict(evaluation[0]), evaluation[1])
        rows.append(row)
        click.echo(f"{label(row):>28}: final loss {row['final_loss']:.4f}, {row['metric_name']} "
                   f"{row['metric']:.4f}, long-range accuracy {row['long_range_accuracy']:.3f}, "
                   f"{row['step_time_s']:.4f} s/step, grad diff vs full "
                   f"{row['grad_max_abs_diff_vs_full']:.3g}")
    out.mkdir(parents=True, exist_ok=True)
    plot_training_curves(
        out / "convergence.png", rows,
        title=f"embedded Reber, T={seq_len}, tanh RNN hidden {hidden}, Adam lr 3e-3, seed {seed}",
        notes=[f"long-range acc. {r['long_range_accuracy']:.3f}" for r in rows])
    atomic_write_json(out / "convergence.json", rows)


if __name__ == "__main__":
    main()
