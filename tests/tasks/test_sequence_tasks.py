import collections
import math
import re
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tasks import reber
from tasks.adding import AddingTask
from tasks.reber import ReberTask
from tasks import TASKS, make_task
from tasks.text import TextTask, read_text

SHORT = {"adding": 20, "copy": 25, "reber": 30, "text": 30}
DEFAULT_LENGTHS = {"adding": 200, "copy": 120, "reber": 200, "text": 100}

# An oracle independent of the module's graph: the Reber grammar (Hochreiter & Schmidhuber 1997,
# fig. 3) written by hand as a regular expression. From node 3 the walk is T*V to node 5, then
# V or PS ends it, or PX returns to node 3.
_FROM_NODE_3 = "(?:T*VPX)*T*V(?:V|PS)"
_REBER = f"B(?:TS*X(?:S|X{_FROM_NODE_3})|P{_FROM_NODE_3})E"
EMBEDDED_REBER = re.compile(f"B([TP]){_REBER}\\1E")


def symbols(codes) -> str:
    return "".join(reber.SYMBOLS[c] for c in codes)


def reber_streams(task, batch_size, seed):
    inputs, targets = task.batch(np.random.default_rng(seed), batch_size)
    return [symbols(inputs[:, b].argmax(-1)) + reber.SYMBOLS[targets[-1, b]]
            for b in range(batch_size)]


def complete_strings(stream: str) -> list[str]:
    """The whole strings of a stream: one ends at each E followed by B (the inner E is followed
    by T or P); the last piece may be cut short, so it is left out."""
    return re.split(r"(?<=E)(?=B)", stream)[:-1]


# ---- the registry and make_task ----

def test_registry_holds_the_four_tasks_under_their_names():
    assert sorted(TASKS) == ["adding", "copy", "reber", "text"]
    for name, cls in TASKS.items():
        assert cls.name == name


def test_registry_is_complete_whichever_task_module_is_imported_first():
    code = "import tasks.text; from tasks import TASKS; print(sorted(TASKS))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['adding', 'copy', 'reber', 'text']"


@pytest.mark.parametrize("name", sorted(TASKS))
def test_make_task_uses_the_task_default_length_without_seq_len(name):
    task = make_task(name)
    assert task.name == name and task.seq_len == DEFAULT_LENGTHS[name]


def test_unknown_task_names_the_choices():
    with pytest.raises(ValueError, match=r"unknown task 'add'; choose one of \['adding', 'copy', "
                                         r"'reber', 'text'\]"):
        make_task("add")


def test_unknown_option_names_the_task_options():
    with pytest.raises(ValueError,
                       match=r"task 'adding' has no option 'n_symbols'; its options: \[\]"):
        make_task("adding", n_symbols=3)
    with pytest.raises(ValueError, match=r"'name'.*\['n_symbols'\]"):
        make_task("copy", name="other")
    with pytest.raises(ValueError, match=r"'input_size'"):
        make_task("copy", input_size=5)


@pytest.mark.parametrize("name, too_short, minimum",
                         [("adding", 1, 2), ("copy", 20, 21), ("reber", 0, 1), ("text", 0, 1)])
def test_seq_len_below_the_task_minimum_is_rejected(name, too_short, minimum):
    with pytest.raises(ValueError, match=f"seq_len for task '{name}' must be >= {minimum}, "
                                         f"got {too_short}"):
        make_task(name, seq_len=too_short)
    assert make_task(name, seq_len=minimum).seq_len == minimum


@pytest.mark.parametrize("bad", [2.5, "10", True])
def test_seq_len_must_be_an_int(bad):
    with pytest.raises(TypeError, match="seq_len must be an int"):
        make_task("adding", seq_len=bad)


def test_numpy_integer_seq_len_is_stored_as_int():
    task = make_task("reber", seq_len=np.int64(12))
    assert type(task.seq_len) is int and task.seq_len == 12


# ---- batches: shapes, dtypes, determinism ----

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(TASKS))
def test_batch_shapes_and_dtypes(name, dtype):
    task = make_task(name, seq_len=SHORT[name])
    inputs, targets = task.batch(np.random.default_rng(0), 5, dtype=dtype)
    assert inputs.shape == (SHORT[name], 5, task.input_size) and inputs.dtype == dtype
    assert targets.shape == task.target_shape(5)
    if task.loss == "mse":
        assert targets.dtype == dtype
    else:
        assert targets.dtype == np.int64
        assert 0 <= targets.min() and targets.max() < task.output_size
    if name != "adding":
        np.testing.assert_array_equal(inputs.sum(-1), 1)  # one-hot


@pytest.mark.parametrize("name", sorted(TASKS))
def test_same_seed_same_batch_other_seed_other_batch(name):
    task = make_task(name, seq_len=SHORT[name])
    a = task.batch(np.random.default_rng(7), 8)
    b = task.batch(np.random.default_rng(7), 8)
    c = task.batch(np.random.default_rng(8), 8)
    for x, y in zip(a, b):
        assert x.tobytes() == y.tobytes()
    assert not np.array_equal(a[0], c[0])


@pytest.mark.parametrize("name", sorted(TASKS))
def test_precision_does_not_change_the_data_drawn(name):
    task = make_task(name, seq_len=SHORT[name])
    x32, _ = task.batch(np.random.default_rng(3), 4, dtype=np.float32)
    x64, _ = task.batch(np.random.default_rng(3), 4, dtype=np.float64)
    np.testing.assert_array_equal(x32, x64.astype(np.float32))


def test_batch_rejects_bad_arguments():
    task = make_task("adding", seq_len=10)
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="batch_size must be an int >= 1, got 0"):
        task.batch(rng, 0)
    with pytest.raises(ValueError, match="dtype must be a floating-point type, got int32"):
        task.batch(rng, 2, dtype=np.int32)
    with pytest.raises(TypeError, match="numpy.random.Generator, got RandomState"):
        task.batch(np.random.RandomState(0), 2)


# ---- metric arguments ----

def test_metric_rejects_outputs_and_targets_of_the_wrong_shape():
    task = make_task("copy", seq_len=25, n_symbols=2)
    _, targets = task.batch(np.random.default_rng(0), 3)
    with pytest.raises(ValueError, match=r"outputs must have shape \(T, B, O\) = \(25, 3, 9\), "
                                         r"got \(25, 3, 10\)"):
        task.metric(np.zeros((25, 3, 10)), targets)
    with pytest.raises(ValueError, match=r"targets must have shape \(25, 1\) with any batch"):
        task.metric(np.zeros((25, 3, 9)), targets[0])
    with pytest.raises(ValueError, match=r"targets must have shape \(25, 3\), got \(24, 3\)"):
        task.metric(np.zeros((25, 3, 9)), targets[1:])
    with pytest.raises(ValueError, match=r"class indices in \[0, 9\), got values in \[0, 9\]"):
        task.metric(np.zeros((25, 3, 9)), np.where(np.arange(3) == 1, 9, targets))
    with pytest.raises(ValueError, match="integer class indices, got float64"):
        task.metric(np.zeros((25, 3, 9)), targets.astype(float))


# ---- adding ----

@pytest.fixture(scope="module")
def adding_batch():
    return AddingTask(seq_len=31).batch(np.random.default_rng(1), 64)


def test_adding_marks_exactly_one_step_in_each_half(adding_batch):
    inputs, _ = adding_batch
    markers = inputs[:, :, 1]
    assert set(np.unique(markers)) == {0.0, 1.0}
    np.testing.assert_array_equal(markers[:15].sum(0), 1)
    np.testing.assert_array_equal(markers[15:].sum(0), 1)
    assert ((inputs[:, :, 0] >= 0) & (inputs[:, :, 0] < 1)).all()


def test_adding_target_is_the_sum_of_the_two_marked_numbers(adding_batch):
    inputs, targets = adding_batch
    for b in range(inputs.shape[1]):
        marked = inputs[inputs[:, b, 1] == 1, b, 0]
        assert len(marked) == 2
        assert targets[b, 0] == marked[0] + marked[1]


def test_adding_metric_is_the_mse_at_the_last_step_only(adding_batch):
    _, targets = adding_batch
    task = AddingTask(seq_len=31)
    outputs = np.full((31, 64, 1), 5.0)
    outputs[-1] = targets
    assert task.metric(outputs, targets) == 0.0
    outputs[-1] = targets + 0.5
    assert task.metric(outputs, targets) == pytest.approx(0.25)


def test_adding_baseline_is_the_mse_of_always_answering_one():
    task = make_task("adding", seq_len=50)
    assert task.baseline() == pytest.approx(1 / 6)
    _, targets = task.batch(np.random.default_rng(0), 20000, dtype=np.float64)
    assert task.metric(np.ones((50, 20000, 1)), targets) == pytest.approx(1 / 6, abs=0.005)


# ---- copy memory ----

def test_copy_layout_symbols_blanks_delimiter_then_recall():
    task = make_task("copy", seq_len=16, n_symbols=4)
    assert task.delay == 8
    inputs, targets = task.batch(np.random.default_rng(2), 32)
    codes = inputs.argmax(-1)
    assert ((codes[:4] >= 1) & (codes[:4] <= 8)).all()
    np.testing.assert_array_equal(codes[4:11], 0)
    np.testing.assert_array_equal(codes[11], 9)
    np.testing.assert_array_equal(codes[12:], 0)
    np.testing.assert_array_equal(targets[:12], 0)
    np.testing.assert_array_equal(targets[12:], codes[:4])


def test_copy_default_is_ten_symbols_after_a_delay_of_one_hundred():
    task = make_task("copy")
    assert (task.n_symbols, task.delay, task.input_size, task.output_size) == (10, 100, 10, 9)


def test_copy_rejects_a_bad_symbol_count():
    with pytest.raises(ValueError, match="n_symbols must be an int >= 1, got 0"):
        make_task("copy", n_symbols=0)


def test_copy_metric_scores_the_recall_steps_only():
    task = make_task("copy", seq_len=16, n_symbols=4)
    _, targets = task.batch(np.random.default_rng(2), 32)
    perfect = np.eye(9)[targets]
    assert task.metric(perfect, targets) == 1.0
    blanks_wrong = perfect.copy()
    blanks_wrong[:12] = np.eye(9)[5]
    assert task.metric(blanks_wrong, targets) == 1.0
    assert task.metric(np.eye(9)[np.zeros_like(targets)], targets) == 0.0
    half = perfect.copy()
    half[12:14] = np.eye(9)[0]
    assert task.metric(half, targets) == 0.5


def test_copy_baseline_is_chance_on_the_recall_steps():
    task = make_task("copy", seq_len=25, n_symbols=5)
    assert task.baseline() == 1 / 8
    _, targets = task.batch(np.random.default_rng(0), 4000)
    guess = np.eye(9)[np.ones_like(targets)]  # always symbol 1
    assert task.metric(guess, targets) == pytest.approx(1 / 8, abs=0.01)


# ---- embedded Reber grammar ----

@pytest.fixture(scope="module")
def streams():
    return reber_streams(ReberTask(seq_len=200), 20, seed=3)


def test_reber_streams_are_whole_embedded_strings_back_to_back(streams):
    count = 0
    for stream in streams:
        strings = complete_strings(stream)
        assert "".join(strings) == stream[:len("".join(strings))]
        for s in strings:
            assert EMBEDDED_REBER.fullmatch(s), s
            assert reber.accepts(s)
            assert s[1] == s[-2]  # the long-range symbol repeats the branch
            count += 1
    assert count > 200
    assert {s[1] for stream in streams for s in complete_strings(stream)} == {"T", "P"}


def test_reber_recogniser_agrees_with_the_hand_written_grammar_on_near_misses(streams):
    for s in {s for stream in streams for s in complete_strings(stream)}:
        variants = [s[:i] + c + s[i + 1:] for i in range(len(s)) for c in reber.SYMBOLS]
        variants += [s[:i] + s[i + 1:] for i in range(len(s))]
        variants += [s + "E", s + s, s[:-1]]
        for v in variants:
            assert reber.accepts(v) == bool(EMBEDDED_REBER.fullmatch(v)), v


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="BTSXPVEA", max_size=16))
def test_reber_recogniser_agrees_with_the_hand_written_grammar_on_any_string(s):
    assert reber.accepts(s) == bool(EMBEDDED_REBER.fullmatch(s))


# Inputs BTBTXSET, targets TBTXSETE. Legal next symbols after each input, by hand:
# {T,P} {B} {T,P} {S,X} {X,S} {E} {T} (the long-range step) {E}.
HAND_TARGETS = np.array([[reber.SYMBOLS.index(c)] for c in "TBTXSETE"])


def logits(string):
    return np.eye(7)[[reber.SYMBOLS.index(c) for c in string]][:, None, :]


def test_reber_metric_counts_any_legal_symbol_as_right():
    task = ReberTask(seq_len=8)
    assert task.metric(logits("TBTXSETE"), HAND_TARGETS) == 1.0
    assert task.metric(logits("PBPSXETE"), HAND_TARGETS) == 1.0  # half differ from the targets
    assert task.long_range_accuracy(logits("PBPSXETE"), HAND_TARGETS) == 1.0


def test_reber_metric_counts_a_forgotten_branch_and_illegal_symbols_as_wrong():
    task = ReberTask(seq_len=8)
    assert task.metric(logits("TBTXSEPE"), HAND_TARGETS) == 7 / 8
    assert task.long_range_accuracy(logits("TBTXSEPE"), HAND_TARGETS) == 0.0
    assert task.metric(logits("EEEEEEEE"), HAND_TARGETS) == 2 / 8
    assert task.metric(logits("BBBBBBBB"), HAND_TARGETS) == 1 / 8


def test_reber_long_range_accuracy_is_nan_without_a_long_range_step():
    assert math.isnan(ReberTask(seq_len=3).long_range_accuracy(logits("TBT"), HAND_TARGETS[:3]))


def test_reber_metric_rejects_targets_that_break_the_grammar():
    bad = HAND_TARGETS.copy()
    bad[6] = reber.SYMBOLS.index("P")
    with pytest.raises(ValueError, match="not an embedded Reber stream"):
        ReberTask(seq_len=8).metric(logits("TBTXSETE"), bad)


def test_reber_baseline_is_a_model_that_forgets_the_branch():
    task = ReberTask(seq_len=40)
    inputs, targets = task.batch(np.random.default_rng(5), 4000)
    codes = inputs.argmax(-1)
    E, T, P = (reber.SYMBOLS.index(c) for c in "ETP")
    long_range = (codes == E) & np.isin(targets, [T, P])  # after the inner E
    forgetful = targets.copy()
    coin = np.random.default_rng(6).integers(0, 2, size=targets.shape)
    forgetful[long_range] = np.where(coin, T, P)[long_range]
    assert task.metric(np.eye(7)[forgetful], targets) == pytest.approx(task.baseline(), abs=0.003)
    # One long-range step per 12-symbol string on average (8 for the inner Reber string).
    assert ReberTask(seq_len=3000).baseline() == pytest.approx(1 - 1 / 24, abs=1e-3)


# ---- character-level text ----

def test_builtin_text_is_a_small_essay_with_a_sorted_vocabulary():
    task = make_task("text", seq_len=100)
    assert 20_000 <= len(task.text.encode("utf-8")) <= 40_000
    assert task.vocab == "".join(sorted(set(task.text)))
    assert task.input_size == task.output_size == len(task.vocab)
    assert task.decode(task.codes) == task.text
    np.testing.assert_array_equal(task.encode(task.text), task.codes)


def test_text_encoding_round_trips_beyond_ascii(tmp_path):
    path = tmp_path / "words.txt"
    path.write_text("héllo wörld — ünïcode ✓\n" * 3, encoding="utf-8")
    task = TextTask(path=path, seq_len=10)
    assert task.vocab == "".join(sorted(set(path.read_text(encoding="utf-8"))))
    assert task.decode(task.encode("wörld ✓")) == "wörld ✓"
    with pytest.raises(ValueError, match=r"not in the vocabulary: \['z'\]"):
        task.encode("zöl")


def test_text_windows_are_slices_of_the_text_shifted_by_one():
    task = make_task("text", seq_len=40)
    inputs, targets = task.batch(np.random.default_rng(4), 16)
    for b in range(16):
        window = task.decode(inputs[:, b].argmax(-1)) + task.decode(targets[-1:, b])
        assert window in task.text
        assert task.decode(targets[:, b]) == window[1:]


def test_bits_per_character_of_uniform_perfect_and_extreme_logits():
    task = make_task("text", seq_len=20)
    _, targets = task.batch(np.random.default_rng(0), 8)
    V = task.output_size
    assert task.metric(np.zeros((20, 8, V)), targets) == pytest.approx(math.log2(V))
    assert task.metric(50 * np.eye(V)[targets], targets) == pytest.approx(0, abs=1e-12)
    wrong = 1e4 * np.eye(V)[(targets + 1) % V]  # huge logits stay finite
    assert task.metric(wrong.astype(np.float32), targets) == pytest.approx(1e4 / math.log(2))


def test_text_baseline_is_the_unigram_entropy_in_bits():
    task = make_task("text")
    counts = collections.Counter(task.text)
    n = len(task.text)
    entropy = -sum(c / n * math.log2(c / n) for c in counts.values())
    assert task.baseline() == pytest.approx(entropy)
    assert 3.5 < task.baseline() < math.log2(task.output_size)


def test_missing_text_file_names_the_path(tmp_path):
    path = tmp_path / "nope.txt"
    with pytest.raises(FileNotFoundError, match=f"text file '{re.escape(str(path))}' does not"):
        make_task("text", path=path)


def test_directory_is_not_a_text_file(tmp_path):
    with pytest.raises(IsADirectoryError, match="is a directory"):
        make_task("text", path=str(tmp_path))


def test_non_utf8_text_names_the_file_and_byte_offset(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("naïve café".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin1.txt' is not UTF-8: byte 0xef at byte offset 2"):
        read_text(path)


def test_empty_text_file_is_rejected(tmp_path):
    path = tmp_path / "empty.txt"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match="empty.txt' is empty"):
        make_task("text", path=path)


def test_text_shorter_than_a_window_gives_both_numbers(tmp_path):
    path = tmp_path / "short.txt"
    path.write_text("0123456789", encoding="utf-8")
    with pytest.raises(ValueError, match=r"has 10 characters, but seq_len=10 needs at least 11"):
        make_task("text", seq_len=10, path=path)
    assert make_task("text", seq_len=9, path=path).batch(np.random.default_rng(0), 2)[0].shape \
        == (9, 2, 10)
