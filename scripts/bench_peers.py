"""bptt against its peers on the same training step, side by side in one run, as ratios.

The work: a tanh RNN (B=32, D=32, H=256, float32) read out linearly at every step, loss = MSE
over every step's read-out; one training step = forward + backward, T in {100, 1000, 4000}.

Implementations (all from the same initial weights, inputs and targets):
  bptt_full, bptt_checkpoint       this package's `full` and sqrt(T) `checkpoint` plans
  bptt_revolve, bptt_adaptive      Revolve and adaptive at the memory checkpoint uses
  numpy_full                       hand-written NumPy BPTT: the input projection as one GEMM,
                                   the recurrence loop, every weight gradient as one GEMM at the
                                   end (the practical limit of NumPy; the reference of the ratios)
  torch_rnn                        torch.nn.RNN with autograd
  torch_loop                       a manual torch loop over `unbind` of the input projection
  torch_checkpoint                 torch.utils.checkpoint over ceil(sqrt T)-step segments
                                   (use_reentrant=False), read-out and loss inside the segment
Torch is optional (`pip install ".[bench]"`); without it the NumPy comparisons run alone.

Time: every implementation's step is timed in rounds that interleave them; the median per
implementation is reported, and ratios are taken within the run (each T in a fresh process).
Memory: each step is run once more under tracemalloc (peak above the starting level, after a
warm-up and `gc.collect()`).
tracemalloc does not see PyTorch's allocator, so torch rows have no traced peak.
Gradients: each implementation's gradient is compared with a float64 hand-written BPTT and with
every other's; the largest relative difference (max |a - b| / max |b| per weight) is printed.

Threads: BLAS runs single-threaded for every implementation (2 threads are no faster than 1 for
this size on OpenBLAS here), torch too. OpenBLAS's kernel is printed when threadpoolctl is
installed; run with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset to get the machine's own kernel,
and on one core for steadier medians (`--quick`: T=100 only, a few seconds):

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE taskset -c 1 python scripts/bench_peers.py \
        --rounds 9 --json results/peers.json --markdown results/peers.md
"""
from __future__ import annotations

import os

for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = "1"  # before NumPy or torch load their BLAS: the same for everyone

import json  # noqa: E402
import math  # noqa: E402
import multiprocessing  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import click  # noqa: E402
import numpy as np  # noqa: E402

from bptt.training.memory import traced_peak  # noqa: E402
from bptt.nn import RNN  # noqa: E402
from checkpointing import Adaptive, Full, Periodic, Revolve, execute, simulate  # noqa: E402

BATCH, INPUTS, HIDDEN, OUTPUTS = 32, 32, 256, 1
NAMES = ("cell.W_x", "cell.W_h", "cell.b", "readout.weight", "readout.bias")


class Problem:
    """One batch and one set of initial weights, shared by every implementation."""

    def __init__(self, seq_len: int):
        rng = np.random.default_rng(0)
        self.model = RNN("rnn", INPUTS, HIDDEN, OUTPUTS, np.random.default_rng(1),
                         dtype=np.float32)
        self.inputs = rng.standard_normal((seq_len, BATCH, INPUTS)).astype(np.float32)
        self.targets = rng.standard_normal((seq_len, BATCH, OUTPUTS)).astype(np.float32)
        self.weights = {name: p.data for name, p in self.model.named_parameters()}
        self.seq_len = seq_len


# --- hand-written NumPy ------------------------------------------------------------------------
def numpy_full(weights: dict, X: np.ndarray, Y: np.ndarray) -> tuple[float, dict]:
    """BPTT of the mean squared read-out error, written out in NumPy: (loss, gradients).

    Keeps every hidden state (T+1, B, H) and one (T, B, H) work array that holds the input
    projection in the forward sweep and the pre-activation gradients in the backward one.
    """
    W_x, W_h, b = weights["cell.W_x"], weights["cell.W_h"], weights["cell.b"]
    W_y, b_y = weights["readout.weight"], weights["readout.bias"]
    T, B, D = X.shape
    H = W_h.shape[0]
    A = (X.reshape(T * B, D) @ W_x).reshape(T, B, H)  # the input projection, one GEMM
    A += b
    hs = np.empty((T + 1, B, H), X.dtype)
    hs[0] = 0
    for t in range(T):
        h = np.matmul(hs[t], W_h, out=hs[t + 1])
        h += A[t]
        np.tanh(h, out=h)
    out = hs[1:].reshape(T * B, H)
    diff = out @ W_y
    diff += b_y
    diff -= Y.reshape(T * B, -1)
    loss = float(np.mean(diff * diff))
    dy = diff * (2 / diff.size)
    dZ = A.reshape(T * B, H)  # A is spent: it now collects dL/dz for every step
    if dy.shape[1] == 1:  # an outer product: 3-4x faster than a GEMM of inner size 1
        np.multiply(dy, W_y.T, out=dZ)
    else:
        np.matmul(dy, W_y.T, out=dZ)
    dZ = dZ.reshape(T, B, H)
    W_hT = np.ascontiguousarray(W_h.T)
    dh = np.zeros((B, H), X.dtype)
    for t in range(T - 1, -1, -1):
        dz = dZ[t]
        dz += dh
        y = hs[t + 1]
        dz *= 1 - y * y
        dh = dz @ W_hT
    dZ = dZ.reshape(T * B, H)
    grads = {"cell.W_x": X.reshape(T * B, D).T @ dZ,
             "cell.W_h": hs[:-1].reshape(T * B, H).T @ dZ,
             "cell.b": dZ.sum(axis=0),
             "readout.weight": out.T @ dy,
             "readout.bias": dy.sum(axis=0)}
    return loss, grads


# --- bptt -----------------------------------------------------------------------------------
def bptt_plans(problem: Problem) -> dict:
    """full, checkpoint, and revolve and adaptive within checkpoint's peak bytes."""
    profile = problem.model.chain(problem.inputs, problem.targets).profile()
    checkpoint = Periodic().plan(profile)
    budget = simulate(checkpoint, profile=profile).peak_bytes
    slots = 1  # the most slots whose plan fits the budget (peak bytes grow with slots)
    lo, hi = 1, problem.seq_len
    while lo <= hi:
        mid = (lo + hi) // 2
        if simulate(Revolve(mid).plan(profile), profile=profile).peak_bytes <= budget:
            slots, lo = mid, mid + 1
        else:
            hi = mid - 1
    return {"bptt_full": Full().plan(profile), "bptt_checkpoint": checkpoint,
            "bptt_revolve": Revolve(slots).plan(profile),
            "bptt_adaptive": Adaptive(budget).plan(profile)}


def bptt_step(problem: Problem, plan):
    def step():
        model = problem.model
        model.zero_grad()
        run = execute(plan, model.chain(problem.inputs, problem.targets))
        return run.loss, {name: p.grad for name, p in model.named_parameters()}
    return step


# --- torch ------------------------------------------------------------------------------------
def torch_steps(problem: Problem) -> dict:
    """The torch implementations, or none when torch is not installed."""
    try:
        import torch
    except ImportError:
        return {}
    torch.set_num_threads(1)
    X = torch.from_numpy(problem.inputs)
    Y = torch.from_numpy(problem.targets)
    T = problem.seq_len
    w = {name: torch.tensor(a, requires_grad=True) for name, a in problem.weights.items()}
    rnn = torch.nn.RNN(INPUTS, HIDDEN, nonlinearity="tanh")
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(w["cell.W_x"].T)
        rnn.weight_hh_l0.copy_(w["cell.W_h"].T)
        rnn.bias_ih_l0.copy_(w["cell.b"])
        rnn.bias_hh_l0.zero_()
    h0 = torch.zeros(BATCH, HIDDEN)
    k = math.isqrt(T - 1) + 1  # checkpoint's segment, ceil(sqrt T)

    def zero():
        for t in (*w.values(), *rnn.parameters()):
            t.grad = None

    def grads(names=NAMES):
        return {name: w[name].grad.numpy() for name in names}

    def readout_loss(hs, target):
        diff = hs @ w["readout.weight"] + w["readout.bias"] - target
        return (diff * diff).sum()

    def torch_rnn():
        zero()
        out, _ = rnn(X, h0.unsqueeze(0))
        loss = readout_loss(out, Y) / Y.numel()
        loss.backward()
        g = grads(("readout.weight", "readout.bias"))
        g["cell.W_x"] = rnn.weight_ih_l0.grad.T.numpy()
        g["cell.W_h"] = rnn.weight_hh_l0.grad.T.numpy()
        g["cell.b"] = rnn.bias_ih_l0.grad.numpy()
        return float(loss.detach()), g

    def recurrence(h, x):
        A = x @ w["cell.W_x"] + w["cell.b"]
        hs = []
        for a in A.unbind(0):
            h = torch.tanh(a + h @ w["cell.W_h"])
            hs.append(h)
        return h, torch.stack(hs)

    def torch_loop():
        zero()
        _, hs = recurrence(h0, X)
        loss = readout_loss(hs, Y) / Y.numel()
        loss.backward()
        return float(loss.detach()), grads()

    def segment(h, x, target):
        h, hs = recurrence(h, x)
        return h, readout_loss(hs, target)

    def torch_checkpoint():
        zero()
        h, total = h0, 0.0
        for start in range(0, T, k):
            h, part = torch.utils.checkpoint.checkpoint(
                segment, h, X[start:start + k], Y[start:start + k], use_reentrant=False)
            total = total + part
        loss = total / Y.numel()
        loss.backward()
        return float(loss.detach()), grads()

    return {"torch_rnn": torch_rnn, "torch_loop": torch_loop,
            "torch_checkpoint": torch_checkpoint}


# --- measuring --------------------------------------------------------------------------------
def relative_difference(a: dict, b: dict) -> float:
    """The largest over weights of max |a - b| / max |b|."""
    return max(float(np.max(np.abs(np.asarray(a[n], np.float64) - b[n]))
                     / np.max(np.abs(np.asarray(b[n], np.float64)))) for n in NAMES)


def measure(seq_len: int, rounds: int) -> tuple[list[dict], dict]:
    """Rows for one T, and the gradients' relative differences {(impl, other): value}."""
    problem = Problem(seq_len)
    steps = {name: bptt_step(problem, plan) for name, plan in bptt_plans(problem).items()}
    steps["numpy_full"] = lambda: numpy_full(problem.weights, problem.inputs, problem.targets)
    steps.update(torch_steps(problem))

    reference = numpy_full({n: a.astype(np.float64) for n, a in problem.weights.items()},
                           problem.inputs.astype(np.float64), problem.targets.astype(np.float64))
    rows, results = {}, {}
    for name, step in steps.items():
        loss, grads = step()  # warm-up, and the gradient to compare
        results[name] = (loss, {n: np.array(g, np.float64) for n, g in grads.items()})
        traced = None
        if not name.startswith("torch"):
            traced, _ = traced_peak(step)
        rows[name] = {"impl": name, "seq_len": seq_len, "peak_traced_bytes": traced,
                      "loss": loss, "times": []}
    for _ in range(rounds):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            rows[name]["times"].append(time.perf_counter() - start)
    base = float(np.median(rows["numpy_full"]["times"]))
    for name, row in rows.items():
        row["median_s"] = float(np.median(row.pop("times")))
        row["ratio_vs_numpy_full"] = row["median_s"] / base
        row["grad_rel_diff_vs_float64"] = relative_difference(results[name][1], reference[1])
    differences = {(a, b): relative_difference(results[a][1], results[b][1])
                   for a in results for b in results if a != b}
    return list(rows.values()), differences


def markdown(rows: list[dict]) -> str:
    """The rows as a Markdown table, with the targets' ratios per T."""
    by = {(r["impl"], r["seq_len"]): r for r in rows}
    lines = ["| T | impl | median step | vs numpy_full | vs torch_rnn | vs bptt_full "
             "| traced peak | vs bptt_full | grad rel. diff vs float64 |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        T = r["seq_len"]
        full, torch_rnn = by[("bptt_full", T)], by.get(("torch_rnn", T))
        vs_torch = f"{r['median_s'] / torch_rnn['median_s']:.2f}x" if torch_rnn else "-"
        traced = r["peak_traced_bytes"]
        peak = "not traced" if traced is None else f"{traced / 2**20:.2f} MiB"
        peak_ratio = "-" if traced is None else f"{traced / full['peak_traced_bytes']:.3f}"
        lines.append(f"| {T} | {r['impl']} | {r['median_s'] * 1e3:.1f} ms | "
                     f"{r['ratio_vs_numpy_full']:.2f}x | {vs_torch} | "
                     f"{r['median_s'] / full['median_s']:.2f}x | {peak} | {peak_ratio} | "
                     f"{r['grad_rel_diff_vs_float64']:.1e} |")
    return "\n".join(lines)


def targets(rows: list[dict]) -> str:
    """The ratios the performance targets are about, per T (median step times, traced peaks)."""
    by = {(r["impl"], r["seq_len"]): r for r in rows}
    lines = []
    for T in dict.fromkeys(r["seq_len"] for r in rows):
        def ratio(a, b, key="median_s"):
            if (a, T) not in by or (b, T) not in by:
                return "n/a"
            return f"{by[(a, T)][key] / by[(b, T)][key]:.3f}"
        lines.append(
            f"T={T}: time full/numpy {ratio('bptt_full', 'numpy_full')} (<= 1.15), "
            f"full/torch_rnn {ratio('bptt_full', 'torch_rnn')} (<= 1.0), "
            f"checkpoint/full {ratio('bptt_checkpoint', 'bptt_full')} (<= 1.30), "
            f"checkpoint/torch_checkpoint {ratio('bptt_checkpoint', 'torch_checkpoint')} "
            f"(<= 0.8); traced peak full/numpy "
            f"{ratio('bptt_full', 'numpy_full', 'peak_traced_bytes')} (<= 1), "
            f"checkpoint/full {ratio('bptt_checkpoint', 'bptt_full', 'peak_traced_bytes')} "
            f"(<= 0.10)")
    return "\n".join(lines)


def blas_kernel() -> str:
    """OpenBLAS's kernel and threads, when threadpoolctl can tell."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "unknown (install threadpoolctl to see it)"
    return ", ".join(f"{i.get('internal_api')} {i.get('architecture', '')} "
                     f"{i.get('num_threads')} thread(s)" for i in threadpool_info())


@click.command()
@click.option("--seq-len", "seq_lens", multiple=True, type=int, default=(100, 1000, 4000),
              show_default=True, help="T; repeat for several.")
@click.option("--rounds", default=7, show_default=True, help="Timed rounds per implementation.")
@click.option("--quick", is_flag=True, help="T=100 only (under a minute).")
@click.option("--json", "json_path", type=click.Path(path_type=Path), help="Rows as JSON.")
@click.option("--markdown", "markdown_path", type=click.Path(path_type=Path),
              help="The table as Markdown.")
def main(seq_lens, rounds, quick, json_path, markdown_path):
    """Time, traced memory and gradient agreement of bptt and its peers."""
    if quick:
        seq_lens = (100,)
    rows = []
    for T in seq_lens:
        # A fresh interpreter per T: the allocator's state after one T changes the next's
        # timings (NumPy's 250 MiB at T=4000 took 0.4 s or 1.0 s per step depending on it).
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            found, differences = pool.apply(measure, (T, rounds))
        rows.extend(found)
        worst = max(differences.items(), key=lambda item: item[1])
        print(f"T={T}: largest relative gradient difference between implementations: "
              f"{worst[1]:.2e} ({worst[0][0]} vs {worst[0][1]})")
        if ("bptt_full", "torch_rnn") in differences:
            print(f"T={T}: bptt_full vs torch_rnn: "
                  f"{differences[('bptt_full', 'torch_rnn')]:.2e}")
    table = markdown(rows)
    print(f"tanh RNN, B={BATCH}, D={INPUTS}, H={HIDDEN}, float32, MSE read-out at every step; "
          f"{rounds} interleaved rounds; BLAS: {blas_kernel()}")
    print(table)
    print(targets(rows))
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(rows, indent=2))
    if markdown_path is not None:
        markdown_path.parent.mkdir(parents=True, exist_ok=True)
        markdown_path.write_text(table + "\n")


if __name__ == "__main__":
    main()
