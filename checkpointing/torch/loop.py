"""`checkpointed_loop`: a torch loop's summed loss as one autograd node, run by a bptt plan.

The node's forward runs the whole plan (forward sweeps, recomputation and the reverse sweep,
one `torch.autograd.grad` per recorded step) and keeps the gradients it found; its backward
hands them to autograd, scaled by the outer gradient. So `loss.backward()` fills the
parameters' `.grad` as plain autograd over the unrolled loop would (to float32 rounding), and
the loss can be part of a larger objective (plus a regulariser, or after an encoder that made
state0), while the loop's memory is what the plan keeps.
"""
from __future__ import annotations

from typing import Callable, Iterable

import torch
from torch.autograd.function import once_differentiable

from checkpointing.executor import execute, execute_online
from checkpointing.plan import Plan
from checkpointing.torch.chain import Step, TorchChain


def checkpointed_loop(step: Step, state0, length: int | None, strategy, *,
                      stop: Callable[[int, object], object] | None = None,
                      params: Iterable[torch.Tensor] | None = None,
                      external: Iterable[torch.Tensor] = ()) -> torch.Tensor:
    """The sum of the losses of `length` steps `state = step(i, state)` from `state0`, as a
    0-dim tensor whose gradient reaches the parameters and `state0` (see `TorchChain` for
    `step`, `params`, `external`):

        loss = checkpointed_loop(step, (h0, c0), 1000, Revolve(slots=10))
        loss.backward()

    strategy: a bptt strategy, planned for this loop's measured sizes (`Full()`, `Periodic()`,
    `Revolve(slots)`, `Adaptive(budget)` in bytes, `Truncated(k1, k2)`); a `Plan` for exactly
    `length` steps; or an online policy (`OnlineCheckpointing(slots)`), the only kind for a loop
    of unknown length: `length=None` with `stop(i, state)`, asked before each step i, ending the
    loop at the first true. Exact strategies give the same gradients, bit for bit.

    The trade-off: gradients are computed inside this call, so the loop costs the plan's
    recomputation once and nothing more, and they are held (one tensor per parameter) until
    backward takes them. Only the loss is differentiable, not the final state. With autograd
    off (`torch.no_grad()`) or nothing requiring grad, one plain forward sweep runs instead.
    """
    run = _runner(strategy, length)
    chain = TorchChain(step, state0, length, params=params, external=external, stop=stop)
    if length is None and chain.ended(0, chain.initial_state()):
        raise ValueError("stop(0, state0) is already true: the loop has no step to run")
    parts = (state0,) if chain.single else tuple(state0)
    wanted = torch.is_grad_enabled()
    if wanted:
        chain.inspect()  # finds the parameters, which autograd must see as inputs
        wanted = any(t.requires_grad for t in (*parts, *chain.params))
    if not wanted:
        total = chain.forward_loss()
        return torch.tensor(total, dtype=chain.loss_like[0], device=chain.loss_like[1])

    def forward():
        execution = run(chain)
        grads = [g if t.requires_grad else None for t, g in zip(parts, execution.initial_grad)]
        return execution.loss, grads + list(chain.grads)

    return _Loop.apply(forward, chain.loss_like, *parts, *chain.params)


def _runner(strategy, length: int | None) -> Callable[[TorchChain], object]:
    """How to run `strategy` on a chain; its errors before any step runs."""
    online = callable(getattr(strategy, "forward", None)) and callable(
        getattr(strategy, "reverse", None))
    if length is None:
        if not online:
            raise TypeError(f"a loop of unknown length needs an online policy such as "
                            f"OnlineCheckpointing(slots), got {strategy!r}")
        return lambda chain: execute_online(strategy, chain)
    if isinstance(strategy, Plan):
        if strategy.length != length:
            raise ValueError(f"the plan is for {strategy.length} steps but the loop has "
                             f"{length}")
        return lambda chain: execute(strategy, chain)
    if callable(getattr(strategy, "plan", None)):
        return lambda chain: execute(strategy.plan(chain.profile()), chain)
    if online:
        return lambda chain: execute_online(strategy, chain)
    raise TypeError(f"strategy must be a bptt strategy (Revolve(slots), Adaptive(budget), ...), "
                    f"a Plan or an online policy, got {strategy!r}")


class _Loop(torch.autograd.Function):
    """The whole loop as one node: forward runs the plan, backward returns what it found."""

    @staticmethod
    def forward(ctx, run, loss_like, *tensors):
        loss, ctx.grads = run()
        return torch.tensor(loss, dtype=loss_like[0], device=loss_like[1])

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_loss):
        return (None, None, *(None if g is None else g * grad_loss for g in ctx.grads))
