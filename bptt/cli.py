"""`bptt-bench`: train a task from the command line and report its figures.

`main` is a click group whose default action (no subcommand) trains, so options such as
`--task iris` work on their own and subcommands can be added beside them. Bad values and
unwritable outputs are usage errors (exit 2, one `Error:` line), checked before training starts.
"""
from __future__ import annotations

import dataclasses
import math
import os
import sys
import time
from pathlib import Path

import click

TASKS = ("iris",)


def _finite_positive(ctx, param, value: float) -> float:
    if not (math.isfinite(value) and value > 0):
        raise click.BadParameter(f"must be a finite number > 0, got {value}")
    return value


def _writable_file(ctx, param, path: Path | None) -> Path | None:
    if path is None:
        return None
    if path.is_dir():
        raise click.BadParameter(f"{path} is a directory, expected a file path")
    parent = path.parent
    if not parent.is_dir():
        raise click.BadParameter(f"cannot write {path}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise click.BadParameter(f"cannot write {path}: directory {parent} is not writable")
    return path


def _writable_dir(ctx, param, path: Path | None) -> Path | None:
    if path is None:
        return None
    if path.exists() and not path.is_dir():
        raise click.BadParameter(f"{path} exists and is not a directory")
    existing = path
    while not existing.exists():  # the directory will be created below its nearest ancestor
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK):
        raise click.BadParameter(f"cannot create or write {path}: {existing} is not a "
                                 f"writable directory")
    return path


@click.group(invoke_without_command=True)
@click.option("--task", type=click.Choice(TASKS), default="iris", show_default=True,
              help="What to train.")
@click.option("--seed", type=click.IntRange(min=0), default=42, show_default=True,
              help="Seed of weight init and batch shuffling (the data split is fixed).")
@click.option("--epochs", type=click.IntRange(min=1), default=80, show_default=True)
@click.option("--lr", type=float, default=0.1, show_default=True, callback=_finite_positive,
              help="SGD learning rate.")
@click.option("--batch", type=click.IntRange(min=1), default=16, show_default=True,
              help="Minibatch size.")
@click.option("--json", "json_path", type=click.Path(path_type=Path), callback=_writable_file,
              help="Write the figures and per-epoch history to this JSON file.")
@click.option("--plot", "plot_path", type=click.Path(path_type=Path), callback=_writable_file,
              help="Write a PNG of the training curves and decision regions.")
@click.option("--save", "save_dir", type=click.Path(path_type=Path), callback=_writable_dir,
              help="Save the trained model (model.safetensors + config.json) here.")
@click.option("--quiet", is_flag=True, help="No progress bar and no summary.")
@click.pass_context
def main(ctx: click.Context, task: str, seed: int, epochs: int, lr: float, batch: int,
         json_path: Path | None, plot_path: Path | None, save_dir: Path | None,
         quiet: bool) -> None:
    """Train a model with backpropagation and report test accuracy, losses and time."""
    if ctx.invoked_subcommand is not None:
        return
    from bptt import io
    from tasks import iris

    data = iris.load_data()
    start = time.perf_counter()
    if quiet:
        run = iris.train(data, seed=seed, epochs=epochs, lr=lr, batch_size=batch)
    else:
        with click.progressbar(length=epochs, label=f"training {task}",
                               file=sys.stderr) as bar:
            run = iris.train(data, seed=seed, epochs=epochs, lr=lr, batch_size=batch,
                             on_epoch=lambda record: bar.update(1))
    seconds = time.perf_counter() - start
    final = run.final
    history = [dataclasses.asdict(record) for record in run.history]
    report = {"task": task, "strategy": "full", "seed": seed, "epochs": epochs, "lr": lr,
              "batch": batch, "test_accuracy": final.test_accuracy, "test_loss": final.test_loss,
              "final_train_loss": final.train_loss, "train_seconds": seconds,
              "history": history}
    if not quiet:
        click.echo(f"{task}: seed {seed}, {epochs} epochs, lr {lr}, batch {batch}, "
                   f"strategy full")
        click.echo(f"  test accuracy     {final.test_accuracy:.4f}")
        click.echo(f"  test loss         {final.test_loss:.4f}")
        click.echo(f"  final train loss  {final.train_loss:.4f}")
        click.echo(f"  time              {seconds:.2f} s")
    if json_path is not None:
        _write("--json", json_path, lambda: io.atomic_write_json(json_path, report))
    if plot_path is not None:
        from bptt.plots import plot_classifier_run

        test = data.x_test * data.std + data.mean
        _write("--plot", plot_path, lambda: plot_classifier_run(
            plot_path, history, iris.predict_petal_plane(run.model, data),
            points=test[:, 2:], labels=data.y_test, axis_names=("petal length (cm)",
                                                                "petal width (cm)"),
            class_names=iris.CLASSES, title=f"{task}, seed {seed}: test accuracy "
                                            f"{final.test_accuracy:.3f} (points: test set)"))
    if save_dir is not None:
        config = {**run.model.config(), "task": task, "seed": seed,
                  "features": list(iris.FEATURES), "classes": list(iris.CLASSES),
                  "input_mean": data.mean.tolist(), "input_std": data.std.tolist()}
        _write("--save", save_dir, lambda: io.save_model(save_dir, run.model, config))


def _write(option: str, path: Path, write) -> None:
    try:
        write()
    except OSError as error:
        raise click.BadParameter(f"cannot write {path}: {error.strerror or error}",
                                 param_hint=f"'{option}'") from None
