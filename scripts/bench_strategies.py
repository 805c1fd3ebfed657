"""Memory and time of each strategy on one training step, side by side in one run.

The work of the strategies issue: tanh RNN, B=32, D=32, H=256, float32, MSE on a linear read-out
of every step, T=1000 (change with --seq-len). Each strategy's step is timed in rounds that
interleave the strategies (the machine is noisy: ratios taken in one run are what to quote), and
measured once under tracemalloc. Writes a JSON list of rows and prints a Markdown table.

    python scripts/bench_strategies.py --json results/strategies.json
"""
from __future__ import annotations

import time
from pathlib import Path

import click
import numpy as np

from bptt.training.files import atomic_write_json
from bptt.training.memory import traced_peak
from bptt.nn import RNN
from checkpointing import Adaptive, Full, Periodic, Revolve, execute, simulate


def strategies_for(profile, budget_fraction: float, slots: int):
    full_bytes = simulate(Full().plan(profile), profile=profile).peak_bytes
    budget = max(int(full_bytes * budget_fraction), Adaptive.minimum_budget(profile))
    return [Full(), Periodic(), Revolve(slots), Adaptive(budget)]


@click.command()
@click.option("--seq-len", default=1000, show_default=True)
@click.option("--batch", default=32, show_default=True)
@click.option("--inputs", "input_size", default=32, show_default=True)
@click.option("--hidden", default=256, show_default=True)
@click.option("--rounds", default=7, show_default=True, help="Timed rounds per strategy.")
@click.option("--budget-fraction", default=0.05, show_default=True,
              help="adaptive's budget as a fraction of full's cache.")
@click.option("--slots", default=32, show_default=True, help="revolve's slots.")
@click.option("--json", "json_path", type=click.Path(path_type=Path))
def main(seq_len, batch, input_size, hidden, rounds, budget_fraction, slots, json_path):
    """Time and memory of one training step per strategy; ratios against full."""
    rng = np.random.default_rng(0)
    model = RNN("rnn", input_size, hidden, 1, np.random.default_rng(1), dtype=np.float32)
    inputs = rng.standard_normal((seq_len, batch, input_size)).astype(np.float32)
    targets = rng.standard_normal((seq_len, batch, 1)).astype(np.float32)
    profile = model.chain(inputs, targets).profile()
    strategies = strategies_for(profile, budget_fraction, slots)
    plans = [s.plan(profile) for s in strategies]

    def step(plan):
        model.zero_grad()
        return execute(plan, model.chain(inputs, targets))

    rows = []
    for strategy, plan in zip(strategies, plans):
        step(plan)  # warm-up
        traced, run = traced_peak(lambda: step(plan))
        rows.append({"strategy": strategy.name, "params": vars(strategy).copy(),
                     "seq_len": seq_len, "peak_cache_bytes": run.peak_cache_bytes,
                     "peak_traced_bytes": traced, "forward_steps": run.stats.forward_steps,
                     "times": []})
    for _ in range(rounds):
        for row, plan in zip(rows, plans):
            start = time.perf_counter()
            step(plan)
            row["times"].append(time.perf_counter() - start)
    full = rows[0]
    for row in rows:
        row["median_s"] = float(np.median(row.pop("times")))
        row["time_vs_full"] = row["median_s"] / float(np.median(full["median_s"]))
        row["cache_vs_full"] = row["peak_cache_bytes"] / full["peak_cache_bytes"]
    print(f"tanh RNN, T={seq_len}, B={batch}, D={input_size}, H={hidden}, float32, "
          f"{rounds} rounds")
    print("| strategy | peak cache | vs full | traced peak | forwards | median step | vs full |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        params = ", ".join(f"{k}={v}" for k, v in r["params"].items() if v is not None)
        print(f"| {r['strategy']}({params}) | {r['peak_cache_bytes'] / 2**20:.2f} MiB | "
              f"{r['cache_vs_full']:.3f} | {r['peak_traced_bytes'] / 2**20:.2f} MiB | "
              f"{r['forward_steps']} | {r['median_s']:.3f} s | {r['time_vs_full']:.2f}x |")
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(json_path, rows)


if __name__ == "__main__":
    main()
