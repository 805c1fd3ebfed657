"""`bptt-bench compare --backwards`: backward variants side by side (the weight-transport
study, `bptt.studies.feedback`), one table, the JSON and a plot."""
from __future__ import annotations

import click

from bptt.studies.feedback import compare_classifier, compare_sequence, parse_seeds, \
    parse_variants
from bptt.cli.commands import aligned_lines, make_setup, write_output
from bptt.training import files

DEFAULT_SEEDS = {"iris": "0-9", "digits": "0-4"}


def compare_backwards(options: dict) -> None:
    """Train every variant of `--backwards` on `--task` and report them (see the module)."""
    variants = parse_variants(options["backwards"])
    task = options["task"]
    quiet = options["quiet"]
    if task in ("iris", "digits"):
        result = _classifier(task, variants, options)
        lines = classifier_table(result)
    else:
        if options["seeds"] is not None:
            raise ValueError("--seeds averages iris and digits runs; a sequence task runs "
                             "--seed once per variant")
        setup = make_setup(options)
        if not quiet:
            click.echo(f"training {len(variants)} variants on {task}", err=True)
        result = compare_sequence(setup, variants)
        lines = sequence_table(result)
    result["task"] = task
    if not quiet:
        click.echo("\n".join(lines))
    if options.get("json_path") is not None:
        write_output(options["json_path"], files.atomic_write_json, result)
    if options.get("plot_path") is not None:
        from bptt.plots.feedback import plot_feedback_comparison
        write_output(options["plot_path"], plot_feedback_comparison, result)


def _classifier(task: str, variants, options) -> dict:
    seeds = parse_seeds(options["seeds"] or DEFAULT_SEEDS[task])
    if task == "iris":
        from tasks import iris
        data, train = iris.load_data(), iris.train
        recipe = {"epochs": options["epochs"] or 80, "lr": options["lr"] or 0.1,
                  "batch_size": options["batch"] or 16}
    else:
        from tasks import digits
        data, train = digits.load_data(), digits.train
        recipe = {"epochs": options["epochs"] or digits.EPOCHS,
                  "lr": options["lr"] or digits.LR, "batch_size": options["batch"] or digits.BATCH}

    def progress(variant, seed, run):
        if not options["quiet"]:
            click.echo(f"{variant:>9} seed {seed}: test accuracy "
                       f"{run.final.test_accuracy:.4f}", err=True)

    return compare_classifier(train, data, variants, seeds, on_run=progress, **recipe)


def _layers(values, fmt="{:.1f}") -> str:
    return "/".join("-" if v is None else fmt.format(v) for v in values)


def classifier_table(result: dict) -> list[str]:
    """Mean ± std test accuracy, gap to backprop (pp), and per-layer angles (degrees)."""
    recipe = result["recipe"]
    seeds = result["seeds"]
    head = (f"{len(seeds)} seeds ({seeds[0]}-{seeds[-1]}), {recipe['epochs']} epochs, SGD lr "
            f"{recipe['lr']}, batch {recipe['batch_size']}; angles in degrees per layer "
            f"(first/.../last), at the last epoch")
    cells = [["backward", "test accuracy", "gap (pp)", "update vs grad", "B vs W^T",
              "signal vs lambda"]]
    for row in result["rows"]:
        gap = row["gap_to_backprop"]
        align = row["final_alignment"]
        cells.append([row["backward"],
                      f"{100 * row['mean_test_accuracy']:.2f} ± "
                      f"{100 * row['std_test_accuracy']:.2f} %",
                      "-" if gap is None else f"{gap:+.2f}",
                      _layers([a["update_angle"] for a in align]),
                      _layers([a["feedback_angle"] for a in align]),
                      _layers([a["angle"] for a in row["lambda"]])])
    return [head] + aligned_lines(cells)


def sequence_table(result: dict) -> list[str]:
    """Final metric, gap to BPTT, and the update angles per weight at the start and end."""
    head = (f"{result['task']}: T={result['seq_len']}, cell {result['cell']}, hidden "
            f"{result['hidden']}, {result['steps']} steps, lr {result['lr']}, seed "
            f"{result['seed']} (trivial predictor {result['baseline']:.4g}); angles in "
            f"degrees between each variant's update and BPTT's gradient")
    names = list(result["rows"][0]["angles_end"])
    cells = [["backward", "final loss", result["rows"][0]["metric_name"], "vs bptt"]
             + [f"{n} start/end" for n in names]]
    for row in result["rows"]:
        gap = row["gap_to_backprop"]
        cells.append([row["backward"], f"{row['final_loss']:.4g}", f"{row['metric']:.4g}",
                      "-" if gap is None else f"{gap:+.4g}"]
                     + [f"{row['angles_start'][n]:.1f}/{row['angles_end'][n]:.1f}"
                        for n in names])
    return [head] + aligned_lines(cells)


__all__ = ["compare_backwards", "classifier_table", "sequence_table"]
