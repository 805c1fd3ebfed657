"""A stream: a chain whose length is found by running it (`while not done`), reversed exactly by
an online policy in bounded memory, its length known only when it has ended."""
import numpy as np
import pytest

from bptt.nn.rnn import RNN
from checkpointing import Full, OnlineCheckpointing, execute_online, gradients
from checkpointing.plan import ChainProfile, Replay


class Stream:
    """A NumPy chain seen as a stream: no length; it ends when `done(i, state)` says so."""

    def __init__(self, chain, done):
        self.chain, self.done, self.length, self.asked = chain, done, None, []

    def ended(self, i, state):
        self.asked.append(i)
        return self.done(i, state)

    def __getattr__(self, name):  # advance, record, reverse, buffers, ... are the chain's
        return getattr(self.chain, name)


def problem(T=40):
    rng = np.random.default_rng(0)
    model = RNN("lstm", 2, 3, 2, np.random.default_rng(1), dtype=np.float64, every_step=True)
    return model, rng.standard_normal((T, 2, 2)), rng.standard_normal((T, 2, 2))


@pytest.mark.parametrize("slots", [1, 3, 8])
@pytest.mark.parametrize("length", [1, 2, 29])
def test_a_stream_gets_fulls_gradients_bit_for_bit_and_learns_its_length(slots, length):
    model, inputs, targets = problem()
    full, ref = gradients(Full(), model.chain(inputs[:length], targets[:length]),
                          model.parameters())
    model.zero_grad()
    # the loss is a mean over the steps, so the chain behind the stream has `length` of them
    stream = Stream(model.chain(inputs[:length], targets[:length]),
                    lambda i, state: i == length)
    run = execute_online(OnlineCheckpointing(slots), stream)
    assert run.stats.length == length and run.stats.reversed_steps == length
    assert stream.asked == list(range(length + 1))  # once per step, before it runs
    assert run.loss == ref.loss and run.stats.peak_states <= slots
    for p in model.parameters():
        assert np.array_equal(p.grad, full[p.name]), p.name


def test_the_end_may_depend_on_the_state():
    model, inputs, targets = problem()
    seen = []
    chain = model.chain(inputs, targets)
    stream = Stream(model.chain(inputs, targets),
                    lambda i, state: seen.append(state[0].copy()) or i == 5)
    execute_online(OnlineCheckpointing(2), stream)
    state = chain.initial_state()
    for i in range(6):
        assert np.array_equal(seen[i], state[0])
        state = chain.advance(i, state)


def test_a_stream_that_ends_before_its_first_step_is_an_error():
    model, inputs, targets = problem()
    with pytest.raises(ValueError, match="ended before its first step"):
        execute_online(OnlineCheckpointing(2), Stream(model.chain(inputs, targets),
                                                      lambda i, state: True))


def test_a_stream_has_no_profile_beforehand():
    model, inputs, targets = problem()
    with pytest.raises(ValueError, match="no profile beforehand"):
        execute_online(OnlineCheckpointing(2), Stream(model.chain(inputs, targets), None),
                       ChainProfile.uniform(3))


def test_a_replay_grows_but_never_shrinks():
    replay = Replay(3, ChainProfile.uniform(3, 5, 7), exact=True)
    replay.grow(10)
    assert replay.T == 10 and replay.profile.tape_bytes[9] == 7
    with pytest.raises(ValueError, match="it has 10 steps, got 4"):
        replay.grow(4)
