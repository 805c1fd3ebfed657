"""Training reliability: a failed step changes nothing, clipping is reported, runs repeat and
continue bit for bit from a saved state, and a damaged or foreign state is refused by name."""
import hashlib
import json
import os
import re
import warnings

import numpy as np
import pytest

from bptt.training import io
from bptt.training.io import ModelFileError
from bptt.nn.rnn import RNN
from bptt.training.optim import SGD, Adam, grad_norm
from bptt.training.train import (NonFiniteError, SequenceSetup, TrainingState, load_training_state,
                                 run_identity, save_training_state, train_sequence, train_step)
from checkpointing import Full, Periodic, Revolve, Truncated, gradients
from tasks import make_task


def make_model(dtype=np.float32):
    return RNN("rnn", 2, 4, 1, np.random.default_rng(0), dtype=dtype)


def make_batch(T=6, dtype=np.float32, seed=1):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((T, 3, 2)).astype(dtype),
            rng.standard_normal((T, 3, 1)).astype(dtype))


def make_optimizer(kind, params):
    return SGD(params, lr=0.05, momentum=0.9) if kind == "sgd" else Adam(params, lr=0.01)


def snapshot(model, optimizer) -> dict:
    """Every bit of the parameters and of the optimiser's state."""
    state = optimizer.state_dict()
    return {"params": {n: (p.data.dtype, p.data.tobytes()) for n, p in model.named_parameters()},
            "buffers": {n: b.tobytes() for n, b in state["buffers"].items()},
            "steps": state["steps"], "hyper": state["hyperparameters"]}


def poisoned(chain, at=2):
    """`chain` whose reverse of step `at` yields a NaN state gradient: the loss stays finite,
    the gradients of the steps before do not."""
    reverse = chain.reverse

    def poison(i, *args, **kwargs):
        result = reverse(i, *args, **kwargs)
        return tuple(np.full_like(a, np.nan) for a in result) if i == at else result

    chain.reverse = poison
    chain.fuses_runs = False  # step by step, so that the poisoned reverse is the one called
    return chain


def faulty_chain(fault, model, inputs, targets):
    if fault == "nan weight":
        model.readout.weight.data[0, 0] = np.nan
        return model.chain(inputs, targets)
    if fault == "nan gradient":
        return poisoned(model.chain(inputs, targets))
    return model.chain(inputs, targets * np.float32(1e30))  # overflow: an infinite loss


@pytest.mark.parametrize("fault, message", [
    ("nan weight", "[^;]*(NaN|nan)"),  # the words are the loss's: any that name the NaN
    ("nan gradient", "the gradient of W_x contains NaN or Inf"),
    ("overflow", "[^;]*(not finite|inf)"),
])
@pytest.mark.parametrize("on_nonfinite", ["stop", "skip"])
@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_a_failed_step_leaves_parameters_and_optimiser_state_bit_for_bit(kind, on_nonfinite,
                                                                         fault, message):
    model = make_model()
    params = model.parameters()
    optimizer = make_optimizer(kind, params)
    inputs, targets = make_batch()
    plan = Full().plan(model.chain(inputs, targets).profile())
    for step in range(3):  # momentum, moments and the step count are all non-zero now
        train_step(plan, model.chain(inputs, targets), params, optimizer, step=step, clip=1.0)
    chain = faulty_chain(fault, model, inputs, targets)
    before = snapshot(model, optimizer)
    if on_nonfinite == "stop":
        with pytest.raises(NonFiniteError, match=rf"step 3: {message}.*update was not applied"):
            train_step(plan, chain, params, optimizer, step=3, clip=1.0, on_nonfinite="stop")
    else:
        with pytest.warns(RuntimeWarning, match=rf"step 3: {message}"):
            result = train_step(plan, chain, params, optimizer, step=3, clip=1.0,
                                on_nonfinite="skip")
        assert result.skipped
        assert (result.execution is None) == (fault != "nan gradient")
    assert snapshot(model, optimizer) == before
    assert all(p.grad is None or not p.grad.any() for p in params)


def test_training_goes_on_after_a_skipped_step_as_if_it_had_not_happened():
    inputs, targets = make_batch()
    runs = []
    for with_fault in (False, True):
        model = make_model()
        optimizer = Adam(model.parameters(), lr=0.01)
        plan = Full().plan(model.chain(inputs, targets).profile())
        for step in range(4):
            if with_fault and step == 2:
                with pytest.warns(RuntimeWarning):
                    train_step(plan, poisoned(model.chain(inputs, targets)), model.parameters(),
                               optimizer, step=step, on_nonfinite="skip")
            train_step(plan, model.chain(inputs, targets), model.parameters(), optimizer,
                       step=step)
        runs.append(snapshot(model, optimizer))
    assert runs[0] == runs[1] and runs[1]["steps"] == 4


def test_exploding_gradients_are_clipped_to_the_limit_and_their_norm_is_reported():
    model = make_model(np.float64)
    inputs, targets = make_batch(dtype=np.float64)
    targets *= 1e4  # a gradient norm in the ten thousands
    plan = Full().plan(model.chain(inputs, targets).profile())
    reference, _ = gradients(Full(), model.chain(inputs, targets), model.parameters())
    norm = float(np.sqrt(sum(np.sum(g ** 2) for g in reference.values())))
    before = {n: p.data.copy() for n, p in model.named_parameters()}
    result = train_step(plan, model.chain(inputs, targets), model.parameters(),
                        SGD(model.parameters(), lr=1.0), clip=0.5)
    assert result.clipped and not result.skipped and norm > 1e3
    assert result.grad_norm == pytest.approx(norm, rel=1e-12)
    step = np.sqrt(sum(np.sum((before[n] - p.data) ** 2) for n, p in model.named_parameters()))
    assert step == pytest.approx(0.5, rel=1e-9)  # SGD with lr 1 moves by the clipped gradient
    assert grad_norm(model.parameters()) == pytest.approx(0.5, rel=1e-12)
    unclipped = train_step(plan, model.chain(inputs, targets / 1e4), model.parameters(),
                           SGD(model.parameters(), lr=1e-3), clip=1e9)
    assert not unclipped.clipped and 0 < unclipped.grad_norm < 1e9


@pytest.mark.parametrize("where", ["inputs", "targets"])
@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_nan_or_inf_in_the_data_is_refused_at_the_chain_boundary(where, value):
    model = make_model()
    inputs, targets = make_batch()
    (inputs if where == "inputs" else targets)[4, 1, 0] = value
    with pytest.raises(ValueError, match=rf"{where} contain NaN or Inf \(first at index "
                                         rf"\(4, 1, 0\)\)"):
        model.chain(inputs, targets)


def test_a_training_run_records_each_steps_gradient_norm():
    setup = SequenceSetup(make_task("adding", seq_len=8), hidden=4, batch=2, steps=3, seed=1)
    run = train_sequence(setup, Revolve(2))
    norms = [r.grad_norm for r in run.history]
    assert len(norms) == 3 and all(np.isfinite(norms)) and min(norms) > 0


# --- same seed, same bits; a saved run continues bit for bit ----------------------------------

def setup_for(steps, optimizer="adam", task="adding", seq_len=10, **changes):
    options = {"hidden": 5, "batch": 3, "lr": 0.01, "seed": 7, **changes}
    return SequenceSetup(make_task(task, seq_len=seq_len), steps=steps, optimizer=optimizer,
                         **options)


def weights(run_or_state) -> dict:
    return {n: p.data.tobytes() for n, p in run_or_state.model.named_parameters()}


def losses(history) -> list:
    """Each step's loss and gradient norm, exactly (float.hex; NaN equals NaN here)."""
    return [(r.step, r.loss.hex(), r.skipped, r.grad_norm.hex()) for r in history]


def test_same_seed_and_options_give_bit_identical_runs():
    first, second = (train_sequence(setup_for(5), Periodic()) for _ in range(2))
    assert losses(first.history) == losses(second.history)
    assert weights(first) == weights(second)
    other = train_sequence(setup_for(5, seed=8), Periodic())
    assert losses(other.history) != losses(first.history)


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
@pytest.mark.parametrize("later", [Full(), Revolve(2)], ids=["same strategy", "other exact"])
def test_a_run_continued_from_its_saved_state_ends_bit_for_bit_as_an_uninterrupted_one(
        tmp_path, optimizer, later):
    straight = train_sequence(setup_for(6, optimizer), Full())
    saved = []

    def save(state):
        saved.append(state.step)
        save_training_state(tmp_path, state, run_identity(setup_for(4, optimizer), Full()))

    train_sequence(setup_for(4, optimizer), Full(), on_save=save, save_every=3)
    assert saved == [3, 4]
    state = load_training_state(tmp_path, setup_for(6, optimizer), later)
    assert state.step == 4 and state.optimizer.steps == 4
    continued = train_sequence(setup_for(6, optimizer), later, state=state)
    assert weights(continued) == weights(straight)
    assert losses(continued.history) == losses(straight.history)
    assert continued.metric == straight.metric
    assert sorted(p.name for p in tmp_path.iterdir())[1:] == ["training_state.json"]


def test_a_stopped_run_saves_the_state_before_the_failing_step_and_continues_skipping(tmp_path):
    def setup(on_nonfinite, steps=5):
        return SequenceSetup(make_task("adding", seq_len=6), hidden=3, batch=2, steps=steps,
                             lr=1e30, optimizer="sgd", clip=None, seed=3,
                             on_nonfinite=on_nonfinite)

    identity = run_identity(setup("stop"), Full())
    with pytest.raises(NonFiniteError, match=r"step (\d+):") as stopped:
        train_sequence(setup("stop"), on_save=lambda s: save_training_state(tmp_path, s,
                                                                            identity))
    failed = int(stopped.value.args[0].split(":")[0].split()[1])
    state = load_training_state(tmp_path, setup("skip"), Full())
    assert state.step == failed
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        continued = train_sequence(setup("skip"), state=state)
        straight = train_sequence(setup("skip"))
    assert continued.history[failed].skipped
    assert losses(continued.history) == losses(straight.history)
    assert weights(continued) == weights(straight)


@pytest.mark.parametrize("change, message", [
    ({"cell": "lstm"}, "cell: saved 'rnn', now 'lstm'"),
    ({"hidden": 6}, "hidden: saved 5, now 6"),
    ({"task": "reber"}, "task: saved 'adding', now 'reber'"),
    ({"seq_len": 11}, "task_options: saved {'seq_len': 10}, now {'seq_len': 11}"),
    ({"seed": 8}, "seed: saved 7, now 8"),
    ({"lr": 0.02}, "lr: saved 0.01, now 0.02"),
    ({"dtype": "float64"}, "dtype: saved 'float32', now 'float64'"),
])
def test_continuing_with_other_options_names_every_difference(tmp_path, change, message):
    state = TrainingState.start(setup_for(4))
    save_training_state(tmp_path, state, run_identity(setup_for(4), Full()))
    with pytest.raises(ModelFileError, match=rf"cannot continue the run saved in {tmp_path} with "
                                             rf"other options: .*{re.escape(message)}"):
        load_training_state(tmp_path, setup_for(4, **change), Full())


def test_an_exact_strategy_may_replace_another_but_not_truncation(tmp_path):
    save_training_state(tmp_path, TrainingState.start(setup_for(4)),
                        run_identity(setup_for(4), Full()))
    assert load_training_state(tmp_path, setup_for(4), Revolve(3)).step == 0
    with pytest.raises(ModelFileError, match=r"strategy: saved \{'name': 'full'\}, now "
                                             r"\{'name': 'truncated', 'k1': 2, 'k2': 2\}"):
        load_training_state(tmp_path, setup_for(4), Truncated(2))


@pytest.fixture
def saved_state(tmp_path):
    setup = setup_for(2)
    train_sequence(setup, on_save=lambda s: save_training_state(tmp_path, s,
                                                                run_identity(setup, Full())))
    return tmp_path


def arrays_file(directory):
    return directory / json.loads((directory / io.STATE_FILE).read_text())["arrays"]


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty", "flip a byte"])
def test_a_damaged_arrays_file_is_refused_naming_it(saved_state, damage):
    path = arrays_file(saved_state)
    data = path.read_bytes()
    path.write_bytes({"truncate": data[:len(data) // 2], "garbage": b"\x00" * 64, "empty": b"",
                      "flip a byte": data[:-1] + bytes([data[-1] ^ 1])}[damage])
    with pytest.raises(ModelFileError, match=rf"{path.name}: its contents do not match the "
                                             r"SHA-256 recorded in .*training_state\.json"):
        load_training_state(saved_state, setup_for(2), Full())


def test_a_corrupt_arrays_file_with_a_matching_digest_is_refused_naming_it(saved_state):
    path = arrays_file(saved_state)
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not a header}")
    info = json.loads((saved_state / io.STATE_FILE).read_text())
    info["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    _write_signed(saved_state / io.STATE_FILE, info)
    with pytest.raises(ModelFileError, match=rf"{path.name}: not a readable safetensors file"):
        load_training_state(saved_state, setup_for(2), Full())


def test_arrays_that_do_not_match_the_run_are_listed(saved_state):
    other = TrainingState.start(setup_for(2, hidden=7))
    save_training_state(saved_state / "other", other, {})
    info = json.loads((saved_state / io.STATE_FILE).read_text())
    foreign = json.loads((saved_state / "other" / io.STATE_FILE).read_text())
    os.replace(saved_state / "other" / foreign["arrays"], saved_state / foreign["arrays"])
    info.update(arrays=foreign["arrays"], sha256=foreign["sha256"])
    _write_signed(saved_state / io.STATE_FILE, info)
    with pytest.raises(ModelFileError, match=r"does not match its arrays or this run \(state does "
                                             r"not match RNN: cell.W_x: shape \(2, 7\), expected "
                                             r"\(2, 5\)"):
        load_training_state(saved_state, setup_for(2), Full())


@pytest.mark.parametrize("edit, message", [
    (lambda d: (d / io.STATE_FILE).write_text("{\"format\": "), r"training_state\.json: not "
                                                                r"valid JSON"),
    (lambda d: (d / io.STATE_FILE).unlink(), r"training_state\.json: file not found; .* holds no "
                                             r"saved training state"),
    (lambda d: arrays_file(d).unlink(), r"training_state-\w+\.safetensors: file not found "
                                        r"\(named in"),
    (lambda d: _edit_json(d, format="something else"), r"not a bptt training state \(format "
                                                       r"'something else'"),
    (lambda d: _edit_json(d, arrays="../elsewhere.safetensors"), r"'arrays' must name a file "
                                                                 r"in"),
    (lambda d: _edit_json(d, step=5), r"step 5 does not match the 2 steps of its history"),
    (lambda d: _edit_json(d, data_rng={"bit_generator": "MT19937"}), r"'data_rng' is not a "
                                                                     r"state of this run's "
                                                                     r"generator \(PCG64\)"),
])
def test_a_broken_state_directory_is_refused_naming_the_file(saved_state, edit, message):
    edit(saved_state)
    with pytest.raises(ModelFileError, match=message):
        load_training_state(saved_state, setup_for(2), Full())


def _edit_json(directory, **changes):
    """Change entries and sign the result again (as a deliberate edit would): the schema behind
    the checksum is what is tested."""
    path = directory / io.STATE_FILE
    _write_signed(path, {**json.loads(path.read_text()), **changes})


def _write_signed(path, info):
    path.write_text(json.dumps({**info, "checksum": io.state_checksum(info)}))


def test_a_missing_directory_or_a_file_is_refused(tmp_path):
    with pytest.raises(ModelFileError, match=r"nowhere does not exist; expected a directory "
                                             r"holding training_state\.json"):
        load_training_state(tmp_path / "nowhere", setup_for(2), Full())
    (tmp_path / "file").write_text("x")
    with pytest.raises(ModelFileError, match=r"file is not a directory"):
        load_training_state(tmp_path / "file", setup_for(2), Full())


@pytest.mark.parametrize("crash_at", ["arrays", "json"])
def test_an_interrupted_save_keeps_the_previous_state_whole_and_no_other_file(saved_state,
                                                                              monkeypatch,
                                                                              crash_at):
    before = sorted(os.listdir(saved_state))
    state = load_training_state(saved_state, setup_for(3), Full())
    real_fsync, calls = os.fsync, []

    def fsync(fd):  # the first fsync is the arrays file's, the second the JSON's
        calls.append(fd)
        if len(calls) == (1 if crash_at == "arrays" else 2):
            raise OSError(28, "No space left on device")
        real_fsync(fd)

    state.step, state.history = 3, state.history + state.history[-1:]
    state.model.parameters()[0].data += 1  # other arrays: another arrays file
    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(OSError, match="No space left"):
        save_training_state(saved_state, state, run_identity(setup_for(3), Full()))
    monkeypatch.undo()
    assert sorted(os.listdir(saved_state)) == before
    assert load_training_state(saved_state, setup_for(3), Full()).step == 2


def test_saving_again_replaces_the_state_and_removes_the_old_arrays(saved_state):
    first = arrays_file(saved_state)
    state = load_training_state(saved_state, setup_for(3), Full())
    train_sequence(setup_for(3), state=state,
                   on_save=lambda s: save_training_state(saved_state, s,
                                                         run_identity(setup_for(3), Full())))
    assert not first.exists()
    assert sorted(p.name for p in saved_state.iterdir()) == sorted(
        [arrays_file(saved_state).name, io.STATE_FILE])
    assert load_training_state(saved_state, setup_for(3), Full()).step == 3


def test_a_run_cannot_continue_to_fewer_steps_than_it_has(saved_state):
    state = load_training_state(saved_state, setup_for(1), Full())
    with pytest.raises(ValueError, match="already at step 2, past steps=1"):
        train_sequence(setup_for(1), state=state)
    with pytest.raises(ValueError, match="save_every must be a whole number of steps >= 1"):
        train_sequence(setup_for(3), save_every=0)


# --- the step's checks and the plans a loop keeps ----------------------------------------------

def test_finite_gradients_whose_norm_overflows_are_not_a_non_finite_step():
    # The norm check stands in for the per-gradient look only when the norm is finite: a norm
    # that overflows from finite gradients is reported as inf, the step is not skipped.
    model = make_model(np.float64)
    params = model.parameters()
    inputs, targets = make_batch(dtype=np.float64)
    chain = model.chain(inputs, targets)
    reverse = chain.reverse

    def huge(i, *args, **kwargs):
        result = reverse(i, *args, **kwargs)
        return tuple(a * 1e160 for a in result) if i == 3 else result

    chain.reverse = huge
    chain.fuses_runs = False  # step by step, so that the patched reverse is the one called
    before = [p.data.copy() for p in params]
    with np.errstate(over="ignore"):  # the squares overflow (NumPy would warn)
        result = train_step(Full().plan(chain.profile()), chain, params, SGD(params, lr=1e-150))
    assert not result.skipped and result.grad_norm == np.inf
    assert all(np.isfinite(p.grad).all() for p in params)
    assert any(not np.array_equal(p.data, b) for p, b in zip(params, before))  # applied


def test_the_reported_norm_includes_kolen_pollacks_feedback_gradients():
    from bptt.nn.feedback import attach_feedback, trainable_parameters
    from bptt.nn.layer_chain import LayerChain
    from bptt.nn import MLP
    rng = np.random.default_rng(0)
    mlp = attach_feedback(MLP([4, 8, 3], rng=rng), "kp", rng)
    params = trainable_parameters(mlp)
    x, y = rng.standard_normal((5, 4)), rng.integers(0, 3, 5)
    chain = LayerChain(mlp, x, y)
    result = train_step(Full().plan(chain.profile()), chain, params, SGD(params, lr=0.1),
                        feedback=mlp.feedback)
    weights_only = grad_norm([p for p in params if not p.name.startswith("B_")])
    assert result.grad_norm == grad_norm(params) and result.grad_norm > weights_only


def test_a_short_plan_is_kept_as_a_tuple_and_runs_as_before_a_long_one_stays_lazy():
    from checkpointing import Compressed, LossyPlan, execute
    from bptt.training.train import SHORT_PLAN, kept_plan
    from bptt.training.uoro import UORO
    model = make_model(np.float64)
    inputs, targets = make_batch(T=7, dtype=np.float64)
    profile = model.chain(inputs, targets).profile()
    for strategy in (Full(), Revolve(2), Periodic(3), Compressed(Revolve(2), snapshots="float16")):
        plan = strategy.plan(profile)
        kept = kept_plan(plan)
        assert isinstance(kept.actions, tuple) and list(kept) == list(plan)
        assert type(kept) is type(plan) and kept.check() == plan.check()
        if isinstance(plan, LossyPlan):
            assert kept.compression == plan.compression
        runs = []
        for p in (plan, kept):
            for q in model.parameters():
                q.zero_grad()
            run = execute(p, model.chain(inputs, targets))
            runs.append((run.loss, run.peak_cache_bytes,
                         [q.grad.tobytes() for q in model.parameters()]))
        assert runs[0] == runs[1]
    from checkpointing import ChainProfile
    long = Full().plan(ChainProfile.uniform(SHORT_PLAN + 1))
    assert kept_plan(long) is long
    online = UORO(seed=1).plan(profile)  # not a checkpointing plan: passed through
    assert kept_plan(online) is online
