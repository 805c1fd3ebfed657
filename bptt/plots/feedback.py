"""The weight-transport study's figure: accuracy (or loss) curves and alignment angles."""
from __future__ import annotations

import numpy as np

from bptt.plots.curves import save_png


def plot_feedback_comparison(path, result: dict) -> None:
    """Write a PNG of a `bptt.studies.feedback` result.

    Classifier results: mean test accuracy per epoch for each variant (left), the angle
    between each variant's update and the true gradient per layer per epoch (middle; solid
    first layer, dashed the next), and between B and Wᵀ (right). Sequence results: the
    training loss per step (left) and the update angles per weight at the end (right).
    """
    from matplotlib.figure import Figure

    rows = result["rows"]
    if "runs" in rows[0]:
        fig = Figure(figsize=(15, 4.2), layout="constrained")
        acc_ax, update_ax, feedback_ax = fig.subplots(1, 3)
        for k, row in enumerate(rows):
            colour = f"C{k}"
            histories = [r["history"] for r in row["runs"]]
            epochs = [h["epoch"] for h in histories[0]]
            acc = np.mean([[h["test_accuracy"] for h in hist] for hist in histories], axis=0)
            acc_ax.plot(epochs, acc, color=colour, label=row["backward"])
            layers = len(histories[0][0]["alignment"])
            for index in range(layers - 1):  # the last layer's update is exact for every variant
                style = ("-", "--", ":")[index % 3]
                for key, ax in (("update_angle", update_ax), ("feedback_angle", feedback_ax)):
                    layer = index if key == "update_angle" else index + 1
                    values = [[_nan(h["alignment"][layer][key]) for h in hist]
                              for hist in histories]
                    ax.plot(epochs, np.nanmean(values, axis=0), color=colour, linestyle=style,
                            label=f"{row['backward']} layer {layer}")
        acc_ax.set(xlabel="epoch", ylabel="test accuracy (mean over seeds)",
                   title=f"{result.get('task', '')}: accuracy")
        update_ax.set(xlabel="epoch", ylabel="degrees", title="update vs true gradient")
        feedback_ax.set(xlabel="epoch", ylabel="degrees", title="B vs W^T")
        for ax in (acc_ax, update_ax, feedback_ax):
            ax.legend(fontsize="x-small")
    else:
        fig = Figure(figsize=(11, 4.2), layout="constrained")
        loss_ax, angle_ax = fig.subplots(1, 2)
        names = list(rows[0]["angles_end"])
        width = 0.8 / len(rows)
        for k, row in enumerate(rows):
            loss_ax.plot(row["history"], color=f"C{k}", label=row["backward"], linewidth=1)
            angle_ax.bar(np.arange(len(names)) + k * width,
                         [row["angles_end"][n] for n in names], width, color=f"C{k}",
                         label=row["backward"])
        loss_ax.set(xlabel="step", ylabel="training loss", yscale="log",
                    title=f"{result['task']}, T={result['seq_len']}")
        angle_ax.set(xticks=np.arange(len(names)) + 0.4 - width / 2, xticklabels=names,
                     ylabel="degrees", title="update vs BPTT gradient, end of training")
        loss_ax.legend(fontsize="small")
        angle_ax.legend(fontsize="small")
    save_png(fig, path)


def _nan(value):
    return float("nan") if value is None else value
