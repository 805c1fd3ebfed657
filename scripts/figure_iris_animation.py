"""One Iris batch's cached activations and deltas, per layer, animated over training (GIF).

Trains the Iris MLP (the seed recipe: 4-32-3 tanh, SGD lr 0.1, batch 16, 80 epochs, seed 42)
and inspects the same 16 training flowers (`bptt.inspect.inspect_batch`) before training and
after the chosen epochs; `bptt.plots.animation.animate_inspections` draws each moment forward
only, then after backward. Writes iris_animation.gif and iris_animation.json (per frame: the
loss and each layer's activation and delta norms).

    python scripts/figure_iris_animation.py            # results/figures/iris_animation.gif
    python scripts/figure_iris_animation.py --quick    # 3 epochs, for tests
"""
from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from bptt.inspect import inspect_batch
from bptt.plots.animation import animate_inspections
from bptt.training.files import atomic_write_json
from tasks import iris

EPOCHS_SHOWN = (0, 1, 2, 5, 10, 20, 40, 80)


@click.command()
@click.option("--epochs", default=80, show_default=True)
@click.option("--seed", default=42, show_default=True)
@click.option("--fps", default=2.0, show_default=True, help="Frames per second of the GIF.")
@click.option("--out", type=click.Path(path_type=Path), default=Path("results/figures"),
              show_default=True, help="Folder for iris_animation.gif and .json.")
@click.option("--quick", is_flag=True, help="3 epochs: a smoke run for tests.")
def main(epochs, seed, fps, out, quick):
    """Train, inspect one batch at the chosen epochs, write the GIF and its numbers."""
    epochs = 3 if quick else epochs
    shown = {e for e in EPOCHS_SHOWN if e <= epochs} | {epochs}
    data = iris.load_data()
    x, y = data.x_train[:16], data.y_train[:16]
    moments = []

    def watch(epoch, model):
        if epoch in shown:
            moments.append((f"epoch {epoch}", inspect_batch(model, x, y)))

    iris.train(data, seed=seed, epochs=epochs, on_model=watch)
    out.mkdir(parents=True, exist_ok=True)
    frames = animate_inspections(out / "iris_animation.gif", moments, fps=fps)
    atomic_write_json(out / "iris_animation.json", [
        {"moment": caption, "loss": seen.loss,
         "activation_norms": [float(np.linalg.norm(layer.output)) for layer in seen.layers],
         "delta_norms": [float(np.linalg.norm(layer.delta)) for layer in seen.layers]}
        for caption, seen in moments])
    click.echo(f"wrote {out / 'iris_animation.gif'}: {frames} frames, epochs {sorted(shown)}")


if __name__ == "__main__":
    main()
