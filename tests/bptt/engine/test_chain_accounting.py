"""A chain written as the README shows is counted right without overriding external_arrays()."""
import numpy as np

from bptt import TapedChain, Tensor, mse_loss
from bptt.nn import Linear, Module
from checkpointing import Full, Periodic, Revolve, execute

H = 16


class TinyRNN(Module):
    def __init__(self, rng):
        self.wx = Linear(2, H, rng=rng)
        self.wh = Linear(H, H, rng=rng)
        self.readout = Linear(H, 1, rng=rng)


class MyChain(TapedChain):
    """The README's custom chain: a tanh RNN read out at its last step."""

    def __init__(self, model, inputs, target):
        self.model, self.inputs, self.target = model, inputs, target
        self.length = len(inputs)

    def initial_state(self):
        return (np.zeros((self.inputs.shape[1], H)),)

    def step(self, i, state, need_loss):
        h = (self.model.wx(Tensor(self.inputs[i])) + self.model.wh(state[0])).tanh()
        last = need_loss and i == self.length - 1
        return (h,), (mse_loss(self.model.readout(h), self.target) if last else None)


class Declared(MyChain):
    """The same chain listing its external arrays by hand, as chains had to before."""

    def external_arrays(self):
        return [self.inputs, self.target] + [p.data for p in self.model.parameters()]


class CountsEverything(MyChain):
    """The old default: nothing is external, so inputs and weights count as cache."""

    def external_arrays(self):
        return []


def make(cls, T=50, batch=8):
    rng = np.random.default_rng(0)
    model = TinyRNN(rng)
    inputs = rng.standard_normal((T, batch, 2))
    return model, cls(model, inputs, np.zeros((batch, 1)))


def test_the_default_finds_the_inputs_the_target_and_the_weights():
    model, chain = make(MyChain)
    found = {id(a) for a in chain.external_arrays()}
    assert id(chain.inputs) in found and id(chain.target) in found
    assert {id(p.data) for p in model.parameters()} <= found


def test_a_readme_chain_is_counted_as_if_it_declared_its_external_arrays():
    for strategy in (Full(), Periodic(), Revolve(4)):
        peaks, profiles = [], []
        for cls in (MyChain, Declared):
            _, chain = make(cls)
            profile = chain.profile()
            profiles.append((list(profile.state_bytes), list(profile.tape_bytes)))
            peaks.append(execute(strategy.plan(profile), chain).peak_cache_bytes)
        assert peaks[0] == peaks[1]
        assert profiles[0] == profiles[1]


def test_full_holds_each_step_s_own_arrays_only():
    _, chain = make(MyChain, T=50, batch=8)
    peak = execute(Full().plan(chain.profile()), chain).peak_cache_bytes
    # per step h_t (B x H float64; the Linear outputs are freed or shared), not the 16x16
    # weights or the (T, B, 2) inputs
    step_bytes = 8 * H * 8
    assert 50 * step_bytes <= peak <= 2 * 50 * step_bytes


def test_counting_inputs_and_weights_as_cache_made_a_lean_plan_look_20x_larger():
    peaks = []
    for cls in (MyChain, CountsEverything):
        _, chain = make(cls, T=1000, batch=1)
        peaks.append(execute(Revolve(4).plan(chain.profile()), chain).peak_cache_bytes)
    assert peaks[0] <= 4 * 2 * H * 8  # four slots and about one tape of (1, H) float64 arrays
    assert peaks[1] > 20 * peaks[0]
