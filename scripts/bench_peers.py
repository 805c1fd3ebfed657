"""bptt against its peers on the same training step, side by side in one run, as ratios.

The work: a recurrent cell (tanh RNN, LSTM, GRU; B=32, D=32, H=256, float32 by default) read
out linearly at every step, loss = MSE over every step's read-out; one training step = forward
+ backward, T in {100, 1000, 4000}.

Implementations (all from the same initial weights, inputs and targets, for each cell):
  bptt_full, bptt_checkpoint       this package's `full` and sqrt(T) `checkpoint` plans
  bptt_revolve, bptt_adaptive      Revolve and adaptive within 5% of full's cache (Gruslys et
                                   al. 2016 report +33% time at 95% of memory saved)
  numpy_full                       hand-written NumPy BPTT (`peers_numpy.py`): the input
                                   projection as one GEMM, the recurrence loop, every weight
                                   gradient as one GEMM at the end (the reference of the ratios)
  torch_rnn / torch_lstm /         torch.nn.RNN / LSTM / GRU with autograd, the read-out on the
  torch_gru                        whole output sequence at once (`peers_torch.py`)
  torch_loop                       a manual torch loop over `unbind` of the input projection
  torch_checkpoint                 torch.utils.checkpoint over ceil(sqrt T)-step segments
                                   (use_reentrant=False), read-out and loss inside the segment
  gemm_floor                       only the matrix products of bptt_full's step, in its shapes,
                                   on NumPy's BLAS: how close bptt_full is to the limit
  gemm_floor_torch                 the same products through torch (its bundled MKL)
Torch is optional (`pip install ".[bench]"`); without it the NumPy comparisons run alone.

Time: every implementation's step is timed in rounds that interleave them; the median per
implementation is reported, and ratios are taken within the run (each cell and T in a fresh
process). Memory: each step is run once more under tracemalloc (peak above the starting level,
after a warm-up and `gc.collect()`). tracemalloc does not see PyTorch's allocator, so torch
rows have no traced peak. Gradients: each implementation's gradient is compared with a float64
hand-written BPTT and with every other's; the largest relative difference (max |a - b| / max |b|
per weight) is printed.

Threads: BLAS runs single-threaded for every implementation (2 threads are no faster than 1 for
this size on OpenBLAS here), torch too. The BLAS kernels are printed (threadpoolctl): NumPy's
OpenBLAS and torch's MKL are different libraries, so every ratio against torch depends on both;
the two GEMM floors say by how much. Run with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset to
get the machine's own OpenBLAS kernel, and on one core for steadier medians (`--quick`: T=100
only):

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE taskset -c 1 python scripts/bench_peers.py \
        --cells rnn,lstm,gru --rounds 9 --json results/peers.json --markdown results/peers.md
"""
from __future__ import annotations

import os

for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = "1"  # before NumPy or torch load their BLAS: the same for everyone

import multiprocessing  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import click  # noqa: E402
import numpy as np  # noqa: E402

from bptt.training.files import atomic_write_bytes, atomic_write_json  # noqa: E402
from bptt.training.memory import traced_peak  # noqa: E402
from bptt.nn import RNN  # noqa: E402
from checkpointing import Adaptive, Full, Periodic, Revolve, execute, simulate  # noqa: E402
from peers_numpy import NUMPY_CELLS, gemm_floor  # noqa: E402
from peers_torch import torch_gemm, torch_steps  # noqa: E402

CELLS = ("rnn", "lstm", "gru")
OUTPUTS = 1
FLOORS = ("gemm_floor", "gemm_floor_torch")


class Problem:
    """One batch and one set of initial weights, shared by every implementation."""

    def __init__(self, cell: str, seq_len: int, batch: int, inputs: int, hidden: int):
        rng = np.random.default_rng(0)
        self.model = RNN(cell, inputs, hidden, OUTPUTS, np.random.default_rng(1),
                         dtype=np.float32)
        self.inputs = rng.standard_normal((seq_len, batch, inputs)).astype(np.float32)
        self.targets = rng.standard_normal((seq_len, batch, OUTPUTS)).astype(np.float32)
        self.weights = {name: p.data for name, p in self.model.named_parameters()}
        self.cell, self.seq_len, self.batch, self.hidden = cell, seq_len, batch, hidden


# --- bptt -----------------------------------------------------------------------------------
def bptt_plans(problem: Problem) -> dict:
    """full, checkpoint, and revolve and adaptive within 5% of full's peak bytes."""
    profile = problem.model.chain(problem.inputs, problem.targets).profile()
    full = Full().plan(profile)
    budget = max(simulate(full, profile=profile).peak_bytes // 20,
                 simulate(Revolve(1).plan(profile), profile=profile).peak_bytes)
    slots = 1  # the most slots whose plan fits the budget (peak bytes grow with slots)
    lo, hi = 1, problem.seq_len
    while lo <= hi:
        mid = (lo + hi) // 2
        if simulate(Revolve(mid).plan(profile), profile=profile).peak_bytes <= budget:
            slots, lo = mid, mid + 1
        else:
            hi = mid - 1
    return {"bptt_full": full, "bptt_checkpoint": Periodic().plan(profile),
            "bptt_revolve": Revolve(slots).plan(profile),
            "bptt_adaptive": Adaptive(budget).plan(profile)}


def bptt_step(problem: Problem, plan):
    def step():
        model = problem.model
        model.zero_grad()
        run = execute(plan, model.chain(problem.inputs, problem.targets))
        return run.loss, {name: p.grad for name, p in model.named_parameters()}
    return step


# --- measuring --------------------------------------------------------------------------------
def relative_difference(a: dict, b: dict) -> float:
    """The largest over weights of max |a - b| / max |b|."""
    return max(float(np.max(np.abs(np.asarray(a[n], np.float64) - b[n]))
                     / np.max(np.abs(np.asarray(b[n], np.float64)))) for n in b)


def measure(cell: str, seq_len: int, rounds: int, batch: int, inputs: int,
            hidden: int) -> tuple[list[dict], dict]:
    """Rows for one cell and T, and the gradients' relative differences {(impl, other): value}."""
    problem = Problem(cell, seq_len, batch, inputs, hidden)
    numpy_full = NUMPY_CELLS[cell]
    steps = {name: bptt_step(problem, plan) for name, plan in bptt_plans(problem).items()}
    steps["numpy_full"] = lambda: numpy_full(problem.weights, problem.inputs, problem.targets)
    steps.update(torch_steps(cell, problem.weights, problem.inputs, problem.targets))

    block = problem.model.chain(problem.inputs, problem.targets).block

    def floor(**blas):
        return gemm_floor(cell, seq_len, batch, inputs, hidden, block, **blas)
    floors = {"gemm_floor": floor()}
    if torch_gemm(floor) is not None:
        floors["gemm_floor_torch"] = torch_gemm(floor)

    reference = numpy_full({n: a.astype(np.float64) for n, a in problem.weights.items()},
                           problem.inputs.astype(np.float64), problem.targets.astype(np.float64))
    rows, results = {}, {}
    for name, step in {**steps, **floors}.items():
        row = {"cell": cell, "impl": name, "seq_len": seq_len, "batch": batch,
               "inputs": inputs, "hidden": hidden, "peak_traced_bytes": None, "loss": None,
               "grad_rel_diff_vs_float64": None, "times": []}
        found = step()  # warm-up, and the gradient to compare
        if name in steps:
            loss, grads = found
            results[name] = {n: np.array(g, np.float64) for n, g in grads.items()}
            row["loss"] = loss
            row["grad_rel_diff_vs_float64"] = relative_difference(results[name], reference[1])
            if not name.startswith("torch"):
                row["peak_traced_bytes"] = traced_peak(step)[0]
        rows[name] = row
    for _ in range(rounds):
        for name, step in {**steps, **floors}.items():
            start = time.perf_counter()
            step()
            rows[name]["times"].append(time.perf_counter() - start)
    base = float(np.median(rows["numpy_full"]["times"]))
    for row in rows.values():
        row["median_s"] = float(np.median(row.pop("times")))
        row["us_per_step"] = row["median_s"] / seq_len * 1e6
        row["ratio_vs_numpy_full"] = row["median_s"] / base
    differences = {(a, b): relative_difference(results[a], results[b])
                   for a in results for b in results if a != b}
    return list(rows.values()), differences


def _ratio(by: dict, key: tuple, a: str, b: str, field: str = "median_s") -> float | None:
    if (*key, a) not in by or (*key, b) not in by:
        return None
    if by[(*key, a)][field] is None or by[(*key, b)][field] is None:
        return None
    return by[(*key, a)][field] / by[(*key, b)][field]


def markdown(rows: list[dict]) -> str:
    """The rows as a Markdown table: time, traced memory, gradient error, per cell and T."""
    by = {(r["cell"], r["seq_len"], r["impl"]): r for r in rows}
    lines = ["| cell | T | impl | median step | us/step | vs numpy_full | vs torch nn | "
             "vs bptt_full | traced peak | vs bptt_full | grad rel. diff vs float64 |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        key = (r["cell"], r["seq_len"])
        vs_torch = _ratio(by, key, r["impl"], f"torch_{r['cell']}")
        traced, peak_ratio = r["peak_traced_bytes"], _ratio(by, key, r["impl"], "bptt_full",
                                                            "peak_traced_bytes")
        peak = ("-" if r["impl"] in FLOORS else "not traced") if traced is None \
            else f"{traced / 2**20:.2f} MiB"
        error = r["grad_rel_diff_vs_float64"]
        lines.append(
            f"| {r['cell']} | {r['seq_len']} | {r['impl']} | {r['median_s'] * 1e3:.1f} ms | "
            f"{r['us_per_step']:.1f} | {r['ratio_vs_numpy_full']:.2f}x | "
            f"{'-' if vs_torch is None else f'{vs_torch:.2f}x'} | "
            f"{_ratio(by, key, r['impl'], 'bptt_full'):.2f}x | {peak} | "
            f"{'-' if peak_ratio is None else f'{peak_ratio:.3f}'} | "
            f"{'-' if error is None else f'{error:.1e}'} |")
    return "\n".join(lines)


TARGETS = [  # (numerator, denominator, target ratio)
    ("bptt_full", "torch_{cell}", 0.8), ("bptt_full", "numpy_full", None),
    ("bptt_checkpoint", "bptt_full", 1.25), ("bptt_adaptive", "bptt_full", 1.25),
    ("bptt_checkpoint", "torch_checkpoint", 0.8), ("gemm_floor", "bptt_full", None),
    ("gemm_floor_torch", "bptt_full", None), ("gemm_floor_torch", "gemm_floor", None),
]


def targets(rows: list[dict]) -> str:
    """The ratios the performance targets are about, per cell and T (median step times)."""
    by = {(r["cell"], r["seq_len"], r["impl"]): r for r in rows}
    lines = []
    for cell, T in dict.fromkeys((r["cell"], r["seq_len"]) for r in rows):
        parts = []
        for a, b, target in TARGETS:
            b = b.format(cell=cell)
            value = _ratio(by, (cell, T), a, b)
            text = "n/a" if value is None else f"{value:.3f}"
            parts.append(f"{a}/{b} {text}" + ("" if target is None else f" (<= {target})"))
        lines.append(f"{cell} T={T}: " + ", ".join(parts))
    return "\n".join(lines)


def blas_kernel() -> str:
    """Each loaded BLAS's library, kernel and threads, when threadpoolctl can tell (torch's MKL
    shows once torch is imported)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "unknown (install threadpoolctl to see it)"
    found = [f"numpy: {i.get('internal_api')} {i.get('version', '')} "
             f"{i.get('architecture', '')} {i.get('num_threads')} thread(s)"
             for i in threadpool_info() if i.get("user_api") == "blas"]
    try:
        import torch
    except ImportError:
        return ", ".join(found)
    # torch links its MKL statically: threadpoolctl does not see it, torch's build info does
    blas = "mkl" if "BLAS_INFO=mkl" in torch.__config__.show() else "its own BLAS"
    return ", ".join(found + [f"torch {torch.__version__}: {blas} {torch.get_num_threads()} "
                              f"thread(s)"])


def _cells(value: str) -> tuple[str, ...]:
    cells = tuple(c.strip() for c in value.split(",") if c.strip())
    unknown = [c for c in cells if c not in CELLS]
    if unknown or not cells:
        raise click.BadParameter(f"unknown cell(s) {unknown or value!r}; choose from "
                                 f"{', '.join(CELLS)}")
    return cells


@click.command()
@click.option("--cells", default="rnn", show_default=True,
              help="Comma-separated cells: rnn, lstm, gru.")
@click.option("--seq-len", "seq_lens", multiple=True, type=int, default=(100, 1000, 4000),
              show_default=True, help="T; repeat for several.")
@click.option("--rounds", default=7, show_default=True, help="Timed rounds per implementation.")
@click.option("--batch", default=32, show_default=True, help="B.")
@click.option("--inputs", default=32, show_default=True, help="D.")
@click.option("--hidden", default=256, show_default=True, help="H.")
@click.option("--quick", is_flag=True, help="T=100 only.")
@click.option("--json", "json_path", type=click.Path(path_type=Path), help="Rows as JSON.")
@click.option("--markdown", "markdown_path", type=click.Path(path_type=Path),
              help="The table as Markdown.")
def main(cells, seq_lens, rounds, batch, inputs, hidden, quick, json_path, markdown_path):
    """Time, traced memory and gradient agreement of bptt and its peers."""
    cells = _cells(cells)
    if quick:
        seq_lens = (100,)
    rows = []
    for cell in cells:
        for T in seq_lens:
            # A fresh interpreter per cell and T: the allocator's state after one changes the
            # next's timings (NumPy's 250 MiB at T=4000 took 0.4 s or 1.0 s per step).
            with multiprocessing.get_context("spawn").Pool(1) as pool:
                found, differences = pool.apply(measure, (cell, T, rounds, batch, inputs, hidden))
            rows.extend(found)
            worst = max(differences.items(), key=lambda item: item[1])
            print(f"{cell} T={T}: largest relative gradient difference between "
                  f"implementations: {worst[1]:.2e} ({worst[0][0]} vs {worst[0][1]})")
            pair = ("bptt_full", f"torch_{cell}")
            if pair in differences:
                print(f"{cell} T={T}: bptt_full vs torch_{cell}: {differences[pair]:.2e}")
    table = markdown(rows)
    print(f"cells {', '.join(cells)}, B={batch}, D={inputs}, H={hidden}, float32, MSE read-out "
          f"at every step; {rounds} interleaved rounds; BLAS: {blas_kernel()}")
    print(table)
    print(targets(rows))
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(json_path, rows)
    if markdown_path is not None:
        markdown_path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(markdown_path, (table + "\n").encode())


if __name__ == "__main__":
    main()
