"""Figures for the CLI and scripts/, from plain data (rows, dicts, plans), saved as PNG.

Training curves and a classifier's decision regions (`bptt-bench --plot`) and heatmaps of
hidden states and their gradients (memory figures are in `bptt.plots.memory`, plan diagrams in
`bptt.plots.plans`). matplotlib is imported inside each function (pyplot alone
costs ~0.3 s) and only its object API is used (`Figure` renders through Agg), so no global
backend is chosen or changed; every file is written atomically through `save_png`.
"""
from __future__ import annotations

import io
from typing import Callable, Sequence

import numpy as np

from bptt.training.files import atomic_write_bytes
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
    bytes_axis(by_memory.xaxis)
    plain = FuncFormatter(lambda v, _: f"{v:g}")
    by_step.yaxis.set_major_formatter(plain)
    by_step.yaxis.set_minor_formatter(plain)
    for ax in (by_step, by_time, by_memory):
        ax.grid(True, which="both", alpha=0.3)
    by_step.legend(fontsize="small", title=f"lines: EMA {EMA} of the loss; faint: raw",
                   title_fontsize="small")
    save_png(fig, path)


def bytes_axis(axis) -> None:
    """Log-scale ticks at powers of 4 bytes (1 KiB, 4 KiB, ... 1 MiB), labelled with units."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis.set_major_locator(LogLocator(base=4))
    axis.set_major_formatter(FuncFormatter(lambda n, _: format_bytes(n, digits=0)))
    axis.set_minor_formatter(NullFormatter())


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
