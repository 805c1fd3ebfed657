"""Layers and models built from `bptt` tensors: `Module`, `Parameter`, `Linear`, `MLP`."""
from bptt.nn.init import he_normal, xavier_uniform
from bptt.nn.linear import MLP, LayerRecord, Linear
from bptt.nn.module import Module, Parameter

__all__ = ["LayerRecord", "Linear", "MLP", "Module", "Parameter", "he_normal", "xavier_uniform"]
