"""Torch's own count of the bytes a call allocated: beside the ledger, from the allocator."""
from __future__ import annotations

from typing import Callable, TypeVar

import torch

Result = TypeVar("Result")


def peak_allocated(fn: Callable[[], Result], device="cpu") -> tuple[Result, int]:
    """Run `fn()`; return (its result, the most bytes torch held allocated on `device` at once
    during the call, above the level at its start).

    CUDA: `torch.cuda.max_memory_allocated` after `reset_peak_memory_stats`. CPU: torch keeps
    no such counter, so the call runs under `torch.profiler` with `profile_memory=True` and the
    allocator's own events are added up in time order: exact, but each operation is slowed by
    the profiler, so measure memory this way and time in separate runs.
    """
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        start = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        result = fn()
        torch.cuda.synchronize(device)
        return result, torch.cuda.max_memory_allocated(device) - start
    if device.type != "cpu":
        raise ValueError(f"peak_allocated measures cpu and cuda, got device {device}")
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        result = fn()
    events = [e for e in prof.profiler.kineto_results.events()
              if e.name() == "[memory]" and e.device_type() == DeviceType.CPU]
    live = peak = 0
    for e in sorted(events, key=lambda e: e.start_ns()):
        live += e.nbytes()
        peak = max(peak, live)
    return result, peak
