"""`Module`: a container of named parameters, and `Parameter`, the leaf tensors it trains."""
from __future__ import annotations

from typing import Iterator, Mapping

import numpy as np

from bptt.engine.tensor import Tensor


class Parameter(Tensor):
    """A leaf `Tensor` that requires grad and belongs to a `Module` (what optimisers update)."""

    __slots__ = ()

    def __init__(self, data, name: str | None = None):
        super().__init__(data, requires_grad=True, name=name)

    def __repr__(self) -> str:
        return "Parameter" + super().__repr__()[len("Tensor"):]


class Module:
    """Base class of layers and models.

    Parameters are found by walking the instance attributes in assignment order: `Parameter`
    attributes, sub-`Module` attributes, and lists/tuples of modules (named by index). So the order
    of `parameters()` is the order the constructor assigned them: deterministic, and the same for
    every instance built with the same arguments (optimiser state and saved files rely on it).
    """

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def forward(self, *args, **kwargs):
        """What calling the module computes; a module used only through other means (an `RNN`,
        which is unrolled by `model.chain(...)`) has no forward and is not callable."""
        raise TypeError(f"{type(self).__name__} is not callable: it defines no forward")

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """(dotted name, parameter) pairs, e.g. ("layers.0.weight", W), in assignment order."""
        for name, value in vars(self).items():
            if isinstance(value, Parameter):
                yield prefix + name, value
            elif isinstance(value, Module):
                yield from value.named_parameters(f"{prefix}{name}.")
            elif isinstance(value, (list, tuple)):
                for k, item in enumerate(value):
                    if isinstance(item, Module):
                        yield from item.named_parameters(f"{prefix}{name}.{k}.")

    def parameters(self) -> list[Parameter]:
        """The parameters in the order of `named_parameters()`."""
        return [p for _, p in self.named_parameters()]

    def zero_grad(self) -> None:
        """Forget every parameter's accumulated gradient."""
        for p in self.parameters():
            p.zero_grad()

    def state_dict(self) -> dict[str, np.ndarray]:
        """A copy of every parameter's value, by dotted name (later training does not change it)."""
        return {name: p.data.copy() for name, p in self.named_parameters()}

    def load_state_dict(self, state: Mapping[str, np.ndarray]) -> None:
        """Copy `state` into the parameters, after checking names, shapes and dtypes.

        Nothing is changed unless everything matches; otherwise a ValueError lists every missing
        and unexpected name and every shape or dtype that differs.
        """
        own = dict(self.named_parameters())
        problems = []
        missing = [n for n in own if n not in state]
        unexpected = [n for n in state if n not in own]
        if missing:
            problems.append(f"missing {missing}")
        if unexpected:
            problems.append(f"unexpected {unexpected}")
        for name, p in own.items():
            if name not in state:
                continue
            value = np.asarray(state[name])
            if value.shape != p.shape:
                problems.append(f"{name}: shape {value.shape}, expected {p.shape}")
            if value.dtype != p.dtype:
                problems.append(f"{name}: dtype {value.dtype}, expected {p.dtype}")
        if problems:
            raise ValueError(f"state does not match {type(self).__name__}: "
                             + "; ".join(problems))
        for name, p in own.items():
            np.copyto(p.data, state[name])
