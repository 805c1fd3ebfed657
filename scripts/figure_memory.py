"""Peak memory against sequence length, per strategy, on log-log axes with the fitted slopes.

A small tanh RNN (B=8, D=4, H=32, float32) is run for one training step at each T from 30 to
3000 with every strategy; the y value is the executor's exact `peak_cache_bytes` (what
`checkpointing.execute` counted held by states and tapes), so the figure is deterministic.
Expected slopes: 1 for full, 0.5 for checkpoint, 0 for revolve with fixed slots, for adaptive
with a fixed budget and for truncated with a fixed window. Writes memory.png and memory.json.

    python scripts/figure_memory.py            # results/figures/memory.{png,json}
"""
from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from bptt.training.files import atomic_write_json
from bptt.nn import RNN
from bptt.plots.memory import plot_memory_scaling
from checkpointing import Adaptive, Full, Periodic, Revolve, Truncated, execute, simulate


def lengths(shortest: int, longest: int, count: int) -> list[int]:
    """`count` sequence lengths spread evenly on a log scale from `shortest` to `longest`."""
    return sorted({int(round(t)) for t in np.geomspace(shortest, longest, count)})


@click.command()
@click.option("--shortest", default=30, show_default=True, help="Smallest T.")
@click.option("--longest", default=3000, show_default=True, help="Largest T.")
@click.option("--points", default=9, show_default=True, help="Lengths between them.")
@click.option("--hidden", default=32, show_default=True)
@click.option("--batch", default=8, show_default=True)
@click.option("--slots", default=8, show_default=True, help="revolve's slots (fixed over T).")
@click.option("--k", default=16, show_default=True, help="truncated's window (k1 = k2).")
@click.option("--out", type=click.Path(path_type=Path), default=Path("results/figures"),
              show_default=True, help="Folder for memory.png and memory.json.")
@click.option("--quick", is_flag=True, help="T from 10 to 80 only, for tests.")
def main(shortest, longest, points, hidden, batch, slots, k, out, quick):
    """Measure each strategy's exact peak cache at several T; plot it with the fitted slopes."""
    if quick:
        shortest, longest, points, slots, k = 10, 80, 3, 4, 4
    input_size = 4
    model = RNN("rnn", input_size, hidden, 1, np.random.default_rng(0))
    rng = np.random.default_rng(1)
    budget = None  # fixed bytes for adaptive: half of what full needs at the shortest T
    rows = []
    for T in lengths(shortest, longest, points):
        inputs = rng.standard_normal((T, batch, input_size)).astype(np.float32)
        targets = rng.standard_normal((T, batch, 1)).astype(np.float32)
        profile = model.chain(inputs, targets).profile()
        if budget is None:
            full_bytes = simulate(Full().plan(profile), profile=profile).peak_bytes
            budget = max(full_bytes // 2, Adaptive.minimum_budget(profile))
        for strategy in (Full(), Periodic(), Revolve(slots), Adaptive(budget), Truncated(k)):
            plan = strategy.plan(profile)
            model.zero_grad()
            run = execute(plan, model.chain(inputs, targets))
            name = {"full": "full", "checkpoint": "checkpoint (segment ceil sqrt T)",
                    "revolve": f"revolve(slots={slots})",
                    "adaptive": f"adaptive(budget={budget} B)",
                    "truncated": f"truncated(k={k}), inexact"}[strategy.name]
            rows.append({"label": name, "strategy": strategy.name, "seq_len": T,
                         "peak_cache_bytes": run.peak_cache_bytes,
                         "predicted_peak_bytes": simulate(plan, profile=profile).peak_bytes,
                         "forward_steps": run.stats.forward_steps,
                         "peak_states": run.stats.peak_states, "peak_tapes": run.stats.peak_tapes})
        click.echo(f"T={T:>5}: " + ", ".join(f"{r['strategy']} {r['peak_cache_bytes']}"
                                             for r in rows[-5:]))
    out.mkdir(parents=True, exist_ok=True)
    slopes = plot_memory_scaling(
        out / "memory.png", rows,
        title=f"peak cache of one training step, tanh RNN B={batch}, H={hidden}, float32")
    for name, slope in slopes.items():
        click.echo(f"{name:>40}: slope {slope:.3f}")
    atomic_write_json(out / "memory.json", {
        "model": {"cell": "rnn", "input_size": input_size, "hidden": hidden, "batch": batch,
                  "dtype": "float32"},
        "slopes": slopes, "rows": rows})


if __name__ == "__main__":
    main()
