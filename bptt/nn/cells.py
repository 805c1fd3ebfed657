"""Recurrent cells: `RNNCell` (tanh Elman), `LSTMCell` and `GRUCell`, and `make_cell`.

A cell maps (x_t, state) to the next state; the state is a tuple of (B, H) tensors: (h,) for the
RNN and GRU cells, (h, c) for the LSTM. Each cell runs its step in one of two ways:
`fused=True` records one node per step (`bptt.engine.cell_functions`, hand-written backward: fast,
small cache); `fused=False` builds the same step from engine operations, the reference the fused
step is tested against.

Weights are drawn from U(-1/sqrt(H), 1/sqrt(H)) as PyTorch does, in float64 and then cast, so a
float32 cell holds the float32 rounding of its float64 twin built from the same seed.
"""
from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from bptt.engine.cell_functions import GRUCore, GRUStep, LSTMCore, LSTMStep, RNNCore, RNNStep
from bptt.nn.linear import _check_dtype, _check_size
from bptt.nn.module import Module, Parameter
from bptt.engine.tensor import Tensor


class RecurrentCell(Module, ABC):
    """Base of the cells: sizes, dtype, weight creation, state handling and input checks.

    Subclasses set `state_names`, `core` and `parameter_shapes`, and write `fused_step`,
    `composed_step` (each (x, state tuple) -> new state tuple, on validated Tensors) and
    `affine_parameters`.
    """

    state_names: tuple[str, ...] = ("h",)
    # The step's nonlinear part (`bptt.engine.cell_functions`), for array chains.
    core: type = RNNCore

    def __init__(self, input_size: int, hidden_size: int, rng: np.random.Generator,
                 dtype=np.float64, fused: bool = True):
        _check_size("input_size", input_size)
        _check_size("hidden_size", hidden_size)
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng must be a numpy.random.Generator (e.g. np.random.default_rng(0)),"
                            f" got {type(rng).__name__}")
        self.input_size, self.hidden_size = int(input_size), int(hidden_size)
        self.dtype = _check_dtype(dtype)
        self.fused = bool(fused)
        limit = 1.0 / np.sqrt(hidden_size)
        for name, shape in self.parameter_shapes(self.input_size, self.hidden_size):
            value = rng.uniform(-limit, limit, size=shape).astype(self.dtype)
            setattr(self, name, Parameter(value, name=name))

    @staticmethod
    @abstractmethod
    def parameter_shapes(D: int, H: int) -> list[tuple[str, tuple[int, ...]]]:
        """(name, shape) of each parameter, in the order they are drawn from `rng`."""

    @property
    def state_size(self) -> int:
        """Number of arrays in the state."""
        return len(self.state_names)

    def initial_state(self, batch: int) -> tuple[np.ndarray, ...]:
        """The zero state for `batch` sequences: `state_size` arrays of shape (batch, H)."""
        _check_size("batch", batch)
        return tuple(np.zeros((batch, self.hidden_size), self.dtype) for _ in self.state_names)

    @abstractmethod
    def affine_parameters(self) -> tuple[Parameter, Parameter, Parameter, Parameter | None]:
        """(W_x, W_h, b_x, b_h or None): the step's input projection a = x W_x + b_x and
        recurrent product u = h W_h (+ b_h), between which `core` runs."""

    def hidden(self, state: tuple) -> Tensor:
        """The hidden output h of `state` (what a read-out layer sees)."""
        return state[0]

    def forward(self, x, state: tuple) -> tuple[Tensor, ...]:
        """The next state from input x (B, D) and `state` (Tensors or ndarrays of shape (B, H))."""
        x, state = self._check(x, state)
        return self.fused_step(x, state) if self.fused else self.composed_step(x, state)

    @abstractmethod
    def fused_step(self, x: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        """The step as one node with a hand-written backward (`bptt.engine.cell_functions`)."""

    @abstractmethod
    def composed_step(self, x: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        """The step in engine operations: the reference the fused step is checked against."""

    def _check(self, x, state) -> tuple[Tensor, tuple[Tensor, ...]]:
        name, H = type(self).__name__, self.hidden_size
        x = self._checked("x", x, None)
        if not isinstance(state, tuple) or len(state) != self.state_size:
            got = f"a tuple of {len(state)}" if isinstance(state, tuple) else type(state).__name__
            raise ValueError(f"{name}: state must be a tuple of {self.state_size} "
                             f"({', '.join(self.state_names)}), got {got}")
        return x, tuple(self._checked(f"state {s}", a, (x.shape[0], H))
                        for s, a in zip(self.state_names, state))

    def _checked(self, what: str, value, shape) -> Tensor:
        """`value` as a Tensor after checking its type, shape ((B, D) for x) and dtype."""
        if not isinstance(value, (Tensor, np.ndarray)):
            raise TypeError(f"{what} must be a Tensor or an ndarray, got {type(value).__name__}")
        name = type(self).__name__
        if shape is None and (value.ndim != 2 or value.shape[1] != self.input_size):
            raise ValueError(f"{name}: x must have shape (batch, {self.input_size}), "
                             f"got {value.shape}")
        if shape is not None and value.shape != shape:
            raise ValueError(f"{name}: {what} must have shape {shape} (batch {shape[0]}, hidden "
                             f"{shape[1]}), got {value.shape}")
        if value.dtype != self.dtype:
            raise TypeError(f"{what} has dtype {value.dtype} but the cell is {self.dtype}")
        return value if isinstance(value, Tensor) else Tensor(value)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.input_size}, {self.hidden_size}, "
                f"dtype={self.dtype.name}, fused={self.fused})")


class RNNCell(RecurrentCell):
    """Tanh cell (Elman, 1990): h' = tanh(x W_x + h W_h + b). W_x (D, H), W_h (H, H), b (H,)."""

    @staticmethod
    def parameter_shapes(D, H):
        return [("W_x", (D, H)), ("W_h", (H, H)), ("b", (H,))]

    def affine_parameters(self):
        return self.W_x, self.W_h, self.b, None

    def fused_step(self, x, state):
        return (RNNStep()(x, state[0], self.W_x, self.W_h, self.b),)

    def composed_step(self, x, state):
        return ((x @ self.W_x + state[0] @ self.W_h + self.b).tanh(),)


class LSTMCell(RecurrentCell):
    """LSTM cell, state (h, c). W_x (D, 4H), W_h (H, 4H), b (4H,), gate columns i, f, g, o:

        [i, f, g, o] = [sigmoid, sigmoid, tanh, sigmoid](x W_x + h W_h + b)
        c' = f * c + i * g,   h' = o * tanh(c')

    (Hochreiter & Schmidhuber, 1997; forget gate: Gers et al., 2000; PyTorch's gate order).
    """

    state_names = ("h", "c")
    core = LSTMCore

    @staticmethod
    def parameter_shapes(D, H):
        return [("W_x", (D, 4 * H)), ("W_h", (H, 4 * H)), ("b", (4 * H,))]

    def affine_parameters(self):
        return self.W_x, self.W_h, self.b, None

    def fused_step(self, x, state):
        return LSTMStep()(x, state[0], state[1], self.W_x, self.W_h, self.b)

    def composed_step(self, x, state):
        h, c = state
        H = self.hidden_size
        z = x @ self.W_x + h @ self.W_h + self.b
        i, f = z[:, :H].sigmoid(), z[:, H:2 * H].sigmoid()
        g, o = z[:, 2 * H:3 * H].tanh(), z[:, 3 * H:].sigmoid()
        c_new = f * c + i * g
        return o * c_new.tanh(), c_new


class GRUCell(RecurrentCell):
    """GRU cell in PyTorch's formulation. W_x (D, 3H), W_h (H, 3H), b_x (3H,), b_h (3H,), gate
    columns r, z, n; with a = x W_x + b_x and u = h W_h + b_h:

        r = sigmoid(a_r + u_r),  z = sigmoid(a_z + u_z),  n = tanh(a_n + r * u_n)
        h' = (1 - z) * n + z * h

    (Cho et al., 2014; the reset gate acts on u_n, after the recurrent product, as in cuDNN.)
    """

    core = GRUCore

    @staticmethod
    def parameter_shapes(D, H):
        return [("W_x", (D, 3 * H)), ("W_h", (H, 3 * H)), ("b_x", (3 * H,)), ("b_h", (3 * H,))]

    def affine_parameters(self):
        return self.W_x, self.W_h, self.b_x, self.b_h

    def fused_step(self, x, state):
        return (GRUStep()(x, state[0], self.W_x, self.W_h, self.b_x, self.b_h),)

    def composed_step(self, x, state):
        h = state[0]
        H = self.hidden_size
        a = x @ self.W_x + self.b_x
        u = h @ self.W_h + self.b_h
        r = (a[:, :H] + u[:, :H]).sigmoid()
        z = (a[:, H:2 * H] + u[:, H:2 * H]).sigmoid()
        n = (a[:, 2 * H:] + r * u[:, 2 * H:]).tanh()
        return ((1 - z) * n + z * h,)


CELLS = {"rnn": RNNCell, "lstm": LSTMCell, "gru": GRUCell}


def make_cell(kind: str, input_size: int, hidden_size: int, rng: np.random.Generator,
              dtype=np.float64, fused: bool = True) -> RecurrentCell:
    """The cell called `kind` ("rnn", "lstm" or "gru"), or a ValueError listing the choices."""
    try:
        cls = CELLS[kind]
    except (KeyError, TypeError):
        raise ValueError(f"unknown cell kind {kind!r}; choose one of {list(CELLS)}") from None
    return cls(input_size, hidden_size, rng, dtype=dtype, fused=fused)
