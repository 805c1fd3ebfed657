"""Figures for the CLI: training curves and a classifier's decision regions, saved as PNG.

matplotlib is imported inside the function (pyplot alone costs ~0.3 s) and only its object API
is used (`Figure` renders through Agg), so no global backend is chosen or changed.
"""
from __future__ import annotations

import io
from typing import Callable, Sequence

import numpy as np

from bptt.io import atomic_write_bytes


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


def plot_training_curves(path, rows: Sequence[dict]) -> None:
    """Loss against step and against wall-clock time, one line per strategy (PNG).

    `rows`: `bptt.bench.benchmark` rows, each with `strategy`, `params` and a `history` of
    {step, loss, seconds}. Exact strategies lie on top of each other in the left panel; the
    right panel shows what their recomputation costs in time.
    """
    from matplotlib.figure import Figure

    from bptt.bench import label

    fig = Figure(figsize=(12, 4.2), layout="constrained")
    by_step, by_time = fig.subplots(1, 2, sharey=True)
    styles = ["-", "--", "-.", ":"]
    for k, row in enumerate(rows):
        steps = [h["step"] for h in row["history"]]
        losses = [h["loss"] for h in row["history"]]
        name = label(row)
        by_step.plot(steps, losses, styles[k % 4], label=name, linewidth=1.2)
        by_time.plot([h["seconds"] for h in row["history"]], losses, styles[k % 4], label=name,
                     linewidth=1.2)
    first = rows[0]
    by_step.set(xlabel="training step", ylabel="loss", yscale="log",
                title=f"{first['task']}, T={first['seq_len']}, {first['cell']}")
    by_time.set(xlabel="wall-clock time (s)", title="the same runs against time")
    by_step.legend(fontsize="small")
    save_png(fig, path)


def plot_plan(path, plan, title: str = "") -> None:
    """Draw a plan as in the Revolve papers: step index across, the plan's progress downward.

    Advances are thin lines, recorded steps dots, reversed steps crosses, kept states squares.
    """
    from matplotlib.figure import Figure

    from checkpointing.plan import Advance, Record, Reverse, Snapshot

    lines, marks = [], {"record": ([], []), "reverse": ([], []), "snapshot": ([], [])}
    time = 0
    for action in plan:
        if isinstance(action, Advance):
            lines.append(((action.start, action.stop), (time, time + action.stop - action.start)))
            time += action.stop - action.start
        elif isinstance(action, Record):
            marks["record"][0].append(action.index + 0.5)
            marks["record"][1].append(time)
            time += 1
        elif isinstance(action, Reverse):
            marks["reverse"][0].append(action.index + 0.5)
            marks["reverse"][1].append(time)
            time += 1
        elif isinstance(action, Snapshot):
            marks["snapshot"][0].append(action.index)
            marks["snapshot"][1].append(time)
    fig = Figure(figsize=(7, 6), layout="constrained")
    ax = fig.subplots()
    for xs, ys in lines:
        ax.plot(xs, ys, color="tab:gray", linewidth=0.8)
    ax.scatter(*marks["record"], s=6, color="tab:blue", label="record (forward with tape)")
    ax.scatter(*marks["reverse"], s=10, marker="x", color="tab:red", label="reverse")
    ax.scatter(*marks["snapshot"], s=14, marker="s", color="tab:green", label="snapshot")
    ax.invert_yaxis()
    ax.set(xlabel="step", ylabel="time (step executions)", title=title or plan.strategy)
    ax.legend(fontsize="small", loc="lower left")
    save_png(fig, path)

