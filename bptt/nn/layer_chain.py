"""An MLP as a chain of layers: the depth-only special case of BPTT (a layer is a step)."""
from __future__ import annotations

import numpy as np

from bptt.engine import losses
from bptt.engine.chain import TapedChain
from bptt.nn.feedback import DirectError, input_error, layer_forward
from bptt.nn.linear import ACTIVATION_NODES, ACTIVATIONS, MLP
from checkpointing.plan import ChainProfile


class LayerChain(TapedChain):
    """`mlp` on one batch as a chain: state l is layer l's input activation, step l is layer l.

    The last step adds the mean softmax cross-entropy against `labels` (class indices, (B,)).
    States differ in size with the layer widths, so `profile()` measures every layer: an uneven
    chain that the adaptive planner must treat step by step. `step`: the training step, which
    keys the MLP's dropout masks (None: no dropout); a recomputed layer redraws its mask.

    The executor's steps run on arrays: a layer is z = x W + b and the engine's activation node
    (or, last, its cross-entropy node) called directly, without Tensors or a graph to sort, so
    a minibatch of a small MLP costs little more than the NumPy it runs. A tape keeps what the
    engine's graph of the layer would (x, the activation, the softmax; the dropout mask before
    the head): the same bytes, and the same gradients to rounding as `mlp`'s own backward.
    `step` (the engine's graph of one layer) remains for whole-graph use.
    A model with a backward variant (`bptt.nn.feedback`) forms its layers' errors by it.
    `parameters`: `mlp.parameters()` if the caller already has it (a training loop walks the
    model once per run, not once per batch); they are the arrays `external_arrays` names.
    """

    def __init__(self, mlp: MLP, inputs: np.ndarray, labels: np.ndarray,
                 step: int | None = None, parameters: list | None = None):
        if inputs.ndim != 2 or inputs.shape[1] != mlp.sizes[0]:
            raise ValueError(f"inputs must have shape (batch, {mlp.sizes[0]}), got {inputs.shape}")
        self.mlp, self.inputs, self.labels = mlp, inputs, labels
        self.length = len(mlp.layers)
        self._parameters = mlp.parameters() if parameters is None else parameters
        self.direct = DirectError()  # dfa: the output error of this chain's reverse sweep
        self.training_step = step
        self._node = ACTIVATION_NODES[mlp.activation]  # looked up once, not once per layer
        self._masked = step is not None and bool(mlp.dropout.p)

    def initial_state(self):
        return (self.inputs,)

    def external_arrays(self):
        return [self.inputs, self.labels] + [p.data for p in self._parameters]

    def step(self, i, state, need_loss):
        h = state[0]
        if i == self.length - 1:  # dropout before the head, as `MLP.layer`
            h = self.mlp.dropout(h, step=self.training_step, call=i)
        z = layer_forward(self.mlp, i, h, self.direct)
        if i < self.length - 1:
            return (ACTIVATIONS[self.mlp.activation](z),), None
        return (z,), (losses.softmax_cross_entropy(z, self.labels) if need_loss else None)

    def _mask(self, i: int, x: np.ndarray) -> np.ndarray | None:
        """The dropout mask (scale factors) on layer i's input, or None: only before the
        head, only in training (a step given), drawn from (seed, step, layer)."""
        if not self._masked or i < self.length - 1:
            return None
        return self.mlp.dropout.mask(x.shape, x.dtype, self.training_step, call=i)

    def advance(self, i, state):
        mask = self._mask(i, state[0])
        z = self.mlp.affine(i, state[0] if mask is None else state[0] * mask)
        if i < self.length - 1:
            return (self._node().run(z),)
        return (z,)

    def record(self, i, state):
        x = state[0]
        mask = self._mask(i, x)
        used = x if mask is None else x * mask
        z = self.mlp.affine(i, used)
        if i < self.length - 1:
            node = self._node()
            return _LayerTape(x, node.run(z), node)
        node = losses.SoftmaxCrossEntropy()
        tape = _LayerTape(x, z, node, mask, used)
        tape.loss_value = float(node.run(z, self.labels))
        return tape

    def reverse(self, i, tape, grad, with_loss=True, keep=False):
        last = i == self.length - 1
        dz = None
        if last:
            if with_loss:
                dz = tape.node.backward(np.asarray(1.0, tape.state[0].dtype))
            if grad is not None and grad[0] is not None:
                dz = grad[0] if dz is None else dz + grad[0]
        elif grad is not None and grad[0] is not None:
            dz = tape.node.backward(grad[0])
        if dz is None:
            return (np.zeros_like(tape.inputs[0]),)
        layer = self.mlp.layers[i]
        weight, bias = layer.weight, layer.bias
        if weight.requires_grad:
            _accumulate(weight, tape.used.T @ dz)
        if bias.requires_grad:
            _accumulate(bias, dz.sum(axis=0))
        dx = input_error(self.mlp, i, dz, self.direct, tape.inputs[0])
        return (dx if tape.mask is None else dx * tape.mask,)

    def profile(self) -> ChainProfile:
        batch, dtype = self.inputs.shape[0], self.inputs.dtype
        sizes = [self.measure_step(i, (np.zeros((batch, width), dtype),))
                 for i, width in enumerate(self.mlp.sizes[:-1])]
        return ChainProfile(self.length, [s for s, _ in sizes], [t for _, t in sizes])


def _accumulate(p, g: np.ndarray) -> None:
    if p.grad is None:
        p.grad = g
    else:
        p.grad += g


class _LayerTape:
    """What `LayerChain.record(l)` keeps: layer l's input, its output, the node (activation
    or cross-entropy) whose cache its backward reads, and with dropout the mask and the input
    as the layer used it (x * mask)."""

    __slots__ = ("inputs", "state", "node", "loss_value", "mask", "used")

    def __init__(self, x: np.ndarray, y: np.ndarray, node, mask=None, used=None):
        self.inputs, self.state, self.node, self.loss_value = (x,), (y,), node, 0.0
        self.mask, self.used = mask, (x if used is None else used)

    def arrays(self) -> list[np.ndarray]:
        """Every array this tape keeps alive."""
        found = [self.inputs[0], self.state[0]]
        if self.mask is not None:
            found += (self.mask, self.used)
        found += [a for a in self.node.saved if isinstance(a, np.ndarray)]
        return found
