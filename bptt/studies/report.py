"""`bptt-bench report DB`: a sweep's rows as a table, a CSV, a Markdown summary and figures.

Each point is compared with the `full` run of its group (same task, cell, T and seed: same
initial weights and batches): steps to the group's target loss (see
`bptt.studies.convergence`) relative to full's, bytes saved relative to full's peak cache, and
for lossy strategies the gradient's mean cosine and relative error against full. The summary
averages over seeds; "within 5%" counts the seeds whose steps-to-target is at most 1.05 x
full's.
"""
from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from bptt.studies.convergence import EMA, FRACTION, smooth, steps_to_target, target_loss

TOLERANCE = 0.05
GROUP = ("task", "cell", "seq_len", "seed")
COLUMNS = ["task", "cell", "seq_len", "seed", "strategy", "label", "lossy", "peak_cache_bytes",
           "full_peak_bytes", "saved_fraction", "saved_by_codec_bytes", "forward_steps",
           "steps_to_target", "full_steps_to_target", "steps_ratio", "final_loss", "metric",
           "metric_name", "mean_grad_cosine", "mean_grad_rel_error"]


def table(rows: list[dict]) -> list[dict]:
    """One flat record per point (the CSV's lines), steps-to-target measured against the
    group's `full` run; points of groups without a `full` run get None there."""
    full = {tuple(r[k] for k in GROUP): r for r in rows if r["strategy"] == "full"}
    out = []
    for r in sorted(rows, key=lambda r: (*(r[k] for k in GROUP), r["strategy"])):
        ref = full.get(tuple(r[k] for k in GROUP))
        steps = full_steps = ratio = None
        if ref is not None:
            target = target_loss(ref["smoothed"])
            steps = steps_to_target(r.get("smoothed") or smooth(r["losses"]), target)
            full_steps = steps_to_target(ref["smoothed"], target)
            if steps is not None and full_steps:
                ratio = steps / full_steps
        record = {k: r.get(k) for k in COLUMNS}
        record.update(steps_to_target=steps, full_steps_to_target=full_steps, steps_ratio=ratio,
                      saved_fraction=1 - r["peak_cache_bytes"] / r["full_peak_bytes"])
        out.append(record)
    return out


def summary(records: list[dict]) -> list[dict]:
    """Means over seeds for each (task, cell, T, strategy)."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in records:
        groups[(r["task"], r["cell"], r["seq_len"], r["strategy"])].append(r)
    out = []
    for (task, cell, T, strategy), rs in sorted(groups.items()):
        ratios = [r["steps_ratio"] for r in rs]
        reached = [x for x in ratios if x is not None]
        out.append({
            "task": task, "cell": cell, "seq_len": T, "strategy": strategy, "seeds": len(rs),
            "peak_cache_bytes": _mean(r["peak_cache_bytes"] for r in rs),
            "saved_fraction": _mean(r["saved_fraction"] for r in rs),
            "steps_ratio": _mean(reached) if len(reached) == len(rs) else None,
            "reached": len(reached),
            "within": sum(x <= 1 + TOLERANCE for x in reached),
            "final_loss": _mean(r["final_loss"] for r in rs),
            "metric": _mean(r["metric"] for r in rs),
            "mean_grad_cosine": _mean(r["mean_grad_cosine"] for r in rs),
            "mean_grad_rel_error": _mean(r["mean_grad_rel_error"] for r in rs),
            "forward_steps": _mean(r["forward_steps"] for r in rs),
        })
    return out


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def to_csv(records: list[dict]) -> str:
    """The table as CSV text."""
    out = io.StringIO()
    writer = csv.DictWriter(out, COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    return out.getvalue()


def _fmt(value, spec="{:.3g}") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return spec.format(value)


def to_markdown(summary_rows: list[dict]) -> str:
    """The summary as a Markdown document: one table per (task, cell)."""
    lines = ["# Sweep summary", "",
             f"Steps to target: steps until the loss's moving average (EMA {EMA}) makes "
             f"{FRACTION:.0%} of full's progress from the initial loss; ratio = strategy / full "
             f"(mean over seeds, '-' when a seed never got there). Within 5%: seeds with ratio "
             f"<= {1 + TOLERANCE}. Saved: 1 - peak cache / full's peak cache.", ""]
    by_panel: dict[tuple, list[dict]] = defaultdict(list)
    for r in summary_rows:
        by_panel[(r["task"], r["cell"])].append(r)
    for (task, cell), rs in by_panel.items():
        lines += [f"## {task}, {cell}", "",
                  "| T | strategy | peak cache | saved | forwards | steps ratio | reached | "
                  "within 5% | final loss | grad cosine | grad rel. error |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in sorted(rs, key=lambda r: (r["seq_len"], r["strategy"])):
            lines.append(
                f"| {r['seq_len']} | `{r['strategy']}` | {_fmt(r['peak_cache_bytes'], '{:.0f}')} "
                f"| {_fmt(r['saved_fraction'], '{:.1%}')} | {_fmt(r['forward_steps'], '{:.0f}')} "
                f"| {_fmt(r['steps_ratio'], '{:.3f}')} | {r['reached']}/{r['seeds']} "
                f"| {r['within']}/{r['seeds']} | {_fmt(r['final_loss'], '{:.4f}')} "
                f"| {_fmt(r['mean_grad_cosine'], '{:.6f}')} "
                f"| {_fmt(r['mean_grad_rel_error'], '{:.2e}')} |")
        lines.append("")
    return "\n".join(lines)


def write_tables(rows: list[dict], out_dir) -> tuple[list[Path], list[dict]]:
    """Write table.csv and summary.md into `out_dir`: (the paths, the summary rows the figures
    are drawn from, by `bptt.plots.sweep`)."""
    from bptt.training.files import atomic_write_bytes

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    records = table(rows)
    means = summary(records)
    written = []
    for name, text in (("table.csv", to_csv(records)), ("summary.md", to_markdown(means))):
        atomic_write_bytes(out_dir / name, text.encode())
        written.append(out_dir / name)
    return written, means
