"""Peak memory of one call, measured two ways (the executor's exact cache count is the third).

- `traced_peak`: tracemalloc's peak of traced allocations (NumPy's included) above the level at
  the start: exact and repeatable, but tracing slows the call 2.5-3x, so time it separately.
- `rss_peak_mib`: memory-profiler's peak resident set size of the whole process, in MiB: what
  the operating system sees, baseline included, and dependent on allocator history.
"""
from __future__ import annotations

import gc
import math
import re
import tracemalloc
from typing import Callable


def traced_peak(fn: Callable[[], object]) -> tuple[int, object]:
    """(peak bytes allocated above the starting level while `fn()` ran, its result).

    Collects garbage first: reference cycles from an earlier graph would otherwise be freed (or
    not) in the middle of the measurement and make the peak swing by megabytes.
    """
    gc.collect()
    already = tracemalloc.is_tracing()
    if not already:
        tracemalloc.start()
    try:
        start, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        result = fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        if not already:
            tracemalloc.stop()
    return max(0, peak - start), result


def rss_peak_mib(fn: Callable[[], object]) -> tuple[float, object]:
    """(peak resident set size of this process in MiB while `fn()` ran, its result)."""
    from memory_profiler import memory_usage  # imported here: it is only needed when measuring

    gc.collect()
    peak, result = memory_usage((fn, (), {}), max_usage=True, retval=True, interval=0.01,
                                max_iterations=1)
    return float(peak), result


_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "KIB": 2**10, "MIB": 2**20,
          "GIB": 2**30}


def parse_bytes(text: str | int) -> int:
    """A size such as "10MB", "512KiB", "1.5 GiB" or "200000" as a whole number of bytes.

    KB/MB/GB are powers of 1000, KiB/MiB/GiB powers of 1024 (units are case-insensitive).
    """
    match = re.fullmatch(r"\s*([-+]?[0-9.]+(?:[eE][-+]?[0-9]+)?)\s*([A-Za-z]*)\s*", str(text))
    unit = match.group(2).upper() if match else None
    if match is None or unit not in _UNITS:
        raise ValueError(f"cannot read {text!r} as a size; expected a number of bytes with an "
                         f"optional unit B, KB, MB, GB, KiB, MiB or GiB (e.g. 10MB)")
    try:
        size = float(match.group(1)) * _UNITS[unit]
    except ValueError:
        size = float("nan")
    if not math.isfinite(size) or size < 1:
        raise ValueError(f"a size must be a finite number of bytes >= 1, got {text!r}")
    return int(size)


def format_bytes(n: float | None, digits: int = 2) -> str:
    """`n` bytes in the largest binary unit it reaches ("1.97 MiB"); "-" for None."""
    if n is None:
        return "-"
    for unit, size in (("PiB", 2**50), ("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20),
                       ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.{digits}f} {unit}"
    return f"{n:.0f} B"
