"""An MLP as a chain of layers: the depth-only special case of BPTT (a layer is a step)."""
from __future__ import annotations

import numpy as np

from bptt.engine import losses
from bptt.engine.chain import TapedChain
from bptt.nn.linear import ACTIVATIONS, MLP
from checkpointing.plan import ChainProfile


class LayerChain(TapedChain):
    """`mlp` on one batch as a chain: state l is layer l's input activation, step l is layer l.

    The last step adds the mean softmax cross-entropy against `labels` (class indices, (B,)).
    States differ in size with the layer widths, so `profile()` measures every layer: an uneven
    chain that the adaptive planner must treat step by step.
    """

    def __init__(self, mlp: MLP, inputs: np.ndarray, labels: np.ndarray):
        if inputs.ndim != 2 or inputs.shape[1] != mlp.sizes[0]:
            raise ValueError(f"inputs must have shape (batch, {mlp.sizes[0]}), got {inputs.shape}")
        self.mlp, self.inputs, self.labels = mlp, inputs, labels
        self.length = len(mlp.layers)

    def initial_state(self):
        return (self.inputs,)

    def external_arrays(self):
        return [self.inputs, self.labels] + [p.data for p in self.mlp.parameters()]

    def step(self, i, state, need_loss):
        z = self.mlp.layers[i](state[0])
        if i < self.length - 1:
            return (ACTIVATIONS[self.mlp.activation](z),), None
        return (z,), (losses.softmax_cross_entropy(z, self.labels) if need_loss else None)

    def profile(self) -> ChainProfile:
        batch, dtype = self.inputs.shape[0], self.inputs.dtype
        sizes = [self.measure_step(i, (np.zeros((batch, width), dtype),))
                 for i, width in enumerate(self.mlp.sizes[:-1])]
        return ChainProfile(self.length, [s for s, _ in sizes], [t for _, t in sizes])
