"""The schema of a saved training state's JSON, checked with exact types.

`save_training_state` (in `bptt.training.train`) writes it; `load_training_state` refuses any
state outside it, so that a hand-edited file that still passes the checksum cannot put a
`true` where a step count goes, a string where a loss goes, a negative optimiser step count,
or other hyperparameters than the run's into a continued run. JSON `null` stands for NaN
(strict JSON has none).
"""
from __future__ import annotations

STATE_KEYS = {"format", "step", "run", "model", "optimizer", "data_rng", "history", "arrays",
              "sha256", "checksum"}
RECORD_TYPES = {"step": (int,), "loss": (float, type(None)), "seconds": (float, int),
                "skipped": (bool,), "grad_norm": (float, type(None)),
                "grad_cosine": (float, type(None)), "grad_rel_error": (float, type(None))}
# A lossy strategy's gradient error against full: states saved before it existed lack it.
OPTIONAL_RECORD_KEYS = {"grad_cosine", "grad_rel_error"}


def state_schema_problems(info: dict, fresh) -> list[str]:
    """What in a state's JSON differs from the schema `save_training_state` writes, as
    messages; `fresh` (the run's start) gives the expected model, optimiser and generator."""
    problems = [f"unexpected entry {k!r}" for k in sorted(set(info) - STATE_KEYS)]
    problems += [f"missing entry {k!r}" for k in sorted(STATE_KEYS - set(info))]
    if problems:
        return problems
    step, history = info["step"], info["history"]
    if type(step) is not int or step < 0:
        problems.append(f"'step' must be a whole number >= 0, got {step!r}")
    if type(info["run"]) is not dict:
        problems.append(f"'run' must be an object, got {type(info['run']).__name__}")
    if info["model"] != fresh.model.config():
        problems.append(f"'model' is {info['model']!r}, this run's is {fresh.model.config()!r}")
    expected = fresh.optimizer.state_dict()
    optimizer = info["optimizer"]
    if type(optimizer) is not dict or set(optimizer) != {"type", "hyperparameters", "steps"}:
        problems.append("'optimizer' must be an object with exactly type, hyperparameters "
                        "and steps")
    else:
        if optimizer["type"] != expected["type"] or not _same(
                optimizer["hyperparameters"], expected["hyperparameters"], exact=True):
            problems.append(f"'optimizer' is {optimizer['type']!r} with "
                            f"{optimizer['hyperparameters']!r}, this run's is "
                            f"{expected['type']!r} with {expected['hyperparameters']!r}")
        steps = optimizer["steps"]
        if type(steps) is not int or not 0 <= steps <= (step if type(step) is int else 0):
            problems.append(f"'optimizer.steps' must be a whole number from 0 to the step "
                            f"{step!r}, got {steps!r}")
    if not _same(info["data_rng"], fresh.data_rng.bit_generator.state):
        problems.append("'data_rng' is not a state of this run's generator "
                        f"({fresh.data_rng.bit_generator.state['bit_generator']})")
    if type(history) is not list:
        problems.append(f"'history' must be a list, got {type(history).__name__}")
        return problems
    for k, record in enumerate(history):
        bad = _record_problem(record, k)
        if bad:
            problems.append(f"history[{k}]: {bad}")
            break
    if type(step) is int and step != len(history):
        problems.append(f"step {step} does not match the {len(history)} steps of its history")
    return problems


def _record_problem(record, k: int) -> str | None:
    if type(record) is not dict or not (set(RECORD_TYPES) - OPTIONAL_RECORD_KEYS
                                        <= set(record) <= set(RECORD_TYPES)):
        return f"must be an object with exactly {sorted(RECORD_TYPES)}"
    for name, types in RECORD_TYPES.items():
        if name in record and type(record[name]) not in types:
            allowed = " or ".join("null" if t is type(None) else t.__name__ for t in types)
            return f"{name!r} must be {allowed}, got {record[name]!r}"
    if record["step"] != k:
        return f"'step' must be {k}, got {record['step']}"
    return None


def _same(value, template, exact: bool = False) -> bool:
    """`value` has `template`'s structure: the same keys, list lengths and exact types, and
    (`exact`, or for strings) the same values."""
    if type(value) is not type(template):
        return False
    if isinstance(template, dict):
        return value.keys() == template.keys() and all(
            _same(value[k], template[k], exact) for k in template)
    if isinstance(template, (list, tuple)):
        return len(value) == len(template) and all(
            _same(v, t, exact) for v, t in zip(value, template))
    return value == template if exact or isinstance(template, str) else True
