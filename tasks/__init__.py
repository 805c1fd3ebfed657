"""Benchmark tasks: for each, the data, the model it trains, the loss and the metric.

`make_task(name, seq_len, **options)` builds a sequence task by name (`TASKS` lists them);
`tasks.iris` is the depth-only case, an MLP trained as a chain of layers.
"""
from tasks.registry import TASKS, make_task

__all__ = ["TASKS", "make_task"]
