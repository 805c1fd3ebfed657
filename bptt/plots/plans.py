"""Plan diagrams, as in the Revolve papers: step index across, the plan's progress downward.

matplotlib is imported inside the functions, and PNGs are written atomically (`save_png`).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from bptt.training.memory import format_bytes
from bptt.plots.curves import save_png


def _draw_plan(ax, plan, profile=None, title: str = "") -> int:
    """Draw `plan` on `ax`: step across, time (one unit per step forward or reverse) downward.
    Returns the plan's length in time units."""
    from matplotlib.collections import LineCollection

    from checkpointing.plan import (Advance, Cut, Drop, Record, Restore, Reverse, Snapshot,
                                    simulate)

    segments = {"advance": [], "record": [], "reverse": []}
    marks = {"snapshot": [], "restore": [], "cut": []}
    kept, lifetimes = {}, []
    time = 0
    for action in plan:
        if isinstance(action, Advance):
            n = action.stop - action.start
            segments["advance"].append([(action.start, time), (action.stop, time + n)])
            time += n
        elif isinstance(action, Record):
            segments["record"].append([(action.index, time), (action.index + 1, time + 1)])
            time += 1
        elif isinstance(action, Reverse):
            segments["reverse"].append([(action.index + 1, time), (action.index, time + 1)])
            time += 1
        elif isinstance(action, Snapshot):
            marks["snapshot"].append((action.index, time))
            kept[action.index] = time
        elif isinstance(action, Drop):
            lifetimes.append([(action.index, kept.pop(action.index)), (action.index, time)])
        elif isinstance(action, Restore):
            marks["restore"].append((action.index, time))
        elif isinstance(action, Cut):
            marks["cut"].append((action.index, time))
    segments["kept"] = lifetimes + [[(i, start), (i, time)] for i, start in kept.items()]
    for kind, colour, width, text in (
            ("kept", "tab:green", 4.0, "state kept in a slot"),
            ("advance", "tab:gray", 1.0, "advance (forward, nothing kept)"),
            ("record", "tab:blue", 2.2, "record (forward, tape kept)"),
            ("reverse", "tab:red", 2.2, "reverse (backward through a tape)")):
        if segments[kind]:
            ax.add_collection(LineCollection(segments[kind], colors=colour, linewidths=width,
                                             alpha=0.25 if kind == "kept" else 1.0, label=text))
    size = 30 * min(1.0, 40 / plan.length) + 4  # long plans: smaller marks, less overlap
    for kind, marker, face, edge, text in (
            ("snapshot", "s", "tab:green", "tab:green", "snapshot"),
            ("restore", "o", "none", "tab:green", "restore"),
            ("cut", "X", "black", "black", "cut (gradient dropped)")):
        if marks[kind]:
            xs, ys = zip(*marks[kind])
            ax.scatter(xs, ys, marker=marker, s=size, facecolors=face, edgecolors=edge,
                       linewidths=1.2 if size > 15 else 0.8, zorder=3, label=text)
    stats = simulate(plan, profile=profile)
    ax.set_xlim(-0.5, plan.length + 0.5)
    ax.set_ylim(max(time, 1) + 0.5, -0.5)  # time runs downward
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.yaxis.get_major_locator().set_params(integer=True)
    counts = ", ".join(f"{n} {word}{'' if n == 1 else 's'}" for n, word in (
        (stats.forward_steps, "forward"), (stats.peak_states, "slot"), (stats.peak_tapes, "tape")))
    if profile is not None:
        counts += f"\npeak {format_bytes(stats.peak_bytes)}"
    ax.set_title(f"{title or plan.strategy}\n{counts}", fontsize="medium")
    ax.set_xlabel("step (state index)")
    ax.grid(True, alpha=0.2)
    return time


def plot_plan(path, plan, title: str = "", profile=None) -> None:
    """Draw one plan as in the Revolve papers (Griewank & Walther 2000): step index across,
    time downward, so recomputation shows as repeated forward sweeps (PNG).

    Advances are grey lines, recorded steps blue, reversed steps red (running back), kept states
    green bars from snapshot to drop, restores circles, truncation cuts black ticks. `profile`
    (a `ChainProfile`) adds the plan's peak bytes to the title.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 6.5), layout="constrained")
    ax = fig.subplots()
    _draw_plan(ax, plan, profile, title)
    ax.set_ylabel("time (step executions: forwards and reverses)")
    fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncols=3,
               fontsize="small")
    save_png(fig, path)


def plot_plans(path, plans: Sequence[tuple[str, object]], profile=None, title: str = "") -> None:
    """Several plans for the same chain side by side, on one time scale (PNG); see `plot_plan`.

    `plans`: (panel title, `Plan`) pairs. A longer panel means more recomputation.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(3.3 * len(plans), 7), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(plans), sharey=True))
    times = [_draw_plan(ax, plan, profile, name) for ax, (name, plan) in zip(axes, plans)]
    axes[0].set_ylim(max(times) + 0.5, -0.5)  # the axes share it: the longest plan sets it
    axes[0].set_ylabel("time (step executions: forwards and reverses)")
    handles = {}
    for ax in axes:
        for handle, text in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(text, handle)
    fig.legend(handles.values(), handles.keys(), loc="outside lower center", ncols=4,
               fontsize="small")
    if title:
        fig.suptitle(title)
    save_png(fig, path)
