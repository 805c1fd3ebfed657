"""Convergence figures from a loss curve: the smoothed curve and steps to a target loss.

A mini-batch loss is noisy, so steps-to-target is read off its exponential moving average
(bias-corrected as in Adam, Kingma & Ba 2015, so the first values are not pulled towards 0).
The target of a group of runs (same task, cell, T, seed: same initial weights and batches) is
`FRACTION` of the way from the initial smoothed loss to the final smoothed loss of `full`'s
run: "how many steps to make 80% of full's progress". Runs that never get there have no
steps-to-target: that is where a strategy collapses.
"""
from __future__ import annotations

from typing import Sequence

EMA = 0.9        # s_t = EMA s_(t-1) + (1 - EMA) loss_t: about a 10-step window
FRACTION = 0.8   # of full's progress, for the target


def smooth(values: Sequence[float], ema: float = EMA) -> list[float]:
    """The bias-corrected exponential moving average of `values`."""
    out, s = [], 0.0
    for t, v in enumerate(values, 1):
        s = ema * s + (1 - ema) * v
        out.append(s / (1 - ema ** t))
    return out


def target_loss(reference: Sequence[float], fraction: float = FRACTION) -> float:
    """The loss `fraction` of the way from the first to the last value of a smoothed curve."""
    return reference[0] - fraction * (reference[0] - reference[-1])


def steps_to_target(smoothed: Sequence[float], target: float) -> int | None:
    """Training steps until the smoothed loss first reaches `target` (1-based), None if never."""
    for k, value in enumerate(smoothed, 1):
        if value <= target:
            return k
    return None
