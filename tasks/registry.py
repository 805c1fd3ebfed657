"""The sequence tasks by name, and `make_task` to build one with its options checked."""
from __future__ import annotations

import dataclasses

from tasks.adding import AddingTask
from tasks.copy_memory import CopyTask
from tasks.reber import ReberTask
from tasks.sequence import SequenceTask
from tasks.text import TextTask

#: Every sequence task class under the name `bptt-bench --task` uses for it.
TASKS: dict[str, type[SequenceTask]] = {
    cls.name: cls for cls in (AddingTask, CopyTask, ReberTask, TextTask)}


def make_task(name: str, /, seq_len: int | None = None, **options) -> SequenceTask:
    """The task `name` with `seq_len` steps (None: the task's default) and its own options."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose one of {sorted(TASKS)}")
    cls = TASKS[name]
    allowed = sorted(f.name for f in dataclasses.fields(cls) if f.init and f.name != "seq_len")
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"task {name!r} has no option {unknown[0]!r}; its options: {allowed}")
    if seq_len is not None:
        options["seq_len"] = seq_len
    return cls(**options)
