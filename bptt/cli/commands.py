"""The work behind each `bptt-bench` command; `bptt.cli` only parses and reports errors."""
from __future__ import annotations

import contextlib
import csv
import dataclasses
import io as text_io
import sys
import time
from pathlib import Path

import click
import numpy as np

from bptt.cli.outputs import is_stdout, write_text
from bptt.training import files, io, resources
from bptt.training.pretrained import save_pretrained
from bptt.training.memory import format_bytes
from bptt.studies.bench import benchmark, first_batch_gradients, label, reference_strategy
from bptt.training.train import (NonFiniteError, SequenceSetup, load_training_state, run_identity,
                                 save_training_state)
from checkpointing import Adaptive, Full, Periodic, Revolve, Truncated, simulate
from checkpointing.plan import ChainProfile

DEFAULT_SLOTS = 10
DEFAULT_BUDGET_FRACTION = 0.10
DEFAULT_STATE_EVERY = 50
TABLE_COLUMNS = [  # (header, row key, format)
    ("strategy", "label", "{}"), ("peak cache", "peak_cache_bytes", "bytes"),
    ("traced peak", "peak_traced_bytes", "bytes"), ("RSS peak", "peak_rss_mib", "{:.1f} MiB"),
    ("forwards", "forward_steps", "{}"), ("step time", "step_time_s", "{:.4f} s"),
    ("final loss", "final_loss", "{:.4g}"), ("metric", "metric", "{:.4g}"),
    ("grad diff vs full", "grad_max_abs_diff_vs_full", "{:.3g}"),
]


def make_setup(options: dict) -> SequenceSetup:
    """The run's definition from the CLI options (task built and validated here)."""
    from tasks import make_task

    extra = {"path": options["text_path"]} if options["task"] == "text" else {}
    if options["text_path"] is not None and options["task"] != "text":
        raise ValueError("--text is only for --task text")
    task = make_task(options["task"], seq_len=options["seq_len"], **extra)
    chosen = {k: options[k] for k in ("batch", "lr", "hidden", "optimizer", "clip")
              if options[k] is not None}
    return SequenceSetup(task=task, cell=options["cell"], steps=options["steps"],
                         seed=options["seed"], on_nonfinite=options["on_nan"],
                         backward=options.get("backward", "backprop"),
                         dropout=options["dropout"], **chosen)


def make_strategy(name: str, options: dict, profile: ChainProfile):
    """The strategy `name` with the CLI's parameters, defaults filled in for this chain."""
    T = profile.length
    if name == "full":
        return Full()
    if name == "truncated":
        k1 = options.get("k1") or max(1, T // 10)
        return Truncated(k1, options.get("k2") or k1)
    if name == "checkpoint":
        return Periodic(options.get("segment"))
    if name == "revolve":
        return Revolve(options.get("slots") or DEFAULT_SLOTS)
    budget = options.get("budget")
    if budget is None:
        full_bytes = simulate(Full().plan(profile), profile=profile).peak_bytes
        budget = max(int(full_bytes * DEFAULT_BUDGET_FRACTION), Adaptive.minimum_budget(profile))
    return Adaptive(budget)


def strategy_for(setup: SequenceSetup, name: str, options: dict, reference: bool = True):
    """The strategy for the setup's chain, checked before anything is allocated: the run's
    memory against `--max-memory` (or what is available), sizes alone first, then with the
    plans (which also reports an impossible budget before any progress output starts).
    `reference`: the run also computes `reference_strategy`'s gradient (see `benchmark`)."""
    limit = options.get("max_memory")
    resources.check_fits(resources.estimate_run_bytes(setup, None, with_plans=False), limit)
    profile = resources.sequence_profile(setup)
    strategy = make_strategy(name, options, profile)
    resources.check_run_fits(setup, strategy, reference_strategy(strategy) if reference else None,
                             limit)
    return strategy


def table(rows: list[dict]) -> str:
    """The rows as an aligned text table (the one `bptt-bench` prints)."""
    cells = [[h for h, _, _ in TABLE_COLUMNS]]
    for row in rows:
        row = {**row, "label": label(row)}
        cells.append([format_bytes(row[k]) if f == "bytes" else
                      ("-" if row[k] is None else f.format(row[k])) for _, k, f in TABLE_COLUMNS])
    return "\n".join(aligned_lines(cells))


def aligned_lines(cells: list[list[str]], right: bool = False) -> list[str]:
    """Rows of text cells (the header first) as aligned lines, a rule of dashes under the
    header; columns left-justified, or right-justified for `right` (numbers)."""
    widths = [max(len(r[c]) for r in cells) for c in range(len(cells[0]))]
    pad = str.rjust if right else str.ljust
    lines = ["  ".join(pad(v, w) for v, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def progress(total: int, text: str, quiet: bool):
    """A click progress bar over `total` items labelled `text`, or a silent stand-in."""
    if quiet:
        return _NoBar()
    return click.progressbar(length=total, label=text, file=sys.stderr)


class _NoBar:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, n):
        pass


def _summary_lines(setup: SequenceSetup) -> str:
    t = setup.task
    return (f"{t.name}: T={t.seq_len}, cell {setup.cell}, hidden {setup.hidden}, batch "
            f"{setup.batch}, {setup.steps} steps, {setup.optimizer} lr {setup.lr}, seed "
            f"{setup.seed}, backward {setup.backward} (metric: {t.metric_name}; trivial "
            f"predictor {t.baseline():.4g})")


def train_one(options: dict) -> None:
    """The default command: measure and train one strategy, print the table, write outputs."""
    setup = make_setup(options)
    strategy = strategy_for(setup, options["strategy"], options)
    with contextlib.ExitStack() as held:
        training = _kept_state(options, setup, strategy, held)
        _train_and_report(options, setup, strategy, training)


def _train_and_report(options: dict, setup: SequenceSetup, strategy, training: dict) -> None:
    done = training["state"].step if "state" in training else 0
    with progress(setup.steps - done, f"training {setup.task.name} ({strategy.name})",
                  options["quiet"]) as bar:
        try:
            row, run, extras = benchmark(setup, strategy, on_step=lambda r: bar.update(1),
                                         **training)
        except NonFiniteError as error:
            if "on_save" not in training:
                raise
            where = options.get("state_dir") or options["resume_dir"]
            raise NonFiniteError(f"{error}; the state before that step is saved in {where}: "
                                 f"continue with --resume {where}") from None
    if not options["quiet"]:  # on stderr when an output takes stdout
        click.echo(_summary_lines(setup), err=options.get("to_stdout", False))
        click.echo(table([row]), err=options.get("to_stdout", False))
    write_outputs(options, [row], single=True)
    if options.get("save_dir") is not None:
        write_output(options["save_dir"], save_pretrained, run.model,
                     {**sequence_card(setup, strategy.name, row), "backward": setup.backward})
    if options.get("grads_path") is not None:
        write_output(options["grads_path"], _save_grads, extras, row)


def _kept_state(options: dict, setup: SequenceSetup, strategy,
                held: contextlib.ExitStack) -> dict:
    """`train_sequence`'s options for `--state-dir`, `--state-every` and `--resume`.

    `--resume DIR` continues from the state in DIR (checked against the options now, before
    any training) and goes on keeping it there unless `--state-dir` names another directory.
    The directories are locked for the run (`held` releases them); a `--state-dir` holding
    another run's resumable state is refused unless `--overwrite-state`.
    """
    where = options.get("state_dir") or options.get("resume_dir")
    resume = options.get("resume_dir")
    if options.get("state_every") is not None and where is None:
        raise ValueError("--state-every needs --state-dir DIR (or --resume DIR)")
    if options.get("overwrite_state") and options.get("state_dir") is None:
        raise ValueError("--overwrite-state needs --state-dir DIR")
    same = resume is not None and where.resolve() == resume.resolve()
    if where is not None and (where / io.STATE_FILE).exists() and not same \
            and not options.get("overwrite_state"):
        raise ValueError(f"{where} holds a resumable training state; continue it with "
                         f"--resume {where}, or pass --overwrite-state to replace it")
    training = {}
    if resume is not None:
        held.enter_context(io.lock_state_dir(resume))
        state = load_training_state(options["resume_dir"], setup, strategy)
        if state.step > setup.steps:
            raise ValueError(f"the run saved in {options['resume_dir']} is at step "
                             f"{state.step}, past --steps {setup.steps}; ask for at least "
                             f"{state.step} steps in all")
        training["state"] = state
    if where is not None:
        if not same:
            held.enter_context(io.lock_state_dir(where))
        identity = run_identity(setup, strategy)
        training["on_save"] = lambda state: write_output(where, save_training_state, state,
                                                         identity)
        training["save_every"] = options.get("state_every") or DEFAULT_STATE_EVERY
    return training


def compare(names: list[str], options: dict) -> None:
    """Several strategies on the same seed and batches: one table, the rows, the plots."""
    setup = make_setup(options)
    strategies = [strategy_for(setup, name, options, reference=False) for name in names]
    # One reference for all rows: full when it is compared anyway, else a bounded exact plan.
    chosen = Full() if "full" in names else Periodic()
    resources.check_run_fits(setup, chosen, limit=options.get("max_memory"))
    reference = first_batch_gradients(setup, chosen)[3]
    rows = []
    for name, strategy in zip(names, strategies):
        with progress(setup.steps, f"{name:>10}", options["quiet"]) as bar:
            row, _, _ = benchmark(setup, strategy, reference, on_step=lambda r: bar.update(1),
                                  reference_label=label({"strategy": chosen.name,
                                                         "params": vars(chosen)}))
        rows.append(row)
    if not options["quiet"]:
        click.echo(_summary_lines(setup), err=options.get("to_stdout", False))
        click.echo(table(rows), err=options.get("to_stdout", False))
    write_outputs(options, rows, single=False)


def sequence_card(setup: SequenceSetup, strategy: str, row: dict) -> dict:
    """What `save_pretrained` keeps beside a sequence model: task, recipe, final figures."""
    task = setup.task
    return {"task": task.name, "seed": setup.seed,
            "data": {"source": f"generated by tasks.{type(task).__module__.split('.')[-1]} "
                               f"from the seed", "seq_len": task.seq_len},
            "training": {"optimizer": setup.optimizer, "lr": setup.lr, "batch": setup.batch,
                         "steps": setup.steps, "clip": setup.clip, "dropout": setup.dropout,
                         "strategy": strategy},
            "metrics": {k: v if v is not None and np.isfinite(v) else None  # JSON has no NaN
                        for k, v in (("final_loss", row["final_loss"]),
                                     (task.metric_name, row["metric"]),
                                     ("trivial predictor", task.baseline()))}}


def write_output(path, write, *args, **kwargs) -> None:
    """Run `write(path, ...)`; an OSError becomes a ValueError naming the file."""
    try:
        write(path, *args, **kwargs)
    except OSError as error:
        raise ValueError(f"cannot write {path}: {error.strerror or error}") from None


def write_text_output(path, text: str) -> None:
    """`text` to `path` atomically, or to standard output for `-`."""
    write_text(path, text, lambda p, t: write_output(p, files.atomic_write_bytes, t.encode()))


def write_outputs(options: dict, rows: list[dict], single: bool) -> None:
    """The --json, --csv and --plot outputs of a run (`single`) or a comparison."""
    if options.get("json_path") is not None:
        write_text_output(options["json_path"],
                          files.dumps_strict(rows[0] if single else rows) + "\n")
    if options.get("csv_path") is not None:
        write_text_output(options["csv_path"], _csv(rows))
    if options.get("plot_path") is not None:
        from bptt.plots.curves import plot_training_curves
        write_output(options["plot_path"], plot_training_curves, rows)


def _csv(rows: list[dict]) -> str:
    """One run: its per-step history. Several: one line per strategy."""
    out = text_io.StringIO()
    if len(rows) == 1 and "history" in rows[0]:
        writer = csv.DictWriter(out, ["strategy", *rows[0]["history"][0]])
        writer.writeheader()
        for record in rows[0]["history"]:
            writer.writerow({"strategy": label(rows[0]), **record})
    else:
        keys = [k for k in rows[0] if k not in ("history", "params", "no_gradient")]
        writer = csv.DictWriter(out, ["label"] + keys)
        writer.writeheader()
        for row in rows:
            writer.writerow({"label": label(row), **{k: row[k] for k in keys}})
    return out.getvalue()


def _save_grads(path: Path, extras: dict, row: dict) -> None:
    arrays = {"inputs": extras["inputs"], "targets": extras["targets"]}
    arrays.update({f"weights.{k}": v for k, v in extras["weights"].items()})
    arrays.update({f"grads.{k}": v for k, v in extras["grads"].items()})
    metadata = {k: str(row[k]) for k in ("strategy", "task", "cell", "seq_len", "hidden",
                                         "batch", "seed", "dtype")}
    metadata["loss"] = "mean over loss steps of the per-step loss (mse or cross-entropy)"
    io.save_arrays(path, arrays, metadata)


def show_plan(options: dict) -> None:
    """`bptt-bench plan`: the counts of one strategy's plan for an RNN chain, and its drawing."""
    from bptt.nn.rnn import RNN

    T, D = options["seq_len"], options["input_size"]
    resources.check_plan_length(T)

    def measure(batch: int, hidden: int) -> tuple[int, int]:
        model = RNN(options["cell"], D, hidden, 1, np.random.default_rng(0))
        one_step = model.chain(np.zeros((1, batch, D), np.float32),
                               np.zeros((1, batch, 1), np.float32)).profile()
        return one_step.state_bytes[0], one_step.tape_bytes[0]

    # Sizes extrapolated from small probes: a --hidden of 10^8 is counted, never allocated.
    profile = ChainProfile.uniform(T, *resources.extrapolate_sizes(measure, options["batch"],
                                                                   options["hidden"]))
    strategy = make_strategy(options["strategy"], options, profile)
    started = time.perf_counter()
    plan = strategy.plan(profile)
    stats = simulate(plan, profile=profile)
    seconds = time.perf_counter() - started
    counts = {"strategy": strategy.name, "params": {k: v for k, v in vars(strategy).items()},
              "seq_len": T, **{k: v for k, v in dataclasses.asdict(stats).items()
                               if k != "length"},
              "state_bytes": profile.state_bytes[0], "tape_bytes": profile.tape_bytes[0],
              "planning_seconds": seconds}
    if options["json_path"] is not None:
        write_text_output(options["json_path"], files.dumps_strict(counts) + "\n")
    if not is_stdout(options["json_path"]):
        click.echo("\n".join(f"{k:>16}: {v}" for k, v in counts.items()))
    if options["plot_path"] is not None:
        from bptt.plots.plans import plot_plan
        write_output(options["plot_path"], plot_plan, plan, label(counts))
