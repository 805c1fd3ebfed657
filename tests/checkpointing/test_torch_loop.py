"""bptt's plans on PyTorch loops: every exact strategy gives plain autograd's gradients (to
float32 rounding) and the same gradients as each other, bit for bit; the ledger counts torch
storages exactly, and never more than torch's allocator saw. On a GPU where there is one."""
import pytest

torch = pytest.importorskip("torch")

from checkpointing import (Adaptive, Full, OnlineCheckpointing, Periodic, Revolve,  # noqa: E402
                           Truncated, execute, simulate)
from checkpointing.torch import TorchChain, checkpointed_loop, peak_allocated  # noqa: E402

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
T = 23


class LSTMProblem:
    """torch.nn.LSTMCell and a linear read-out, a squared error at every step."""

    def __init__(self, device, length=T, batch=4, inputs=3, hidden=8):
        torch.manual_seed(0)
        self.cell = torch.nn.LSTMCell(inputs, hidden).to(device)
        self.readout = torch.nn.Linear(hidden, 2).to(device)
        self.X = torch.randn(length, batch, inputs, device=device)
        self.Y = torch.randn(length, batch, 2, device=device)
        self.params = [*self.cell.parameters(), *self.readout.parameters()]
        self.length, self.external = length, (self.X, self.Y)
        self.shape = (batch, hidden)

    def state0(self):
        return (torch.zeros(self.shape, device=self.X.device),
                torch.zeros(self.shape, device=self.X.device))

    def step(self, i, state):
        h, c = self.cell(self.X[i], state)
        return (h, c), ((self.readout(h) - self.Y[i]) ** 2).mean()


class TwoTensorProblem:
    """A custom step with two state tensors: a damped oscillator driven by a learned force
    field, (x, v) -> (x + dt v', v'), the loss on every third step only."""

    def __init__(self, device, length=T, batch=5, dims=6):
        torch.manual_seed(1)
        self.W = torch.randn(dims, dims, device=device, requires_grad=True)
        self.b = torch.zeros(dims, device=device, requires_grad=True)
        self.target = torch.randn(batch, dims, device=device)
        self.params = [self.W, self.b]
        self.length, self.external = length, (self.target,)
        self.x0 = torch.randn(batch, dims, device=device)

    def state0(self):
        return (self.x0.clone(), torch.zeros_like(self.x0))

    def step(self, i, state):
        x, v = state
        v = 0.9 * v + 0.1 * torch.tanh(x @ self.W + self.b)
        x = x + 0.1 * v
        loss = ((x - self.target) ** 2).sum() if i % 3 == 2 else None
        return (x, v), loss


PROBLEMS = [LSTMProblem, TwoTensorProblem]


def plain_autograd(problem):
    for p in problem.params:
        p.grad = None
    state, total = problem.state0(), 0.0
    for i in range(problem.length):
        state, loss = problem.step(i, state)
        if loss is not None:
            total = total + loss
    total.backward()
    return total.item(), [p.grad.clone() for p in problem.params]


def strategies(problem):
    chain = TorchChain(problem.step, problem.state0(), problem.length, external=problem.external)
    profile = chain.profile()
    full = simulate(Full().plan(profile), profile=profile).peak_bytes
    budgets = {max(Adaptive.minimum_budget(profile), int(full * f)) for f in (0.5, 0.2, 0.0)}
    return ([Full(), Periodic(), Periodic(4), Revolve(1), Revolve(2), Revolve(5),
             OnlineCheckpointing(3)] + [Adaptive(b) for b in sorted(budgets)])


def checkpointed(problem, strategy, length="known", **kwargs):
    for p in problem.params:
        p.grad = None
    loss = checkpointed_loop(problem.step, problem.state0(),
                             problem.length if length == "known" else length,
                             strategy, external=problem.external, **kwargs)
    loss.backward()
    return loss.item(), [p.grad.clone() for p in problem.params]


def relative(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("make", PROBLEMS)
def test_exact_strategies_give_plain_autograds_gradients_and_agree_bit_for_bit(make, device):
    problem = make(device)
    plain_loss, plain = plain_autograd(problem)
    reference = None
    for strategy in strategies(problem):
        loss, grads = checkpointed(problem, strategy)
        assert loss == pytest.approx(plain_loss, rel=1e-5), strategy
        for a, b in zip(grads, plain):
            assert relative(a, b) <= 1e-5, strategy
        if reference is None:
            reference = grads
        assert all(torch.equal(a, b) for a, b in zip(grads, reference)), strategy


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("make", PROBLEMS)
def test_a_loop_of_unknown_length_stops_where_stop_says_with_the_same_gradients(make, device):
    problem = make(device)
    _, full = checkpointed(problem, Full())
    for slots in (1, 4):
        seen = []

        def stop(i, state):
            seen.append(i)
            return i == problem.length

        _, grads = checkpointed(problem, OnlineCheckpointing(slots), length=None, stop=stop)
        assert all(torch.equal(a, b) for a, b in zip(grads, full)), slots
        assert seen[-1] == problem.length


def test_the_loss_composes_with_an_outer_graph_state0_and_a_regulariser():
    problem = LSTMProblem("cpu")
    encoder = torch.nn.Linear(3, 8)
    z = torch.randn(4, 3)

    def objective(loop):
        h0 = torch.tanh(encoder(z))
        penalty = 0.01 * sum((p ** 2).sum() for p in problem.params)
        return 2.0 * loop(h0) + penalty

    def plain(h0):
        state, total = (h0, torch.zeros_like(h0)), 0.0
        for i in range(problem.length):
            state, loss = problem.step(i, state)
            total = total + loss
        return total

    every = [*problem.params, *encoder.parameters()]
    grads = []
    for loop in (plain, lambda h0: checkpointed_loop(problem.step, (h0, torch.zeros_like(h0)),
                                                     problem.length, Revolve(3),
                                                     external=problem.external)):
        for p in every:
            p.grad = None
        objective(loop).backward()
        grads.append([p.grad.clone() for p in every])
    for a, b in zip(*grads):
        assert relative(a, b) <= 1e-5


def test_truncated_bptt_over_the_whole_sequence_is_full():
    problem = TwoTensorProblem("cpu")
    _, full = checkpointed(problem, Full())
    _, truncated = checkpointed(problem, Truncated(T, T))
    assert all(torch.equal(a, b) for a, b in zip(full, truncated))


def test_with_autograd_off_only_the_loss_is_computed():
    problem = LSTMProblem("cpu")
    plain_loss, _ = plain_autograd(problem)
    with torch.no_grad():
        loss = checkpointed_loop(problem.step, problem.state0(), T, Revolve(2))
    assert loss.grad_fn is None and loss.item() == pytest.approx(plain_loss, rel=1e-6)


def test_the_parameters_are_found_in_step_0s_graph_or_checked_against_it():
    problem = LSTMProblem("cpu")
    chain = TorchChain(problem.step, problem.state0(), T)
    chain.inspect()
    assert {id(p) for p in chain.params} == {id(p) for p in problem.params}
    with pytest.raises(ValueError, match="not in params"):
        TorchChain(problem.step, problem.state0(), T,
                   params=list(problem.cell.parameters())).inspect()


@pytest.mark.parametrize("device", DEVICES)
def test_the_ledger_counts_storages_as_the_plan_predicts_and_within_torchs_own_count(device):
    problem = LSTMProblem(device, length=40, batch=16, hidden=64)

    def chain():
        return TorchChain(problem.step, problem.state0(), problem.length,
                          external=problem.external)

    profile = chain().profile()
    assert profile.state_bytes[0] == 2 * 16 * 64 * 4  # h and c, float32
    for strategy in (Full(), Revolve(4), Adaptive(profile.tape_bytes[0] * 6)):
        plan = strategy.plan(profile)
        run, measured = peak_allocated(lambda: execute(plan, chain()), device)
        predicted = simulate(plan, profile=profile).peak_bytes
        print(f"{device} {strategy}: ledger {run.peak_cache_bytes} B, predicted {predicted} B, "
              f"torch allocated at peak {measured} B")
        assert run.peak_cache_bytes <= predicted
        if not isinstance(strategy, Adaptive):
            assert run.peak_cache_bytes == predicted
        # torch's count adds the step's transients and the gradients, never less
        transients = 4 * profile.tape_bytes[0] + 200_000
        assert run.peak_cache_bytes <= measured <= run.peak_cache_bytes + transients


def test_views_of_one_storage_are_one_buffer():
    chain = TorchChain(lambda i, s: (s, None), torch.zeros(3), 2)
    gates = torch.zeros(4, 10)
    pairs = list(chain.buffers([gates, *gates.chunk(2, dim=1), gates[1:]]))
    assert len({i for i, _ in pairs}) == 1 and {n for _, n in pairs} == {160}
