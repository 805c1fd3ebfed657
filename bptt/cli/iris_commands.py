"""The work behind `bptt-bench --task iris` and `compare --task iris`: the MLP as a chain of
layers, trained and measured under a memory strategy (the depth-only case of BPTT)."""
from __future__ import annotations

import click

from bptt.cli.commands import (aligned_lines, make_strategy, progress, table, write_output,
                               write_outputs)
from bptt.training import resources
from bptt.training.pretrained import save_pretrained

IRIS_HINT = "make --hidden, --layers or --batch smaller, or ask for fewer --epochs"


def train_iris(options: dict) -> None:
    """`--task iris`: the MLP trained layer-chain-wise with the chosen strategy."""
    from bptt.plots.curves import plot_classifier_run
    from bptt.studies import iris_bench
    from tasks import iris

    train = _iris_training(options)
    resources.check_fits(iris_estimate(train), options.get("max_memory"), hint=IRIS_HINT)
    data = iris.load_data()
    name = options["strategy"]
    strategy = _per_batch_strategy(name, options)
    measured = iris_bench.measure(data, strategy, train["seed"], train["batch_size"],
                                  train["hidden"], dropout=train["dropout"])  # warns first
    with progress(train["epochs"], "training iris", options["quiet"]) as bar:
        row, run = iris_bench.benchmark(data, strategy, measured=measured,
                                        on_epoch=lambda record: bar.update(1), **train)
    if not options["quiet"]:  # on stderr when an output takes stdout
        err = options.get("to_stdout", False)
        click.echo(_iris_summary(row), err=err)
        click.echo(epoch_table(row["history"]), err=err)
        click.echo(table([row]), err=err)
    write_outputs({**options, "plot_path": None}, [row], single=True)  # its own plot below
    final = run.final
    if options.get("plot_path") is not None:
        test = data.x_test * data.std + data.mean
        write_output(
            options["plot_path"], plot_classifier_run, row["history"],
            iris.predict_petal_plane(run.model, data), points=test[:, 2:], labels=data.y_test,
            axis_names=("petal length (cm)", "petal width (cm)"), class_names=iris.CLASSES,
            title=f"iris, seed {row['seed']}: test accuracy {final.test_accuracy:.3f} "
                  f"(points: test set)")
    if options.get("save_dir") is not None:
        write_output(options["save_dir"], save_pretrained, run.model,
                     {**iris.pretrained_config(run, strategy=name), "backward": row["backward"]})


def compare_iris(names: list[str], options: dict) -> None:
    """`compare --task iris`: every strategy on the same seed and batches, one table."""
    from bptt.studies import iris_bench
    from tasks import iris

    train = _iris_training(options)
    resources.check_fits(iris_estimate(train), options.get("max_memory"), hint=IRIS_HINT)
    data = iris.load_data()
    reference = iris_bench.full_gradients(data, train["seed"], train["batch_size"],
                                          train["hidden"], train["dropout"])
    measured = [iris_bench.measure(data, _per_batch_strategy(name, options), train["seed"],
                                   train["batch_size"], train["hidden"], reference,
                                   train["dropout"])
                for name in names]  # every warning before any training
    rows = []
    for name, done in zip(names, measured):
        with progress(train["epochs"], f"{name:>10}", options["quiet"]) as bar:
            row, _ = iris_bench.benchmark(data, _per_batch_strategy(name, options),
                                          measured=done, on_epoch=lambda r: bar.update(1),
                                          **train)
        rows.append(row)
    if not options["quiet"]:
        click.echo(_iris_summary(rows[0]), err=options.get("to_stdout", False))
        click.echo(table(rows), err=options.get("to_stdout", False))
    write_outputs({**options, "plot_path": None}, rows, single=False)
    if options.get("plot_path") is not None:
        from bptt.plots.curves import plot_training_curves
        curves = [{**row, "history": [{"step": h["step"], "loss": h["train_loss"],
                                       "seconds": h["seconds"]} for h in row["history"]]}
                  for row in rows]
        write_output(options["plot_path"], plot_training_curves, curves,
                     title=f"iris, MLP {'-'.join(map(str, rows[0]['sizes']))}: training-set loss "
                           f"after each epoch")


def _iris_training(options: dict) -> dict:
    """`iris_bench.benchmark`'s training options from the CLI's (iris defaults filled in)."""
    hidden = options.get("layers")
    if hidden is not None and options.get("hidden") is not None:
        raise ValueError("give --hidden N (one hidden layer) or --layers N,N,... , not both")
    return {"seed": options["seed"], "epochs": options["epochs"] or 80,
            "lr": options["lr"] or 0.1, "backward": options.get("backward", "backprop"),
            "batch_size": options["batch"] or 16,  # the iris recipe's batch
            "hidden": hidden or (options.get("hidden") or 32,),
            "optimizer": options["optimizer"] or "sgd", "clip": options["clip"],
            "on_nonfinite": options["on_nan"], "dropout": options["dropout"]}


def iris_estimate(train: dict) -> resources.RunEstimate:
    """What an iris run with `_iris_training`'s options holds (`tasks.classifier.run_estimate`)."""
    from tasks import classifier, iris

    sizes = (len(iris.FEATURES), *train["hidden"], len(iris.CLASSES))
    return classifier.run_estimate(sizes, samples=150,  # Fisher's 150 flowers
                                   batch_size=train["batch_size"], epochs=train["epochs"],
                                   optimizer=train["optimizer"])


def _per_batch_strategy(name: str, options: dict):
    """The strategy for a batch's chain of layers (the last batch may be smaller)."""
    return lambda profile: make_strategy(name, options, profile)


def _iris_summary(row: dict) -> str:
    sizes = "-".join(map(str, row["sizes"]))
    return (f"iris: MLP {sizes} (a chain of {row['seq_len']} layers), seed {row['seed']}, "
            f"{row['epochs']} epochs, {row['optimizer']} lr {row['lr']}, batch {row['batch']}, "
            f"backward {row['backward']} (metric: test accuracy; trivial predictor "
            f"{row['baseline_accuracy']:.4g})")


EPOCH_COLUMNS = [("epoch", "epoch", "{}"), ("train loss", "train_loss", "{:.4f}"),
                 ("train acc", "train_accuracy", "{:.3f}"), ("test loss", "test_loss", "{:.4f}"),
                 ("test acc", "test_accuracy", "{:.3f}")]


def epoch_table(history: list[dict], rows: int = 9) -> str:
    """The per-epoch history as a compact aligned table: about `rows` evenly spaced epochs,
    the first and the last always included (the whole history is in --json and --csv)."""
    every = max(1, -(-len(history) // max(1, rows - 1)))
    last = history[-1]["epoch"]
    shown = [h for h in history if h["epoch"] in (1, last) or h["epoch"] % every == 0]
    cells = [[h for h, _, _ in EPOCH_COLUMNS]] + \
        [[f.format(h[k]) for _, k, f in EPOCH_COLUMNS] for h in shown]
    return "\n".join(aligned_lines(cells, right=True))
