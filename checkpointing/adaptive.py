"""`adaptive`: the fewest recomputations that fit a memory budget in bytes, for uneven chains too.

A segment of the chain starts at a state we hold. It is either *split* -- keep its start in a
slot, advance j steps, reverse the right part, then the left part (checkpointing) -- or its first
step is *recorded* and the tape kept until the rest of the segment is reversed (no recomputation
of that step). Choosing between the two for every segment and every amount of memory left is the
dynamic program of Gruslys et al. (2016, BPTT-MSM) and Beaumont et al. (2019, "Optimal
checkpointing for heterogeneous chains"); it contains Revolve's schedules and `full`'s. Bytes are
counted as `simulate` counts them: kept states, held tapes and the current state.

Trade-offs, by chain:
  - `full` fits: it is the plan (no recomputation).
  - uniform steps (an RNN over time): the program over (blocks left, slots held) is exact in
    bytes. Keeping tapes pays there only for whole trailing segments (an observation the tests
    check against the full program, not a theorem), so a task is two integers. Its work grows
    like T^3; past ~10^7 operations the steps are grouped into equal blocks, each advanced and
    recorded as one: coarser but fast (T = 100,000 plans in well under a second), and Revolve
    with the most slots that fit stays a candidate, so it is never worse than Revolve.
  - uneven steps (an MLP of varying widths), up to 128 steps: the program over (segment, memory)
    with memory in at most 256 units (fewer for long chains: the work grows like T^3 * units),
    every size rounded *up* to whole units so the real plan still fits. Rounding can cost up to
    a unit per held item, so Revolve with the slot count that fits and recomputes least (found
    by replaying each) is a candidate too. Longer uneven chains get that Revolve only.
"""
from __future__ import annotations

from array import array
from dataclasses import dataclass
from math import gcd
from operator import add
from typing import Callable, Iterator

from checkpointing.binomial import (RECORD, SPLIT, Revolve, binomial_decide, griewank_minimum,
                                    split_schedule)
from checkpointing.codecs import Codec, get_codec
from checkpointing.full import Full
from checkpointing.lossy import Compression, LossyPlan, compressed_peak
from checkpointing.plan import (Action, Advance, ChainProfile, Plan, Repeat, Snapshot,
                                simulate, whole_number)

INF = float("inf")
WORK = 10_000_000          # inner-loop operations a dynamic program may take (~0.3 s)
UNEVEN_STEPS = 128         # longest uneven chain planned by the (segment, memory) program
UNITS = 256                # memory resolution of that program, at most


@dataclass(frozen=True)
class Adaptive:
    """The plan with the least recomputation (sum of `forward_cost` of re-run steps) whose
    `peak_bytes` stays within `budget` bytes: memory is spent where it saves the most forwards.

    Exact gradients, like `full`. Budgets below `minimum_budget(profile)` are refused.
    """
    budget: int
    compress: str | None = None
    name = "adaptive"

    def __post_init__(self):
        object.__setattr__(self, "budget", whole_number("budget", self.budget, 1, "bytes"))
        if self.compress is not None:
            get_codec(self.compress)

    @property
    def lossy(self) -> bool:
        """True when slots may be compressed (`compress`): the gradient is then approximate."""
        return self.compress is not None

    @staticmethod
    def minimum_budget(profile: ChainProfile) -> int:
        """Bytes the leanest plan needs: state 0 kept, the current state and one tape (Revolve
        with one slot), or `full`'s peak if that is less (very short chains)."""
        return min(_full_peak(profile), _one_slot_peak(profile))

    def plan(self, profile: ChainProfile) -> Plan:
        """The cheapest candidate that fits; ValueError if the budget is below `minimum_budget`.

        With `compress`, a `LossyPlan`: see `compressed_plan`."""
        if self.compress is not None:
            return compressed_plan(self.budget, get_codec(self.compress), profile)
        return self._exact_plan(profile)

    def _exact_plan(self, profile: ChainProfile) -> Plan:
        minimum = self.minimum_budget(profile)
        if self.budget < minimum:
            raise ValueError(f"budget {self.budget} B is below the minimum {minimum} B that any "
                             f"plan for this chain needs")
        T, budget = profile.length, self.budget
        if _full_peak(profile) <= budget:
            return Plan(T, self.name, Full().plan(profile).actions)
        sizes = _uniform(profile)
        if sizes is not None:
            candidates = [_uniform_program(T, *sizes, budget), _uniform_revolve(T, *sizes, budget)]
        else:
            candidates = [_uneven_program(profile, budget) if T <= UNEVEN_STEPS else None,
                          _uneven_revolve(profile, budget)]
        cost, actions = min((c for c in candidates if c is not None), key=lambda c: c[0])
        return Plan(T, self.name, actions)  # ties go to the program, listed first


def compressed_plan(budget: int, codec: Codec, profile: ChainProfile) -> LossyPlan:
    """The least recomputation within `budget` bytes when slots may be kept through `codec`.

    Candidates: the exact adaptive plan (if the budget allows one), Revolve with the most
    compressed slots that fit, and (uniform chains) the dynamic program run with compressed slot
    sizes, its budget lowered until the encoded plan fits as `compressed_peak` counts it. The
    cheapest wins (ties: the exact one); then as many of its snapshots as the bytes left allow,
    in the order the plan takes them, are kept exact again: exact and compressed slots mixed.
    """
    T = profile.length
    everything = Compression(codec.name)

    def fits(plan):
        return compressed_peak(plan, profile, everything) <= budget

    candidates = []
    if budget >= Adaptive.minimum_budget(profile):
        exact = Adaptive(budget)._exact_plan(profile)
        candidates.append((recomputation(exact, profile), 0, exact))
    if fits(Revolve(1).plan(profile)):
        lo, hi = 1, max(2, T)  # the most compressed slots that fit (the peak grows with them)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if fits(Revolve(mid).plan(profile)) else (lo, mid)
        best = Revolve(lo).plan(profile)
        candidates.append((recomputation(best, profile), 1, best))
        sizes = _uniform(profile)
        if sizes is not None:
            S, Tb, cost = sizes
            Sc = max(codec.bound(S), 1)
            scaled = ChainProfile.uniform(T, Sc, Tb + S - Sc)
            room = budget
            while room >= Adaptive.minimum_budget(scaled):
                plan = Adaptive(room)._exact_plan(scaled)
                over = compressed_peak(plan, profile, everything) - budget
                if over <= 0:
                    candidates.append((recomputation(plan, profile), 1, plan))
                    break
                room -= max(over, Sc)  # the scaled sizes miss by little: lower and retry
    if not candidates:
        raise ValueError(f"budget {budget} B is below what any plan needs even with {codec.name} "
                         f"slots ({Adaptive.minimum_budget(profile)} B exact)")
    _, lossy, plan = min(candidates, key=lambda c: c[:2])
    if not lossy:
        return LossyPlan(T, "adaptive", plan.actions, compression=Compression())
    order = list(dict.fromkeys(a.index for a in plan if isinstance(a, Snapshot)))
    lo, hi = 0, len(order) + 1  # the longest prefix of snapshots kept exact that still fits
    while hi - lo > 1:
        mid = (lo + hi) // 2
        mixed = Compression(codec.name, exact_snapshots=frozenset(order[:mid]))
        lo, hi = (mid, hi) if compressed_peak(plan, profile, mixed) <= budget else (lo, mid)
    return LossyPlan(T, "adaptive", plan.actions,
                     compression=Compression(codec.name, exact_snapshots=frozenset(order[:lo])))


def recomputation(plan: Plan | Iterator[Action], profile: ChainProfile) -> float:
    """The sum of `forward_cost` over the steps a plan re-runs without recording."""
    C = [0.0]
    for i in range(profile.length):
        C.append(C[-1] + profile.cost(i))
    return sum(C[a.stop] - C[a.start] for a in plan if isinstance(a, Advance))


# --- peaks of the two fallback plans, as `simulate` counts them --------------------------------

def _state(profile: ChainProfile, i: int) -> int:
    return profile.state_bytes[min(i, profile.length - 1)]  # state T is sized like state T-1


def _full_peak(profile: ChainProfile) -> int:
    peak, tapes = _state(profile, 0), 0
    for i in range(profile.length):
        tapes += profile.tape_bytes[i]
        peak = max(peak, tapes + _state(profile, i + 1))
    return peak


def _one_slot_peak(profile: ChainProfile) -> int:
    """Revolve(1): state 0 kept while each step k >= 1 is advanced to, recorded and reversed."""
    s0 = _state(profile, 0)
    peak = max(s0, profile.tape_bytes[0] + _state(profile, 1))
    for k in range(1, profile.length):
        peak = max(peak, s0 + _state(profile, k),
                   s0 + profile.tape_bytes[k] + _state(profile, k + 1))
    return peak


# --- uniform chains ------------------------------------------------------------------------------

def _constant(values):
    if isinstance(values, Repeat):
        return values.value
    first = values[0]
    return first if all(v == first for v in values) else None


def _uniform(profile: ChainProfile):
    """(state bytes, tape bytes, forward cost) if every step has the same, else None."""
    S, Tb = _constant(profile.state_bytes), _constant(profile.tape_bytes)
    cost = 1 if profile.forward_cost is None else _constant(profile.forward_cost)
    if None in (S, Tb, cost):
        return None
    return max(S, 1), max(Tb, 1), cost  # the arithmetic divides by sizes: a byte at least


def _uniform_revolve(T, S, Tb, cost, budget):
    """Revolve with the most slots that fit: it peaks at (min(s, T-1) + 1) states and a tape."""
    slots = min((budget - Tb) // S - 1, T - 1)
    if slots < 1:
        return None
    decide = binomial_decide()
    return (cost * griewank_minimum(T, slots),
            lambda: split_schedule([(0, T, slots, False)], decide, 0))


def _program_work(n, S, tape, budget):
    """Inner-loop operations of the uniform program over n blocks whose tapes take `tape`."""
    deepest = min((budget - S - tape) // S, n - 1)
    work = 0
    for d in range(deepest + 1):
        fits = min((budget - S - d * S) // tape, n - d)
        work += ((n - d) * (n - d - 1) - fits * (fits - 1)) // 2
    return work


def _uniform_program(T, S, Tb, cost, budget):
    """(cost, actions) of the best plan over (blocks left, slots held), or None if none fits.

    The memory of a task at depth d (d slots held by the tasks around it) is budget - d*S. A
    task of k blocks records them all if k tapes and the state after fit; else it splits at the
    best j: j blocks advanced, then (k - j blocks, depth d + 1), then (j blocks, depth d).
    """
    n, L = T, 1
    if _program_work(T, S, Tb, budget) > WORK:
        lo, hi = 1, T  # the most blocks whose program stays within WORK
        while hi - lo > 1:
            mid = (lo + hi) // 2
            L = -(-T // mid)
            if _program_work(-(-T // L), S, L * Tb, budget) <= WORK:
                lo = mid
            else:
                hi = mid
        L = -(-T // lo)
        n = -(-T // L)
    tape, block_cost = L * Tb, L * cost
    deepest = min((budget - S - tape) // S, n - 1)
    if deepest < 0:
        return None
    fits = [min((budget - S - d * S) // tape, n - d) for d in range(deepest + 1)]
    P: list = [None] * (deepest + 1)   # P[d][k]: least cost for k blocks at depth d
    Q: list = [None] * (deepest + 1)   # Q[d][j] = P[d][j] + cost of advancing over j blocks
    for d in range(deepest, -1, -1):
        row = [0.0] * (fits[d] + 1)
        left = [j * block_cost for j in range(fits[d] + 1)]
        if d == deepest:
            row += [INF] * (n - d - fits[d])
        else:
            right = P[d + 1]
            for k in range(fits[d] + 1, n - d + 1):
                best = min(map(add, right[k - 1:0:-1], left[1:k]))
                row.append(best)
                left.append(k * block_cost + best)
        P[d], Q[d] = row, left
    if P[0][n] == INF:
        return None

    def decide(start, stop, d):
        k = -(-(stop - start) // L)
        if k <= fits[d]:
            return RECORD, stop - start, None
        splits = list(map(add, P[d + 1][k - 1:0:-1], Q[d][1:k]))
        j = splits.index(min(splits)) + 1
        return SPLIT, j * L, d + 1, d

    decide = _freeze(T, 0, decide)
    return P[0][n], lambda: split_schedule([(0, T, 0, False)], decide, 0)


# --- uneven chains -------------------------------------------------------------------------------

def _uneven_program(profile: ChainProfile, budget: int):
    """(cost, actions) of the (segment, memory) program's plan, or None if none fits.

    P[a][b][m]: least cost to reverse steps a..b-1 holding state a, with m units for everything
    the segment keeps (state a included). Record: m - tape_a for the rest. Split at j: the right
    part gets m - state_a (state a stays kept), the left part all m.
    """
    T = profile.length
    sizes = [_state(profile, i) for i in range(T + 1)] + list(profile.tape_bytes)
    units = max(32, min(UNITS, WORK * 6 // T ** 3))
    g = 0
    for v in sizes:
        g = gcd(g, v)
    g = max(g, 1)
    unit = g * -(-budget // (g * units))       # exact when the budget is a few hundred gcds
    M = budget // unit
    s = [-(-_state(profile, i) // unit) for i in range(T + 1)]
    t = [-(-profile.tape_bytes[i] // unit) for i in range(T)]
    C = [0.0]
    for i in range(T):
        C.append(C[-1] + profile.cost(i))
    nothing = array("d", [INF]) * (M + 1)
    P = [[None] * (T + 1) for _ in range(T)]
    Q = [[None] * (T + 1) for _ in range(T)]
    for length in range(1, T + 1):
        for a in range(T - length + 1):
            b = a + length
            if length == 1:
                lo = min(max(s[a], t[a] + s[b]), M + 1)
                row = array("d", [INF]) * lo + array("d", [0.0]) * (M + 1 - lo)
            elif s[a] > M:
                row = nothing
            else:
                sa, ta = s[a], t[a]
                record = nothing[:ta] + P[a + 1][b][:M + 1 - ta] if ta <= M else nothing
                splits = [map(add, P[a + j][b], Q[a][a + j][sa:]) for j in range(1, length)
                          if P[a + j][b][M - sa] < INF and Q[a][a + j][M] < INF]
                best = array("d", map(min, record[sa:], *splits)) if splits else record[sa:]
                row = nothing[:sa] + best
            P[a][b] = row
            if b < T:
                Q[a][b] = array("d", [x + (C[b] - C[a]) for x in row])
    if P[0][T][M] == INF:
        return None

    def decide(a, b, m):
        if b - a == 1:
            return RECORD, 1, None
        best, choice = INF, None
        if m >= t[a]:
            best, choice = P[a + 1][b][m - t[a]], (RECORD, 1, m - t[a])
        for j in range(1, b - a):
            v = P[a + j][b][m - s[a]] + Q[a][a + j][m]
            if v < best:
                best, choice = v, (SPLIT, j, m - s[a], m)
        return choice

    decide = _freeze(T, M, decide)
    return P[0][T][M], lambda: split_schedule([(0, T, M, False)], decide, 0)


def _uneven_revolve(profile: ChainProfile, budget: int):
    """Revolve with the slot count that fits and recomputes least, found by replaying plans."""
    T = profile.length

    def fitting(slots):
        plan = Revolve(slots).plan(profile)
        if simulate(plan, profile=profile).peak_bytes > budget:
            return None
        return recomputation(plan, profile), plan.actions

    if T <= UNEVEN_STEPS:
        fits = [f for f in map(fitting, range(1, max(2, T))) if f is not None]
        return min(fits, key=lambda f: f[0]) if fits else None
    lo, hi = 1, T  # longer chains: assume the peak grows with the slots, bisect for the most
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fitting(mid) else (lo, mid)
    return fitting(lo)


def _freeze(T: int, key, decide: Callable) -> Callable:
    """Walk the decision tree once and keep only its decisions (the tables can go)."""
    decisions, stack = {}, [(0, T, key)]
    while stack:
        start, stop, key = stack.pop()
        kind, n, *keys = decisions[start, stop, key] = decide(start, stop, key)
        if kind == SPLIT:
            stack += [(start, start + n, keys[1]), (start + n, stop, keys[0])]
        elif start + n < stop:
            stack.append((start + n, stop, keys[0]))
    return lambda start, stop, key: decisions[start, stop, key]
