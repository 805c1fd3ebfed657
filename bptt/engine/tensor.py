"""The autograd core: `Tensor`, `Function` and the reverse sweep.

The core knows nothing about specific operations (those live in `bptt.engine.functions`). A
`Function` runs its `forward` on raw ndarrays and keeps, through `save()`, exactly the arrays its
`backward` needs: that is the cache. The graph holds no other data: a node points to the nodes that
produced its inputs (edges), not to the input arrays, so the bytes a recorded graph holds are the
bytes its nodes saved (see `graph_bytes`).

`backward` orders the graph with an explicit stack (no recursion, any depth) and frees each node's
cache as soon as its backward has run, unless `retain_graph=True`.
"""
from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
import weakref
from types import SimpleNamespace
from typing import Iterator, Sequence

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

_grad_enabled = True


@contextlib.contextmanager
def no_grad() -> Iterator[None]:
    """Context in which operations record nothing (no creator, no cache): forward-only work."""
    global _grad_enabled
    previous, _grad_enabled = _grad_enabled, False
    try:
        yield
    finally:
        _grad_enabled = previous


def is_grad_enabled() -> bool:
    """True unless inside `no_grad()`."""
    return _grad_enabled


def as_float_array(value, what: str = "tensor data") -> np.ndarray:
    """`value` as a float32/float64 ndarray, or a TypeError naming the dtype that was given.

    Python scalars and lists become float64. Integer, boolean and float16 arrays are refused:
    silently upcasting them hides bugs (labels passed as features, half precision that loses
    gradients), so the caller must cast explicitly.
    """
    if isinstance(value, np.ndarray):
        array = value
    elif isinstance(value, (list, tuple)):
        array = np.asarray(value)  # no dtype yet: np.asarray(["1"], float) would parse strings
        if array.dtype.kind not in "iuf":
            raise TypeError(f"{what} must hold numbers, got a {type(value).__name__} of "
                            f"{array.dtype} ({array.dtype.kind!r} kind) values")
        array = array.astype(np.float64)
    elif isinstance(value, (int, float, np.generic)) and not isinstance(value, bool):
        array = np.asarray(value, dtype=np.float64 if not isinstance(value, np.generic) else None)
    else:
        raise TypeError(f"{what} must be a float32/float64 array or a number, "
                        f"got {type(value).__name__}")
    if array.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{what} must have dtype float32 or float64, got {array.dtype}; "
                        f"cast it explicitly (e.g. x.astype(np.float32))")
    return array


class Tensor:
    """An ndarray with a gradient and a link to the node that produced it.

    Attributes:
        data: the value, a float32 or float64 ndarray.
        grad: the accumulated gradient (same shape and dtype as `data`), or None. Leaves that
            require grad accumulate into it across `backward` calls (RNN weights are used at every
            step, so overwriting would be silently wrong); call `zero_grad()` between updates.
        creator: the `Function` that produced this tensor, or None for a leaf.
        requires_grad: whether gradients flow to (and through) this tensor.
    """

    __slots__ = ("data", "grad", "creator", "output_index", "requires_grad", "name",
                 "retains_grad", "__weakref__")
    __array_priority__ = 100  # so that ndarray @ Tensor defers to Tensor.__rmatmul__

    def __init__(self, data, requires_grad: bool = False, name: str | None = None):
        self.data = as_float_array(data)
        self.grad: np.ndarray | None = None
        self.creator: Function | None = None
        self.output_index = 0
        self.requires_grad = bool(requires_grad)
        self.name = name
        self.retains_grad = False

    # --- plain properties -------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def size(self) -> int:
        return self.data.size

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        label = f", name={self.name!r}" if self.name else ""
        return f"Tensor(shape={self.shape}, dtype={self.dtype}{label})"

    def numpy(self) -> np.ndarray:
        """The value as an ndarray (no copy)."""
        return self.data

    def item(self) -> float:
        """The value of a one-element tensor as a Python float."""
        return float(self.data.reshape(-1)[0]) if self.size == 1 else _not_scalar(self.shape)

    def detach(self) -> "Tensor":
        """A leaf sharing this tensor's data, cut from the graph (truncated BPTT's boundary)."""
        return Tensor(self.data)

    def zero_grad(self) -> None:
        """Forget the accumulated gradient."""
        self.grad = None

    def retain_grad(self) -> "Tensor":
        """Keep this non-leaf tensor's gradient in `.grad` after `backward` (for inspection)."""
        self.retains_grad = True
        return self

    def backward(self, grad=None, retain_graph: bool = False) -> None:
        """Backpropagate from this tensor; `grad` defaults to 1 for a one-element tensor."""
        backward([self], None if grad is None else [grad], retain_graph=retain_graph)

    # --- operators (implemented in bptt.engine.functions) -----------------------------------
    def __add__(self, other):
        return OPERATIONS.add(self, other)

    def __radd__(self, other):
        return OPERATIONS.add(other, self)

    def __sub__(self, other):
        return OPERATIONS.sub(self, other)

    def __rsub__(self, other):
        return OPERATIONS.sub(other, self)

    def __mul__(self, other):
        return OPERATIONS.mul(self, other)

    def __rmul__(self, other):
        return OPERATIONS.mul(other, self)

    def __truediv__(self, other):
        return OPERATIONS.div(self, other)

    def __rtruediv__(self, other):
        return OPERATIONS.div(other, self)

    def __neg__(self):
        return OPERATIONS.neg(self)

    def __matmul__(self, other):
        return OPERATIONS.matmul(self, other)

    def __rmatmul__(self, other):
        return OPERATIONS.matmul(other, self)

    def __getitem__(self, index):
        return OPERATIONS.getitem(self, index)

    def sum(self, axis=None, keepdims: bool = False):
        return OPERATIONS.sum(self, axis=axis, keepdims=keepdims)

    def mean(self, axis=None, keepdims: bool = False):
        return OPERATIONS.mean(self, axis=axis, keepdims=keepdims)

    def reshape(self, *shape):
        return OPERATIONS.reshape(self, shape[0] if len(shape) == 1 and isinstance(shape[0], tuple)
                                  else shape)

    def transpose(self, *axes):
        return OPERATIONS.transpose(self, axes or None)

    @property
    def T(self):
        return OPERATIONS.transpose(self, None)

    def tanh(self):
        return OPERATIONS.tanh(self)

    def sigmoid(self):
        return OPERATIONS.sigmoid(self)

    def relu(self):
        return OPERATIONS.relu(self)

    def exp(self):
        return OPERATIONS.exp(self)

    def log(self):
        return OPERATIONS.log(self)


def _not_scalar(shape):
    raise ValueError(f"item() needs a one-element tensor, got shape {shape}")


#: The operations behind Tensor's operators and methods (`a + b`, `x.tanh()`, ...). The core only
#: names them: `bptt.engine.functions` fills this table when it is imported (the engine package
#: imports it), so the operations depend on the core and never the other way round.
OPERATIONS = SimpleNamespace()


class Function(ABC):
    """One node of the graph: `forward` on ndarrays, `backward` of its output gradients.

    Subclasses implement `forward(self, *arrays, **options)` returning an ndarray (or a tuple of
    them for several outputs) and `backward(self, *grads)` returning one gradient per input (None
    where an input needs none). `self.save(...)` declares what backward needs: the cache.
    """

    def __call__(self, *inputs, **options):
        tensors = [x if isinstance(x, Tensor) else None for x in inputs]
        arrays = [x.data if isinstance(x, Tensor) else _constant(x, tensors) for x in inputs]
        self.saved: tuple = ()
        result = self.forward(*arrays, **options)
        single = not isinstance(result, tuple)
        results = (result,) if single else result
        needs_grad = _grad_enabled and any(t is not None and t.requires_grad for t in tensors)
        outputs = [Tensor(r, requires_grad=needs_grad) for r in results]
        if needs_grad:
            self.needs_input_grad = tuple(t is not None and t.requires_grad for t in tensors)
            self.edges = tuple(_edge(t) for t in tensors)
            self.outputs = tuple(weakref.ref(o) for o in outputs)
            self.output_meta = tuple((r.shape, r.dtype) for r in results)
            for k, o in enumerate(outputs):
                o.creator, o.output_index = self, k
        else:
            self.saved = ()  # nothing will run backward: keep no cache
        return outputs[0] if single else tuple(outputs)

    def run(self, *arrays, **options):
        """`forward` on ndarrays, its cache kept for one direct call of `backward`: the lean path
        for a step that is a single node (no Tensors, no graph, every input needing a gradient)."""
        self.saved = ()
        self.needs_input_grad = (True,) * len(arrays)
        return self.forward(*arrays, **options)

    def save(self, *arrays) -> None:
        """Keep `arrays` for backward (the cache). Only kept when a gradient is needed."""
        self.saved = arrays

    @abstractmethod
    def forward(self, *arrays, **options):
        """The operation on ndarrays: one array, or a tuple of them for several outputs."""

    @abstractmethod
    def backward(self, *grads):
        """One gradient per input (None where none is needed), from one per output."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"


def _constant(value, tensors) -> np.ndarray:
    """A non-Tensor operand as an array. A Python number takes the dtype of the Tensor operands,
    so that `0.5 * h` stays float32 for a float32 `h` (a float64 0-d array would upcast it)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        dtypes = [t.dtype for t in tensors if t is not None]
        return np.asarray(value, dtype=np.result_type(*dtypes) if dtypes else np.float64)
    return as_float_array(value, "operand")


def _edge(tensor: Tensor | None):
    """Where an input's gradient goes: its creator node and output slot, or the leaf itself."""
    if tensor is None or not tensor.requires_grad:
        return None
    if tensor.creator is None:
        return tensor
    return (tensor.creator, tensor.output_index)


def topological_order(roots: Sequence[Tensor]) -> list[Function]:
    """The nodes reachable from `roots`, each after every node that consumes its outputs.

    Iterative depth-first search with an explicit stack and a visited set: an unrolled sequence of
    100,000 steps is 100,000 nested nodes, far beyond Python's recursion limit.
    """
    post_order: list[Function] = []
    visited: set[int] = set()
    stack: list[tuple[Function, bool]] = [(r.creator, False) for r in reversed(roots)
                                          if r.creator is not None]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            post_order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        for edge in reversed(node.edges):
            if isinstance(edge, tuple) and id(edge[0]) not in visited:
                stack.append((edge[0], False))
    post_order.reverse()
    return post_order


def _check_grad(grad, like: Tensor) -> np.ndarray:
    grad = grad.data if isinstance(grad, Tensor) else as_float_array(grad, "seed gradient")
    if grad.shape != like.shape:
        raise ValueError(f"seed gradient has shape {grad.shape}, expected {like.shape}")
    return grad.astype(like.dtype, copy=False)


def backward(roots: Sequence[Tensor], grads: Sequence | None = None,
             retain_graph: bool = False) -> None:
    """Backpropagate from several outputs at once, seeding each with its gradient.

    `grads[k]` is the gradient of the objective with respect to `roots[k]` (None or omitted:
    ones for a one-element root). Leaf tensors that require grad accumulate into `.grad`.
    Each node's cache is freed after its backward unless `retain_graph` (truncated BPTT with
    overlapping windows reverses the same tape more than once).
    """
    roots = list(roots)
    grads = list(grads) if grads is not None else [None] * len(roots)
    if len(grads) != len(roots):
        raise ValueError(f"got {len(grads)} seed gradients for {len(roots)} outputs")
    pending: dict[tuple[int, int], np.ndarray] = {}
    for root, grad in zip(roots, grads):
        if not root.requires_grad:
            raise RuntimeError(f"{root!r} does not require grad: nothing to backpropagate")
        if grad is None:
            if root.size != 1:
                raise ValueError(f"backward() on a tensor of shape {root.shape} needs a seed "
                                 f"gradient; only one-element tensors default to 1")
            grad = np.ones_like(root.data)
        grad = _check_grad(grad, root)
        if root.creator is None:
            _accumulate_leaf(root, grad)
        else:
            _accumulate(pending, (id(root.creator), root.output_index), grad)
    for node in topological_order(roots):
        if node.saved is None:
            raise RuntimeError(f"{node!r} was already backpropagated and its cache freed; "
                               f"pass retain_graph=True to reverse a graph twice")
        output_grads = []
        for k, (shape, dtype) in enumerate(node.output_meta):
            g = pending.pop((id(node), k), None)
            output = node.outputs[k]()
            if output is not None and output.retains_grad:
                output.grad = g
            output_grads.append(np.zeros(shape, dtype) if g is None else g)
        input_grads = node.backward(*output_grads)
        if not isinstance(input_grads, tuple):
            input_grads = (input_grads,)
        for edge, needed, g in zip(node.edges, node.needs_input_grad, input_grads):
            if edge is None or not needed or g is None:
                continue
            if isinstance(edge, Tensor):
                _accumulate_leaf(edge, g)
            else:
                _accumulate(pending, (id(edge[0]), edge[1]), g)
        if not retain_graph:
            node.saved = None


def _accumulate(pending: dict, key, grad: np.ndarray) -> None:
    previous = pending.get(key)
    pending[key] = grad if previous is None else previous + grad


def _accumulate_leaf(leaf: Tensor, grad: np.ndarray) -> None:
    if grad.shape != leaf.shape:
        raise RuntimeError(f"gradient of shape {grad.shape} reached a leaf of shape {leaf.shape}")
    if leaf.grad is None:
        leaf.grad = np.array(grad, dtype=leaf.dtype, copy=True)  # never alias a node's buffer
    else:
        leaf.grad += grad


def graph_bytes(roots: Sequence[Tensor], exclude: Sequence[np.ndarray] = ()) -> int:
    """Bytes of the arrays cached by the graph behind `roots`, each buffer counted once.

    Views are counted by the buffer they view. Buffers of leaves that require grad (parameters)
    and of `exclude` (e.g. the input sequence, which exists whatever the strategy) are not part
    of the cache.
    """
    seen: set[int] = set()
    leaves = {id(_root_buffer(t.data)) for t in _leaves(roots)}
    leaves.update(id(_root_buffer(a)) for a in exclude)
    total = 0
    for node in topological_order(roots):
        for array in node.saved or ():
            if isinstance(array, np.ndarray):
                buffer = _root_buffer(array)
                if id(buffer) not in seen and id(buffer) not in leaves:
                    seen.add(id(buffer))
                    total += buffer.nbytes
    return total


def _root_buffer(array: np.ndarray) -> np.ndarray:
    while isinstance(array.base, np.ndarray):
        array = array.base
    return array


def _leaves(roots: Sequence[Tensor]) -> list[Tensor]:
    leaves = []
    for node in topological_order(roots):
        leaves.extend(e for e in node.edges if isinstance(e, Tensor))
    return leaves
