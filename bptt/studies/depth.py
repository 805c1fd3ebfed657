"""Cache everything or checkpoint the hidden layers: MLPs of growing depth on Iris.

An MLP is the depth-only chain of the time-becomes-depth idea: each layer is a step, its input
activation the state. `depth_study` trains the Iris MLP at several depths (hidden layers of one
width) with `full` (every layer's tape kept) and with exact checkpointing plans (sqrt(L)
segments, or Revolve with one slot: only the input kept, every layer recomputed), on the same
seed, and records per run: test accuracy after every epoch, the executor's exact peak cache
bytes, step forwards per batch, and seconds per epoch. An exact plan computes `full`'s gradients
bit for bit, so its accuracy curve must be `full`'s exactly; `same_as_full` says whether it was.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass

from checkpointing import Full, Periodic, Revolve, simulate
from tasks import iris

STRATEGIES = {"full": lambda profile: Full(),
              "checkpoint": lambda profile: Periodic(),
              "revolve(slots=1)": lambda profile: Revolve(1)}


@dataclass(frozen=True)
class DepthRow:
    """One (depth, strategy) run: `depth` linear layers (depth - 1 hidden of `width`), the test
    accuracy after each epoch, the final one, the executor's peak cache in bytes (largest over
    the batches), step forwards per batch (of the first batch's plan), median seconds per epoch
    (training + evaluation) and whether every epoch's accuracy and loss equal full's bit for
    bit (None for full itself)."""

    depth: int
    width: int
    strategy: str
    test_accuracy: list[float]
    final_accuracy: float
    peak_cache_bytes: int
    forwards_per_batch: int
    seconds_per_epoch: float
    same_as_full: bool | None


def depth_study(depths=(2, 4, 8, 16), width: int = 32, epochs: int = 80, seed: int = 42,
                strategies=tuple(STRATEGIES), data: iris.IrisData | None = None
                ) -> list[DepthRow]:
    """Train every (depth, strategy) pair with the Iris recipe (SGD lr 0.1, batch 16) and
    return one `DepthRow` each, full first at each depth. Time is wall-clock on a shared
    machine: compare the strategies of one depth, taken side by side."""
    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown or "full" not in strategies:
        raise ValueError(f"strategies must include 'full' and come from {sorted(STRATEGIES)},"
                         f" got {list(strategies)}")
    for depth in depths:
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
            raise ValueError(f"every depth must be an integer >= 1, got {depth!r}")
    data = data or iris.load_data()
    rows = []
    for depth in depths:
        reference = None
        for name in ["full"] + [s for s in strategies if s != "full"]:
            plans = []

            def strategy(profile, make=STRATEGIES[name]):
                chosen = make(profile)
                plans.append(simulate(chosen.plan(profile), profile=profile))
                return chosen

            run = iris.train(data, seed=seed, epochs=epochs, strategy=strategy,
                             hidden=[width] * (depth - 1))
            history = [(r.test_accuracy, r.test_loss, r.train_loss) for r in run.history]
            if name == "full":
                reference = history
            rows.append(DepthRow(depth, width, name, [r.test_accuracy for r in run.history],
                                 run.final.test_accuracy, run.peak_cache_bytes,
                                 plans[0].forward_steps, statistics.median(run.epoch_seconds),
                                 None if name == "full" else history == reference))
    return rows


def markdown_table(rows: list[DepthRow]) -> str:
    """The rows as a Markdown table, with peak cache and time relative to full's at each depth."""
    full = {r.depth: r for r in rows if r.strategy == "full"}
    lines = ["| depth | strategy | final test accuracy | peak cache | vs full | forwards per "
             "batch | s per epoch | vs full | curve equals full's |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        f = full[r.depth]
        same = "-" if r.same_as_full is None else ("yes, bit for bit" if r.same_as_full
                                                   else "NO")
        lines.append(f"| {r.depth} | {r.strategy} | {r.final_accuracy:.4f} | "
                     f"{r.peak_cache_bytes:,} B | {r.peak_cache_bytes / f.peak_cache_bytes:.2f} "
                     f"| {r.forwards_per_batch} | {r.seconds_per_epoch:.4f} | "
                     f"{r.seconds_per_epoch / f.seconds_per_epoch:.2f}x | {same} |")
    return "\n".join(lines)
