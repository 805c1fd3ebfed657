"""Learning without weight transport: backward variants that form a layer's error signal
without the transpose of the weights above it.

Backpropagation sends the error of layer l+1 down through (W^(l+1))ᵀ; hardware that cannot
read its own weights backwards (the weight transport problem, Grossberg 1987) needs another
path. A variant changes only that path: the forward pass, the parameter gradients' formula
(dW = xᵀ δ, local to the layer) and the executor are untouched, so every variant runs under
every memory strategy. The variants (`VARIANTS`):

- `backprop`: (W^(l+1))ᵀ, the exact gradient;
- `fa`: a fixed random matrix B^(l+1) of the shape of (W^(l+1))ᵀ (Lillicrap et al. 2016);
- `dfa`: the output error e projected straight to every hidden layer by a fixed random
  (n_out, width) matrix (Nøkland 2016); through time, each step's hidden state receives the
  read-out errors of its own and every later step (their sum) through one matrix;
- `sign`: sign(W^(l+1))ᵀ, only the signs are read (Liao, Leibo & Poggio 2016), times the
  constant sqrt(2 / (fan_in + fan_out)) (Xavier's standard deviation: the shape's, not W's);
- `kp`: Kolen-Pollack (Akrout et al. 2019): B is learned by the same optimiser step as W from
  the same local update (the outer product of the layer's input and the δ arriving through B,
  i.e. dWᵀ) with weight decay on both, so B - Wᵀ shrinks by (1 - decay) every step;
- `hebbian`: B is learned by a plain local Hebbian rule from the same two quantities at its
  ends (pre-synaptic activation, post-synaptic teaching signal -δ), B ← (1 - λ_B) B - η_B δᵀx,
  with its own rate and a decay on B only; W is trained as in `fa` (no decay).

The feedback matrices are `Parameter`s of a `Feedback` module attached to the model as
`model.feedback`, so they are saved and loaded (shape-checked) with the weights; only `kp`'s
are handed to the optimiser (`trainable_parameters`).
"""
from __future__ import annotations

import numpy as np

from bptt.engine.tensor import Function, Tensor
from bptt.nn.init import xavier_uniform
from bptt.nn.module import Module, Parameter

VARIANTS = ("backprop", "fa", "dfa", "sign", "kp", "hebbian")
LEARNED = ("kp", "hebbian")
KP_DECAY = 1e-4        # per step, on W and B: chosen on the digits validation split over 1e-3
HEBBIAN_LR = 0.01      # η_B
HEBBIAN_DECAY = 1e-3   # λ_B


def check_variant(name: str) -> str:
    """`name` if it is a backward variant, else a ValueError listing them."""
    if name not in VARIANTS:
        raise ValueError(f"unknown backward variant {name!r}; choose one of {list(VARIANTS)}")
    return name


class DirectError:
    """The output error e (batch, n_out) of the current reverse sweep, shared by `dfa` nodes:
    the output layer's node writes it, the hidden layers' nodes read it (a plan must reverse
    the output layer before the layers below it, which every exact plan does)."""

    __slots__ = ("error",)

    def __init__(self):
        self.error = None


class FeedbackMatMul(Function):
    """z = x @ W (x (B, in), W (in, out)); in backward dx = g @ B instead of g @ Wᵀ.

    Inputs (x, W). Options: `feedback` (out, in) or, for `dfa`, (n_out, in); `direct` (a
    `DirectError`, dfa only) and `output` (this is the output layer: its δ is e). With
    feedback None no input error is formed (the data needs none). W is used in forward only:
    the cache is x and the feedback matrix, never W.
    """

    def forward(self, x, W, feedback=None, direct=None, output=False):
        self.save(x, feedback, direct, output)
        return x @ W

    def backward(self, g):
        x, feedback, direct, output = self.saved
        need_x, need_w = self.needs_input_grad
        dx = None
        if need_x and feedback is not None:
            if direct is None:
                dx = g @ feedback
            else:
                if output:
                    direct.error = g
                if direct.error is None:
                    raise RuntimeError("dfa: a hidden layer was reversed before the output "
                                       "layer; dfa needs a plan that reverses the output first")
                dx = direct.error @ feedback
        return dx, (x.T @ g if need_w else None)


class Feedback(Module):
    """The feedback matrices of one backward variant for a model's weights.

    `pairs`: (name, W, feedback shape) for each weight whose transpose carries an error; the
    matrix `B_<name>` (a `Parameter`, the shape given) replaces Wᵀ. Matrices are drawn by
    Xavier-uniform from `rng` (symmetric in fan-in and fan-out, so B has Wᵀ's distribution);
    `sign` keeps none. `decay`, `hebbian_lr`: see the module docstring.
    """

    def __init__(self, variant: str, pairs, rng: np.random.Generator, dtype,
                 decay: float = KP_DECAY, hebbian_lr: float = HEBBIAN_LR,
                 hebbian_decay: float = HEBBIAN_DECAY):
        self.variant = check_variant(variant)
        self.decay, self.hebbian_lr, self.hebbian_decay = decay, hebbian_lr, hebbian_decay
        self._weights = {}
        for name, weight, shape in pairs:
            self._weights[name] = weight
            if variant != "sign":
                value = xavier_uniform(shape[1], shape[0], rng, np.float64).T.astype(dtype)
                setattr(self, f"B_{name}", Parameter(np.ascontiguousarray(value),
                                                     name=f"B_{name}"))

    def names(self) -> list[str]:
        """The names of the weights that have a feedback path."""
        return list(self._weights)

    def matrix(self, name: str) -> np.ndarray:
        """The array used in place of Wᵀ for weight `name` (sign: sign(W)ᵀ, signs only)."""
        if self.variant == "sign":
            W = self._weights[name].data
            signs = np.ascontiguousarray(np.sign(W)).T
            # A ±1 matrix has a spectral radius ~ sqrt(width): scaled to Xavier's standard
            # deviation, a constant of the shape alone (no magnitude of W is read), the error
            # keeps its size across layers and time steps (without it, T = 50 overflows).
            return np.ascontiguousarray(signs * np.sqrt(2.0 / sum(W.shape)), dtype=W.dtype)
        return getattr(self, f"B_{name}").data

    def matrices(self) -> dict[str, Parameter]:
        """The learned or fixed feedback matrices by weight name (none for `sign`)."""
        return {n: getattr(self, f"B_{n}") for n in self._weights if hasattr(self, f"B_{n}")}

    def before_update(self) -> None:
        """kp: give B its local update, B.grad = (dW)ᵀ = δᵀ x, the outer product of the two
        quantities at B's ends, summed like W's (no weight is read); B is then clipped and
        stepped by the optimiser with W."""
        if self.variant == "kp":
            for name, B in self.matrices().items():
                B.grad = np.ascontiguousarray(self._weights[name].grad.T)

    def after_update(self) -> None:
        """kp: decay W and B; hebbian: B ← (1 - λ_B) B - η_B δᵀx (the optimiser left B alone)."""
        if self.variant == "kp":
            for name, B in self.matrices().items():
                self._weights[name].data *= 1 - self.decay
                B.data *= 1 - self.decay
        elif self.variant == "hebbian":  # δᵀ x as W's gradient holds it (after any clipping)
            for name, B in self.matrices().items():
                B.data *= 1 - self.hebbian_decay
                B.data -= self.hebbian_lr * self._weights[name].grad.T


def trainable_parameters(model: Module) -> list[Parameter]:
    """The parameters an optimiser updates: the model's, with `kp`'s feedback matrices but not
    the fixed (`fa`, `dfa`) or Hebbian ones."""
    feedback = getattr(model, "feedback", None)
    fixed = set() if feedback is None or feedback.variant == "kp" else {
        id(B) for B in feedback.matrices().values()}
    return [p for p in model.parameters() if id(p) not in fixed]


def attach_feedback(model: Module, variant: str, rng: np.random.Generator,
                    **options) -> Module:
    """Give an `MLP` or a fused-cell `RNN` the backward `variant` (`backprop` removes it).

    MLP: a matrix per layer l >= 1 in place of (W^(l))ᵀ ((out, in); dfa: (n_out, in)).
    RNN: B_W_h (G, H) in place of W_hᵀ and B_readout (O, H) in place of W_yᵀ (dfa: only the
    latter; the error reaches earlier steps by the sum described in the module docstring).
    `options`: `Feedback`'s decay, hebbian_lr, hebbian_decay. Returns the model.
    """
    check_variant(variant)
    if hasattr(model, "feedback"):
        del model.feedback
    if variant == "backprop":
        return model
    if hasattr(model, "layers"):  # an MLP
        n_out = model.sizes[-1]
        pairs = [(str(index), layer.weight,
                  (n_out if variant == "dfa" else layer.out_features, layer.in_features))
                 for index, layer in enumerate(model.layers) if index >= 1]
    else:
        if not model.cell.fused:
            raise ValueError(f"backward variant {variant!r} runs on fused cells (the chain "
                             f"that forms the error on arrays); build the RNN with fused=True")
        W_h = model.cell.affine_parameters()[1]
        pairs = [("readout", model.readout.weight, model.readout.weight.shape[::-1])]
        if variant != "dfa":
            pairs.insert(0, ("W_h", W_h, W_h.shape[::-1]))
    model.feedback = Feedback(variant, pairs, rng, model.dtype, **options)
    return model


def variant_of(model: Module) -> str:
    """The model's backward variant ("backprop" without feedback)."""
    feedback = getattr(model, "feedback", None)
    return "backprop" if feedback is None else feedback.variant


def layer_forward(model: Module, index: int, h: Tensor, direct: DirectError | None) -> Tensor:
    """Layer `index` (l) of an MLP on h with the model's backward variant: x W + b whose backward
    forms the input error by the variant (`backprop`: the plain engine operations)."""
    layer = model.layers[index]
    feedback = getattr(model, "feedback", None)
    if feedback is None:
        return layer(h)
    h = h if isinstance(h, Tensor) else Tensor(h)
    matrix = feedback.matrix(str(index)) if index >= 1 else None
    z = FeedbackMatMul()(h, layer.weight, feedback=matrix,
                         direct=direct if feedback.variant == "dfa" else None,
                         output=index == len(model.layers) - 1)
    return z + layer.bias


def input_error(model: Module, index: int, dz: np.ndarray, direct: DirectError,
                x: np.ndarray) -> np.ndarray:
    """The error layer `index` (l) of an MLP sends to its input x, from its δ = `dz` (batch, out),
    on arrays: dz Wᵀ for backprop, else the variant's (zeros for the data, l = 0; dfa: the output
    error, written to `direct` by the output layer, through the layer's matrix)."""
    feedback = getattr(model, "feedback", None)
    if feedback is None:
        return dz @ model.layers[index].weight.data.T
    if index == 0:
        return np.zeros_like(x)
    matrix = feedback.matrix(str(index))
    if feedback.variant != "dfa":
        return dz @ matrix
    if index == len(model.layers) - 1:
        direct.error = dz
    if direct.error is None:
        raise RuntimeError("dfa: a hidden layer was reversed before the output layer; dfa "
                           "needs a plan that reverses the output first")
    return direct.error @ matrix
