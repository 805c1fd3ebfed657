"""The work behind `bptt-bench sweep` and `bptt-bench report`."""
from __future__ import annotations

import sys

import click

from bptt.studies.points import SweepError, load_sweep, points_from_config


class Interrupted(click.ClickException):
    """Ctrl-C during a sweep: one line saying what is safe, exit code 130 (as a shell's)."""
    exit_code = 130


def _split(text: str, sep: str = ",") -> list[str]:
    return [t.strip() for t in text.split(sep) if t.strip()]


def _ints(text: str, option: str) -> list[int]:
    try:
        return [int(t) for t in _split(text)]
    except ValueError:
        raise SweepError(f"{option} must be comma-separated whole numbers, got {text!r}") from None


def sweep_points(options: dict):
    """The points from the sweep file, or from the options when there is none."""
    if options["sweep_file"] is not None:
        if options["strategies"]:
            raise SweepError("give a sweep file or --strategies, not both")
        return load_sweep(options["sweep_file"])
    if not options["strategies"]:
        raise SweepError("give a sweep file (TOML) or --strategies")
    config = {"strategies": _split(options["strategies"], ";"),
              "compressions": _split(options["compressions"]),
              "cells": _split(options["cells"]), "tasks": _split(options["tasks"]),
              "seq_lens": _ints(options["seq_lens"], "--seq-lens"),
              "seeds": _ints(options["seeds"], "--seeds"),
              **{k: options[k] for k in ("steps", "hidden", "batch", "lr")}}
    return points_from_config(config, where="options")


def sweep(options: dict) -> None:
    """Run the sweep; report what was stored, skipped and lost."""
    from bptt.studies.store import Store
    from bptt.studies.sweep import run_sweep

    points = sweep_points(options)
    store = Store(options["db_path"])
    bar = None
    quiet = options["quiet"]

    def start(n):
        nonlocal bar
        if not quiet:
            click.echo(f"{len(points)} points, {len(points) - n} already in "
                       f"{options['db_path']}, {n} to run", err=True)
            if n:
                bar = click.progressbar(length=n, label="points", show_eta=True,
                                        show_pos=True, file=sys.stderr)
                bar.__enter__()

    try:
        outcome = run_sweep(points, store, scheduler=options["scheduler"],
                            workers=options["workers"], on_start=start,
                            on_done=lambda k: bar.update(k) if bar is not None else None)
    except KeyboardInterrupt:
        done = len(store.done())
        raise Interrupted(
            f"interrupted: {done} finished points are safe in {options['db_path']}; run the "
            f"same command again to finish the rest") from None
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
        store.close()
    for params, why in outcome.lost:
        click.echo(f"Warning: point {params['strategy']} {params['cell']} T={params['seq_len']} "
                   f"{params['task']} seed {params['seed']} was lost ({why})", err=True)
    if outcome.lost:
        raise click.ClickException(
            f"{len(outcome.lost)} of {outcome.total} points were lost (a worker died or the "
            f"point failed); the {outcome.finished + outcome.skipped} others are in "
            f"{options['db_path']}: run the same command again to finish them")
    if not quiet:
        click.echo(f"done: {outcome.finished} run, {outcome.skipped} skipped, "
                   f"{outcome.total} points in {options['db_path']}")


def report(db_path, out_dir) -> None:
    """Write the report of a sweep store into `out_dir`."""
    from bptt.plots.sweep import plot_gradient_error, plot_pareto_panels
    from bptt.studies.report import write_tables
    from bptt.studies.store import open_existing

    store = open_existing(db_path)
    try:
        rows = store.rows()
    finally:
        store.close()
    if not rows:
        raise ValueError(f"{db_path} holds no finished points yet")
    written, means = write_tables(rows, out_dir)
    for name, draw in (("pareto_steps.png", lambda p: plot_pareto_panels(p, means, "steps")),
                       ("pareto_metric.png", lambda p: plot_pareto_panels(p, means, "metric")),
                       ("gradient_error.png", lambda p: plot_gradient_error(p, means))):
        draw(out_dir / name)
        written.append(out_dir / name)
    for path in written:
        click.echo(str(path))
