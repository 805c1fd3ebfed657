"""Layers and models built from `bptt` tensors.

`Module`, `Parameter`, `Linear`, `MLP` (feed-forward), `Dropout` (counter-based masks that
recomputation reproduces); `RNNCell`, `LSTMCell`, `GRUCell` (one time step, fused or
composed); `RNN` (a cell with a linear read-out and a loss) and the chains that unroll
models for the executor: `SequenceChain` (time steps) and `LayerChain` (layers).
"""
from bptt.nn.cells import GRUCell, LSTMCell, RNNCell, make_cell
from bptt.nn.dropout import Dropout
from bptt.nn.init import he_normal, xavier_uniform
from bptt.nn.layer_chain import LayerChain
from bptt.nn.linear import MLP, LayerRecord, Linear
from bptt.nn.module import Module, Parameter
from bptt.nn.rnn import RNN, SequenceChain

__all__ = ["Dropout", "GRUCell", "LSTMCell", "LayerChain", "LayerRecord", "Linear", "MLP",
           "Module", "Parameter", "RNN", "RNNCell", "SequenceChain", "he_normal", "make_cell",
           "xavier_uniform"]
