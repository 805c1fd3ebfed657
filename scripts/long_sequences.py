"""Training on very long sequences with a bounded cache: memory must not grow with T.

A tanh RNN (H=8, B=4, D=2: the adding problem's inputs, its loss on the last step) trains a few
steps on T = 10,000, 30,000 and 100,000 with `revolve(slots)` and with `adaptive(budget)`, the
budget being the bytes revolve's plan needs, so both hold the same memory. For each run: the
time to plan and validate (simulate) the schedule, the executor's exact peak cache, tracemalloc's
peak of one whole training step (building the chain, the executed plan, clipping and the Adam
update) with the batch already in memory, and the median step time (untraced). Memory held per
step of T, i.e. the growth of the traced peak with T, is compared with the bytes the inputs
themselves take per step.

    python scripts/long_sequences.py      # a minute or two; writes results/long_sequences.json
    python scripts/long_sequences.py --lengths 1000,3000 --json -
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click
import numpy as np

from bptt.training.files import atomic_write_json
from bptt.training.memory import traced_peak
from bptt.nn.rnn import RNN
from bptt.training.optim import Adam
from bptt.training.train import train_step
from checkpointing import Adaptive, Revolve, simulate
from tasks import make_task


def measure(make_strategy, T: int, hidden: int, batch: int, steps: int, seed: int) -> dict:
    """Train `steps` steps at length T with `make_strategy(profile)`; step 1 is traced, the
    others are timed."""
    task = make_task("adding", seq_len=T)
    data_rng = np.random.default_rng(seed)
    model = RNN("rnn", task.input_size, hidden, task.output_size, np.random.default_rng(seed + 1),
                loss=task.loss, every_step=task.every_step)
    params = model.parameters()
    optimizer = Adam(params, lr=3e-3)
    batches = [task.batch(data_rng, batch) for _ in range(steps)]
    profile = model.chain(*batches[0]).profile()
    strategy = make_strategy(profile)
    started = time.perf_counter()
    plan = strategy.plan(profile)
    stats = simulate(plan, profile=profile)
    planning = time.perf_counter() - started
    row = {"strategy": strategy.name, "params": vars(strategy).copy(), "seq_len": T,
           "hidden": hidden, "batch": batch, "input_size": task.input_size,
           "input_bytes": int(sum(a.nbytes for a in batches[0])),
           "planning_seconds": planning, "forward_steps": stats.forward_steps,
           "planned_peak_bytes": stats.peak_bytes, "losses": [], "step_seconds": []}
    for k, (inputs, targets) in enumerate(batches):
        def step():
            return train_step(plan, model.chain(inputs, targets), params, optimizer, step=k,
                              clip=1.0)
        if k == 1 or steps == 1:
            row["traced_peak_bytes"], result = traced_peak(step)
        else:
            start = time.perf_counter()
            result = step()
            row["step_seconds"].append(time.perf_counter() - start)
        row["losses"].append(result.execution.loss)
        row["peak_cache_bytes"] = result.execution.peak_cache_bytes
    row["median_step_seconds"] = float(np.median(row["step_seconds"])) if row["step_seconds"] \
        else None
    return row


@click.command()
@click.option("--lengths", default="10000,30000,100000", show_default=True,
              help="Comma-separated sequence lengths T.")
@click.option("--slots", default=20, show_default=True, help="revolve's slots.")
@click.option("--hidden", default=8, show_default=True)
@click.option("--batch", default=4, show_default=True)
@click.option("--steps", default=3, show_default=True,
              help="Training steps per run (the second is traced).")
@click.option("--seed", default=0, show_default=True)
@click.option("--json", "json_path", type=click.Path(path_type=Path),
              default=Path("results/long_sequences.json"), show_default=True,
              help="Where to write the rows ('-' for standard output).")
def main(lengths, slots, hidden, batch, steps, seed, json_path):
    """Peak memory and time of revolve and adaptive training as T grows to 100,000."""
    lengths = [int(t) for t in lengths.split(",")]
    rows = []
    strategies = [lambda profile: Revolve(slots),
                  # the bytes revolve's plan needs: both strategies hold the same memory
                  lambda profile: Adaptive(simulate(Revolve(slots).plan(profile),
                                                    profile=profile).peak_bytes)]
    for T in lengths:
        for make_strategy in strategies:
            row = measure(make_strategy, T, hidden, batch, steps, seed)
            rows.append(row)
            print(f"  T={T:>7} {row['strategy']:>8}: planned in {row['planning_seconds']:.2f} s, "
                  f"step {row['median_step_seconds'] or float('nan'):.2f} s", file=sys.stderr)
    base = {r["strategy"]: r for r in rows if r["seq_len"] == lengths[0]}
    for r in rows:
        first = base[r["strategy"]]
        extra_steps = r["seq_len"] - first["seq_len"]
        r["traced_growth_bytes_per_step"] = ((r["traced_peak_bytes"] - first["traced_peak_bytes"])
                                             / extra_steps if extra_steps else None)
        r["input_bytes_per_step"] = r["input_bytes"] / r["seq_len"]
    print(f"tanh RNN, H={hidden}, B={batch}, D=2 (adding problem), float32, Adam, clip 1.0; "
          f"{steps} training steps per row, one traced")
    print("| strategy | T | inputs | plan + validate | forwards | peak cache | traced peak "
          "| traced growth per step of T | inputs per step | median step |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        params = ", ".join(f"{k}={v}" for k, v in r["params"].items())
        growth = r["traced_growth_bytes_per_step"]
        print(f"| {r['strategy']}({params}) | {r['seq_len']:,} | {r['input_bytes'] / 2**20:.2f} MiB"
              f" | {r['planning_seconds']:.2f} s | {r['forward_steps']:,} | "
              f"{r['peak_cache_bytes']:,} B | {r['traced_peak_bytes'] / 2**10:.1f} KiB | "
              f"{'-' if growth is None else f'{growth:.2f} B'} | "
              f"{r['input_bytes_per_step']:.0f} B | "
              f"{r['median_step_seconds'] or float('nan'):.2f} s |")
    if str(json_path) == "-":
        print(json.dumps(rows, indent=2))
    else:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(json_path, rows)
        print(f"wrote {json_path}", file=sys.stderr)


if __name__ == "__main__":
    main()
