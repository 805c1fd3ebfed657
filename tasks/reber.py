"""Next-symbol prediction on the embedded Reber grammar (Hochreiter & Schmidhuber, 1997, sec. 5.1).

An embedded Reber string is B, then T or P, then a string of the Reber grammar (Reber, 1967),
then the same T or P again, then E. Everything but that repeated symbol can be predicted from
the last few symbols; predicting it needs the branch taken right after the opening B, up to
dozens of steps back. A batch column is a stream of whole strings, each drawn independently
with every branch taken with probability 1/2, concatenated and cut after T + 1 symbols.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tasks.sequence import SequenceTask, one_hot

SYMBOLS = "BTSXPVE"

# The Reber grammar as a graph, node -> ((symbol, next node), ...); "E" from node 6 ends it.
REBER = {
    0: (("B", 1),),
    1: (("T", 2), ("P", 3)),
    2: (("S", 2), ("X", 4)),
    3: (("T", 3), ("V", 5)),
    4: (("X", 3), ("S", 6)),
    5: (("P", 4), ("V", 6)),
    6: (("E", None),),
}


def _embedded_edges() -> dict:
    """The embedded grammar's graph over a stream of strings: the final E leads to the next B."""
    edges = {"start": (("B", "branch"),), "branch": (("T", ("T", 0)), ("P", ("P", 0)))}
    for branch in "TP":
        for node, out in REBER.items():
            edges[(branch, node)] = tuple(
                (s, (branch, "close") if nxt is None else (branch, nxt)) for s, nxt in out)
        edges[(branch, "close")] = ((branch, "end"),)
    edges["end"] = (("E", "start"),)
    return edges


def _tables(edges: dict) -> tuple[np.ndarray, np.ndarray]:
    """NEXT[state, symbol]: the state after reading the symbol, -1 where it is illegal.
    CHOICES[state]: the legal symbols, the only one twice where there is no choice."""
    states = list(edges)
    next_state = np.full((len(states), len(SYMBOLS)), -1, dtype=np.int64)
    choices = np.zeros((len(states), 2), dtype=np.int64)
    for i, state in enumerate(states):
        legal = [SYMBOLS.index(s) for s, _ in edges[state]]
        next_state[i, legal] = [states.index(nxt) for _, nxt in edges[state]]
        choices[i] = (legal * 2)[:2]
    return next_state, choices


EDGES = _embedded_edges()
STATES = list(EDGES)
START = STATES.index("start")
CLOSE = [STATES.index(("T", "close")), STATES.index(("P", "close"))]
NEXT, CHOICES = _tables(EDGES)
LEGAL = NEXT >= 0
IS_CLOSE = np.isin(np.arange(len(STATES)), CLOSE)


def accepts(string: str) -> bool:
    """Whether `string` is exactly one embedded Reber string."""
    state = START
    for position, symbol in enumerate(string):
        if symbol not in SYMBOLS or (state == START and position > 0):
            return False
        state = NEXT[state, SYMBOLS.index(symbol)]
        if state < 0:
            return False
    return state == START and len(string) > 0


@dataclass(frozen=True, kw_only=True)
class ReberTask(SequenceTask):
    """Inputs (T, B, 7): one-hot symbols of the stream. Targets (T, B) int64: the next symbol.

    Metric, "legal accuracy": the fraction of steps whose argmax read-out is a symbol the
    grammar allows next. Where two symbols are legal the sampled one is a coin flip, so plain
    accuracy against the targets could not reach 1; the long-range step has one legal symbol,
    so a model must remember the branch to score 1. `long_range_accuracy` scores that step alone.
    """

    seq_len: int = 200
    name: str = field(default="reber", init=False)
    input_size: int = field(default=len(SYMBOLS), init=False)
    output_size: int = field(default=len(SYMBOLS), init=False)
    loss: str = field(default="xent", init=False)
    every_step: bool = field(default=True, init=False)
    metric_name: str = field(default="legal accuracy", init=False)

    def baseline(self) -> float:
        """The legal accuracy of a model that knows the grammar but forgets the branch.

        It is right at every step except the long-range one, where it guesses right half the
        time: 1 - P(long-range step) / 2, averaged exactly over the T steps of a window.
        """
        transition = np.zeros((len(STATES), len(STATES)))
        for i, state in enumerate(STATES):
            for _, nxt in EDGES[state]:
                transition[i, STATES.index(nxt)] += 1 / len(EDGES[state])
        dist = np.zeros(len(STATES))
        dist[NEXT[START, SYMBOLS.index("B")]] = 1.0  # the state after reading the first B
        p_close = []
        for _ in range(self.seq_len):
            p_close.append(dist[CLOSE].sum())
            dist = dist @ transition
        return float(1 - np.mean(p_close) / 2)

    def long_range_accuracy(self, outputs: np.ndarray, targets: np.ndarray) -> float:
        """Accuracy at the steps whose next symbol repeats the branch (nan if there are none)."""
        outputs, targets = self._validated(outputs, targets)
        close = IS_CLOSE[self._states(targets)]
        if not close.any():
            return float("nan")
        return float(np.mean(outputs.argmax(axis=-1)[close] == targets[close]))

    def _states(self, targets: np.ndarray) -> np.ndarray:
        """(T, B) grammar states after each input; a stream starts with B, so the targets
        (the stream shifted by one) determine every input."""
        states = np.empty(targets.shape, dtype=np.int64)
        state = np.full(targets.shape[1], NEXT[START, SYMBOLS.index("B")])
        for t in range(targets.shape[0]):
            if t > 0:
                state = NEXT[state, targets[t - 1]]
            states[t] = state
        if not LEGAL[states, targets].all():
            raise ValueError("targets are not an embedded Reber stream starting with B; "
                             "pass the targets of a ReberTask batch")
        return states

    def _sample(self, rng, batch_size, dtype):
        T = self.seq_len
        coins = rng.integers(0, 2, size=(T + 1, batch_size))
        stream = np.empty((T + 1, batch_size), dtype=np.int64)
        state = np.full(batch_size, START)
        for t in range(T + 1):
            stream[t] = CHOICES[state, coins[t]]
            state = NEXT[state, stream[t]]
        return one_hot(stream[:-1], self.input_size, dtype), stream[1:]

    def _score(self, outputs, targets):
        legal = LEGAL[self._states(targets)]
        predicted = outputs.argmax(axis=-1)
        return np.mean(np.take_along_axis(legal, predicted[..., None], axis=-1))
