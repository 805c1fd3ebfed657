"""Fully connected layers: `Linear` and `MLP`, whose layers can be inspected after backward."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from bptt.nn.dropout import Dropout
from bptt.nn.init import initialiser
from bptt.nn.module import Module, Parameter
from bptt.engine.functions import ReLU, Sigmoid, Tanh
from bptt.engine.tensor import FLOAT_DTYPES, Tensor

ACTIVATIONS = {"tanh": Tensor.tanh, "relu": Tensor.relu, "sigmoid": Tensor.sigmoid}
# The engine's node of each activation, for layers run on arrays (the one forward and backward).
ACTIVATION_NODES = {"tanh": Tanh, "relu": ReLU, "sigmoid": Sigmoid}

# The initialisation that keeps variances stable for each activation.
DEFAULT_INIT = {"tanh": "xavier", "sigmoid": "xavier", "relu": "he"}


class Linear(Module):
    """y = x @ W + b, with W of shape (in_features, out_features) and b of shape (out_features,).

    x has shape (batch, in_features). W is drawn by `init` ("xavier" uniform or "he" normal) from
    `rng`; b starts at zero.
    """

    def __init__(self, in_features: int, out_features: int, rng: np.random.Generator,
                 init: str = "xavier", dtype=np.float64):
        _check_size("in_features", in_features)
        _check_size("out_features", out_features)
        dtype = _check_dtype(dtype)
        draw = initialiser(init)
        self.in_features, self.out_features, self.init = in_features, out_features, init
        self.weight = Parameter(draw(in_features, out_features, rng, dtype), name="weight")
        self.bias = Parameter(np.zeros(out_features, dtype=dtype), name="bias")

    def forward(self, x) -> Tensor:
        x = x if isinstance(x, Tensor) else Tensor(x)
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"Linear({self.in_features}, {self.out_features}) expects input of "
                             f"shape (batch, {self.in_features}), got {x.shape}")
        return x @ self.weight + self.bias


@dataclass(frozen=True)
class LayerRecord:
    """What one MLP layer l cached in an inspected forward pass.

    `x` is its input activation x^(l-1) (batch, in) (after dropout, for the layer it precedes),
    `z` its pre-activation z^(l) = x W + b (batch, out), `out` its output x^(l) = f(z^(l))
    (z^(l) itself for the last layer: the logits) and, once `backward` has run, `delta` is
    δ^(l) = ∂L/∂z^(l) (batch, out), so that ∂L/∂W^(l) = x^(l-1)ᵀ δ^(l) and
    ∂L/∂b^(l) = Σ_batch δ^(l).
    """

    input: Tensor
    pre_activation: Tensor
    output: Tensor

    @property
    def x(self) -> np.ndarray:
        return self.input.data

    @property
    def z(self) -> np.ndarray:
        return self.pre_activation.data

    @property
    def out(self) -> np.ndarray:
        return self.output.data

    @property
    def delta(self) -> np.ndarray:
        if self.pre_activation.grad is None:
            raise RuntimeError("delta is only known after backward() from a loss that depends "
                               "on this layer")
        return self.pre_activation.grad


class MLP(Module):
    """A stack of `Linear` layers with `activation` between them (none after the last).

    `sizes` = (in, hidden..., out) gives len(sizes) - 1 layers. Weights use Xavier init for
    tanh/sigmoid and He init for relu. `dropout` > 0 puts a `Dropout` before the last layer
    (the head), active only in a forward given a training `step`; its mask seed is drawn from
    `rng` after the weights, so the weights are those of the same MLP without dropout.
    """

    def __init__(self, sizes: Sequence[int], activation: str = "tanh", *,
                 rng: np.random.Generator, dtype=np.float64, dropout: float = 0.0):
        sizes = list(sizes)
        if len(sizes) < 2:
            raise ValueError(f"sizes needs at least (in, out), got {sizes}")
        for size in sizes:
            _check_size(f"every entry of sizes {sizes}", size)
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; "
                             f"choose one of {sorted(ACTIVATIONS)}")
        self.sizes, self.activation = sizes, activation
        self.dtype = _check_dtype(dtype)
        self.layers = [Linear(n_in, n_out, rng, init=DEFAULT_INIT[activation], dtype=self.dtype)
                       for n_in, n_out in zip(sizes[:-1], sizes[1:])]
        self.dropout = Dropout(dropout, seed=int(rng.integers(2 ** 63)) if dropout else 0)
        self.layer_records: list[LayerRecord] = []

    def layer(self, k: int, h, step: int | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Layer k on its input h: (its input as used, after dropout before the head;
        z = x W + b; its output f(z), or z for the last layer). `step`: the training step that
        keys dropout's mask (None: no dropout)."""
        if k == len(self.layers) - 1:
            h = self.dropout(h, step=step, call=k)
        z = self.layers[k](h)
        return h, z, (z if k == len(self.layers) - 1 else ACTIVATIONS[self.activation](z))

    def forward(self, x, inspect: bool = False, step: int | None = None) -> Tensor:
        """The output (batch, sizes[-1]) for input x (batch, sizes[0]).

        With `inspect=True` each layer's input, pre-activation and output are kept in
        `layer_records` (the pre-activations retain their gradient); otherwise `layer_records`
        is emptied, so that no graph is held alive by the model. `step`: a training step
        (dropout draws that step's mask); None for evaluation.
        """
        h = x if isinstance(x, Tensor) else Tensor(x)
        records = []
        for k in range(len(self.layers)):
            used, z, h = self.layer(k, h, step)
            if inspect:
                records.append(LayerRecord(used, z.retain_grad(), h))
        self.layer_records = records
        return h

    def affine(self, k: int, x: np.ndarray) -> np.ndarray:
        """Layer k's pre-activation z = x W + b on arrays (batch, in) -> (batch, out), no graph:
        the arithmetic of `Linear.forward` (the same bits). A TypeError if x is not the
        model's dtype (the product would silently promote)."""
        layer = self.layers[k]
        weight = layer.weight.data
        if x.dtype != weight.dtype:
            raise TypeError(f"layer {k}: input has dtype {x.dtype} but the MLP is "
                            f"{weight.dtype}")
        z = x @ weight
        z += layer.bias.data
        return z

    def logits(self, x: np.ndarray) -> np.ndarray:
        """The output (batch, sizes[-1]) for input x (batch, sizes[0]) on arrays: no graph, no
        dropout, no `layer_records` (for evaluation; the same bits as `forward`, at a fraction
        of its cost on small layers, which are dominated by building the graph)."""
        if not isinstance(x, np.ndarray) or x.ndim != 2 or x.shape[1] != self.sizes[0]:
            raise ValueError(f"MLP expects input of shape (batch, {self.sizes[0]}), got "
                             f"{getattr(x, 'shape', type(x).__name__)}")
        node = ACTIVATION_NODES[self.activation]()
        last = len(self.layers) - 1
        for k in range(last):
            x = node.run(self.affine(k, x))
        return self.affine(last, x)

    def config(self) -> dict:
        """The constructor arguments as JSON-ready data (what `bptt.training.pretrained` saves
        to rebuild it); "dropout" only when it is used."""
        config = {"architecture": "mlp", "sizes": list(self.sizes),
                  "activation": self.activation, "dtype": self.dtype.name}
        if self.dropout.p:
            config["dropout"] = self.dropout.p
        return config

    @classmethod
    def from_config(cls, config: dict, rng: np.random.Generator | None = None) -> "MLP":
        """An MLP built from `config()` output (weights freshly initialised from `rng`)."""
        return cls(config["sizes"], config["activation"],
                   rng=rng if rng is not None else np.random.default_rng(0),
                   dtype=np.dtype(config["dtype"]), dropout=config.get("dropout", 0.0))


def _check_size(what: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")


def _check_dtype(dtype) -> np.dtype:
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        raise ValueError(f"dtype must be float32 or float64, got {dtype!r}") from None
    if dtype not in FLOAT_DTYPES:
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")
    return dtype
