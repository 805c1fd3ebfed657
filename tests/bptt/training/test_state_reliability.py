"""A training state directory checked as a whole (issue 18): every file verified, a strict
schema with exact types, only regular files read, strict JSON, one run at a time."""
import json
import os
import threading

import numpy as np
import pytest

from bptt.training import io
from bptt.training.files import (FileReadError, atomic_write_bytes, check_replaceable,
                                 dumps_strict, parse_json, read_regular_file)
from bptt.training.io import ModelFileError, StateLockedError
from bptt.training.train import (SequenceSetup, load_training_state,
                                 run_identity, save_training_state, train_sequence)
from checkpointing import Full
from tasks import make_task


def setup_for(steps, **kw):
    return SequenceSetup(task=make_task("adding", seq_len=6), hidden=4, batch=2, steps=steps,
                         **kw)


@pytest.fixture
def saved(tmp_path):
    setup = setup_for(3)
    train_sequence(setup, on_save=lambda s: save_training_state(tmp_path, s,
                                                                run_identity(setup, Full())))
    return tmp_path


def state_json(d):
    return json.loads((d / io.STATE_FILE).read_text())


def write_signed(d, info):
    """A deliberate edit that also recomputes the checksum: the schema must still hold."""
    info = {k: v for k, v in info.items() if k != "checksum"}
    (d / io.STATE_FILE).write_text(json.dumps({**info, "checksum": io.state_checksum(info)}))


def load(d):
    return load_training_state(d, setup_for(3), Full())


def test_a_one_unit_change_to_the_generator_state_is_refused(saved):
    info = state_json(saved)
    info["data_rng"]["state"]["state"] += 1
    (saved / io.STATE_FILE).write_text(json.dumps(info))
    with pytest.raises(ModelFileError, match=r"training_state\.json: its content does not "
                                             r"match the checksum it recorded"):
        load(saved)


def edit(path, value):
    def apply(info):
        target = info
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        return info
    return apply


@pytest.mark.parametrize("change, message", [
    (edit(["optimizer", "hyperparameters", "eps"], 0.5),
     r"'optimizer' is 'Adam' with \{.*'eps': 0.5.*\}, this run's is 'Adam' with"),
    (edit(["step"], True), r"'step' must be a whole number >= 0, got True"),
    (edit(["step"], 3.0), r"'step' must be a whole number >= 0, got 3.0"),
    (edit(["history", 0, "loss"], "0.5"), r"history\[0\]: 'loss' must be float or null, "
                                          r"got '0.5'"),
    (edit(["history", 1, "skipped"], 0), r"history\[1\]: 'skipped' must be bool, got 0"),
    (edit(["history", 2, "step"], 7), r"history\[2\]: 'step' must be 2, got 7"),
    (edit(["optimizer", "steps"], -1), r"'optimizer.steps' must be a whole number from 0 to "
                                       r"the step 3, got -1"),
    (edit(["optimizer", "steps"], True), r"'optimizer.steps' must be a whole number"),
    (edit(["optimizer"], []), r"'optimizer' must be an object with exactly type"),
    (edit(["history"], {}), r"'history' must be a list, got dict"),
    (edit(["run"], "x"), r"'run' must be an object, got str"),
    (edit(["data_rng", "state", "inc"], "1"), r"'data_rng' is not a state of this run's "
                                              r"generator"),
    (edit(["extra"], 1), r"unexpected entry 'extra'"),
    (lambda info: {k: v for k, v in info.items() if k != "history"}, r"missing entry 'history'"),
    (edit(["model", "hidden_size"], 9), r"'model' is \{.*'hidden_size': 9"),
])
def test_a_signed_state_outside_the_schema_is_refused_by_name(saved, change, message):
    write_signed(saved, change(state_json(saved)))
    with pytest.raises(ModelFileError, match=r"training_state\.json: not a valid training "
                                             r"state: .*" + message):
        load(saved)


def test_a_state_that_is_not_an_object_is_refused(saved):
    (saved / io.STATE_FILE).write_text("[1, 2]")
    with pytest.raises(ModelFileError, match=r"expected a JSON object, got list"):
        load(saved)


def test_deeply_nested_json_is_refused_naming_the_file(saved):
    (saved / io.STATE_FILE).write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ModelFileError, match=r"training_state\.json: not valid JSON \(nested "
                                             r"too deeply\)"):
        load(saved)


def test_a_state_file_that_is_a_device_or_a_fifo_is_refused_at_once(saved):
    (saved / io.STATE_FILE).unlink()
    (saved / io.STATE_FILE).symlink_to("/dev/zero")
    with pytest.raises(ModelFileError, match=r"training_state\.json: a character device, "
                                             r"expected a regular file"):
        load(saved)
    (saved / io.STATE_FILE).unlink()
    os.mkfifo(saved / io.STATE_FILE)
    with pytest.raises(ModelFileError, match=r"a FIFO \(named pipe\), expected a regular file"):
        load(saved)  # opened without blocking: no writer needed for the refusal


def test_reading_refuses_files_over_the_limit(tmp_path):
    (tmp_path / "big").write_bytes(b"x" * 101)
    with pytest.raises(FileReadError, match=r"big: 101 bytes, more than the 100 bytes"):
        read_regular_file(tmp_path / "big", 100)
    assert read_regular_file(tmp_path / "big", 101) == b"x" * 101


def test_nan_is_written_as_null_and_read_json_is_strict():
    text = dumps_strict({"loss": float("nan"), "norm": float("inf"), "ok": [1.5, float("-inf")]})
    assert json.loads(text) == {"loss": None, "norm": None, "ok": [1.5, None]}
    with pytest.raises(FileReadError, match=r"x\.json: not valid JSON \(NaN is not JSON"):
        parse_json(b'{"loss": NaN}', "x.json")


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_a_skipped_step_round_trips_through_null(tmp_path):
    setup = setup_for(2, lr=1e30, clip=1e30, optimizer="sgd", on_nonfinite="skip")
    run = train_sequence(setup, on_save=lambda s: save_training_state(
        tmp_path, s, run_identity(setup, Full())))
    assert any(r.skipped for r in run.history)
    text = (tmp_path / io.STATE_FILE).read_text()
    assert "NaN" not in text and "null" in text
    state = load_training_state(tmp_path, setup, Full())
    assert [float(r.loss).hex() for r in state.history] == \
        [float(r.loss).hex() for r in run.history]


@pytest.mark.parametrize("target", ["/dev/full", "fifo", "directory"])
def test_atomic_writes_never_replace_what_is_not_a_regular_file(tmp_path, target):
    path = {"/dev/full": "/dev/full", "fifo": tmp_path / "fifo",
            "directory": tmp_path / "dir"}[target]
    if target == "fifo":
        os.mkfifo(path)
    if target == "directory":
        path.mkdir()
    with pytest.raises(ValueError, match=r"bptt writes only to a new path or over a regular"):
        atomic_write_bytes(path, b"{}")
    assert not list(tmp_path.glob(".*.tmp"))
    if target == "fifo":
        assert os.path.exists(path) and not os.path.isfile(path)


def test_a_symbolic_link_is_followed_not_replaced(tmp_path):
    (tmp_path / "real.json").write_text("old")
    (tmp_path / "link.json").symlink_to(tmp_path / "real.json")
    assert check_replaceable(tmp_path / "link.json") == tmp_path / "real.json"
    atomic_write_bytes(tmp_path / "link.json", b"new")
    assert (tmp_path / "link.json").is_symlink() and (tmp_path / "real.json").read_text() == "new"


def test_a_locked_state_directory_refuses_a_second_holder(tmp_path):
    with io.lock_state_dir(tmp_path / "s"):
        with pytest.raises(StateLockedError, match=r"s is in use by another run"):
            with io.lock_state_dir(tmp_path / "s"):
                pass
        errors = []

        def other_thread():
            try:
                with io.lock_state_dir(tmp_path / "s"):
                    pass
            except StateLockedError as error:
                errors.append(error)
        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join()
        assert len(errors) == 1
    with io.lock_state_dir(tmp_path / "s"):  # released
        pass


def test_taking_the_lock_removes_what_a_killed_save_left(saved):
    named = state_json(saved)["arrays"]
    leftovers = [saved / ".training_state.json.abc123.tmp",
                 saved / ".training_state-0123456789abcdef.safetensors.x.tmp",
                 saved / "training_state-ffffffffffffffff.safetensors"]
    for p in leftovers:
        p.write_bytes(b"partial")
    (saved / "notes.txt").write_text("mine")
    with io.lock_state_dir(saved):
        pass
    assert sorted(p.name for p in saved.iterdir()) == sorted(["notes.txt", named,
                                                              io.STATE_FILE])
    assert load(saved).step == 3


def test_numpy_integer_state_every_is_accepted(tmp_path):
    steps = []
    train_sequence(setup_for(4), on_save=lambda s: steps.append(s.step), save_every=np.int64(2))
    assert steps == [2, 4]
