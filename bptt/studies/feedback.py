"""The weight-transport study: backward variants side by side on the same seeds and batches.

`compare_classifier` trains an MLP task (iris, digits) once per variant and seed and reports
mean ± std test accuracy, the gap to backprop in percentage points, per-epoch accuracy and
alignment angles (`bptt.nn.alignment`) and, at the end, each variant's distance per layer to
the Lagrange multipliers λ solved directly (`bptt.nn.lagrangian`). `compare_sequence` does the
same for an RNN task through time: final metric and the angle between each variant's update
and BPTT's gradient. Results are plain JSON-ready dicts.
"""
from __future__ import annotations

import numpy as np

from bptt.nn.alignment import angle, error_signals, mlp_alignment, relative_distance, \
    rnn_gradient_angles
from bptt.nn.feedback import VARIANTS, check_variant
from bptt.nn.lagrangian import lagrange_multipliers
from bptt.training.train import SequenceSetup, train_sequence

PROBE = 256      # training samples the per-epoch alignment is measured on
LAMBDA_PROBE = 32  # samples λ is solved for at the end (a dense system per sample)


def parse_seeds(text: str) -> list[int]:
    """"0-9" -> [0, ..., 9]; "1,3,5" -> [1, 3, 5]; ranges and lists may mix ("0-2,7")."""
    seeds = []
    for part in str(text).split(","):
        part = part.strip()
        try:
            if "-" in part:
                low, high = (int(v) for v in part.split("-", 1))
                if high < low:
                    raise ValueError
                seeds.extend(range(low, high + 1))
            else:
                seeds.append(int(part))
        except ValueError:
            raise ValueError(f"seeds must be like 0-9 or 1,3,5 (non-negative integers), got "
                             f"{text!r}") from None
    if not seeds or min(seeds) < 0:
        raise ValueError(f"seeds must be like 0-9 or 1,3,5 (non-negative integers), got {text!r}")
    return seeds


def parse_variants(text: str) -> list[str]:
    """"backprop,fa" -> ["backprop", "fa"], each checked against `VARIANTS`."""
    names = [n.strip() for n in str(text).split(",") if n.strip()]
    if not names:
        raise ValueError(f"no backward variant given; choose from {', '.join(VARIANTS)}")
    return [check_variant(n) for n in names]


def lambda_distances(model, x: np.ndarray, y: np.ndarray) -> list[dict]:
    """Per layer: the angle and relative distance between the model's error signal (its own
    backward variant) and the multipliers λ solved from the Lagrangian's stationarity."""
    deltas, _ = error_signals(model, x, y)
    lambdas = lagrange_multipliers(model, x, y)
    return [{"layer": index, "angle": angle(d, lam), "distance": relative_distance(d, lam)}
            for index, (d, lam) in enumerate(zip(deltas, lambdas))]


def compare_classifier(train, data, variants, seeds, on_run=None, **recipe) -> dict:
    """Train `train(data, seed=..., backward=..., measure=..., **recipe)` for every variant
    and seed. `on_run(variant, seed, run)` is called after each run (progress)."""
    probe = slice(0, min(PROBE, len(data.x_train)))
    x_probe, y_probe = data.x_train[probe], data.y_train[probe]
    lam = slice(0, min(LAMBDA_PROBE, len(data.x_train)))

    def measure(model):
        return mlp_alignment(model, x_probe, y_probe)

    rows = []
    for variant in variants:
        runs = []
        for seed in seeds:
            run = train(data, seed=seed, backward=variant, measure=measure, **recipe)
            runs.append({"seed": seed, "test_accuracy": run.final.test_accuracy,
                         "test_loss": run.final.test_loss,
                         "history": [_epoch(r) for r in run.history],
                         "lambda": lambda_distances(run.model, data.x_train[lam],
                                                    data.y_train[lam])})
            if on_run is not None:
                on_run(variant, seed, run)
        accuracies = np.array([r["test_accuracy"] for r in runs])
        rows.append({"backward": variant, "mean_test_accuracy": float(accuracies.mean()),
                     "std_test_accuracy": float(accuracies.std()),
                     "final_alignment": _mean_alignment([r["history"][-1]["alignment"]
                                                         for r in runs]),
                     "lambda": _mean_layers([r["lambda"] for r in runs], ("angle", "distance")),
                     "runs": runs})
    _gaps(rows, "mean_test_accuracy", scale=100.0)
    return {"seeds": list(seeds), "recipe": recipe, "rows": rows}


def compare_sequence(setup: SequenceSetup, variants, strategy=None, on_step=None) -> dict:
    """Train `setup` once per variant (same seed, weights and batches) and report the final
    loss, the task's metric and the angle between each variant's gradient and BPTT's on a
    held-out batch at the start and the end of training."""
    rows = []
    probe_rng = np.random.default_rng([setup.seed, 7])
    inputs, targets = setup.task.batch(probe_rng, setup.batch, dtype=np.dtype(setup.dtype))
    for variant in variants:
        chosen = SequenceSetup(**{**setup.__dict__, "backward": variant})
        start = rnn_gradient_angles(chosen.first_batch()[0], inputs, targets)
        run = train_sequence(chosen, strategy, on_step=on_step)
        rows.append({"backward": variant, "final_loss": run.final_loss, "metric": run.metric,
                     "metric_name": setup.task.metric_name,
                     "angles_start": start,
                     "angles_end": rnn_gradient_angles(run.model, inputs, targets),
                     "history": [r.loss for r in run.history]})
    _gaps(rows, "metric", scale=1.0)
    task = setup.task
    return {"task": task.name, "seq_len": task.seq_len, "cell": setup.cell,
            "hidden": setup.hidden, "steps": setup.steps, "lr": setup.lr, "seed": setup.seed,
            "baseline": task.baseline(), "rows": rows}


def _epoch(record) -> dict:
    return {"epoch": record.epoch, "train_loss": record.train_loss,
            "train_accuracy": record.train_accuracy, "test_loss": record.test_loss,
            "test_accuracy": record.test_accuracy, "alignment": record.alignment}


def _gaps(rows: list[dict], key: str, scale: float) -> None:
    """Each row's gap to backprop's `key` (rows without a backprop row get None)."""
    reference = next((r[key] for r in rows if r["backward"] == "backprop"), None)
    for row in rows:
        row["gap_to_backprop"] = None if reference is None else (row[key] - reference) * scale


def _mean_alignment(per_run: list[list[dict]]) -> list[dict]:
    return _mean_layers(per_run, ("update_angle", "feedback_angle", "signal_angle",
                                  "signal_distance"))


def _mean_layers(per_run: list[list[dict]], keys) -> list[dict]:
    out = []
    for index in range(len(per_run[0])):
        row = {"layer": index}
        for key in keys:
            values = [run[index][key] for run in per_run if run[index][key] is not None]
            row[key] = float(np.nanmean(values)) if values else None
        out.append(row)
    return out
