"""UORO: an online gradient with no stored history (Tallec & Ollivier, 2017).

Forward-mode RTRL carries dh_t/dtheta, a (state x parameters) matrix; UORO carries an unbiased
rank-one estimate of it, s_t theta_t^T (s like the state, theta like the cell's parameters), and
updates it as each step arrives, with nu a fresh vector of random signs:

    s_(t+1)     = rho0 F_h s_t + rho1 nu
    theta_(t+1) = theta_t / rho0 + nu^T F_theta / rho1
    rho0 = sqrt(|theta_t| / |F_h s_t|),  rho1 = sqrt(|nu^T F_theta| / |nu|)   (variance-minimising)

Step t's loss contributes its exact one-step gradient (the chain's own `reverse` of step t: the
read-out, and the cell's parameters through h_(t+1) = F(h_t)) plus (delta_t . s_t) theta_t,
delta_t the gradient of step t's loss with respect to h_t: an unbiased estimate of the rest of
BPTT's gradient. Memory: the current state, s, theta and one tape, whatever T; the price is
variance, which slows convergence (Tallec & Ollivier report it on their tasks).

It is driven by the same chains as every plan: `record` and `reverse` of step t, and the cell's
own core for F_h s, taken by complex-step differentiation (Squire & Trapp, 1998: the imaginary
part of F(h + i eps s) / eps, exact to rounding with no subtraction), so no formula is written
twice. nu^T F_theta is the chain's reverse of step t seeded with nu. Works for every cell of
`bptt.nn.cells` (tanh RNN, GRU, LSTM).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from checkpointing.executor import Execution
from checkpointing.plan import ChainProfile, PlanStats

EPS = 1e-7      # keeps rho finite when a norm is zero (the first step: theta = 0)
STEP = 1e-20    # complex step: far below rounding, so second-order terms vanish


def cell_jvp(cell, x: np.ndarray, state: tuple, direction: tuple) -> tuple:
    """F_h . direction for the cell step h' = F(x, h): the state's derivative along `direction`
    (a tuple like the state), by complex-step differentiation of the cell's own core."""
    W_x, W_h, b_x, b_h = (None if p is None else p.data for p in cell.affine_parameters())
    a = (x @ W_x + b_x).astype(np.complex128)
    perturbed = tuple(s.astype(np.complex128) + 1j * STEP * d for s, d in zip(state, direction))
    u = perturbed[0] @ W_h
    if b_h is not None:
        u += b_h
    new_state, _ = cell.core.forward(a, u, perturbed)
    return tuple((n.imag / STEP).astype(s.dtype) for n, s in zip(new_state, state))


@dataclass(frozen=True)
class UORO:
    """Unbiased Online Recurrent Optimization: O(state + parameters) memory whatever T, an
    unbiased but noisy gradient. `seed`: the random signs' stream (each run draws fresh ones
    from (seed, run number), so a training run is reproducible bit for bit)."""
    seed: int = 0
    name = "uoro"
    lossy = True

    def plan(self, profile: ChainProfile) -> "UOROPlan":
        """What `bptt.training.train.run_plan` runs on a chain of `profile.length` steps."""
        return UOROPlan(profile.length, self.seed)


@dataclass
class UOROPlan:
    """UORO for chains of `length` steps; `run(chain)` takes one gradient (see the module)."""
    length: int
    seed: int = 0
    strategy: str = "uoro"
    runs: int = field(default=0, repr=False)

    def run(self, chain) -> Execution:
        """Accumulate UORO's gradient estimate into the chain's model parameters."""
        if chain.length != self.length:
            raise ValueError(f"the plan is for {self.length} steps but the chain has "
                             f"{chain.length}")
        rng = np.random.default_rng([self.seed, self.runs])
        self.runs += 1
        try:
            return _uoro(chain, rng)
        finally:
            chain.finish()


def _norm(arrays) -> float:
    return math.sqrt(sum(float(np.vdot(a, a)) for a in arrays))


def _uoro(chain, rng: np.random.Generator) -> Execution:
    cell = chain.model.cell
    params = cell.parameters()
    T = chain.length
    state = chain.initial_state()
    s_tilde = tuple(np.zeros_like(a) for a in state)
    theta = [np.zeros_like(p.data) for p in params]
    estimate = [np.zeros_like(p.data) for p in params]
    external = {i for i, _ in chain.buffers(chain.external_arrays())}
    carried = sum(a.nbytes for a in (*s_tilde, *theta))
    loss, peak = 0.0, 0
    for t in range(T):
        tape = chain.record(t, state)
        held = dict(chain.buffers([*state, *tape.arrays()]))  # each buffer once
        peak = max(peak, carried + sum(n for i, n in held.items() if i not in external))
        loss += tape.loss_value
        delta = chain.reverse(t, tape, None, with_loss=True, keep=True)
        chain.finish()  # the exact one-step gradient is in the parameters now
        c = sum(float(np.vdot(d, s)) for d, s in zip(delta, s_tilde))
        if c:
            for e, th in zip(estimate, theta):
                e += c * th
        nu = tuple(rng.choice(np.array([-1.0, 1.0], a.dtype), size=a.shape) for a in state)
        vjp = _parameter_vjp(chain, t, tape, nu, params)
        forward = cell_jvp(cell, chain.inputs[t], state, s_tilde)
        rho0 = math.sqrt((_norm(theta) + EPS) / (_norm(forward) + EPS))
        rho1 = math.sqrt((_norm(vjp) + EPS) / (_norm(nu) + EPS))
        s_tilde = tuple(rho0 * f + rho1 * n for f, n in zip(forward, nu))
        theta = [th / rho0 + v / rho1 for th, v in zip(theta, vjp)]
        state = tape.state
    for p, e in zip(params, estimate):
        p.grad = e.astype(p.data.dtype) if p.grad is None else p.grad + e.astype(p.grad.dtype)
    initial = tuple(np.zeros_like(a) for a in chain.initial_state())
    stats = PlanStats(T, T, T, 0, 2 * T, 0, 1, peak)
    return Execution(loss, initial, stats, peak)


def _parameter_vjp(chain, t: int, tape, nu: tuple, params) -> list[np.ndarray]:
    """nu^T dF/dtheta for the cell's parameters: the chain's reverse of step t seeded with nu
    and no loss, taken with the parameters' gradients set aside and put back after."""
    kept = [p.grad for p in params]
    readout = [(p, p.grad) for p in chain.model.readout.parameters()]
    for p in params:
        p.grad = None
    chain.reverse(t, tape, nu, with_loss=False, keep=True)
    chain.finish()
    vjp = [np.zeros_like(p.data) if p.grad is None else p.grad for p in params]
    for p, g in zip(params, kept):
        p.grad = g
    for p, g in readout:  # the read-out got a zero gradient from this pass: undo its add
        p.grad = g
    return vjp
