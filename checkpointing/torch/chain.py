"""A PyTorch step as a chain the executor drives: time becomes depth, in torch.

Advancing runs the step under `torch.no_grad()`; recording runs it with autograd on, from fresh
leaves for the input state, so a tape is that one step's autograd graph (with the tensors it
saved, found through `saved_tensors_hooks`); reversing is `torch.autograd.grad` on that graph
alone, which returns the gradient of the input state and of the parameters. The parameter
gradients are added up by the chain in the reverse sweep's order (T-1 down to 0), the same for
every plan, so exact plans give the same gradients bit for bit.
"""
from __future__ import annotations

from typing import Callable, Hashable, Iterable, Iterator, Sequence

import torch

from checkpointing.protocol import reverse_roots, step_sizes
from checkpointing.plan import ChainProfile

Step = Callable[[int, object], tuple]


class TorchTape:
    """What `TorchChain.record(i)` keeps for `reverse(i)`: step i's autograd graph.

    inputs: state i as fresh leaves; outputs: state i+1 as the graph made it; state: the same
    tensors detached (what the executor holds and keeps in slots, not the graph); loss: the
    step's loss or None; saved: every tensor autograd saved for the step's backward.
    """
    __slots__ = ("inputs", "outputs", "state", "loss", "saved")

    def __init__(self, inputs, outputs, loss, saved):
        self.inputs, self.outputs, self.loss, self.saved = inputs, outputs, loss, saved
        self.state = tuple(t.detach() for t in outputs)

    @property
    def loss_value(self) -> float:
        """The step's loss as a float (0.0 for a step without loss)."""
        return 0.0 if self.loss is None else float(self.loss.detach())

    def arrays(self) -> list[torch.Tensor]:
        """Every tensor this tape keeps alive: its ends and what autograd saved."""
        return [*self.inputs, *self.state, *self.saved]


class TorchChain:
    """`length` steps of a torch function, for `checkpointing.execute` with any plan.

    step(i, state) -> (next_state, loss): `state` is a tensor or a tuple of tensors, as
    `state0` is (floating point; the same shapes, dtypes and devices at every step); `loss` is
    a one-element tensor, or None for a step without a loss. The step must be a pure function
    of i, the state and the parameters, and must not change its input state in place:
    recomputation reruns it and exact plans rely on getting the same values bit for bit.
    params: the tensors whose gradients are taken (requiring grad); None: every leaf that
    requires grad in step 0's graph. external: tensors the step reads that exist whatever the
    plan (input sequences, targets), so that the byte ledger does not count them as cache.
    length: the number of steps, or None for a stream that ends before the first step i with
    `stop(i, state)` true (`execute_online`).

    After a plan has run, `grads` holds the gradients of `params` (None for one no step used)
    and the Execution's `initial_grad` that of state 0; the parameters' `.grad` are left alone
    (`checkpointed_loop` hands the gradients to autograd). Sizes for planners are measured by
    recording step 0 once (`profile`), which also checks what the step returns.
    """

    def __init__(self, step: Step, state0, length: int | None,
                 params: Iterable[torch.Tensor] | None = None,
                 external: Iterable[torch.Tensor] = (),
                 stop: Callable[[int, object], object] | None = None):
        if not callable(step):
            raise TypeError(f"step must be callable as step(i, state), got {type(step).__name__}")
        self.step = step
        self.single = isinstance(state0, torch.Tensor)
        self.state0 = _check_state0(state0)
        self.spec = [(t.shape, t.dtype, t.device) for t in self.state0]
        if length is None:
            if not callable(stop):
                raise ValueError("a loop of unknown length (length None) needs "
                                 "stop(i, state) -> bool, called before each step i")
        else:
            if isinstance(length, bool) or not isinstance(length, int) or length < 1:
                raise ValueError(f"length must be a whole number >= 1 (or None with stop), "
                                 f"got {length!r}")
            if stop is not None:
                raise ValueError("give either a length or stop(i, state), not both")
        self.length, self.stop = length, stop
        self.discover = params is None
        self.params = () if params is None else _check_tensors("params", params, grad=True)
        self.external = _check_tensors("external", external, grad=False)
        self.grads: list[torch.Tensor | None] = []
        self.loss_like = (self.state0[0].dtype, self.state0[0].device)  # until a loss is seen
        self._sizes: tuple[int, int] | None = None

    # --- what the executor calls ---------------------------------------------------------------
    def initial_state(self) -> tuple[torch.Tensor, ...]:
        """State 0, detached from any graph it came from."""
        return self.state0

    def advance(self, i: int, state: tuple) -> tuple:
        """State i+1 from state i, with autograd off."""
        versions = [t._version for t in state]
        with torch.no_grad():
            nxt, _ = self._call(i, state)
        if [t._version for t in state] != versions:
            raise RuntimeError(f"step {i} changed its input state in place; recomputation "
                               f"needs every kept state unchanged: return new tensors")
        return nxt

    def record(self, i: int, state: tuple) -> TorchTape:
        """Run step i with autograd on, keeping its graph and the tensors it saves."""
        if self._sizes is None:
            self.inspect()
        inputs = tuple(t.detach().requires_grad_() for t in state)
        saved: list[torch.Tensor] = []

        def pack(t):
            # detached: a saved output holding its own grad_fn would be a reference cycle
            t = t.detach()
            saved.append(t)
            return t

        with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, _unpack):
            outputs, loss = self._call(i, inputs)
        return TorchTape(inputs, outputs, loss, saved)

    def reverse(self, i: int, tape: TorchTape, grad: tuple | None, with_loss: bool = True,
                keep: bool = False) -> tuple:
        """Backpropagate step i's graph from the gradient of state i+1 (None: zero) and, if
        `with_loss`, its loss; add the parameter gradients to `grads`; the gradient of state i.
        """
        roots, seeds = reverse_roots(tape.outputs, grad, tape.loss, with_loss)
        n = len(tape.inputs)
        if roots:
            found = torch.autograd.grad(roots, (*tape.inputs, *self.params), seeds,
                                        retain_graph=keep, allow_unused=True)
        else:
            found = (None,) * (n + len(self.params))
        grads = self.grads
        for k, g in enumerate(found[n:]):
            if g is not None:
                if grads[k] is None:
                    grads[k] = g.clone()  # ours to add into: autograd's may alias a seed
                else:
                    grads[k] += g
        return tuple(torch.zeros_like(x) if g is None else g
                     for x, g in zip(tape.inputs, found[:n]))

    def profile(self) -> ChainProfile:
        """Uniform sizes: state 0's bytes and step 0's tape bytes (its input state included,
        its output excluded, as `ChainProfile` counts them), measured by recording step 0.

        A step whose tape grows later (a loss on the last step only) makes these an
        underestimate there: an adaptive budget then holds only approximately."""
        if self.length is None:
            raise ValueError("a stream has no profile: its length is known only at its end")
        self.inspect()
        return ChainProfile.uniform(self.length, *self._sizes)

    def ended(self, i: int, state: tuple) -> bool:
        """For a stream: whether it ends before step i, given state i (`stop(i, state)`)."""
        with torch.no_grad():
            done = self.stop(i, self._view(state))
        if isinstance(done, torch.Tensor) and done.numel() == 1:
            return bool(done)
        if not isinstance(done, bool):
            raise TypeError(f"stop({i}, state) must return a bool or a one-element tensor, "
                            f"got {_describe(done)}")
        return done

    def finish(self) -> None:
        """Nothing to add: `grads` are complete when the last step is reversed."""

    def external_arrays(self) -> list[torch.Tensor]:
        """Parameters and `external`: there whatever the plan, so never counted as cache.
        (The executor asks before its first step, so found parameters are found now.)"""
        if self.discover:
            self.inspect()
        return [*self.params, *self.external]

    def buffers(self, arrays: Iterable[torch.Tensor]) -> Iterator[tuple[Hashable, int]]:
        """(identity, nbytes) of the storage behind each tensor: views of one storage (chunks
        of an LSTM's gate matrix, a slice of the inputs) are one buffer, counted once."""
        for t in arrays:
            storage = t.untyped_storage()
            yield (t.device, storage.data_ptr()), storage.nbytes()

    # --- the step, checked ---------------------------------------------------------------------
    def _view(self, state: tuple):
        return state[0] if self.single else state

    def _call(self, i: int, state: tuple) -> tuple[tuple, torch.Tensor | None]:
        out = self.step(i, self._view(state))
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise TypeError(f"step({i}, state) must return (next_state, loss), got "
                            f"{_describe(out)}")
        nxt, loss = out
        if self.single:
            nxt = (nxt,) if isinstance(nxt, torch.Tensor) else None
        elif isinstance(nxt, (tuple, list)) and len(nxt) == len(self.spec):
            nxt = tuple(nxt)
        else:
            nxt = None
        if nxt is None or not all(isinstance(t, torch.Tensor) for t in nxt):
            what = "a tensor" if self.single else f"a tuple of {len(self.spec)} tensors"
            raise TypeError(f"step({i}, state) returned a next state of {_describe(out[0])}; "
                            f"expected {what}, like state0")
        for k, (t, (shape, dtype, device)) in enumerate(zip(nxt, self.spec)):
            if t.shape != shape or t.dtype != dtype or t.device != device:
                was, now = _spec(shape, dtype, device), _spec(t.shape, t.dtype, t.device)
                raise ValueError(f"step {i} changed state part {k} from {was} to {now}; the "
                                 f"state must keep its shapes, dtypes and devices")
        if loss is not None and not (isinstance(loss, torch.Tensor) and loss.numel() == 1
                                     and loss.is_floating_point()):
            raise TypeError(f"step {i} returned a loss of {_describe(loss)}; expected a "
                            f"one-element floating-point tensor (or None for no loss)")
        return nxt, loss

    def inspect(self) -> None:
        """Record step 0 once (later calls do nothing): check what the step returns, find or
        check the parameters, and measure the sizes a planner needs."""
        if self._sizes is not None:
            return
        self._sizes = (0, 0)  # record() below must not inspect again
        tape = self.record(0, self.state0)
        if tape.loss is not None:
            self.loss_like = (tape.loss.dtype, tape.loss.device)
        roots = [t for t in (*tape.outputs, tape.loss) if t is not None and t.requires_grad]
        inputs = {id(t) for t in tape.inputs}
        known = {id(p) for p in self.params}
        stops = {p.grad_fn for p in self.params if p.grad_fn is not None}
        reached = [t for t in _leaves(roots, stops) if id(t) not in inputs | known]
        if reached and not self.discover:
            raise ValueError(f"step 0 uses a tensor that requires grad but is not in params "
                             f"({_describe(reached[0])}): add it to params, or detach it")
        self.params = (*self.params, *reached)
        self.grads = [None] * len(self.params)
        self._sizes = step_sizes(self, self.state0, tape)

    def forward_loss(self) -> float:
        """The summed loss of one plain forward sweep with autograd off, keeping nothing: the
        loop's value when no gradient is wanted."""
        state, total, i = self.state0, 0.0, 0
        with torch.no_grad():
            while i < self.length if self.length is not None else not self.ended(i, state):
                state, loss = self._call(i, state)
                if loss is not None:
                    total += float(loss)
                    self.loss_like = (loss.dtype, loss.device)
                i += 1
        return total


def _unpack(t: torch.Tensor) -> torch.Tensor:
    return t


def _leaves(roots: Sequence[torch.Tensor], stops: set) -> list[torch.Tensor]:
    """The tensors requiring grad that the graph of `roots` reaches, in a fixed order: leaves,
    and non-leaf tensors whose grad_fn is in `stops` (not walked past). An explicit stack."""
    found, seen = [], set(stops)
    stack = [r.grad_fn for r in reversed(roots) if r.grad_fn is not None]
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        variable = getattr(node, "variable", None)
        if variable is not None:
            found.append(variable)
        stack.extend(n for n, _ in reversed(node.next_functions) if n is not None)
    return found


def _check_state0(state0) -> tuple[torch.Tensor, ...]:
    parts = (state0,) if isinstance(state0, torch.Tensor) else state0
    if not isinstance(parts, (tuple, list)) or not parts or not all(
            isinstance(t, torch.Tensor) for t in parts):
        raise TypeError(f"state0 must be a tensor or a non-empty tuple of tensors, got "
                        f"{_describe(state0)}")
    for k, t in enumerate(parts):
        if not t.is_floating_point():
            raise TypeError(f"state0 part {k} has dtype {t.dtype}; a state must be "
                            f"floating point (gradients flow through it)")
    return tuple(t.detach() for t in parts)


def _check_tensors(name: str, tensors, grad: bool) -> tuple[torch.Tensor, ...]:
    if isinstance(tensors, torch.Tensor):
        tensors = (tensors,)
    try:
        tensors = tuple(tensors)
    except TypeError:
        raise TypeError(f"{name} must be an iterable of tensors, got "
                        f"{_describe(tensors)}") from None
    unique = {}
    for k, t in enumerate(tensors):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name}[{k}] must be a tensor, got {_describe(t)}")
        if grad and not t.requires_grad:
            raise ValueError(f"{name}[{k}] ({_describe(t)}) does not require grad: there is "
                             f"no gradient to take for it")
        unique.setdefault(id(t), t)
    return tuple(unique.values())


def _spec(shape, dtype, device) -> str:
    return f"shape {tuple(shape)} {str(dtype).removeprefix('torch.')} on {device}"


def _describe(value) -> str:
    if isinstance(value, torch.Tensor):
        return f"a tensor of {_spec(value.shape, value.dtype, value.device)}"
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)}"
    return f"type {type(value).__name__}"
