"""Operations on `Tensor`s: one `Function` per operation, its backward right beside its forward.

Each `forward` runs on raw ndarrays and declares with `self.save(...)` exactly what its `backward`
needs: the cache that memory strategies trade against recomputation. Shapes and dtypes are saved as
plain tuples, so they cost nothing in `graph_bytes`. Non-Tensor operands are constants (no
gradient). Elementwise operations broadcast as NumPy does; `unbroadcast` sums each gradient back to
its input's shape, and every gradient has the dtype of the input it flows to.
"""
from __future__ import annotations

import itertools
import math
from typing import Sequence

import numpy as np

from bptt.engine.tensor import OPERATIONS, Function, Tensor


def unbroadcast(grad: np.ndarray, shape: tuple[int, ...], dtype) -> np.ndarray:
    """The gradient of a broadcast result summed back to an input of `shape`, cast to `dtype`."""
    extra = grad.ndim - len(shape)
    if extra:
        grad = grad.sum(axis=tuple(range(extra)))
    stretched = tuple(k for k, n in enumerate(shape) if n == 1 and grad.shape[k] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return grad.astype(dtype, copy=False)


def _broadcasting(op: str, ufunc, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    # Let NumPy try first: checking shapes beforehand would cost every call, not just bad ones.
    try:
        return ufunc(a, b)
    except ValueError:
        raise ValueError(f"{op}: shapes {a.shape} and {b.shape} do not broadcast") from None


# --- elementwise, two operands -----------------------------------------------------------------
class Add(Function):
    def forward(self, a, b):
        self.save(a.shape, a.dtype, b.shape, b.dtype)
        return _broadcasting("add", np.add, a, b)

    def backward(self, g):
        a_shape, a_dtype, b_shape, b_dtype = self.saved
        need_a, need_b = self.needs_input_grad
        return (unbroadcast(g, a_shape, a_dtype) if need_a else None,
                unbroadcast(g, b_shape, b_dtype) if need_b else None)


class Sub(Function):
    def forward(self, a, b):
        self.save(a.shape, a.dtype, b.shape, b.dtype)
        return _broadcasting("sub", np.subtract, a, b)

    def backward(self, g):
        a_shape, a_dtype, b_shape, b_dtype = self.saved
        need_a, need_b = self.needs_input_grad
        return (unbroadcast(g, a_shape, a_dtype) if need_a else None,
                unbroadcast(-g, b_shape, b_dtype) if need_b else None)


class Mul(Function):
    def forward(self, a, b):
        self.save(a, b)
        return _broadcasting("mul", np.multiply, a, b)

    def backward(self, g):
        a, b = self.saved
        need_a, need_b = self.needs_input_grad
        return (unbroadcast(g * b, a.shape, a.dtype) if need_a else None,
                unbroadcast(g * a, b.shape, b.dtype) if need_b else None)


class Div(Function):
    def forward(self, a, b):
        self.save(a, b)
        return _broadcasting("div", np.divide, a, b)

    def backward(self, g):
        a, b = self.saved
        need_a, need_b = self.needs_input_grad
        return (unbroadcast(g / b, a.shape, a.dtype) if need_a else None,
                unbroadcast(-g * a / (b * b), b.shape, b.dtype) if need_b else None)


class MatMul(Function):
    def forward(self, a, b):
        if a.ndim != 2 or b.ndim != 2:
            raise ValueError(f"matmul: needs 2-D operands, got shapes {a.shape} and {b.shape}")
        if a.shape[1] != b.shape[0]:
            raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not align "
                             f"({a.shape[1]} != {b.shape[0]})")
        self.save(a, b)
        return a @ b

    def backward(self, g):
        a, b = self.saved
        need_a, need_b = self.needs_input_grad
        return ((g @ b.T).astype(a.dtype, copy=False) if need_a else None,
                (a.T @ g).astype(b.dtype, copy=False) if need_b else None)


# --- elementwise, one operand ------------------------------------------------------------------
class Neg(Function):
    def forward(self, x):
        return -x

    def backward(self, g):
        return -g


class Tanh(Function):
    def forward(self, x):
        y = np.tanh(x)
        self.save(y)
        return y

    def backward(self, g):
        (y,) = self.saved
        return g * (1 - y * y)


class Sigmoid(Function):
    def forward(self, x):
        # exp of -|x| never overflows; both branches of the logistic function are then stable.
        e = np.exp(-np.abs(x))
        y = np.where(x >= 0, 1 / (1 + e), e / (1 + e))
        self.save(y)
        return y

    def backward(self, g):
        (y,) = self.saved
        return g * y * (1 - y)


class ReLU(Function):
    def forward(self, x):
        y = np.maximum(x, 0)
        self.save(y)  # the output, not a mask: the next node usually saves it anyway
        return y

    def backward(self, g):
        (y,) = self.saved
        return g * (y > 0)


class Exp(Function):
    def forward(self, x):
        with np.errstate(over="ignore"):  # inf, as NumPy gives; the losses report non-finite values
            y = np.exp(x)
        self.save(y)
        return y

    def backward(self, g):
        (y,) = self.saved
        return g * y


class Log(Function):
    def forward(self, x):
        with np.errstate(divide="ignore", invalid="ignore"):  # -inf / nan, as NumPy gives
            y = np.log(x)
        self.save(x)
        return y

    def backward(self, g):
        (x,) = self.saved
        with np.errstate(divide="ignore", invalid="ignore"):
            return g / x


class Softmax(Function):
    def forward(self, x, axis=-1):
        e = np.exp(x - x.max(axis=axis, keepdims=True))
        y = e / e.sum(axis=axis, keepdims=True)
        self.save(y, axis)
        return y

    def backward(self, g):
        y, axis = self.saved
        return y * (g - (g * y).sum(axis=axis, keepdims=True))


# --- shape -------------------------------------------------------------------------------------
class GetItem(Function):
    def forward(self, x, index):
        self.save(x.shape, x.dtype, index)
        return x[index]

    def backward(self, g):
        shape, dtype, index = self.saved
        grad = np.zeros(shape, dtype)
        parts = index if isinstance(index, tuple) else (index,)
        if any(isinstance(p, (list, np.ndarray)) for p in parts):
            np.add.at(grad, index, g)  # an index may repeat: its gradients add up
        else:
            grad[index] = g
        return grad


def _axes(axis, ndim: int) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(ndim))
    return tuple(sorted(a % ndim for a in (axis if isinstance(axis, tuple) else (axis,))))


class Sum(Function):
    def forward(self, x, axis=None, keepdims=False):
        y = x.sum(axis=axis, keepdims=keepdims)  # NumPy validates the axes first
        self.save(x.shape, _axes(axis, x.ndim), keepdims)
        return y

    def backward(self, g):
        shape, axes, keepdims = self.saved
        return np.broadcast_to(g if keepdims else np.expand_dims(g, axes), shape)


class Mean(Sum):
    """`Sum` divided by the number of elements summed; its backward is Sum's, scaled."""

    def forward(self, x, axis=None, keepdims=False):
        total = super().forward(x, axis, keepdims)
        return total / self._count()

    def backward(self, g):
        return super().backward(g / self._count())

    def _count(self) -> int:
        shape, axes, _ = self.saved
        return math.prod(shape[a] for a in axes)


class Reshape(Function):
    def forward(self, x, shape):
        self.save(x.shape)
        return x.reshape(shape)

    def backward(self, g):
        (shape,) = self.saved
        return g.reshape(shape)


class Transpose(Function):
    def forward(self, x, axes=None):
        y = np.transpose(x, axes)  # NumPy validates the axes first
        self.save(None if axes is None else tuple(a % x.ndim for a in axes))
        return y

    def backward(self, g):
        (axes,) = self.saved
        return np.transpose(g, None if axes is None else np.argsort(axes))


class Concatenate(Function):
    def forward(self, *arrays, axis=0):
        y = np.concatenate(arrays, axis=axis)
        axis %= y.ndim
        offsets = list(itertools.accumulate(a.shape[axis] for a in arrays))[:-1]
        self.save(axis, offsets, [a.dtype for a in arrays])
        return y

    def backward(self, g):
        axis, offsets, dtypes = self.saved
        return tuple(part.astype(dtype, copy=False)
                     for part, dtype in zip(np.split(g, offsets, axis=axis), dtypes))


class Stack(Function):
    def forward(self, *arrays, axis=0):
        y = np.stack(arrays, axis=axis)
        self.save(axis % y.ndim, [a.dtype for a in arrays])
        return y

    def backward(self, g):
        axis, dtypes = self.saved
        parts = np.moveaxis(g, axis, 0)
        return tuple(part.astype(dtype, copy=False) for part, dtype in zip(parts, dtypes))


# --- the public functions ----------------------------------------------------------------------
def add(a, b) -> Tensor:
    """a + b, broadcasting."""
    return Add()(a, b)


def sub(a, b) -> Tensor:
    """a - b, broadcasting."""
    return Sub()(a, b)


def mul(a, b) -> Tensor:
    """a * b elementwise, broadcasting."""
    return Mul()(a, b)


def div(a, b) -> Tensor:
    """a / b elementwise, broadcasting."""
    return Div()(a, b)


def neg(x) -> Tensor:
    """-x."""
    return Neg()(x)


def matmul(a, b) -> Tensor:
    """(M, K) @ (K, N) -> (M, N); only 2-D operands."""
    return MatMul()(a, b)


def getitem(x, index) -> Tensor:
    """x[index]: ints, slices, None, Ellipsis, boolean masks and integer arrays (which may repeat
    an element; the gradients then add up)."""
    return GetItem()(x, index=index)


def sum(x, axis=None, keepdims: bool = False) -> Tensor:  # noqa: A001 (NumPy's name)
    """Sum over `axis` (an int, a tuple, or None for all)."""
    return Sum()(x, axis=axis, keepdims=keepdims)


def mean(x, axis=None, keepdims: bool = False) -> Tensor:
    """Mean over `axis` (an int, a tuple, or None for all)."""
    return Mean()(x, axis=axis, keepdims=keepdims)


def reshape(x, shape) -> Tensor:
    """x with a new shape of the same size (-1 infers one dimension)."""
    return Reshape()(x, shape=shape)


def transpose(x, axes=None) -> Tensor:
    """x with its axes permuted (None: reversed). `axes` may also be given as ((1, 0),)."""
    if axes is not None and len(axes) == 1 and isinstance(axes[0], (tuple, list)):
        axes = axes[0]
    return Transpose()(x, axes=None if axes is None else tuple(axes))


def tanh(x) -> Tensor:
    """Hyperbolic tangent."""
    return Tanh()(x)


def sigmoid(x) -> Tensor:
    """Logistic function 1 / (1 + exp(-x)), computed without overflow for any x."""
    return Sigmoid()(x)


def relu(x) -> Tensor:
    """max(x, 0); the gradient at 0 is taken as 0."""
    return ReLU()(x)


def exp(x) -> Tensor:
    """e^x (inf on overflow, as NumPy)."""
    return Exp()(x)


def log(x) -> Tensor:
    """Natural logarithm (-inf at 0 and nan below, as NumPy, without warnings)."""
    return Log()(x)


def softmax(x, axis: int = -1) -> Tensor:
    """exp(x) / sum(exp(x)) along `axis`, shifted by the maximum so it never overflows."""
    return Softmax()(x, axis=axis)


def concatenate(tensors: Sequence, axis: int = 0) -> Tensor:
    """Join tensors along an existing axis."""
    if len(tensors) == 0:
        raise ValueError("concatenate needs at least one tensor, got none")
    return Concatenate()(*tensors, axis=axis)


def stack(tensors: Sequence, axis: int = 0) -> Tensor:
    """Join same-shaped tensors along a new axis."""
    if len(tensors) == 0:
        raise ValueError("stack needs at least one tensor, got none")
    return Stack()(*tensors, axis=axis)


__all__ = ["add", "concatenate", "div", "exp", "getitem", "log", "matmul",
           "mean", "mul", "neg", "relu", "reshape", "sigmoid", "softmax",
           "stack", "sub", "sum", "tanh", "transpose", "unbroadcast"]

# Tensor's operators and methods (`a + b`, `x.sum()`, ...) call these.
vars(OPERATIONS).update(add=add, sub=sub, mul=mul, div=div, neg=neg, matmul=matmul,
                        getitem=getitem, sum=sum, mean=mean, reshape=reshape,
                        transpose=transpose, tanh=tanh, sigmoid=sigmoid, relu=relu,
                        exp=exp, log=log)
