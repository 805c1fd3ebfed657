"""The engine's overhead on a small MLP: Iris through bptt against a minimal NumPy MLP.

Both train the seed recipe (`tasks.iris.train`: a 4-32-3 tanh MLP, SGD lr 0.1, batches of 16,
80 epochs, both sets evaluated after every epoch) from the same initial weights with the same
shuffles; the NumPy version is the forward, the backward and the update written out in a dozen
array operations per minibatch, nothing else. Their test accuracies must agree (they run the same
arithmetic up to rounding). Times are medians of interleaved rounds in one process, BLAS
single-threaded; what is left per minibatch once the NumPy work is subtracted is the engine's
overhead (chain, plan execution, graph, optimiser):

    taskset -c 1 python scripts/bench_iris.py --rounds 7
"""
from __future__ import annotations

import os

for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = "1"

import time  # noqa: E402

import click  # noqa: E402
import numpy as np  # noqa: E402

from tasks import iris  # noqa: E402


def numpy_iris(data: iris.IrisData, seed: int = 42, epochs: int = 80, lr: float = 0.1,
               batch_size: int = 16) -> float:
    """The same training written directly in NumPy; returns the final test accuracy."""
    init_rng, shuffle_rng = np.random.default_rng(seed).spawn(2)
    model = iris.build_model(init_rng)  # the same Xavier draws
    (W1, b1), (W2, b2) = [(layer.weight.data.copy(), layer.bias.data.copy())
                          for layer in model.layers]
    x, y, n = data.x_train, data.y_train, len(data.x_train)

    def forward(x):
        h = np.tanh(x @ W1 + b1)
        return h, h @ W2 + b2

    def evaluate(x, y):
        logits = forward(x)[1]
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        return -log_probs[np.arange(len(y)), y].mean(), np.mean(np.argmax(logits, 1) == y)

    accuracy = 0.0
    for _ in range(epochs):
        order = shuffle_rng.permutation(n)
        for start in range(0, n, batch_size):
            batch = order[start:start + batch_size]
            xb, yb = x[batch], y[batch]
            h, logits = forward(xb)
            p = np.exp(logits - logits.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            p[np.arange(len(yb)), yb] -= 1
            p /= len(yb)
            dh = (p @ W2.T) * (1 - h * h)
            W2 -= lr * (h.T @ p)
            b2 -= lr * p.sum(axis=0)
            W1 -= lr * (xb.T @ dh)
            b1 -= lr * dh.sum(axis=0)
        evaluate(data.x_train, data.y_train)
        accuracy = evaluate(data.x_test, data.y_test)[1]
    return float(accuracy)


@click.command()
@click.option("--rounds", default=7, show_default=True, help="Interleaved timed rounds.")
@click.option("--epochs", default=80, show_default=True)
def main(rounds, epochs):
    """Median time of Iris training through bptt and through a minimal NumPy MLP."""
    data = iris.load_data()
    runs = {"bptt": lambda: iris.train(data, seed=42, epochs=epochs).final.test_accuracy,
            "numpy": lambda: numpy_iris(data, seed=42, epochs=epochs)}
    accuracy = {name: run() for name, run in runs.items()}  # warm-up, and the results
    times = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    median = {name: float(np.median(t)) for name, t in times.items()}
    batches = epochs * -(-len(data.x_train) // 16)
    for name in runs:
        print(f"{name}: {median[name] * 1e3:.1f} ms ({median[name] / batches * 1e6:.1f} us per "
              f"minibatch), test accuracy {accuracy[name]:.4f}")
    print(f"bptt/numpy {median['bptt'] / median['numpy']:.2f}x (target <= 2); engine overhead "
          f"{(median['bptt'] - median['numpy']) / batches * 1e6:.1f} us per minibatch")


if __name__ == "__main__":
    main()
