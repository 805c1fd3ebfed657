"""Bad input to the torch bridge: one clear error each, before any step runs where it can be
known without running one."""
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")

from checkpointing import Full, OnlineCheckpointing, Periodic, Revolve  # noqa: E402
from checkpointing.torch import TorchChain, checkpointed_loop  # noqa: E402

W = torch.randn(4, 4, requires_grad=True)


class Counted:
    """A step that counts its calls; `change(i, state, out)` may break what it returns."""

    def __init__(self, change=None):
        self.calls, self.change = 0, change

    def __call__(self, i, state):
        self.calls += 1
        h = torch.tanh(state @ W)
        out = (h, (h ** 2).mean())
        return self.change(i, state, out) if self.change else out


def state0():
    return torch.zeros(2, 4)


@pytest.mark.parametrize("args, kwargs, error, message", [
    ((state0(), 0, Revolve(2)), {}, ValueError,
     r"length must be a whole number >= 1 \(or None with stop\), got 0"),
    ((state0(), 2.5, Revolve(2)), {}, ValueError, "got 2.5"),
    ((state0(), 5, Revolve(2).plan(
        __import__("checkpointing").ChainProfile.uniform(7))), {}, ValueError,
     "the plan is for 7 steps but the loop has 5"),
    ((state0(), None, Revolve(2)), {"stop": lambda i, s: i == 3}, TypeError,
     "unknown length needs an online policy .* got Revolve"),
    ((state0(), None, OnlineCheckpointing(2)), {}, ValueError, "needs stop"),
    ((state0(), 5, OnlineCheckpointing(2)), {"stop": lambda i, s: False}, ValueError,
     "either a length or stop"),
    ((state0(), 5, "revolve"), {}, TypeError, "strategy must be a bptt strategy"),
    (([], 5, Revolve(2)), {}, TypeError, "state0 must be a tensor or a non-empty tuple"),
    ((torch.zeros(2, 4, dtype=torch.int64), 5, Revolve(2)), {}, TypeError,
     "state0 part 0 has dtype torch.int64"),
    ((state0(), 5, Revolve(2)), {"params": [torch.zeros(3)]}, ValueError,
     r"params\[0\] .* does not require grad"),
    ((state0(), 5, Revolve(2)), {"params": 3}, TypeError, "params must be an iterable"),
    ((state0(), 5, Revolve(2)), {"external": ["x"]}, TypeError,
     r"external\[0\] must be a tensor"),
    ((state0(), None, OnlineCheckpointing(2)), {"stop": lambda i, s: True}, ValueError,
     r"stop\(0, state0\) is already true"),
])
def test_bad_arguments_are_refused_before_any_step_runs(args, kwargs, error, message):
    step = Counted()
    with pytest.raises(error, match=message):
        checkpointed_loop(step, *args, **kwargs)
    assert step.calls == 0


def test_a_step_that_is_not_callable():
    with pytest.raises(TypeError, match="step must be callable"):
        checkpointed_loop("step", state0(), 3, Full())


@pytest.mark.parametrize("change, error, message", [
    (lambda i, s, out: out[0], TypeError, r"must return \(next_state, loss\), got a tensor"),
    (lambda i, s, out: (out[0], out[1], 0), TypeError, "got a tuple of 3"),
    (lambda i, s, out: ((out[0], out[0]), out[1]), TypeError,
     "returned a next state of a tuple of 2; expected a tensor, like state0"),
    (lambda i, s, out: (out[0], 0.5), TypeError,
     "step 0 returned a loss of type float; expected a one-element floating-point tensor"),
    (lambda i, s, out: (out[0], out[0]), TypeError, "loss of a tensor of shape \\(2, 4\\)"),
    (lambda i, s, out: (out[0] if i < 3 else out[0][:1], out[1]), ValueError,
     r"step 3 changed state part 0 from shape \(2, 4\) float32 on cpu to shape \(1, 4\)"),
    (lambda i, s, out: (out[0] if i < 2 else out[0].double(), out[1]), ValueError,
     "step 2 changed state part 0 .* to shape \\(2, 4\\) float64"),
])
@pytest.mark.parametrize("strategy", [Full(), Periodic(), Revolve(2), OnlineCheckpointing(2)])
def test_a_step_that_returns_the_wrong_thing_is_named(change, error, message, strategy):
    with pytest.raises(error, match=message):
        checkpointed_loop(Counted(change), state0(), 6, strategy)


def test_a_step_that_changes_its_input_state_in_place_is_named():
    def step(i, state):
        state.mul_(0.5)  # corrupts a kept state under recomputation
        return torch.tanh(state @ W), (state ** 2).mean()

    chain = TorchChain(step, state0(), 4)
    with pytest.raises(RuntimeError, match="step 1 changed its input state in place"):
        chain.advance(1, chain.initial_state())


def test_a_step_reading_a_tensor_not_in_params_is_named():
    V = torch.randn(4, 4, requires_grad=True)
    with pytest.raises(ValueError, match=r"not in params \(a tensor of shape \(4, 4\)"):
        checkpointed_loop(lambda i, s: (torch.tanh(s @ W @ V), s.sum()), state0(), 3,
                          Revolve(2), params=[W])


def test_stop_must_answer_yes_or_no():
    with pytest.raises(TypeError, match=r"stop\(0, state\) must return a bool .* got type str"):
        checkpointed_loop(Counted(), state0(), None, OnlineCheckpointing(2),
                          stop=lambda i, s: "no")
    with pytest.raises(TypeError, match=r"got a tensor of shape \(2, 4\) bool"):
        checkpointed_loop(Counted(), state0(), None, OnlineCheckpointing(2),
                          stop=lambda i, s: s > 0)


def test_a_stream_has_no_profile():
    with pytest.raises(ValueError, match="a stream has no profile"):
        TorchChain(Counted(), state0(), None, stop=lambda i, s: i == 2).profile()


def test_without_torch_the_bridge_says_how_to_get_it():
    code = ("import sys; sys.modules['torch'] = None\n"
            "try:\n    import checkpointing.torch\n"
            "except ImportError as e:\n    print(e)\n"
            "import checkpointing; print('core fine', checkpointing.Revolve(2))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert "checkpointing.torch needs PyTorch, which is not installed" in out.stdout
    assert 'pip install "bptt[bench]"' in out.stdout and "core fine" in out.stdout
