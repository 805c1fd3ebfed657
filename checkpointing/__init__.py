"""Memory strategies for backpropagation through a chain of steps, as plans one executor runs.

    from checkpointing import Revolve, execute
    run = execute(Revolve(slots=10).plan(chain.profile()), chain)

Strategies (each a small frozen object with `plan(profile) -> Plan`):
    Full()                 every tape kept; the reference gradient
    Truncated(k1, k2)      truncated BPTT; biased gradient, k2 tapes
    Periodic(segment)      "checkpoint": every ~sqrt(T)-th state kept, segments recomputed
    Revolve(slots)         binomial checkpointing, the fewest recomputations for `slots` states
    Adaptive(budget)       the fewest recomputations within `budget` bytes, for uneven chains too
    OnlineCheckpointing(slots)  for sequences of unknown length: `execute_online(policy, chain)`
Lossy (an exact plan plus a codec, `checkpointing.lossy`; the gradient is approximate):
    Compressed(inner, snapshots="float16", tapes=None)   kept states / tapes through a codec
    Adaptive(budget, compress="float16")                  exact and compressed slots mixed

For PyTorch loops: `checkpointing.torch.checkpointed_loop` (imported only when used).
"""
from checkpointing.adaptive import Adaptive
from checkpointing.binomial import Revolve, griewank_minimum
from checkpointing.equivalence import assert_same_gradients, gradients
from checkpointing.executor import Execution, execute, execute_online
from checkpointing.full import Full
from checkpointing.lossy import Compressed, Compression, LossyPlan
from checkpointing.online import OnlineCheckpointing
from checkpointing.periodic import Periodic
from checkpointing.plan import (Advance, ChainProfile, Cut, Discard, Drop, Plan, PlanError,
                                PlanStats, Record, Restore, Reverse, Snapshot, simulate)
from checkpointing.truncated import Truncated

STRATEGIES = {"full": Full, "truncated": Truncated, "checkpoint": Periodic, "revolve": Revolve,
              "adaptive": Adaptive}


def make_strategy(name: str, **params):
    """A strategy by its name in `STRATEGIES`, with its parameters (None values are left out)."""
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; choose one of {sorted(STRATEGIES)}")
    return STRATEGIES[name](**{k: v for k, v in params.items() if v is not None})


__all__ = ["Adaptive", "Advance", "ChainProfile", "Compressed", "Compression", "Cut",
           "Discard", "Drop", "Execution", "Full", "LossyPlan", "Periodic", "Plan", "PlanError",
           "PlanStats", "Record", "Restore", "Reverse", "Revolve", "OnlineCheckpointing",
           "STRATEGIES", "Snapshot", "Truncated", "assert_same_gradients", "execute",
           "execute_online", "gradients", "griewank_minimum", "make_strategy", "simulate"]
