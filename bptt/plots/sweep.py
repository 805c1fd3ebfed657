"""Figures of a sweep report (`bptt-bench report`), from the summary rows of
`bptt.studies.report.summary`: memory against convergence, and gradient error against
compression. matplotlib is imported inside the functions; files are written atomically."""
from __future__ import annotations

import re
from collections import defaultdict
from typing import Sequence

from bptt.plots.curves import bytes_axis, save_png
from bptt.plots.memory import pareto_front

CODEC_ORDER = ("exact", "float16", "bfloat16", "int8")  # by significant bits, most first
MARKERS = "osD^vxP*"


def codec_of(strategy: str) -> tuple[str, str]:
    """(family, codec) of a strategy spec: ("revolve snapshots", "float16") for
    "revolve(slots=8, snapshots=float16)", ("full tapes", "int8") for "full(tapes=int8)"."""
    name = strategy.split("(")[0]
    found = re.search(r"(snapshots|compress|tapes)=(\w+)", strategy)
    if found is None:
        return name, "exact"
    kind = "tapes" if found.group(1) == "tapes" else "snapshots"
    return f"{name} {kind}", found.group(2)


def plot_pareto_panels(path, rows: Sequence[dict], measure: str = "steps") -> None:
    """Peak cache against steps-to-target relative to full (`measure="steps"`) or against the
    final metric (`"metric"`), one panel per cell, one marker per T; the lower-left front of
    each T is drawn as a step line. Strategies that never reached the target are left out of
    the steps panels (listed in the summary as not reached)."""
    from matplotlib.figure import Figure

    cells = sorted({(r["task"], r["cell"]) for r in rows})
    lengths = sorted({r["seq_len"] for r in rows})
    fig = Figure(figsize=(5.2 * len(cells), 4.6), layout="constrained")
    axes = fig.subplots(1, len(cells), squeeze=False)[0]
    key = "steps_ratio" if measure == "steps" else "metric"
    for ax, (task, cell) in zip(axes, cells):
        for k, T in enumerate(lengths):
            chosen = [r for r in rows if (r["task"], r["cell"]) == (task, cell)
                      and r["seq_len"] == T
                      and r[key] is not None]
            points = [(r["peak_cache_bytes"], r[key]) for r in chosen]
            if points:
                ax.scatter(*zip(*points), marker=MARKERS[k % len(MARKERS)], color=f"C{k}",
                           s=30, label=f"T={T}")
            front = pareto_front(points)
            if front:
                ax.step([points[i][0] for i in front], [points[i][1] for i in front],
                        where="post", color=f"C{k}", alpha=0.6, linewidth=1)
            for i in front:
                ax.annotate(chosen[i]["strategy"], points[i], fontsize=6, alpha=0.8,
                            textcoords="offset points", xytext=(3, 3))
        ax.set(xscale="log", xlabel="peak cache (bytes held by states and tapes)",
               ylabel=("steps to target / full's" if measure == "steps"
                       else f"final metric ({rows[0].get('metric_name', 'task metric')})"),
               title=f"{task}, {cell}")
        bytes_axis(ax.xaxis)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize="small")
    save_png(fig, path)


def plot_gradient_error(path, rows: Sequence[dict]) -> None:
    """Mean relative gradient error against full, against the codec (most bits left), one
    line per (strategy family, T), one panel per cell: how the error grows with T."""
    from matplotlib.figure import Figure

    cells = sorted({(r["task"], r["cell"]) for r in rows})
    fig = Figure(figsize=(5.2 * len(cells), 4.6), layout="constrained")
    axes = fig.subplots(1, len(cells), squeeze=False)[0]
    for ax, (task, cell) in zip(axes, cells):
        lines: dict[tuple, dict] = defaultdict(dict)
        for r in rows:
            family, codec = codec_of(r["strategy"])
            if ((r["task"], r["cell"]) == (task, cell) and codec != "exact"
                    and r["mean_grad_rel_error"] is not None):
                lines[(family, r["seq_len"])][codec] = r["mean_grad_rel_error"]
        families = sorted({f for f, _ in lines})
        for (family, T), values in sorted(lines.items()):
            xs = [c for c in CODEC_ORDER if c in values]
            ax.plot([CODEC_ORDER.index(c) for c in xs], [values[c] for c in xs],
                    marker=MARKERS[families.index(family) % len(MARKERS)],
                    color=f"C{sorted({t for _, t in lines}).index(T)}",
                    linestyle=("-", "--", ":", "-.")[families.index(family) % 4],
                    label=f"{family}, T={T}")
        ax.set_xticks(range(1, len(CODEC_ORDER)), CODEC_ORDER[1:])
        ax.set(yscale="log", xlabel="codec (fewer significant bits to the right)",
               ylabel="|g - g_full| / |g_full| (mean over steps and seeds)",
               title=f"{task}, {cell}: gradient error")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize="x-small")
    save_png(fig, path)
