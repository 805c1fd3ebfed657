"""Hidden states and their gradients over time for one sequence: vanishing gradients, seen.

A tanh RNN (hidden 64) on one embedded-Reber sequence (T=200), before and after 400 steps of
training with full BPTT. The sequence is unrolled step by step with `chain.step` on Tensors,
each hidden state kept with `retain_grad()`; the loss of one long-range step c (where the model
must repeat the branch symbol read at step b, many steps back) is backpropagated, giving
dL_c/dh_t for every t <= c. Each panel says one thing about the trained model on that sequence:
1. what it remembers: h_t with the other branch symbol read at b minus h_t as read, units
   sorted by that change at c: zero before b, and what survives until c is the memory;
2. what the loss at c depends on: log10 |dL_c/dh_t|, fading towards the past (same unit order);
3. how fast that dependence vanishes: |dL_c/dh_{c-lag}| / |dL_c/dh_c| against the lag, a
   geometric mean over every long-range step of a few sequences, untrained and trained.
Writes heatmap.png and heatmap.json.

    python scripts/figure_heatmap.py            # results/figures/heatmap.{png,json}
"""
from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from bptt.training.files import atomic_write_json
from bptt.plots.curves import plot_state_gradients
from bptt.engine.tensor import Tensor
from bptt.training.train import SequenceSetup, train_sequence
from checkpointing import Full
from tasks.reber import SYMBOLS
from tasks import make_task


def long_range_pairs(inputs: np.ndarray, targets: np.ndarray) -> list[tuple[int, int]]:
    """(b, c) for each embedded string of column 0 whose end lies in the window: step b reads
    the branch symbol (T or P after the opening B), step c must predict it again (its input is
    the inner string's closing E)."""
    stream = [SYMBOLS[i] for i in inputs[:, 0].argmax(axis=-1)] + [SYMBOLS[targets[-1, 0]]]
    pairs, p = [], 0  # a stream starts with an opening B
    while "E" in stream[p + 2:]:
        q = stream.index("E", p + 2)  # the inner string's E: the next symbol is the branch
        if q >= len(inputs):
            break
        pairs.append((p + 1, q))
        p = q + 3  # past the repeated branch symbol and the closing E, at the next opening B
    return pairs


def unroll(model, inputs: np.ndarray, targets: np.ndarray, loss_step: int):
    """Hidden states (T, H) and the gradient of step `loss_step`'s loss with respect to each
    (zero after it), for a batch of one sequence."""
    chain = model.chain(inputs, targets)
    state = tuple(Tensor(a) for a in chain.initial_state())
    hidden, loss = [], None
    for t in range(chain.length):
        state, step_loss = chain.step(t, state, need_loss=t == loss_step)
        hidden.append(state[0].retain_grad())
        loss = step_loss if t == loss_step else loss
    loss.backward()
    states = np.stack([h.data[0] for h in hidden])
    grads = np.stack([np.zeros_like(h.data[0]) if h.grad is None else h.grad[0]
                      for h in hidden])
    return states, grads


def decay(model, task, rng, sequences: int, max_lag: int):
    """Geometric mean over long-range steps c of |dL_c/dh_{c-lag}| / |dL_c/dh_c|, per lag:
    (lags, ratios, the lags c - b of the long-range steps seen)."""
    logs, spans = [[] for _ in range(max_lag + 1)], []
    for _ in range(sequences):
        inputs, targets = task.batch(rng, 1)
        for b, c in long_range_pairs(inputs, targets):
            spans.append(c - b)
            _, grads = unroll(model, inputs, targets, c)
            norms = np.linalg.norm(grads, axis=1)
            for lag in range(min(c, max_lag) + 1):
                logs[lag].append(np.log10(norms[c - lag] / norms[c]))
    lags = [lag for lag in range(max_lag + 1) if logs[lag]]
    return lags, [float(10 ** np.mean(logs[lag])) for lag in lags], spans


@click.command()
@click.option("--seq-len", default=200, show_default=True)
@click.option("--hidden", default=64, show_default=True)
@click.option("--train-steps", default=400, show_default=True,
              help="Training steps of the trained model (full BPTT, Adam lr 3e-3).")
@click.option("--sequences", default=4, show_default=True,
              help="Sequences averaged in the decay panel.")
@click.option("--max-lag", default=60, show_default=True, help="Longest lag in that panel.")
@click.option("--seed", default=42, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=Path("results/figures"),
              show_default=True, help="Folder for heatmap.png and heatmap.json.")
@click.option("--quick", is_flag=True, help="T=40, hidden 8, 2 training steps, for tests.")
def main(seq_len, hidden, train_steps, sequences, max_lag, seed, out, quick):
    """Heatmaps of h_t and dL_c/dh_t for one sequence; gradient decay before/after training."""
    if quick:
        seq_len, hidden, train_steps, sequences, max_lag = 40, 8, 2, 1, 10
    task = make_task("reber", seq_len=seq_len)
    setup = SequenceSetup(task=task, hidden=hidden, steps=train_steps, seed=seed)
    untrained = setup.first_batch()[0]
    trained = train_sequence(setup, Full()).model
    inputs, targets = task.batch(np.random.default_rng(seed + 1), 1)
    pairs = long_range_pairs(inputs, targets)
    if not pairs:
        raise click.UsageError(f"the sequence has no long-range step within T={seq_len}")
    branch, loss_step = max(pairs, key=lambda bc: bc[1] - bc[0])
    states, grads = unroll(trained, inputs, targets, loss_step)
    flipped = inputs.copy()  # the other branch symbol (T <-> P) read at step b, all else equal
    t, p = SYMBOLS.index("T"), SYMBOLS.index("P")
    flipped[branch, 0, [t, p]] = inputs[branch, 0, [p, t]]
    change = unroll(trained, flipped, targets, loss_step)[0] - states
    order = np.argsort(-np.abs(change[loss_step]), kind="stable")  # most changed units first
    curves = {}
    for name, model in (("untrained", untrained), (f"trained ({train_steps} steps)", trained)):
        # the same sequences for both models
        lags, ratios, spans = decay(model, task, np.random.default_rng(seed + 2), sequences,
                                    max_lag)
        curves[name] = (lags, ratios)
    out.mkdir(parents=True, exist_ok=True)
    plot_state_gradients(
        out / "heatmap.png", change[:, order], grads[:, order], loss_step,
        marks=[(f"branch symbol read, b={branch}", branch)], decay=curves,
        states_title="what the network remembers: h_t after reading the other branch symbol "
                     "at b, minus h_t (units sorted by the change at c)",
        states_label="change in h",
        lag_range=(min(spans), max(spans)) if spans else None,
        title=f"tanh RNN (hidden {hidden}) after {train_steps} training steps, one embedded "
              f"Reber sequence of T={seq_len}: long-range step c={loss_step}, lag "
              f"{loss_step - branch}")
    norms = np.linalg.norm(grads, axis=1)
    ratio = float(norms[branch] / norms[loss_step])
    for name, (lags, ratios) in curves.items():
        shown = {lag: r for lag, r in zip(lags, ratios) if lag in (1, 5, 10, 20, 40, 60)}
        click.echo(f"{name:>22}: " + ", ".join(f"lag {k}: {v:.2g}" for k, v in shown.items()))
    click.echo(f"one sequence, trained: |dL_c/dh_b| / |dL_c/dh_c| = {ratio:.3g} "
               f"at lag {loss_step - branch}")
    moved = np.linalg.norm(change, axis=1)
    click.echo(f"flipping the branch symbol at b={branch} changes |h| by "
               f"{moved[max(branch - 1, 0)]:.3g} at b-1, {moved[branch]:.3g} at b, "
               f"{moved[loss_step]:.3g} at c={loss_step}")
    atomic_write_json(out / "heatmap.json", {
        "task": "reber", "seq_len": seq_len, "hidden": hidden, "train_steps": train_steps,
        "seed": seed, "pairs": pairs, "branch_step": branch, "loss_step": loss_step,
        "grad_norms": norms.tolist(), "branch_over_loss_step_ratio": ratio,
        "branch_change_norms": np.linalg.norm(change, axis=1).tolist(),
        "long_range_lags": spans,
        "decay": {name: {"lags": lags, "ratios": ratios}
                  for name, (lags, ratios) in curves.items()}})


if __name__ == "__main__":
    main()
