"""Which `bptt-bench` option applies to which task and strategy: none is silently ignored.

An option the user gave (on the command line or through the environment, not a default) that
does nothing for the chosen task or strategy is refused before any work, with one message
naming the option and the task (or strategy): `--seq-len is for sequence tasks, not --task
iris`. Every option of `bptt-bench` and `compare` is in exactly one of these tables (a test
checks it), so an option added later must say here where it applies.
"""
from __future__ import annotations

from typing import Iterable

import click

SEQUENCE_TASKS = ("adding", "copy", "reber", "text")

#: {parameter name: flag} of the options only sequence tasks (recurrent models) use.
SEQUENCE_ONLY = {
    "seq_len": "--seq-len", "cell": "--cell", "steps": "--steps", "text_path": "--text",
    "grads_path": "--save-grads", "state_dir": "--state-dir", "state_every": "--state-every",
    "resume_dir": "--resume", "overwrite_state": "--overwrite-state",
}

#: {parameter name: flag} of the options only `--task iris` (the MLP) uses.
IRIS_ONLY = {"epochs": "--epochs", "layers": "--layers"}

#: The parameter names of the options that work for every task.
EVERY_TASK = frozenset({
    "task", "strategy", "strategies", "hidden", "batch", "lr", "optimizer", "clip", "on_nan",
    "seed", "quiet", "json_path", "csv_path", "plot_path", "save_dir", "max_memory", "dropout",
    "backward", "backwards", "seeds",  # the weight-transport study checks its own
})

#: {parameter name: (flag, the strategy it parameterises)}.
STRATEGY_PARAMETERS = {
    "k1": ("--k1", "truncated"), "k2": ("--k2", "truncated"),
    "segment": ("--segment", "checkpoint"), "slots": ("--slots", "revolve"),
    "budget": ("--budget", "adaptive"),
}


def given_options(ctx: click.Context) -> set[str]:
    """The parameter names of `ctx` whose value the user chose (not click's default)."""
    chosen = (click.core.ParameterSource.COMMANDLINE, click.core.ParameterSource.ENVIRONMENT)
    return {name for name in ctx.params if ctx.get_parameter_source(name) in chosen}


def check_applicable(task: str, strategies: Iterable[str], given: set[str],
                     strategies_flag: str = "--strategy") -> None:
    """Raise ValueError naming the first given option that the task or every strategy ignores.

    `strategies`: the strategies that will run (one for training, several for `compare`);
    `strategies_flag` is how the message names them.
    """
    strategies = list(strategies)
    if task in SEQUENCE_TASKS:
        for name, flag in IRIS_ONLY.items():
            if name in given:
                hint = " (sequence tasks train for --steps)" if name == "epochs" else \
                    " (a recurrent model has one hidden layer of --hidden units)"
                raise ValueError(f"{flag} is for --task iris, not --task {task}{hint}")
    else:
        for name, flag in SEQUENCE_ONLY.items():
            if name in given:
                hint = " (iris trains for --epochs)" if name == "steps" else ""
                raise ValueError(f"{flag} is for sequence tasks, not --task {task}{hint}")
    check_strategy_parameters(strategies, given, strategies_flag)


def check_strategy_parameters(strategies: Iterable[str], given: set[str],
                              strategies_flag: str = "--strategy") -> None:
    """Raise ValueError naming the first given strategy parameter (`--slots`, ...) that none
    of `strategies` uses."""
    strategies = list(strategies)
    for name, (flag, owner) in STRATEGY_PARAMETERS.items():
        if name in given and owner not in strategies:
            chosen = ",".join(strategies)
            raise ValueError(f"{flag} is a parameter of {owner}, and {strategies_flag} "
                             f"{chosen} does not run it")
