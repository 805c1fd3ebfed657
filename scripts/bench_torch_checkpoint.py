"""bptt's plans on a PyTorch loop against torch.utils.checkpoint, side by side in one run.

The work: torch.nn.LSTMCell (B=32, D=32, H=256, float32), a linear read-out and squared error
at every step, T = 1000; one training step = forward + backward. Implementations, all from the
same weights and batch:
  plain              autograd over the whole unrolled loop (every step's graph kept)
  torch_checkpoint   torch.utils.checkpoint (use_reentrant=False) over ceil(sqrt T)-step
                     segments, read-out and loss inside the segment
  bptt_revolve       checkpointed_loop(step, state0, T, Revolve(slots)), slots filling the
                     memory torch_checkpoint used
  bptt_adaptive      ... Adaptive(budget), the budget filling that same memory
  bptt_adaptive_half ... Adaptive at half of it: what equal time buys in memory

Memory: each implementation runs once more under `peak_allocated` (torch's own allocator
events, the peak above the level at the start: the kept graph, gradients and transients); the
bptt rows also give the ledger's exact peak of kept states and tapes. The budgets are set so
that torch's count of the bptt runs matches torch_checkpoint's: budget = its measured peak minus
what bptt's runs allocate beyond the ledger (gradients, the step's transients), itself measured.
Time: rounds interleave the implementations; medians and their ratios come from one run.
Threads: torch runs one thread. Run pinned to one core:

    taskset -c 1 python scripts/bench_torch_checkpoint.py --rounds 5 \\
        --json results/torch_checkpoint.json --markdown results/torch_checkpoint.md
"""
from __future__ import annotations

import json
import math
import statistics
import time
from pathlib import Path

import click
import torch
import torch.utils.checkpoint

from checkpointing import Adaptive, Revolve, execute
from checkpointing.torch import TorchChain, checkpointed_loop, peak_allocated


class Problem:
    """The LSTM, its read-out and one batch; the step as bptt's chain sees it."""

    def __init__(self, T, batch, inputs, hidden, device):
        torch.manual_seed(0)
        self.cell = torch.nn.LSTMCell(inputs, hidden).to(device)
        self.readout = torch.nn.Linear(hidden, 1).to(device)
        self.params = [*self.cell.parameters(), *self.readout.parameters()]
        self.X = torch.randn(T, batch, inputs, device=device)
        self.Y = torch.randn(T, batch, 1, device=device)
        self.xs, self.ys = self.X.unbind(0), self.Y.unbind(0)
        self.T, self.shape, self.device = T, (batch, hidden), device

    def state0(self):
        return (torch.zeros(self.shape, device=self.device),
                torch.zeros(self.shape, device=self.device))

    def step(self, i, state):
        h, c = self.cell(self.xs[i], state)
        return (h, c), ((self.readout(h) - self.ys[i]) ** 2).mean()

    def chain(self):
        return TorchChain(self.step, self.state0(), self.T, external=(self.X, self.Y))

    def zero(self):
        for p in self.params:
            p.grad = None

    def grads(self):
        return [p.grad.clone() for p in self.params]


def plain(problem):
    state, total = problem.state0(), 0.0
    for i in range(problem.T):
        state, loss = problem.step(i, state)
        total = total + loss
    total.backward()


def torch_checkpoint(problem):
    k = math.ceil(math.sqrt(problem.T))

    def segment(h, c, start):
        total = 0.0
        for i in range(start, min(start + k, problem.T)):
            (h, c), loss = problem.step(i, (h, c))
            total = total + loss
        return h, c, total

    (h, c), total = problem.state0(), 0.0
    for start in range(0, problem.T, k):
        h, c, part = torch.utils.checkpoint.checkpoint(segment, h, c, start,
                                                       use_reentrant=False)
        total = total + part
    total.backward()


def bptt(strategy):
    def run(problem):
        checkpointed_loop(problem.step, problem.state0(), problem.T, strategy,
                          external=(problem.X, problem.Y)).backward()
    return run


def measured(problem, fn):
    """torch's peak bytes for one run of `fn` (gradients zeroed first, as in a training step)."""
    problem.zero()
    return peak_allocated(lambda: fn(problem), problem.device)[1]


def ledger(problem, strategy):
    """(the ledger's peak bytes, step forwards) of the plan `strategy` makes for the loop."""
    chain = problem.chain()
    plan = strategy.plan(chain.profile())
    run = execute(plan, chain)
    return run.peak_cache_bytes, run.stats.forward_steps


def calibrate(problem, target):
    """Revolve and Adaptive whose torch-measured peak is `target` bytes: the ledger's budget is
    the target minus what a bptt run allocates beyond its ledger."""
    profile = problem.chain().profile()
    probe = Revolve(8)
    beyond = measured(problem, bptt(probe)) - ledger(problem, probe)[0]
    budget = max(target - beyond, Adaptive.minimum_budget(profile))
    state, tape = profile.state_bytes[0], profile.tape_bytes[0]
    slots = max(1, (budget - tape) // state - 1)  # the current state counts too
    return Revolve(int(slots)), Adaptive(int(budget)), beyond


def relative(a, b):
    return max(((x - y).abs().max() / y.abs().max()).item() for x, y in zip(a, b))


def measure(T, batch, inputs, hidden, rounds, device):
    problem = Problem(T, batch, inputs, hidden, device)
    rows = {"plain": {"fn": plain, "forwards": T},
            "torch_checkpoint": {"fn": torch_checkpoint, "forwards": 2 * T}}  # + recompute
    for name in rows:
        rows[name]["measured_bytes"] = measured(problem, rows[name]["fn"])
    target = rows["torch_checkpoint"]["measured_bytes"]
    revolve, adaptive, beyond = calibrate(problem, target)
    half = Adaptive(max(int(target / 2 - beyond),
                        Adaptive.minimum_budget(problem.chain().profile())))
    for name, strategy in (("bptt_revolve", revolve), ("bptt_adaptive", adaptive),
                           ("bptt_adaptive_half", half)):
        rows[name] = {"fn": bptt(strategy), "strategy": repr(strategy)}
        rows[name]["ledger_bytes"], rows[name]["forwards"] = ledger(problem, strategy)
        rows[name]["measured_bytes"] = measured(problem, rows[name]["fn"])
    # gradients, then interleaved timing rounds
    grads = {}
    for name, row in rows.items():
        problem.zero()
        row["fn"](problem)
        grads[name] = problem.grads()
    times = {name: [] for name in rows}
    for _ in range(rounds):
        for name, row in rows.items():
            problem.zero()
            start = time.perf_counter()
            row["fn"](problem)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - start)
    out = []
    ck = statistics.median(times["torch_checkpoint"])
    base = statistics.median(times["plain"])
    for name, row in rows.items():
        median = statistics.median(times[name])
        out.append({
            "impl": name, "device": device, "seq_len": T, "batch": batch, "inputs": inputs,
            "hidden": hidden, "strategy": row.get("strategy"), "median_s": median,
            "ratio_vs_plain": median / base, "ratio_vs_torch_checkpoint": median / ck,
            "measured_peak_bytes": row["measured_bytes"],
            "memory_vs_torch_checkpoint": row["measured_bytes"] / target,
            "ledger_peak_bytes": row.get("ledger_bytes"), "forward_steps": row["forwards"],
            "grad_rel_diff_vs_plain": relative(grads[name], grads["plain"]),
            "bitwise_as_bptt_revolve": (all(torch.equal(a, b) for a, b in
                                            zip(grads[name], grads["bptt_revolve"]))
                                        if name.startswith("bptt") else None)})
    return out


def mib(n):
    return "-" if n is None else f"{n / 2**20:.2f} MiB"


def markdown(rows) -> str:
    lines = ["| impl | strategy | median step | vs plain | vs torch_checkpoint | torch-measured "
             "peak | vs torch_checkpoint | ledger peak | forwards | grad rel. diff vs plain |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['impl']} | {r['strategy'] or '-'} | {r['median_s']:.3f} s | "
                     f"{r['ratio_vs_plain']:.2f}x | {r['ratio_vs_torch_checkpoint']:.2f}x | "
                     f"{mib(r['measured_peak_bytes'])} | {r['memory_vs_torch_checkpoint']:.3f} | "
                     f"{mib(r['ledger_peak_bytes'])} | {r['forward_steps']} | "
                     f"{r['grad_rel_diff_vs_plain']:.1e} |")
    return "\n".join(lines) + "\n"


@click.command()
@click.option("--seq-len", default=1000, show_default=True)
@click.option("--batch", default=32, show_default=True)
@click.option("--inputs", default=32, show_default=True)
@click.option("--hidden", default=256, show_default=True)
@click.option("--rounds", default=5, show_default=True)
@click.option("--device", default="cpu", show_default=True,
              help="cpu, or cuda where there is a GPU")
@click.option("--json", "json_path", type=click.Path(dir_okay=False))
@click.option("--markdown", "markdown_path", type=click.Path(dir_okay=False))
def main(seq_len, batch, inputs, hidden, rounds, device, json_path, markdown_path):
    """Time and memory of bptt's plans against torch.utils.checkpoint on a torch LSTM."""
    torch.set_num_threads(1)
    rows = measure(seq_len, batch, inputs, hidden, rounds, device)
    table = markdown(rows)
    print(table)
    by = {r["impl"]: r for r in rows}
    print(f"equal memory: adaptive/torch_checkpoint time "
          f"{by['bptt_adaptive']['ratio_vs_torch_checkpoint']:.2f}x (target <= 0.8), "
          f"revolve {by['bptt_revolve']['ratio_vs_torch_checkpoint']:.2f}x; "
          f"half memory: adaptive time "
          f"{by['bptt_adaptive_half']['ratio_vs_torch_checkpoint']:.2f}x "
          f"at {by['bptt_adaptive_half']['memory_vs_torch_checkpoint']:.2f}x the memory "
          f"(target: <= 0.5x memory at <= 1.0x time)")
    for path, text in ((json_path, json.dumps(rows, indent=2)), (markdown_path, table)):
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(text)


if __name__ == "__main__":
    main()
