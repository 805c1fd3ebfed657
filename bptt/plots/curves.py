"""Figures for the CLI and scripts/, from plain data (rows, dicts, plans), saved as PNG.

Training curves and a classifier's decision regions (`bptt-bench --plot`), peak memory against
T with fitted slopes, time against memory with its Pareto front, plan diagrams, and heatmaps
of hidden states and their gradients. matplotlib is imported inside each function (pyplot alone
costs ~0.3 s) and only its object API is used (`Figure` renders through Agg), so no global
backend is chosen or changed; every file is written atomically through `save_png`.
"""
from __future__ import annotations

import io
from typing import Callable, Sequence

import numpy as np

from bptt.training.io import atomic_write_bytes
from bptt.training.memory import format_bytes


def plot_classifier_run(path, history: Sequence[dict], predict: Callable[[np.ndarray], np.ndarray],
                        points: np.ndarray, labels: np.ndarray, axis_names: tuple[str, str],
                        class_names: Sequence[str], title: str = "") -> None:
    """Write a PNG with loss and accuracy per epoch and the decision regions of a classifier.

    `history`: one dict per epoch with train_loss, test_loss, train_accuracy, test_accuracy.
    `predict` maps (n, 2) points of the plotted plane to (n,) class indices; `points` (m, 2) and
    `labels` (m,) are drawn over the regions. The file is written atomically.
    """
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure

    fig = Figure(figsize=(14, 4.2), layout="constrained")
    loss_ax, acc_ax, region_ax = fig.subplots(1, 3)
    epochs = [h["epoch"] for h in history]
    for split in ("train", "test"):
        loss_ax.plot(epochs, [h[f"{split}_loss"] for h in history], label=split)
        acc_ax.plot(epochs, [h[f"{split}_accuracy"] for h in history], label=split)
    loss_ax.set(xlabel="epoch", ylabel="cross-entropy (nats)", title="loss")
    acc_ax.set(xlabel="epoch", ylabel="accuracy", title="accuracy", ylim=(0, 1.02))
    loss_ax.legend()
    acc_ax.legend()

    colours = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple"][:len(class_names)]
    low, high = points.min(axis=0), points.max(axis=0)
    pad = 0.1 * (high - low)
    u, v = np.meshgrid(np.linspace(low[0] - pad[0], high[0] + pad[0], 300),
                       np.linspace(low[1] - pad[1], high[1] + pad[1], 300))
    regions = predict(np.column_stack([u.ravel(), v.ravel()])).reshape(u.shape)
    region_ax.contourf(u, v, regions, levels=np.arange(len(class_names) + 1) - 0.5,
                       cmap=ListedColormap(colours), alpha=0.25)
    for k, name in enumerate(class_names):
        chosen = labels == k
        region_ax.scatter(points[chosen, 0], points[chosen, 1], s=14, color=colours[k],
                          edgecolor="black", linewidth=0.4, label=name)
    region_ax.set(xlabel=axis_names[0], ylabel=axis_names[1], title="decision regions")
    region_ax.legend(fontsize="small")
    if title:
        fig.suptitle(title)
    save_png(fig, path)


def save_png(fig, path) -> None:
    """Render `fig` to PNG in memory, then write it atomically (no half-written file)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    atomic_write_bytes(path, buffer.getvalue())


# Curves that coincide with an earlier one get these styles in turn, each thinner and broken,
# so a curve lying exactly on another still shows (dashes, dots and markers over a pale band).
SAME_STYLES = (
    dict(linestyle="--", linewidth=2.0),
    dict(linestyle=":", linewidth=2.4, marker="o"),
    dict(linestyle="-.", linewidth=1.4, marker="x"),
    dict(linestyle=(0, (1, 3)), linewidth=1.6, marker="^"),
    dict(linestyle="--", linewidth=1.0, marker="s"),
)
FIRST_STYLE = dict(linestyle="-", linewidth=5.0, alpha=0.35)  # the pale band: the first curve
OWN_STYLE = dict(linestyle="-", linewidth=1.8)                 # a curve unlike any before it


def _identical_to(rows: Sequence[dict], values: Sequence[list]) -> list[str | None]:
    """For each row, the label of the first earlier row with exactly the same values, or None."""
    from bptt.studies.bench import label

    found = []
    for k, v in enumerate(values):
        found.append(next((label(rows[j]) for j in range(k) if values[j] == v), None))
    return found


def plot_training_curves(path, rows: Sequence[dict], title: str = "",
                         notes: Sequence[str] | None = None) -> None:
    """Loss against step and against wall-clock time, one line per strategy, and peak cache
    against steps-to-target: one figure that answers "memory against convergence" (PNG).

    `rows`: `bptt.studies.bench.benchmark` rows, each with `strategy`, `params` and a `history` of
    {step, loss, seconds}; `metric_name` and `metric` go into the legend when present, and so
    does `notes[k]` (one more line of text per row). Each curve is the loss's exponential moving
    average (`bptt.studies.convergence.smooth`, stated in the legend) over its faint raw line.
    A row whose losses equal an earlier row's bit for bit is labelled so ("= full") and drawn in
    a thinner, broken style over it: exact strategies visibly lie on top of `full`, a truncated
    one visibly leaves it. The middle panel shows what recomputation costs in time; the right
    one each row's peak cache against its steps to the target loss (80% of the progress of
    `full`'s smoothed loss, or of the first row's without a `full` row).
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    from bptt.studies.bench import label
    from bptt.studies.convergence import EMA, FRACTION, smooth, steps_to_target, target_loss

    fig = Figure(figsize=(17, 4.8), layout="constrained")
    by_step, by_time, by_memory = fig.subplots(1, 3)
    by_time.sharey(by_step)
    losses = [[h["loss"] for h in row["history"]] for row in rows]
    smoothed = [smooth(loss) for loss in losses]
    same = _identical_to(rows, losses)
    reference = next((k for k, row in enumerate(rows) if row["strategy"] == "full"), 0)
    target = target_loss(smoothed[reference])
    for k, (row, loss) in enumerate(zip(rows, losses)):
        steps = [h["step"] for h in row["history"]]
        seconds = [h["seconds"] for h in row["history"]]
        name = label(row) + (f"  (= {same[k]}, bit for bit)" if same[k] else "")
        if row.get("metric") is not None:
            name += f"\n{row.get('metric_name', 'metric')} {row['metric']:.3f}"
        if notes is not None and notes[k]:
            name += f", {notes[k]}"
        every = max(1, len(steps) // 12)
        if same[k]:
            style = SAME_STYLES[sum(map(bool, same[:k])) % len(SAME_STYLES)]
        else:
            style = FIRST_STYLE if k == 0 else OWN_STYLE
        style = dict(style, markersize=5, markevery=(k * every // len(rows), every),
                     color=f"C{k}")
        raw = dict(color=f"C{k}", linewidth=0.6, alpha=0.2)
        by_step.plot(steps, loss, **raw)
        by_step.plot(steps, smoothed[k], label=name, **style)
        by_time.plot(seconds, loss, **raw)
        by_time.plot(seconds, smoothed[k], **style)
        reached = steps_to_target(smoothed[k], target)
        if reached is not None and row.get("peak_cache_bytes"):
            by_memory.scatter([row["peak_cache_bytes"]], [reached], color=f"C{k}", s=60,
                              marker="osD^vxP*"[k % 8], zorder=3)
            by_memory.annotate(label(row), (row["peak_cache_bytes"], reached), fontsize=7,
                               textcoords="offset points", xytext=(4, 4 + 8 * (k % 3)))
    first = rows[0]
    by_step.set(xlabel="training step", ylabel="loss (before the step's update)", yscale="log",
                title=title or f"{first['task']}, T={first['seq_len']}, {first['cell']} "
                               f"(hidden {first.get('hidden', '?')})")
    by_time.set(xlabel="wall-clock time since training began (s)",
                title="the same runs against time")
    by_memory.set(xscale="log", xlabel="peak cache (bytes held by states and tapes)",
                  ylabel="training steps to the target loss",
                  title=f"memory against convergence\n(target loss {target:.4g}: {FRACTION:.0%} "
                        f"of {label(rows[reference])}'s progress)")
    _bytes_axis(by_memory.xaxis)
    plain = FuncFormatter(lambda v, _: f"{v:g}")
    by_step.yaxis.set_major_formatter(plain)
    by_step.yaxis.set_minor_formatter(plain)
    for ax in (by_step, by_time, by_memory):
        ax.grid(True, which="both", alpha=0.3)
    by_step.legend(fontsize="small", title=f"lines: EMA {EMA} of the loss; faint: raw",
                   title_fontsize="small")
    save_png(fig, path)


def fitted_slope(lengths: Sequence[float], values: Sequence[float]) -> float:
    """The least-squares slope of log(values) against log(lengths): the exponent p in
    values ~ lengths**p (1 for memory linear in T, 0.5 for sqrt(T), 0 for constant)."""
    x, y = np.log(np.asarray(lengths, float)), np.log(np.asarray(values, float))
    if len(x) < 2 or np.ptp(x) == 0:
        raise ValueError(f"a slope needs at least two distinct lengths, got {list(lengths)}")
    return float(np.polyfit(x, y, 1)[0])


def _bytes_axis(axis) -> None:
    """Log-scale ticks at powers of 4 bytes (1 KiB, 4 KiB, ... 1 MiB), labelled with units."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis.set_major_locator(LogLocator(base=4))
    axis.set_major_formatter(FuncFormatter(lambda n, _: format_bytes(n, digits=0)))
    axis.set_minor_formatter(NullFormatter())


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
    _bytes_axis(ax.yaxis)
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
        _bytes_axis(ax.xaxis)
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


def plot_state_gradients(path, states: np.ndarray, grads: np.ndarray, loss_step: int,
                         marks: Sequence[tuple[str, int]] = (),
                         decay: dict[str, tuple[Sequence[int], Sequence[float]]] | None = None,
                         lag_range: tuple[int, int] | None = None, title: str = "",
                         states_title: str = "hidden state h_t (units x time)",
                         states_label: str = "h (tanh units)") -> None:
    """Heatmaps of a recurrent network's hidden states and of a loss's gradient over time (PNG).

    `states`: (T, H) per-unit values over time, row t after step t: the hidden states, or what
    one input changes in them (a difference of two runs), drawn on a colour scale symmetric
    about 0 and named by `states_title` and `states_label`; `grads`: (T, H), the
    gradient of the loss at step `loss_step` with respect to each state (zero after it), drawn
    as log10 of its magnitude, so vanishing gradients show as colour fading towards the past.
    `marks`: (text, step) pairs drawn as vertical lines (the step the loss depends on, say).
    `decay`: {name: (lags, ratios)}, the gradient norm `lags` steps before a loss step over
    its norm at that step, for a third panel on a log scale; `lag_range` (shortest, longest)
    shades the lags the task's dependencies span there.
    """
    from matplotlib.figure import Figure

    panels = 3 if decay else 2
    fig = Figure(figsize=(12, 3.2 * panels + 0.4), layout="constrained")
    axes = fig.subplots(panels, 1)
    T, H = states.shape
    extent = (-0.5, T - 0.5, H - 0.5, -0.5)
    limit = max(float(np.abs(states).max()), 1e-12)
    image = axes[0].imshow(states.T, aspect="auto", cmap="RdBu_r", vmin=-limit, vmax=limit,
                           interpolation="nearest", extent=extent)
    fig.colorbar(image, ax=axes[0], label=states_label)
    axes[0].set(ylabel="hidden unit", title=states_title)
    magnitude = np.abs(np.asarray(grads, float)).T
    with np.errstate(divide="ignore"):
        logs = np.where(magnitude > 0, np.log10(magnitude), np.nan)
    finite = logs[np.isfinite(logs)]
    low, high = (np.percentile(finite, 1), finite.max()) if finite.size else (-10, 0)
    image = axes[1].imshow(logs, aspect="auto", cmap="magma", vmin=low, vmax=high,
                           interpolation="nearest", extent=extent)
    fig.colorbar(image, ax=axes[1], label="log10 |dL_c/dh_t|")
    axes[1].set(ylabel="hidden unit", xlabel="time step t",
                title=f"what the loss at step c={loss_step} depends on: log10 |dL_c/dh_t| "
                      f"(white: zero, after c)")
    for ax in axes[:2]:
        ax.axvline(loss_step, color="black", linewidth=1.5, linestyle="--",
                   label=f"loss step c={loss_step}")
        for k, (text, step) in enumerate(marks):
            ax.axvline(step, color=f"C{k + 2}", linewidth=2, label=text)
    axes[1].legend(fontsize="small", loc="upper right")
    if decay:
        ax = axes[2]
        if lag_range is not None:
            ax.axvspan(*lag_range, color="tab:gray", alpha=0.15,
                       label=f"lags of the long-range steps ({lag_range[0]}-{lag_range[1]})")
        for k, (name, (lags, ratios)) in enumerate(decay.items()):
            ax.plot(lags, ratios, marker="o", markersize=3, label=name, color=f"C{k}")
        ax.set(yscale="log", xlabel="lag c - t (steps back from the loss step)",
               ylabel="|dL_c/dh_t| / |dL_c/dh_c|",
               title="how fast the gradient vanishes with the lag (geometric mean over "
                     "loss steps)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize="small")
    if title:
        fig.suptitle(title)
    save_png(fig, path)
