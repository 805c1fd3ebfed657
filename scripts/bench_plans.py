"""What planning costs at scale: making, validating and counting each strategy's plan for long T.

For each strategy the plan is made for a uniform chain of T steps, then its actions are
generated once (the cost of iterating a plan) and replayed once by `simulate` (validation and
counts, actions generated again inside); the replay's own cost per action is the difference.
`plan.check()` is what `execute` pays before a run: a replay, or Revolve's closed-form counts.
Run on one core for steadier figures:

    taskset -c 1 python scripts/bench_plans.py --seq-len 1000000
"""
from __future__ import annotations

import time
from pathlib import Path

import click

from bptt.training.files import atomic_write_json
from checkpointing import Full, Periodic, Revolve, Truncated, simulate
from checkpointing.plan import ChainProfile


def strategies() -> list:
    """The strategies measured: every exact kind, and truncation."""
    return [Full(), Periodic(), Truncated(50), Revolve(20)]


def measure(strategy, seq_len: int) -> dict:
    """One strategy's row: actions, seconds to make/generate/replay/check, us per action."""
    profile = ChainProfile.uniform(seq_len)
    start = time.perf_counter()
    plan = strategy.plan(profile)
    made = time.perf_counter() - start
    start = time.perf_counter()
    actions = sum(1 for _ in plan)
    generated = time.perf_counter() - start
    start = time.perf_counter()
    stats = simulate(plan, profile=profile)
    simulated = time.perf_counter() - start
    start = time.perf_counter()
    plan.check()
    checked = time.perf_counter() - start
    return {"strategy": repr(strategy), "seq_len": seq_len, "actions": actions,
            "make_s": made, "generate_s": generated, "simulate_s": simulated,
            "check_s": checked, "forward_steps": stats.forward_steps,
            "generate_us_per_action": generated / actions * 1e6,
            "replay_us_per_action": max(0.0, simulated - generated) / actions * 1e6}


@click.command()
@click.option("--seq-len", default=1_000_000, show_default=True, type=click.IntRange(1),
              help="T, the chain's length.")
@click.option("--json", "json_path", type=click.Path(path_type=Path), help="Rows as JSON.")
def main(seq_len, json_path):
    """Time to make, iterate, validate and count each strategy's plan for T steps."""
    rows = [measure(s, seq_len) for s in strategies()]
    print(f"T={seq_len}")
    print(f"{'strategy':<32} {'actions':>9} {'generate us/a':>14} {'replay us/a':>12} "
          f"{'check s':>8}")
    for r in rows:
        print(f"{r['strategy']:<32} {r['actions']:>9} {r['generate_us_per_action']:>14.3f} "
              f"{r['replay_us_per_action']:>12.3f} {r['check_s']:>8.3f}")
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(json_path, rows)


if __name__ == "__main__":
    main()
