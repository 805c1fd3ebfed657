"""`bptt-bench`: train with a memory strategy and report memory, time, convergence, exactness.

    bptt-bench --strategy checkpoint              # adding problem, tanh RNN: the default job
    bptt-bench compare --strategies full,checkpoint,revolve --seq-len 1000
    bptt-bench plan --strategy revolve --seq-len 100 --slots 5 --json -
    bptt-bench --task iris                        # the MLP as a chain of layers
    bptt-bench --steps 2000 --state-dir runs/a    # interrupted? the same with --resume runs/a

`main` is a click group whose default action (no subcommand) trains. Bad values, impossible
budgets and unwritable or unreadable files end with one `Error:` line and exit code 2, checked
before training where possible; never a traceback.
"""
from __future__ import annotations

import math
import warnings
from contextlib import contextmanager
from pathlib import Path

import click

from bptt.cli.options import (SEQUENCE_TASKS, check_applicable, check_strategy_parameters,
                              given_options)
from bptt.cli.outputs import one_stdout, output_file, writable_dir
from bptt.nn.feedback import VARIANTS
from bptt.training.memory import parse_bytes

STRATEGY_NAMES = ("full", "truncated", "checkpoint", "revolve", "adaptive")
TASKS = SEQUENCE_TASKS + ("iris", "digits")
CELLS = ("rnn", "lstm", "gru")


class BadInput(click.ClickException):
    """A one-line `Error: ...` and exit code 2, like click's usage errors, without the usage."""
    exit_code = 2


def _finite_positive(ctx, param, value):
    if value is not None and not (math.isfinite(value) and value > 0):
        raise click.BadParameter(f"must be a finite number > 0, got {value}")
    return value


def _probability(ctx, param, value):
    if value is not None and not (math.isfinite(value) and 0 <= value < 1):
        raise click.BadParameter(f"must be a number in [0, 1), got {value}")
    return value


def _budget(ctx, param, value):
    if value is None:
        return None
    try:
        return parse_bytes(value)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None


def _layer_sizes(ctx, param, value):
    if value is None:
        return None
    try:
        sizes = tuple(int(v) for v in value.split(","))
    except ValueError:
        sizes = ()
    if not sizes or min(sizes) < 1:
        raise click.BadParameter(f"expected widths >= 1 separated by commas, e.g. 32,32; "
                                 f"got {value!r}")
    return sizes


def _state_dir_to_resume(ctx, param, path: Path | None) -> Path | None:
    if path is None:
        return None
    if not path.exists():
        raise click.BadParameter(f"{path} does not exist; expected a directory written with "
                                 f"--state-dir")
    if not path.is_dir():
        raise click.BadParameter(f"{path} is a file; expected the directory given to "
                                 f"--state-dir")
    return writable_dir(ctx, param, path)


def _stack(*decorators):
    def apply(f):
        for d in reversed(decorators):
            f = d(f)
        return f
    return apply


strategy_options = _stack(
    click.option("--k1", type=click.IntRange(min=1), help="truncated: steps between windows."),
    click.option("--k2", type=click.IntRange(min=1),
                 help="truncated: steps each window backpropagates (>= k1; default k1)."),
    click.option("--segment", type=click.IntRange(min=1),
                 help="checkpoint: steps between kept states (default ceil(sqrt(T)))."),
    click.option("--slots", type=click.IntRange(min=1),
                 help="revolve: states held at once, the initial one included (default 10)."),
    click.option("--budget", callback=_budget,
                 help="adaptive: memory budget, e.g. 10MB, 512KiB or 200000 (bytes); "
                      "default 10% of full's cache."),
)

max_memory_option = click.option(
    "--max-memory", callback=_budget,
    help="Refuse the run before it starts if its estimated memory exceeds this, e.g. 2GB "
         "(default: the memory available, MemAvailable in /proc/meminfo).")

model_options = _stack(
    click.option("--task", type=click.Choice(TASKS), default="reber", show_default=True,
                 help="What to train."),
    click.option("--text", "text_path", type=click.Path(path_type=Path),
                 help="text task: a UTF-8 text file (default: the built-in text)."),
    click.option("--cell", type=click.Choice(CELLS), default="rnn", show_default=True),
    click.option("--seq-len", type=click.IntRange(min=1), help="T (default: the task's)."),
    click.option("--hidden", type=click.IntRange(min=1),
                 help="Hidden units (default 64 for sequence tasks, 32 for iris)."),
    click.option("--layers", callback=_layer_sizes,
                 help="iris: hidden layer widths, e.g. 32,32 (default: one of --hidden)."),
    click.option("--batch", type=click.IntRange(min=1),
                 help="Minibatch size (default 32 for sequence tasks, 16 for iris)."),
    click.option("--steps", type=click.IntRange(min=1), default=400, show_default=True,
                 help="Training steps (sequence tasks)."),
    click.option("--epochs", type=click.IntRange(min=1),
                 help="Epochs (iris: 80; digits: 40)."),
    click.option("--lr", type=float, callback=_finite_positive,
                 help="Learning rate (default 0.003 for sequence tasks, 0.1 for iris)."),
    click.option("--optimizer", type=click.Choice(("adam", "sgd")),
                 help="Default adam for sequence tasks, sgd for iris."),
    click.option("--clip", type=float, callback=_finite_positive,
                 help="Largest global gradient norm (default 1.0 for sequence tasks, none "
                      "for iris)."),
    click.option("--on-nan", type=click.Choice(("stop", "skip")), default="stop",
                 show_default=True, help="On NaN/Inf: stop naming the step, or skip it."),
    click.option("--seed", type=click.IntRange(min=0), default=42, show_default=True),
    click.option("--dropout", type=float, default=0.0, show_default=True,
                 callback=_probability,
                 help="Dropout probability before the read-out (sequence tasks) or the head "
                      "(iris); masks keyed by (seed, step, layer or time step), so exact "
                      "strategies stay exact."),
    click.option("--quiet", is_flag=True, help="No progress bar and no table."),
    click.option("--backward", type=click.Choice(VARIANTS), default="backprop",
                 show_default=True,
                 help="How errors cross layers: exact backprop, or a rule without weight "
                      "transport (fa, dfa, sign, kp, hebbian)."),
)


@click.group(invoke_without_command=True)
@click.option("--strategy", type=click.Choice(STRATEGY_NAMES), default="full",
              show_default=True, help="How memory is traded against recomputation.")
@strategy_options
@model_options
@max_memory_option
@output_file("--json", "json_path", "Write the figures and history to this JSON file.")
@output_file("--csv", "csv_path", "Write the per-step history to this CSV file.")
@output_file("--plot", "plot_path", "Write a PNG of the training curves.", text=False)
@click.option("--save", "save_dir", type=click.Path(path_type=Path), callback=writable_dir,
              help="Save the trained weights (model.safetensors + config.json) here.")
@output_file("--save-grads", "grads_path",
             "Write the first batch, initial weights and their gradients (safetensors).",
             text=False)
@click.option("--state-dir", type=click.Path(path_type=Path), callback=writable_dir,
              help="Keep the training state here (weights, optimiser buffers, the batch "
                   "generator's state, history), replaced atomically every --state-every "
                   "steps, at the end and when a NaN stops training; see --resume.")
@click.option("--state-every", type=click.IntRange(min=1),
              help="Steps between saved training states (default 50).")
@click.option("--resume", "resume_dir", type=click.Path(path_type=Path),
              callback=_state_dir_to_resume,
              help="Continue the run saved in this --state-dir up to --steps in all, bit for "
                   "bit as if uninterrupted; the options must be the run's (the strategy may "
                   "be another exact one). The state goes on being kept there.")
@click.option("--overwrite-state", is_flag=True,
              help="Let --state-dir replace a resumable state already there (a new run "
                   "otherwise refuses to, so that no run's state is lost by mistake).")
@click.pass_context
def main(ctx: click.Context, **options) -> None:
    """Train a model with a memory strategy and report memory, time and convergence."""
    if ctx.invoked_subcommand is not None:
        return
    from bptt.cli import commands, iris_commands
    with _bad_input(), _one_line_warnings():
        check_applicable(options["task"], [options["strategy"]], given_options(ctx))
        options["to_stdout"] = one_stdout(options, {"json_path": "--json", "csv_path": "--csv"})
        if options["task"] == "digits":
            raise BadInput("--task digits runs in the weight-transport study: bptt-bench "
                           "compare --backwards backprop,fa --task digits")
        if options["task"] == "iris":
            iris_commands.train_iris(options)
        else:
            commands.train_one(options)


@main.command()
@click.option("--strategies", default="full,truncated,checkpoint,revolve,adaptive",
              show_default=True, help="Comma-separated strategy names.")
@strategy_options
@model_options
@max_memory_option
@output_file("--json", "json_path", "Write all rows (with histories) to this JSON file.")
@output_file("--csv", "csv_path", "Write the table to this CSV file.")
@output_file("--plot", "plot_path",
             "Write the comparison plots (loss against step and time) as PNG.", text=False)
@click.option("--backwards", default=None,
              help="Compare backward variants instead of strategies, e.g. "
                   "backprop,fa,dfa,sign,kp,hebbian (iris, digits or a sequence task).")
@click.option("--seeds", default=None,
              help="--backwards on iris/digits: seeds to average over, e.g. 0-9 or 1,3,5 "
                   "(default 0-9 for iris, 0-4 for digits).")
@click.pass_context
def compare(ctx: click.Context, **options) -> None:
    """Run several strategies (or backward variants) side by side on the same seeds and
    batches."""
    if options["backwards"] is not None:
        from bptt.cli import feedback_commands
        with _bad_input(), _one_line_warnings():
            feedback_commands.compare_backwards(options)
        return
    if options["seeds"] is not None:
        raise BadInput("--seeds is for compare --backwards")
    names = [n.strip() for n in options["strategies"].split(",") if n.strip()]
    unknown = [n for n in names if n not in STRATEGY_NAMES]
    if unknown or not names:
        raise BadInput(f"unknown strategy {unknown[0]!r} in --strategies; choose from "
                       f"{', '.join(STRATEGY_NAMES)}" if unknown else "--strategies is empty")
    if options["task"] == "digits":
        raise BadInput("compare --strategies runs sequence tasks and iris; --task digits runs "
                       "with --backwards")
    from bptt.cli import commands, iris_commands
    with _bad_input(), _one_line_warnings():
        check_applicable(options["task"], names, given_options(ctx), "--strategies")
        options["to_stdout"] = one_stdout(options, {"json_path": "--json", "csv_path": "--csv"})
        if options["task"] == "iris":
            iris_commands.compare_iris(names, options)
        else:
            commands.compare(names, options)


@main.command()
@click.option("--strategy", type=click.Choice(STRATEGY_NAMES), default="revolve",
              show_default=True)
@strategy_options
@click.option("--seq-len", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--cell", type=click.Choice(CELLS), default="rnn", show_default=True)
@click.option("--hidden", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--batch", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--input-size", type=click.IntRange(min=1), default=2, show_default=True)
@output_file("--json", "json_path", "Write the counts as JSON to this file.")
@output_file("--plot", "plot_path", "Draw the plan (step against time) as PNG.", text=False)
@click.pass_context
def plan(ctx: click.Context, **options) -> None:
    """Plan one training step for a chain and print its counts, without training."""
    from bptt.cli import commands
    with _bad_input():
        check_strategy_parameters([options["strategy"]], given_options(ctx))
        commands.show_plan(options)


class _bad_input:
    """Turn the library's errors about the user's input into one-line exit-2 errors."""

    def __enter__(self):
        return self

    def __exit__(self, kind, error, tb):
        from bptt.training.train import NonFiniteError
        if kind is None or isinstance(error, click.ClickException):
            return False
        if isinstance(error, NonFiniteError):
            raise BadInput(f"training stopped: {error}") from None
        if isinstance(error, (ValueError, TypeError, OSError, UnicodeDecodeError)):
            raise BadInput(_one_line(error)) from None
        return False


@contextmanager
def _one_line_warnings():
    """Warnings (a skipped non-finite step) as `Warning: ...` lines on stderr, no source line."""
    def show(message, category, filename, lineno, file=None, line=None):
        click.echo(f"Warning: {message}", err=True)

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


def _one_line(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    if isinstance(error, OSError) and error.filename:
        text = f"{error.filename}: {error.strerror or text}"
    return " ".join(text.split())


def _database(ctx, param, path: Path) -> Path:
    """A sweep store to create or extend: not a directory, in an existing directory."""
    if path.is_dir():
        raise click.BadParameter(f"{path} is a directory, expected a database file path")
    if not path.parent.is_dir():
        raise click.BadParameter(f"cannot create {path}: directory {path.parent} does not exist")
    return path


@main.command()
@click.argument("sweep_file", required=False, type=click.Path(path_type=Path))
@click.option("--db", "db_path", type=click.Path(path_type=Path), required=True,
              callback=_database, help="SQLite store of finished points (resumable).")
@click.option("--strategies", help="Comma-separated strategy specs, e.g. "
                                   "'full;revolve(slots=8);adaptive(budget=0.1)' (';' "
                                   "separates them), instead of a sweep file.")
@click.option("--compressions", default="", help="Comma-separated codecs each snapshot "
                                                 "strategy is also run with (float16, ...).")
@click.option("--cells", default="rnn", show_default=True)
@click.option("--seq-lens", default="100", show_default=True)
@click.option("--tasks", default="adding", show_default=True)
@click.option("--seeds", default="0", show_default=True)
@click.option("--steps", type=click.IntRange(min=1), default=60, show_default=True)
@click.option("--hidden", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--batch", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--lr", type=float, default=0.01, show_default=True, callback=_finite_positive)
@click.option("--scheduler", help="tcp://HOST:PORT of a running Dask scheduler (default: a "
                                  "LocalCluster on this machine).")
@click.option("--workers", type=click.IntRange(min=1),
              help="LocalCluster worker processes (default: the CPU count).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def sweep(**options) -> None:
    """Train every point of a sweep on Dask; one SQLite row per finished point, resumable."""
    from bptt.cli import study
    with _bad_input(), _one_line_warnings():
        study.sweep(options)


@main.command()
@click.argument("db_path", type=click.Path(path_type=Path))
@click.option("--out", "out_dir", type=click.Path(path_type=Path), callback=writable_dir,
              default=Path("results/report"), show_default=True,
              help="Directory for the figures, the CSV and the Markdown summary.")
def report(db_path, out_dir) -> None:
    """Pareto plots, gradient error against compression, a CSV and a Markdown summary."""
    from bptt.cli import study
    with _bad_input():
        study.report(db_path, out_dir)
