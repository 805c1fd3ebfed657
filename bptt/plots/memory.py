"""Memory figures from plain rows, saved as PNG: peak cache against T with fitted slopes, time
against memory with its Pareto front (labels placed so they never overlap), and the byte axis
they share. matplotlib is imported inside each function, as in `bptt.plots.curves`.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from bptt.plots.curves import bytes_axis, save_png


def fitted_slope(lengths: Sequence[float], values: Sequence[float]) -> float:
    """The least-squares slope of log(values) against log(lengths): the exponent p in
    values ~ lengths**p (1 for memory linear in T, 0.5 for sqrt(T), 0 for constant)."""
    x, y = np.log(np.asarray(lengths, float)), np.log(np.asarray(values, float))
    if len(x) < 2 or np.ptp(x) == 0:
        raise ValueError(f"a slope needs at least two distinct lengths, got {list(lengths)}")
    return float(np.polyfit(x, y, 1)[0])


def _group(rows: Sequence[dict], key: str) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(row[key], []).append(row)
    return groups


def plot_memory_scaling(path, rows: Sequence[dict], title: str = "") -> dict[str, float]:
    """Peak cache bytes against sequence length on log-log axes, one line per strategy (PNG).

    `rows`: one per (strategy, T), with `label`, `seq_len` and `peak_cache_bytes`. Each line's
    slope (`fitted_slope`) is shown in the legend and returned, {label: slope}: about 1 for
    `full`, 0.5 for `checkpoint`, 0 for a fixed number of slots or a fixed budget.
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    fig = Figure(figsize=(7.5, 5.2), layout="constrained")
    ax = fig.subplots()
    slopes = {}
    for k, (name, group) in enumerate(_group(rows, "label").items()):
        group = sorted(group, key=lambda r: r["seq_len"])
        lengths = [r["seq_len"] for r in group]
        peaks = [r["peak_cache_bytes"] for r in group]
        slopes[name] = fitted_slope(lengths, peaks)
        ax.plot(lengths, peaks, marker="osD^vx"[k % 6], color=f"C{k}",
                linestyle=("-", "--", "-.", ":")[k % 4],
                label=f"{name}: slope {slopes[name]:.2f}")
    ax.set(xscale="log", yscale="log", xlabel="sequence length T (steps)",
           ylabel="peak cache (bytes held by states and tapes)",
           title=title or "peak memory of one training step against T")
    bytes_axis(ax.yaxis)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small", title="strategy: fitted log-log slope")
    save_png(fig, path)
    return slopes


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats in both coordinates (lower is better in
    each), ordered by the first coordinate: the memory/time trade-offs worth choosing."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], points[i][1]))
    front, best = [], float("inf")
    for i in order:
        if points[i][1] < best:
            front.append(i)
            best = points[i][1]
    return front


def plot_pareto(path, rows: Sequence[dict], title: str = "") -> list[int]:
    """Time against memory across strategies and their parameters, the Pareto front drawn (PNG).

    `rows`: one per (strategy, parameter) with `strategy`, `peak_cache_bytes`, `step_time_s`,
    `forward_steps`, `seq_len` and optionally `tag` (a short text drawn beside the point, e.g.
    "s=8"). Left: median step time, measured; right: step forwards per step of the chain,
    counted, so the time panel's noise can be told from the trade-off itself. Returns the
    indices of the rows on the time front (`pareto_front`).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FixedLocator, NullFormatter, ScalarFormatter

    fig = Figure(figsize=(13, 5.2), layout="constrained")
    FigureCanvasAgg(fig)  # a renderer, to measure the tags' extents
    by_time, by_forwards = fig.subplots(1, 2, sharex=True)
    memory = [r["peak_cache_bytes"] for r in rows]
    fronts = []
    for ax, values in ((by_time, [r["step_time_s"] for r in rows]),
                       (by_forwards, [r["forward_steps"] / r["seq_len"] for r in rows])):
        for k, name in enumerate(_group(rows, "strategy")):
            chosen = [i for i, r in enumerate(rows) if r["strategy"] == name]
            ax.scatter([memory[i] for i in chosen], [values[i] for i in chosen], s=40,
                       marker="osD^v"[k % 5], color=f"C{k}", label=name, zorder=3)
        front = pareto_front(list(zip(memory, values)))
        fronts.append(front)
        xs, ys = [memory[i] for i in front], [values[i] for i in front]
        ax.step(xs, ys, where="post", color="black", linewidth=1.2, alpha=0.7, zorder=2,
                label="Pareto front")
        ax.scatter(xs, ys, s=130, facecolors="none", edgecolors="black", linewidths=1.2,
                   zorder=4)
        ax.set(xscale="log", xlabel="peak cache (bytes held by states and tapes)")
        bytes_axis(ax.xaxis)
        ax.grid(True, which="both", alpha=0.3)
    by_forwards.set_yscale("log")
    by_forwards.yaxis.set_major_locator(FixedLocator([1, 1.5, 2, 3, 4, 6, 8, 10, 15, 20, 30,
                                                      50, 100]))
    by_forwards.yaxis.set_major_formatter(ScalarFormatter())
    by_forwards.yaxis.set_minor_formatter(NullFormatter())
    full = [r["step_time_s"] for r in rows if r["strategy"] == "full"]
    if full:  # a second scale: times as multiples of full's
        by_time.secondary_yaxis("right", functions=(lambda t: t / full[0],
                                                    lambda x: x * full[0])).set_ylabel(
            "x full's time")
    by_time.set(ylabel="median time of one training step's gradient (s)",
                title="time against memory (measured)")
    by_forwards.set(ylabel="step forwards per chain step (1 = no recomputation)",
                    title="recomputation against memory (counted)")
    by_time.legend(fontsize="small")
    fig.suptitle(title or f"every exact strategy, T={rows[0]['seq_len']}: circled points "
                          f"form the Pareto front")
    colour = {name: f"C{k}" for k, name in enumerate(_group(rows, "strategy"))}
    tagged = [i for i, r in enumerate(rows) if r.get("tag")]
    fig.canvas.draw()  # lay the figure out once, then keep it so the measured places hold
    fig.set_layout_engine("none")
    for ax, values in ((by_time, [r["step_time_s"] for r in rows]),
                       (by_forwards, [r["forward_steps"] / r["seq_len"] for r in rows])):
        place_labels(ax, [(memory[i], values[i]) for i in tagged],
                     [rows[i]["tag"] for i in tagged],
                     [colour[rows[i]["strategy"]] for i in tagged],
                     avoid=list(zip(memory, values)))
    save_png(fig, path)
    return fronts[0]


# Offsets (points) tried in turn for a label, nearest first: right, above, left, below and the
# diagonals, at growing distances; a label placed away from its point gets a thin leader line.
_LABEL_OFFSETS = [(r * dx, r * dy) for r in (5, 11, 18, 27, 38, 52)
                  for dx, dy in ((1, 0.4), (0, 1), (-1, 0.4), (0, -1.6), (1, -1.2), (-1, -1.2),
                                 (1, 1), (-1, 1))]


def place_labels(ax, points, texts, colours, avoid=(), fontsize: float = 7,
                 marker_points: float = 12.0) -> list:
    """Annotate each data point with its text where it overlaps no other label and no marker.

    `points`: (x, y) in data coordinates; `avoid`: more points whose markers (a square of
    `marker_points` points around each) labels must not cover. Each label takes the first of
    `_LABEL_OFFSETS` that is free (nearest first), else the one with the least overlap; a
    label more than a few points away gets a leader line. The figure must be laid out (drawn
    once) and keep that layout. Returns the annotations, in the order of `points`.
    """
    from matplotlib.transforms import Bbox

    renderer = ax.figure.canvas.get_renderer()
    scale = ax.figure.dpi / 72  # points to pixels
    half = marker_points * scale / 2
    taken = [Bbox.from_extents(x - half, y - half, x + half, y + half)
             for x, y in ax.transData.transform(list(avoid) or np.empty((0, 2)))]
    placed = []
    for (x, y), text, colour in zip(points, texts, colours):
        best = None
        for dx, dy in _LABEL_OFFSETS:
            label = ax.annotate(text, (x, y), textcoords="offset points", xytext=(dx, dy),
                                fontsize=fontsize, color=colour, va="center", zorder=5,
                                ha="center" if dx == 0 else "left" if dx > 0 else "right")
            box = label.get_window_extent(renderer)
            overlap = sum(_overlap_area(box, other) for other in taken)
            if best is None or overlap < best[0]:
                if best is not None:
                    best[1].remove()
                best = (overlap, label, box, (dx, dy))
            else:
                label.remove()
            if overlap == 0:
                break
        _, label, box, (dx, dy) = best
        if abs(dx) + abs(dy) > 12:
            ax.annotate("", (x, y), textcoords="offset points", xytext=(dx, dy),
                        arrowprops=dict(arrowstyle="-", color=colour, linewidth=0.5,
                                        shrinkA=0, shrinkB=3), zorder=4)
        taken.append(box)
        placed.append(label)
    return placed


def _overlap_area(a, b) -> float:
    width = min(a.x1, b.x1) - max(a.x0, b.x0)
    height = min(a.y1, b.y1) - max(a.y0, b.y0)
    return width * height if width > 0 and height > 0 else 0.0
