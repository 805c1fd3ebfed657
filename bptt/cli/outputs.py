"""Output paths of `bptt-bench`: checked before any work starts, and `-` for standard output.

The promises (the README's "Reliability" section states them):
- an output is written only to a new path or over a regular file (a symbolic link is followed),
  never over a directory, a FIFO or a device such as /dev/full; written atomically, so it is
  the old file or the new one, never half of one; a failed write is one `Error:` line, exit 2;
- `-` means standard output for every text output (`--json`, `--csv`), and only one output of a
  command may take it; binary outputs (`--plot`, `--save-grads`) and directories (`--save`,
  `--state-dir`) refuse it. With an output on standard output, the table goes to standard error.
"""
from __future__ import annotations

import os
from pathlib import Path

import click

from bptt.training.files import check_replaceable

STDOUT = "-"


def is_stdout(path) -> bool:
    return path is not None and str(path) == STDOUT


def _writable_file(text: bool):
    def check(ctx, param, path: Path | None) -> Path | None:
        if path is None:
            return None
        if is_stdout(path):
            if text:
                return path
            raise click.BadParameter("'-' (standard output) is only for text outputs; this one "
                                     "is binary: give a file path")
        if path.is_dir():
            raise click.BadParameter(f"{path} is a directory, expected a file path")
        try:
            check_replaceable(path)
        except ValueError as error:
            raise click.BadParameter(str(error)) from None
        parent = path.parent
        if not parent.is_dir():
            raise click.BadParameter(f"cannot write {path}: directory {parent} does not exist")
        if not os.access(parent, os.W_OK):
            raise click.BadParameter(f"cannot write {path}: directory {parent} is not writable")
        return path
    return check


def output_file(flag: str, dest: str, help: str, text: bool = True):
    """An option naming a file to write, checked before any work starts; `text` outputs may
    be `-` (standard output)."""
    return click.option(flag, dest, type=click.Path(path_type=Path, allow_dash=text),
                        callback=_writable_file(text),
                        help=help + (" ('-' for standard output)" if text else ""))


def writable_dir(ctx, param, path: Path | None) -> Path | None:
    """A directory to create or write into (not `-`): checked before any work starts."""
    if path is None:
        return None
    if is_stdout(path):
        raise click.BadParameter("'-' (standard output) is for text outputs; this option names "
                                 "a directory")
    if path.exists() and not path.is_dir():
        raise click.BadParameter(f"{path} exists and is not a directory")
    existing = path
    while not existing.exists():  # the directory will be created below its nearest ancestor
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK):
        raise click.BadParameter(f"cannot create or write {path}: {existing} is not a "
                                 f"writable directory")
    return path


def one_stdout(options: dict, flags: dict[str, str]) -> bool:
    """Whether some output goes to standard output; a ValueError if two do (they would mix).
    `flags`: option key -> flag name."""
    taken = [flag for key, flag in flags.items() if is_stdout(options.get(key))]
    if len(taken) > 1:
        raise ValueError(f"{' and '.join(taken)} both ask for standard output ('-'); give "
                         f"one of them a file path")
    return bool(taken)


def write_text(path, text: str, write_file) -> None:
    """`text` to standard output if `path` is `-`, else `write_file(path, text)`."""
    if is_stdout(path):
        click.echo(text, nl=not text.endswith("\n"))
    else:
        write_file(path, text)
