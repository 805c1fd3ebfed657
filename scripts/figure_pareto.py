"""Time against memory across strategies and their parameters: the Pareto front of exact BPTT.

One training step's gradient (forward and backward, `checkpointing.execute`) of a tanh RNN
(T=1000, B=16, D=8, H=128, float32) with full, checkpoint at several segment lengths, revolve
at several slot counts and adaptive at several budgets. x: the executor's exact peak cache;
y: the median of --rounds timings, taken in rounds that interleave all points so that machine
noise hits them alike, each after a garbage collection. Every strategy here gives full's
gradient bit for bit. Writes pareto.png and pareto.json (every point, the front) into --out.

    python scripts/figure_pareto.py            # results/figures/pareto.{png,json}
"""
from __future__ import annotations

import gc
import time
from pathlib import Path

import click
import numpy as np

from bptt.studies.bench import label
from bptt.training.files import atomic_write_json
from bptt.nn import RNN
from bptt.plots.memory import plot_pareto
from checkpointing import Adaptive, Full, Periodic, Revolve, execute, simulate

SEGMENTS = (4, 8, 16, 32, 64, 128, 256)
SLOTS = (4, 8, 16, 32, 64, 128)
BUDGET_FRACTIONS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.4)


def points(profile, segments, slots, fractions) -> list[tuple[object, str]]:
    """(strategy, short tag) for every point of the figure on a chain of `profile`."""
    full_bytes = simulate(Full().plan(profile), profile=profile).peak_bytes
    minimum = Adaptive.minimum_budget(profile)
    chosen = [(Full(), "")]
    chosen += [(Periodic(k), f"k={k}") for k in segments if k < profile.length]
    chosen += [(Revolve(s), f"s={s}") for s in slots if s < profile.length]
    chosen += [(Adaptive(max(int(f * full_bytes), minimum)), f"{f:.0%}") for f in fractions]
    return chosen


@click.command()
@click.option("--seq-len", default=1000, show_default=True)
@click.option("--hidden", default=128, show_default=True)
@click.option("--batch", default=16, show_default=True)
@click.option("--rounds", default=7, show_default=True, help="Timed rounds (median taken).")
@click.option("--out", type=click.Path(path_type=Path), default=Path("results/figures"),
              show_default=True, help="Folder for pareto.png and pareto.json.")
@click.option("--quick", is_flag=True, help="T=40, H=8, two rounds, for tests.")
def main(seq_len, hidden, batch, rounds, out, quick):
    """Time and exact peak cache of every (strategy, parameter); the front highlighted."""
    segments, slots, fractions = SEGMENTS, SLOTS, BUDGET_FRACTIONS
    if quick:
        seq_len, hidden, batch, rounds = 40, 8, 2, 2
        segments, slots, fractions = (4, 8), (2, 4), (0.1, 0.4)
    input_size = 8
    model = RNN("rnn", input_size, hidden, 1, np.random.default_rng(0))
    rng = np.random.default_rng(1)
    inputs = rng.standard_normal((seq_len, batch, input_size)).astype(np.float32)
    targets = rng.standard_normal((seq_len, batch, 1)).astype(np.float32)
    profile = model.chain(inputs, targets).profile()
    chosen = points(profile, segments, slots, fractions)
    plans = [strategy.plan(profile) for strategy, _ in chosen]

    def step(plan):
        model.zero_grad()
        return execute(plan, model.chain(inputs, targets))

    rows = []
    for (strategy, tag), plan in zip(chosen, plans):
        run = step(plan)  # also the warm-up
        rows.append({"strategy": strategy.name, "params": vars(strategy).copy(), "tag": tag,
                     "seq_len": seq_len, "peak_cache_bytes": run.peak_cache_bytes,
                     "predicted_peak_bytes": simulate(plan, profile=profile).peak_bytes,
                     "forward_steps": run.stats.forward_steps, "times_s": []})
    for _ in range(rounds):
        for row, plan in zip(rows, plans):
            gc.collect()  # the last step's garbage is not this step's cost
            start = time.perf_counter()
            step(plan)
            row["times_s"].append(time.perf_counter() - start)
    for row in rows:
        row["label"] = label(row)
        row["step_time_s"] = float(np.median(row["times_s"]))
    out.mkdir(parents=True, exist_ok=True)
    front = plot_pareto(out / "pareto.png", rows,
                        title=f"exact strategies on a tanh RNN, T={seq_len}, B={batch}, "
                              f"H={hidden} (time: median of {rounds} interleaved rounds; "
                              f"circled: the Pareto front)")
    full = rows[0]
    for k, row in enumerate(rows):
        row["on_front"] = k in front
        row["cache_vs_full"] = row["peak_cache_bytes"] / full["peak_cache_bytes"]
        row["time_vs_full"] = row["step_time_s"] / full["step_time_s"]
        click.echo(f"{'*' if row['on_front'] else ' '} {row['label']:>28}: "
                   f"{row['peak_cache_bytes'] / 2**10:9.1f} KiB ({row['cache_vs_full']:.3f}), "
                   f"{row['forward_steps']:>6} forwards, {row['step_time_s']:.4f} s "
                   f"({row['time_vs_full']:.2f}x)")
    atomic_write_json(out / "pareto.json", {
        "model": {"cell": "rnn", "seq_len": seq_len, "input_size": input_size,
                  "hidden": hidden, "batch": batch, "dtype": "float32"},
        "rounds": rounds, "front": [rows[k]["label"] for k in front], "rows": rows})


if __name__ == "__main__":
    main()
