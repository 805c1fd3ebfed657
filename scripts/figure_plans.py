"""The plan diagrams: which steps each strategy runs, keeps and recomputes, for one short chain.

Step across, time downward, as in the Revolve papers (Griewank & Walther 2000): full, checkpoint,
revolve and adaptive (given exactly revolve's peak bytes) and truncated, for a tanh RNN of T=20
steps. Writes plans.png and plans.json (each plan's counts and actions) into --out.

    python scripts/figure_plans.py            # results/figures/plans.{png,json}
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import click
import numpy as np

from bptt.training.files import atomic_write_json
from bptt.nn import RNN
from bptt.plots.plans import plot_plans
from checkpointing import Adaptive, Full, Periodic, Revolve, Truncated, simulate
from checkpointing.plan import ChainProfile


def rnn_profile(seq_len: int, hidden: int, batch: int) -> ChainProfile:
    """The sizes of a tanh RNN's steps (measured on one step), for `seq_len` steps."""
    model = RNN("rnn", 4, hidden, 1, np.random.default_rng(0))
    one = model.chain(np.zeros((1, batch, 4), np.float32),
                      np.zeros((1, batch, 1), np.float32)).profile()
    return ChainProfile.uniform(seq_len, one.state_bytes[0], one.tape_bytes[0])


@click.command()
@click.option("--seq-len", default=20, show_default=True, help="Steps of the chain drawn.")
@click.option("--slots", default=3, show_default=True, help="revolve's slots.")
@click.option("--k", default=5, show_default=True, help="truncated's window (k1 = k2).")
@click.option("--out", type=click.Path(path_type=Path), default=Path("results/figures"),
              show_default=True, help="Folder for plans.png and plans.json.")
@click.option("--quick", is_flag=True, help="A tiny chain (T=8), for tests.")
def main(seq_len, slots, k, out, quick):
    """Draw the plans of every strategy for one chain, side by side on one time scale."""
    if quick:
        seq_len, slots, k = 8, 2, 3
    profile = rnn_profile(seq_len, hidden=16, batch=4)
    revolve = Revolve(slots)
    budget = simulate(revolve.plan(profile), profile=profile).peak_bytes
    segment = Periodic().segment_length(seq_len)
    strategies = [("full", Full()), (f"checkpoint(segment={segment})", Periodic()),
                  (f"revolve(slots={slots})", revolve),
                  (f"adaptive(budget = revolve's {budget} B)", Adaptive(budget)),
                  (f"truncated(k={k})", Truncated(k))]
    plans = [(name, s.plan(profile)) for name, s in strategies]
    out.mkdir(parents=True, exist_ok=True)
    plot_plans(out / "plans.png", plans, profile,
               title=f"plans for a tanh RNN of T={seq_len} steps (state "
                     f"{profile.state_bytes[0]} B, tape {profile.tape_bytes[0]} B)")
    data = {"seq_len": seq_len, "state_bytes": profile.state_bytes[0],
            "tape_bytes": profile.tape_bytes[0], "plans": []}
    for name, plan in plans:
        stats = simulate(plan, profile=profile)
        data["plans"].append({"name": name, "strategy": plan.strategy, "exact": plan.exact,
                              **dataclasses.asdict(stats), "actions": plan.describe().split("\n")})
        click.echo(f"{name:>38}: {stats.forward_steps:>3} forwards, {stats.peak_states} "
                   f"slots, {stats.peak_tapes:>2} tapes held at most, peak {stats.peak_bytes} B")
    atomic_write_json(out / "plans.json", data)


if __name__ == "__main__":
    main()
