"""An animated GIF of one batch's cached activations and deltas, layer by layer, over training.

Each inspected moment (an `bptt.inspect.MLPInspection` of the same batch, e.g. after every few
epochs) gives two frames: the forward pass alone (the activations x^(l) the layers cached; the
deltas not yet known) and then the same pass after backward (δ^(l) = ∂L/∂z^(l) filled in).
Top row: x^(l) per layer, batch rows by units; bottom row: δ^(l) on one symmetric logarithmic
colour scale per layer, fixed over the whole animation so that shrinking deltas are seen to
shrink. Written with matplotlib's `PillowWriter`, atomically.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Sequence


def animate_inspections(path, moments: Sequence[tuple[str, object]], fps: float = 2.0,
                        dpi: int = 80) -> int:
    """Write the GIF of `moments`, (caption, MLPInspection) pairs of one batch, to `path`;
    returns the number of frames (two per moment)."""
    import numpy as np
    from matplotlib.animation import PillowWriter
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import SymLogNorm
    from matplotlib.figure import Figure

    if not moments:
        raise ValueError("animate_inspections needs at least one (caption, inspection) pair")
    layers = len(moments[0][1].layers)
    scale = [max(float(np.max(np.abs(seen.layers[k].delta))) for _, seen in moments) or 1.0
             for k in range(layers)]
    fig = Figure(figsize=(2.6 * layers, 5.2), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, layers, squeeze=False)
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".gif")
    os.close(fd)
    frames = 0
    try:
        writer = PillowWriter(fps=fps)
        with writer.saving(fig, tmp, dpi):
            for caption, seen in moments:
                for after_backward in (False, True):
                    _draw(fig, axes, caption, seen, scale, after_backward, SymLogNorm)
                    writer.grab_frame()
                    frames += 1
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return frames


def _draw(fig, axes, caption, seen, scale, after_backward, SymLogNorm) -> None:
    for k, layer in enumerate(seen.layers):
        top, bottom = axes[0][k], axes[1][k]
        top.clear()
        bottom.clear()
        top.imshow(layer.output, cmap="PuOr", vmin=-max(1.0, abs(layer.output).max()),
                   vmax=max(1.0, abs(layer.output).max()), aspect="auto",
                   interpolation="nearest")
        top.set_title(f"x^({k + 1})" + (" (logits)" if k == len(seen.layers) - 1 else ""),
                      fontsize=9)
        bottom.set_title(f"δ^({k + 1})", fontsize=9)
        if after_backward:
            norm = SymLogNorm(linthresh=scale[k] * 1e-3, vmin=-scale[k], vmax=scale[k])
            bottom.imshow(layer.delta, cmap="RdBu_r", norm=norm, aspect="auto",
                          interpolation="nearest")
        else:
            bottom.text(0.5, 0.5, "before backward:\nnot yet known", ha="center",
                        va="center", fontsize=8, transform=bottom.transAxes)
        for ax in (top, bottom):
            ax.set_xticks([])
            ax.set_yticks([])
        top.set_ylabel("batch row" if k == 0 else "")
    phase = "after backward" if after_backward else "forward only"
    fig.suptitle(f"{caption}: {phase} (loss {seen.loss:.3f})", fontsize=10)
